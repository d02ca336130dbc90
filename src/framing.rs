//! Request framing checks and hop-by-hop response headers, decided without pingora.
//!
//! - An HTTP/1.1 request without `Host` is refused with 400 (RFC 9112 3.2), as nginx does.
//! - A request with both `Content-Length` and `Transfer-Encoding` is refused with 400: the two
//!   framings disagree, which is how request smuggling starts. (Different `Content-Length`
//!   values are refused by pingora's parser; identical ones are collapsed into one.)
//! - Hop-by-hop headers of Ackee's response (`Connection`, `Keep-Alive`, `Proxy-Connection`,
//!   `TE`, `Trailer`, and every header `Connection` names) describe the connection between the
//!   gateway and Ackee and never reach the client. The framing headers (`Content-Length`,
//!   `Transfer-Encoding`) and `Upgrade` are left to pingora, which frames the answer.
//! - A body read whole goes to Ackee with a `Content-Length`: the client's own, when it is
//!   already the one plain decimal of the length read.

use http::{HeaderMap, HeaderName, header};

/// Why a request head was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// HTTP/1.1 without `Host`.
    MissingHost,
    /// `Content-Length` together with `Transfer-Encoding`.
    AmbiguousLength,
    /// A head pingora's parser could not read (answered 400 by pingora itself).
    Unparsable,
}

impl Malformed {
    /// Every reason, in label order.
    pub const ALL: [Malformed; 3] = [
        Malformed::MissingHost,
        Malformed::AmbiguousLength,
        Malformed::Unparsable,
    ];

    /// The `reason` label of `ackee_gateway_request_rejections_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::MissingHost => "missing_host",
            Malformed::AmbiguousLength => "framing",
            Malformed::Unparsable => "unparsable",
        }
    }

    /// The body of the 400 answer.
    pub fn body(self) -> &'static [u8] {
        match self {
            Malformed::MissingHost => b"Bad Request: an HTTP/1.1 request needs a Host header\n",
            Malformed::AmbiguousLength => {
                b"Bad Request: Content-Length together with Transfer-Encoding\n"
            }
            Malformed::Unparsable => b"Bad Request\n",
        }
    }
}

/// What the framing check needs to know about a request head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// An HTTP/1.1 request (not 1.0, not HTTP/2, whose `:authority` stands for `Host`).
    pub http11: bool,
    /// `Host` is present.
    pub host: bool,
    /// `Transfer-Encoding` is present.
    pub transfer_encoding: bool,
    /// pingora turned keep-alive off for the connection. Its parser drops `Content-Length` when
    /// `Transfer-Encoding` is present too and turns keep-alive off, so this, without a
    /// `Connection: close` from the client, is how the combination shows.
    pub keepalive_off: bool,
    /// The client asked to close (`Connection: close`).
    pub asks_close: bool,
}

/// Checks a request head.
pub fn check(h: Head) -> Result<(), Malformed> {
    if h.http11 && !h.host {
        return Err(Malformed::MissingHost);
    }
    if h.http11 && h.transfer_encoding && h.keepalive_off && !h.asks_close {
        return Err(Malformed::AmbiguousLength);
    }
    Ok(())
}

/// Whether a `Connection` header lists `close`.
pub fn asks_close(headers: &HeaderMap) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("close"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

const ALWAYS_HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
];

/// Headers pingora frames the answer with; never removed here.
const FRAMING: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Adds the hop-by-hop headers of a response, to remove before it goes to the client, to `out`.
///
/// Every answer from Ackee has some (`Connection: keep-alive`), so the fixed names are
/// compared as built at compile time, and a `Connection` token becomes a name of its own only
/// when it names something else.
pub fn hop_by_hop(headers: &HeaderMap, out: &mut Vec<HeaderName>) {
    for name in &ALWAYS_HOP_BY_HOP {
        if headers.contains_key(name) {
            out.push(name.clone());
        }
    }
    let known = |t: &str| {
        ALWAYS_HOP_BY_HOP
            .iter()
            .chain(&FRAMING)
            .any(|n| n.as_str().eq_ignore_ascii_case(t))
    };
    for token in connection_tokens(headers).filter(|t| !known(t)) {
        // HeaderName::from_bytes lowercases the name itself.
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            if headers.contains_key(&name) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
}

/// Whether `headers` carry exactly one `Content-Length`, written as the plain decimal `length`
/// (what `HeaderValue::from(length)` would write). The gateway then forwards the client's own
/// header instead of formatting and allocating the same value again.
pub fn declares_length(headers: &HeaderMap, length: u64) -> bool {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = length;
    loop {
        at -= 1;
        // A digit: rest % 10 is below 10.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    value.as_bytes() == &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_one_plain_decimal_equal_to_the_body() {
        let head = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::CONTENT_LENGTH, v.parse().unwrap());
            }
            h
        };
        let cases: [(&[&str], u64, bool); 9] = [
            (&["647"], 647, true),
            (&["0"], 0, true),
            (&["18446744073709551615"], u64::MAX, true),
            (&["646"], 647, false),
            (&["0647"], 647, false),
            (&["+647"], 647, false),
            (&[" 647"], 647, false),
            (&["647", "647"], 647, false),
            (&[], 647, false),
        ];
        for (values, length, want) in cases {
            assert_eq!(
                declares_length(&head(values), length),
                want,
                "{values:?} {length}"
            );
        }
    }

    #[test]
    fn request_heads() {
        let ok = Head {
            http11: true,
            host: true,
            ..Head::default()
        };
        let cases = [
            (ok, Ok(())),
            (Head { host: false, ..ok }, Err(Malformed::MissingHost)),
            // HTTP/1.0 and HTTP/2 need no Host.
            (
                Head {
                    http11: false,
                    host: false,
                    ..ok
                },
                Ok(()),
            ),
            (
                Head {
                    transfer_encoding: true,
                    ..ok
                },
                Ok(()),
            ),
            (
                Head {
                    transfer_encoding: true,
                    keepalive_off: true,
                    ..ok
                },
                Err(Malformed::AmbiguousLength),
            ),
            (
                Head {
                    transfer_encoding: true,
                    keepalive_off: true,
                    asks_close: true,
                    ..ok
                },
                Ok(()),
            ),
            (
                Head {
                    keepalive_off: true,
                    ..ok
                },
                Ok(()),
            ),
        ];
        for (head, want) in cases {
            assert_eq!(check(head), want, "{head:?}");
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    /// Response headers, and the hop-by-hop names expected from them.
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );

    #[test]
    fn hop_by_hop_response_headers() {
        let cases: [Case; 5] = [
            (&[("content-type", "text/plain")], &[]),
            (
                &[("connection", "keep-alive"), ("keep-alive", "timeout=5")],
                &["connection", "keep-alive"],
            ),
            (
                &[
                    ("connection", "X-Trace, close"),
                    ("x-trace", "1"),
                    ("x-other", "2"),
                ],
                &["connection", "x-trace"],
            ),
            // Framing stays with pingora even when Connection names it.
            (
                &[
                    ("connection", "Transfer-Encoding, Content-Length"),
                    ("content-length", "3"),
                ],
                &["connection"],
            ),
            (
                &[
                    ("te", "trailers"),
                    ("trailer", "x"),
                    ("proxy-connection", "k"),
                ],
                &["proxy-connection", "te", "trailer"],
            ),
        ];
        for (headers, want) in cases {
            let mut names = Vec::new();
            hop_by_hop(&map(headers), &mut names);
            let mut got: Vec<String> = names.iter().map(|n| n.as_str().to_owned()).collect();
            got.sort();
            assert_eq!(got, want, "{headers:?}");
        }
        assert!(asks_close(&map(&[("connection", "keep-alive, Close")])));
        assert!(!asks_close(&map(&[("connection", "keep-alive")])));
    }
}
