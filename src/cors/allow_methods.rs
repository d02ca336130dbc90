//! `Access-Control-Allow-Methods`: the methods a preflight may ask for, and their header value.

use http::HeaderValue;

/// The allowed methods and their comma-separated header value, built once.
#[derive(Clone, Debug)]
pub struct AllowMethods {
    methods: Vec<Box<str>>,
    value: HeaderValue,
}

impl AllowMethods {
    /// Builds the list. Methods are compared byte for byte, as browsers compare them.
    ///
    /// Returns `None` if a method is not a valid HTTP token (config validation rules those out).
    pub(crate) fn new<S: AsRef<str>>(methods: &[S]) -> Option<Self> {
        let joined = methods
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ");
        Some(AllowMethods {
            methods: methods.iter().map(|m| m.as_ref().into()).collect(),
            value: HeaderValue::from_str(&joined).ok()?,
        })
    }

    /// The `Access-Control-Allow-Methods` value, such as `GET, POST, PATCH, OPTIONS`.
    pub(crate) fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// Whether a preflight's `Access-Control-Request-Method` is allowed.
    pub(crate) fn allows(&self, requested: &[u8]) -> bool {
        self.methods.iter().any(|m| m.as_bytes() == requested)
    }
}

/// A method as written in `allowed_methods`, uppercased, or what is wrong with it.
pub(crate) fn method(written: &str) -> Result<String, String> {
    let star = "is \"*\"; write the methods by name, such as GET, POST, PATCH, OPTIONS";
    let not_a = "an HTTP method; write a method such as POST";
    super::token(written, star, not_a).map(str::to_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_match_case_sensitively_like_browsers_do() {
        let m = AllowMethods::new(&["GET", "POST", "PATCH", "OPTIONS"]).unwrap();
        assert_eq!(m.value(), "GET, POST, PATCH, OPTIONS");
        for (requested, want) in [
            (&b"POST"[..], true),
            (b"PATCH", true),
            (b"GET", true),
            (b"OPTIONS", true),
            (b"patch", false),
            (b"DELETE", false),
            (b"PUT", false),
            (b"", false),
            (b"POST ", false),
        ] {
            assert_eq!(
                m.allows(requested),
                want,
                "{:?}",
                String::from_utf8_lossy(requested)
            );
        }
    }
}
