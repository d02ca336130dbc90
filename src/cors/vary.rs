//! `Vary: Origin`: present on every response, merged with whatever `Vary` Ackee sent.

use http::{HeaderMap, HeaderValue, header};

/// The value the gateway sends when the response has no `Vary` of its own.
pub(crate) static ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// What to do with a response's `Vary` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaryMerge {
    /// `Vary` already names `Origin`, or is `*`: leave it.
    Keep,
    /// There is no `Vary`: add `Vary: Origin`.
    Insert,
    /// There is a `Vary` without `Origin`: replace it with this single merged value.
    Replace(HeaderValue),
}

/// Decides how to make a response's `Vary` cover `Origin`. Allocates only when the response
/// already has a `Vary` that must be extended.
pub(crate) fn merge(headers: &HeaderMap) -> VaryMerge {
    let mut values = headers.get_all(header::VARY).iter().peekable();
    if values.peek().is_none() {
        return VaryMerge::Insert;
    }
    let mut covered = false;
    let mut items = 0usize;
    for value in headers.get_all(header::VARY) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            items += 1;
            if item == b"*" || item.eq_ignore_ascii_case(b"origin") {
                covered = true;
            }
        }
    }
    if covered {
        return VaryMerge::Keep;
    }
    if items == 0 {
        return VaryMerge::Insert;
    }
    let mut merged = Vec::with_capacity(64);
    for value in headers.get_all(header::VARY) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if !item.is_empty() {
                merged.extend_from_slice(item);
                merged.extend_from_slice(b", ");
            }
        }
    }
    merged.extend_from_slice(b"Origin");
    match HeaderValue::from_bytes(&merged) {
        Ok(v) => VaryMerge::Replace(v),
        Err(_) => VaryMerge::Insert,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_vary(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::VARY, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn vary_is_merged_never_replaced_or_duplicated() {
        let cases: &[(&[&str], VaryMerge)] = &[
            (&[], VaryMerge::Insert),
            (&["Origin"], VaryMerge::Keep),
            (&["origin"], VaryMerge::Keep),
            (&["Accept-Encoding, Origin"], VaryMerge::Keep),
            (&["*"], VaryMerge::Keep),
            (
                &["Accept-Encoding"],
                VaryMerge::Replace(HeaderValue::from_static("Accept-Encoding, Origin")),
            ),
            (
                &["Accept-Encoding", "Accept-Language"],
                VaryMerge::Replace(HeaderValue::from_static(
                    "Accept-Encoding, Accept-Language, Origin",
                )),
            ),
            (&["Accept-Encoding", "Origin"], VaryMerge::Keep),
            (
                &["Originator"],
                VaryMerge::Replace(HeaderValue::from_static("Originator, Origin")),
            ),
            (&[""], VaryMerge::Insert),
            (&[" , "], VaryMerge::Insert),
        ];
        for (values, want) in cases {
            assert_eq!(&merge(&with_vary(values)), want, "{values:?}");
        }
    }
}
