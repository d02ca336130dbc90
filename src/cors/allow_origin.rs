//! `Access-Control-Allow-Origin`: reading the request's `Origin` and choosing the value to echo.

use http::{HeaderMap, HeaderValue, header};

use crate::origin::{LiveOrigins, OriginMatch, OriginSet};

/// The request's `Origin`, as far as CORS is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOrigin<'a> {
    /// No `Origin` header: the dashboard, an API client, curl.
    Absent,
    /// Exactly one `Origin` header.
    One(&'a HeaderValue),
    /// Two or more `Origin` headers. Never allowed.
    Several,
}

impl<'a> RequestOrigin<'a> {
    /// Reads the `Origin` headers of a request without allocating.
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        let mut all = headers.get_all(header::ORIGIN).iter();
        match (all.next(), all.next()) {
            (None, _) => RequestOrigin::Absent,
            (Some(value), None) => RequestOrigin::One(value),
            (Some(_), Some(_)) => RequestOrigin::Several,
        }
    }
}

/// What the allow list says about a request's origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// The request has no `Origin` header: CORS does not apply.
    Absent,
    /// Allowed. The value is the `Access-Control-Allow-Origin` to send.
    Allowed(HeaderValue),
    /// Refused: not listed, `null`, empty, not text, or several `Origin` headers.
    Refused,
}

/// The allow list in use, swappable (origins from Ackee).
#[derive(Clone, Debug)]
pub struct AllowOrigin {
    live: LiveOrigins,
}

static ANY: HeaderValue = HeaderValue::from_static("*");

impl AllowOrigin {
    /// Wraps a compiled allow list.
    pub(crate) fn new(set: OriginSet) -> Self {
        AllowOrigin {
            live: LiveOrigins::new(set),
        }
    }

    /// The handle a refresh stores new lists through.
    pub(crate) fn live(&self) -> &LiveOrigins {
        &self.live
    }

    /// Decides on a request's origin. The returned value is a cheap clone of a value built at
    /// start-up, or of the request's own header when a subdomain pattern matched.
    pub(crate) fn verdict(&self, origin: RequestOrigin<'_>) -> OriginVerdict {
        let value = match origin {
            RequestOrigin::Absent => return OriginVerdict::Absent,
            RequestOrigin::Several => return OriginVerdict::Refused,
            RequestOrigin::One(value) => value,
        };
        let Ok(text) = value.to_str() else {
            return OriginVerdict::Refused;
        };
        let set = self.live.load();
        match set.find(text) {
            None => OriginVerdict::Refused,
            Some(OriginMatch::Any) => OriginVerdict::Allowed(ANY.clone()),
            Some(OriginMatch::Listed(listed)) => OriginVerdict::Allowed(listed.clone()),
            Some(OriginMatch::Pattern) => OriginVerdict::Allowed(value.clone()),
        }
    }
}

/// Whether a request's `Origin` is the gateway's own origin: `scheme://host`, where `host` is the
/// request's `Host` (or HTTP/2 `:authority`). Browsers send `Origin` on same-origin POSTs, such as
/// those of Ackee's own dashboard; those must pass even in `reject` mode.
pub(crate) fn is_same_origin(origin: &HeaderValue, scheme: &str, host: &[u8]) -> bool {
    let Some(rest) = origin
        .as_bytes()
        .strip_prefix(scheme.as_bytes())
        .and_then(|r| r.strip_prefix(b"://"))
    else {
        return false;
    };
    let default_port: &[u8] = if scheme == "https" { b":443" } else { b":80" };
    let host = host.strip_suffix(default_port).unwrap_or(host);
    !host.is_empty() && rest.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    fn allow(entries: &[&str]) -> AllowOrigin {
        AllowOrigin::new(OriginSet::new(
            entries.iter().map(|e| parse_entry(e).unwrap()),
        ))
    }

    fn headers(origins: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for o in origins {
            h.append(header::ORIGIN, HeaderValue::from_bytes(o).unwrap());
        }
        h
    }

    #[test]
    fn the_request_origin_is_echoed_not_the_configured_entry() {
        let a = allow(&["https://example.com", "https://*.example.org"]);
        let cases: &[(&[&[u8]], Option<&str>)] = &[
            (&[b"https://example.com"], Some("https://example.com")),
            (
                &[b"https://www.example.org"],
                Some("https://www.example.org"),
            ),
            (&[b"https://example.co"], None),
            (&[b"null"], None),
            (&[b""], None),
            (&[b"https://example.com", b"https://example.com"], None),
            (&[b"https://example.com", b"https://evil.test"], None),
            (&[b"https://ex\xe4mple.com"], None),
        ];
        for (origins, want) in cases {
            let h = headers(origins);
            let got = a.verdict(RequestOrigin::of(&h));
            match want {
                Some(v) => assert_eq!(got, OriginVerdict::Allowed(HeaderValue::from_static(v))),
                None => assert_eq!(got, OriginVerdict::Refused, "origins {origins:?}"),
            }
        }
    }

    #[test]
    fn same_origin_is_recognised_from_scheme_and_host() {
        let o = |s: &'static str| HeaderValue::from_static(s);
        assert!(is_same_origin(
            &o("https://ackee.example.com"),
            "https",
            b"ackee.example.com"
        ));
        assert!(is_same_origin(
            &o("https://ackee.example.com"),
            "https",
            b"Ackee.Example.com:443"
        ));
        assert!(is_same_origin(
            &o("http://127.0.0.1:8080"),
            "http",
            b"127.0.0.1:8080"
        ));
        assert!(!is_same_origin(
            &o("http://127.0.0.1:8080"),
            "https",
            b"127.0.0.1:8080"
        ));
        assert!(!is_same_origin(
            &o("https://evil.test"),
            "https",
            b"ackee.example.com"
        ));
        assert!(!is_same_origin(
            &o("https://ackee.example.com.evil.test"),
            "https",
            b"ackee.example.com"
        ));
        assert!(!is_same_origin(&o("https://"), "https", b""));
    }

    #[test]
    fn no_origin_header_means_cors_does_not_apply() {
        let a = allow(&["https://example.com"]);
        assert_eq!(
            a.verdict(RequestOrigin::of(&HeaderMap::new())),
            OriginVerdict::Absent
        );
    }

    #[test]
    fn wildcard_mode_answers_a_literal_star() {
        let a = allow(&["*"]);
        let h = headers(&[b"https://anything.test"]);
        assert_eq!(
            a.verdict(RequestOrigin::of(&h)),
            OriginVerdict::Allowed(HeaderValue::from_static("*"))
        );
        let h = headers(&[b"null"]);
        assert_eq!(a.verdict(RequestOrigin::of(&h)), OriginVerdict::Refused);
    }
}
