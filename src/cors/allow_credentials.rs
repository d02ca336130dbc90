//! `Access-Control-Allow-Credentials`: sent as `true` when credentials are allowed, else omitted.

use http::HeaderValue;

/// Whether responses to allowed origins carry `Access-Control-Allow-Credentials: true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowCredentials(pub bool);

static TRUE: HeaderValue = HeaderValue::from_static("true");

impl AllowCredentials {
    /// The header value to send, if any.
    pub(crate) fn value(self) -> Option<&'static HeaderValue> {
        self.0.then_some(&TRUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_literal_true_or_nothing() {
        assert_eq!(AllowCredentials(true).value().unwrap(), "true");
        assert!(AllowCredentials(false).value().is_none());
    }
}
