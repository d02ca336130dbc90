//! Removing Ackee's own `Access-Control-*` response headers, so the browser sees only the gateway's.

use http::{HeaderMap, HeaderName};

/// Whether a response header belongs to CORS (`Access-Control-` prefix, any case).
pub(crate) fn is_access_control(name: &HeaderName) -> bool {
    // HeaderName is always lowercase.
    name.as_str().starts_with("access-control-")
}

/// The first `Access-Control-*` header in a map, if any. Call it in a loop to remove them all
/// without collecting the names into a new allocation.
pub(crate) fn first_access_control(headers: &HeaderMap) -> Option<HeaderName> {
    headers.keys().find(|n| is_access_control(n)).cloned()
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
        let mut removed = 0;
        while let Some(name) = first_access_control(&h) {
            h.remove(&name);
            removed += 1;
        }
        assert_eq!(removed, 7);
        assert_eq!(h.len(), 3);
        assert!(h.contains_key("x-access-control-allow-origin"));
    }
}
