//! Request limits: the request line (414), the request head (431), the body's size (413), and
//! the time a head or a body may take (408), checked without allocating.
//!
//! Tracker requests are small: a GraphQL mutation of a few hundred bytes. The limits keep a
//! misbehaving or hostile client from tying up Ackee with large uploads.

use http::{HeaderMap, Method, Uri, header};

/// The largest body the gateway buffers: pingora's retry buffer holds 64 KiB.
pub const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// Request size limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body; more gets 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line plus headers); more gets 431.
    pub max_header_bytes: usize,
    /// How long a request body may pause before the request gets 408.
    pub body_timeout: std::time::Duration,
    /// How long the gateway waits for a whole request head before it answers 408; also how
    /// long an HTTP/2 connection may idle with no stream before it is closed with a GOAWAY.
    pub header_timeout: std::time::Duration,
    /// Connections one client may hold open at once; `None` when off. See
    /// [`crate::connections`].
    pub max_connections_per_client: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            body_timeout: std::time::Duration::from_secs(15),
            header_timeout: std::time::Duration::from_secs(60),
            max_connections_per_client: Some(crate::connections::DEFAULT_PER_CLIENT),
        }
    }
}

/// Which limit a request broke. Its label is one of a fixed set, safe for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// The request line plus headers were larger than `max_header_bytes`: 431.
    Header,
    /// The body was larger than `max_body_bytes`: 413.
    Body,
    /// The body stopped arriving for `body_timeout_seconds`: 408.
    BodyTimeout,
    /// The request line alone was larger than `max_header_bytes`, or too long to parse: 414.
    Uri,
    /// The request head did not arrive within `header_timeout_seconds`: 408.
    HeaderTimeout,
}

impl Exceeded {
    /// Every limit, in label order.
    pub const ALL: [Exceeded; 5] = [
        Exceeded::Header,
        Exceeded::Body,
        Exceeded::BodyTimeout,
        Exceeded::Uri,
        Exceeded::HeaderTimeout,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Exceeded::Header => "header",
            Exceeded::Body => "body",
            Exceeded::BodyTimeout => "body_timeout",
            Exceeded::Uri => "uri",
            Exceeded::HeaderTimeout => "header_timeout",
        }
    }

    /// The HTTP status to answer with.
    pub fn status(self) -> u16 {
        match self {
            Exceeded::Header => 431,
            Exceeded::Body => 413,
            Exceeded::BodyTimeout | Exceeded::HeaderTimeout => 408,
            Exceeded::Uri => 414,
        }
    }

    /// The short text body of the answer.
    pub fn body(self) -> &'static [u8] {
        match self {
            Exceeded::Header => b"Request Header Fields Too Large\n",
            Exceeded::Body => b"Content Too Large\n",
            Exceeded::BodyTimeout => b"Request Timeout: the request body stopped arriving\n",
            Exceeded::Uri => b"URI Too Long\n",
            Exceeded::HeaderTimeout => b"Request Timeout\n",
        }
    }
}

/// The size of a request line on an HTTP/1.1 wire: "METHOD SP target SP HTTP/1.1 CRLF".
pub fn line_size(method: &Method, uri: &Uri) -> usize {
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3);
    method.as_str().len() + 1 + target + 1 + 8 + 2
}

/// The size of a request head as it appears on an HTTP/1.1 wire: request line and header lines.
pub fn head_size(method: &Method, uri: &Uri, headers: &HeaderMap) -> usize {
    // "name: value CRLF" per field, then the final CRLF.
    let fields: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    line_size(method, uri) + fields + 2
}

impl Limits {
    /// Checks the head of a request, before anything else happens.
    pub fn check_head(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(), Exceeded> {
        if line_size(method, uri) > self.max_header_bytes {
            Err(Exceeded::Uri)
        } else if head_size(method, uri, headers) > self.max_header_bytes {
            Err(Exceeded::Header)
        } else {
            Ok(())
        }
    }

    /// Checks a declared `Content-Length`, so a too-large body is refused before it is read.
    pub fn check_declared_body(&self, headers: &HeaderMap) -> Result<(), Exceeded> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok());
        match declared {
            Some(n) if n > self.max_body_bytes => Err(Exceeded::Body),
            _ => Ok(()),
        }
    }

    /// Checks the running total of a streamed body.
    pub fn check_body_so_far(&self, bytes: u64) -> Result<(), Exceeded> {
        if bytes > self.max_body_bytes {
            Err(Exceeded::Body)
        } else {
            Ok(())
        }
    }
}

/// Whether the client waits for `100 Continue` before it sends the body.
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn head_size_counts_request_line_and_fields_like_the_wire() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("a.test"));
        let uri: Uri = "/api".parse().unwrap();
        // "POST /api HTTP/1.1\r\n" = 20, "host: a.test\r\n" = 14, "\r\n" = 2
        assert_eq!(head_size(&Method::POST, &uri, &h), 36);
    }

    #[test]
    fn limits_refuse_exactly_what_is_over() {
        let l = Limits {
            max_body_bytes: 10,
            max_header_bytes: 1024,
            ..Limits::default()
        };
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        assert_eq!(l.check_declared_body(&h), Ok(()));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(l.check_declared_body(&h), Err(Exceeded::Body));
        assert_eq!(l.check_body_so_far(10), Ok(()));
        assert_eq!(l.check_body_so_far(11), Err(Exceeded::Body));
        let uri: Uri = "/".parse().unwrap();
        h.insert("x-big", HeaderValue::from_str(&"a".repeat(1000)).unwrap());
        assert_eq!(l.check_head(&Method::GET, &uri, &h), Err(Exceeded::Header));
        h.remove("x-big");
        assert_eq!(l.check_head(&Method::GET, &uri, &h), Ok(()));
        let long: Uri = format!("/{}", "u".repeat(1024)).parse().unwrap();
        assert_eq!(l.check_head(&Method::GET, &long, &h), Err(Exceeded::Uri));
    }

    #[test]
    fn only_100_continue_makes_the_gateway_answer_before_the_body() {
        for (value, expects) in [
            (Some("100-continue"), true),
            (Some("100-Continue"), true),
            (Some("200-ok"), false),
            (None, false),
        ] {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(header::EXPECT, HeaderValue::from_static(v));
            }
            assert_eq!(expects_continue(&h), expects, "{value:?}");
        }
    }

    #[test]
    fn each_limit_has_its_own_status_and_label() {
        let table = [
            (Exceeded::Header, 431, "header"),
            (Exceeded::Body, 413, "body"),
            (Exceeded::BodyTimeout, 408, "body_timeout"),
            (Exceeded::Uri, 414, "uri"),
            (Exceeded::HeaderTimeout, 408, "header_timeout"),
        ];
        assert_eq!(table.len(), Exceeded::ALL.len());
        for (e, status, label) in table {
            assert_eq!((e.status(), e.as_str()), (status, label));
        }
    }
}
