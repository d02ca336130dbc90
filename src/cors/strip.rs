//! Removing Ackee's own `Access-Control-*` response headers, so the browser sees only the gateway's.

use http::{HeaderMap, HeaderName};

/// Whether a response header belongs to CORS (`Access-Control-` prefix, any case).
pub(crate) fn is_access_control(name: &HeaderName) -> bool {
    // HeaderName is always lowercase.
    name.as_str().starts_with("access-control-")
}

/// Adds the name of every `Access-Control-*` header in a map to `out`, in one pass (Ackee
/// sends five on every answer; finding them one scan each cost more than the list).
pub(crate) fn access_control(headers: &HeaderMap, out: &mut Vec<HeaderName>) {
    out.extend(headers.keys().filter(|n| is_access_control(n)).cloned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn every_access_control_header_is_found_and_nothing_else() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("Access-Control-Allow-Origin", "https://example.com"),
            ("access-control-allow-methods", "GET, POST, PATCH, OPTIONS"),
            ("ACCESS-CONTROL-ALLOW-HEADERS", "Content-Type"),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Max-Age", "3600"),
            ("Access-Control-Expose-Headers", "X-Thing"),
            ("Access-Control-Something-New", "1"),
            ("Content-Type", "application/json"),
            ("X-Access-Control-Allow-Origin", "kept"),
            ("Vary", "Accept-Encoding"),
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let mut names = Vec::new();
        access_control(&h, &mut names);
        for name in &names {
            h.remove(name);
        }
        assert_eq!(names.len(), 7);
        assert_eq!(h.len(), 3);
        assert!(h.contains_key("x-access-control-allow-origin"));
    }
}
