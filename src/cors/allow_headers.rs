//! `Access-Control-Allow-Headers`: the request headers a preflight may ask for.

use http::HeaderValue;

/// The allowed request headers and their header value, built once.
#[derive(Clone, Debug)]
pub struct AllowHeaders {
    names: Vec<Box<str>>,
    value: HeaderValue,
}

impl AllowHeaders {
    /// Builds the list. Names are compared without regard to case.
    ///
    /// Returns `None` if a name is not a valid header value (config validation rules that out).
    pub(crate) fn new<S: AsRef<str>>(names: &[S]) -> Option<Self> {
        let joined = names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ");
        Some(AllowHeaders {
            names: names
                .iter()
                .map(|n| n.as_ref().to_ascii_lowercase().into())
                .collect(),
            value: HeaderValue::from_str(&joined).ok()?,
        })
    }

    /// The `Access-Control-Allow-Headers` value, such as `Content-Type, Authorization, Time-Zone`.
    pub(crate) fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// Whether every name in the preflight's `Access-Control-Request-Headers` values is allowed.
    ///
    /// Names are separated by commas with optional spaces; empty items are ignored.
    pub(crate) fn allows_all<'a>(
        &self,
        requested: impl IntoIterator<Item = &'a HeaderValue>,
    ) -> bool {
        requested.into_iter().all(|value| {
            value
                .as_bytes()
                .split(|&b| b == b',')
                .map(trim_ows)
                .filter(|name| !name.is_empty())
                .all(|name| {
                    self.names
                        .iter()
                        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
                })
        })
    }
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A header name as written in `allowed_headers`, or what is wrong with it.
pub(crate) fn header(written: &str) -> Result<String, String> {
    let star = "is \"*\"; browsers ignore \"*\" when credentials are on, so write the header names, such as Content-Type";
    let not_a = "a header name; write a name such as Content-Type";
    super::token(written, star, not_a).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_headers_are_matched_case_insensitively_item_by_item() {
        let h = AllowHeaders::new(&["Content-Type", "Authorization", "Time-Zone"]).unwrap();
        assert_eq!(h.value(), "Content-Type, Authorization, Time-Zone");
        let cases: &[(&[&str], bool)] = &[
            (&["content-type"], true),
            (&["content-type,time-zone"], true),
            (&["Content-Type, Authorization ,\tTime-Zone"], true),
            (&["content-type,"], true),
            (&[""], true),
            (&[], true),
            (&["content-type", "authorization"], true),
            (&["x-custom"], false),
            (&["content-type,x-custom"], false),
            (&["content-type", "x-custom"], false),
            (&["content-type-x"], false),
            (&["content"], false),
        ];
        for (values, want) in cases {
            let values: Vec<HeaderValue> = values
                .iter()
                .map(|v| HeaderValue::from_str(v).unwrap())
                .collect();
            assert_eq!(h.allows_all(&values), *want, "{values:?}");
        }
    }
}
