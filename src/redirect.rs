//! The plain-HTTP listener's redirect to HTTPS: `301` to the same host, path and query, as
//! Ackee's nginx example does with `return 301 https://$host$request_uri`.

/// The `Location` for a request, or `None` if its `Host` is not a plain host name or address
/// (then the request gets 400 rather than a redirect to somewhere odd).
pub fn https_location(host: &str, path_and_query: &str, https_port: u16) -> Option<String> {
    let host = host.trim();
    // Drop the port the client used for plain HTTP.
    let bare = if let Some(rest) = host.strip_prefix('[') {
        let close = rest.find(']')?;
        &host[..close + 2]
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let valid = !bare.is_empty()
        && bare.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    if !valid {
        return None;
    }
    let target = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    let mut location = String::with_capacity(8 + bare.len() + 6 + target.len());
    location.push_str("https://");
    location.push_str(&bare.to_ascii_lowercase());
    if https_port != 443 {
        location.push(':');
        location.push_str(&https_port.to_string());
    }
    location.push_str(target);
    Some(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_keeps_host_path_and_query() {
        let cases: &[(&str, &str, u16, Option<&str>)] = &[
            (
                "stats.example.com",
                "/tracker.js",
                443,
                Some("https://stats.example.com/tracker.js"),
            ),
            (
                "stats.example.com:80",
                "/api?x=1&y=2",
                443,
                Some("https://stats.example.com/api?x=1&y=2"),
            ),
            (
                "Stats.Example.com",
                "/",
                443,
                Some("https://stats.example.com/"),
            ),
            (
                "stats.example.com",
                "/a",
                8443,
                Some("https://stats.example.com:8443/a"),
            ),
            ("127.0.0.1:8080", "/x", 443, Some("https://127.0.0.1/x")),
            ("[::1]:8080", "/x", 443, Some("https://[::1]/x")),
            (
                "stats.example.com",
                "*",
                443,
                Some("https://stats.example.com/"),
            ),
            ("", "/", 443, None),
            ("evil.test/path", "/", 443, None),
            ("a b", "/", 443, None),
            ("x@evil.test", "/", 443, None),
        ];
        for (host, path, port, want) in cases {
            assert_eq!(
                https_location(host, path, *port).as_deref(),
                *want,
                "{host} {path}"
            );
        }
    }
}
