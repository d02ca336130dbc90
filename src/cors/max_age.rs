//! `Access-Control-Max-Age`: how long a browser may cache a preflight answer.

use http::HeaderValue;

/// The max age header value, built once, or `None` to leave the header out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxAge(Option<HeaderValue>);

impl MaxAge {
    /// `Some(seconds)` sends the header; `None` leaves it out.
    pub(crate) fn new(seconds: Option<u32>) -> Self {
        MaxAge(seconds.map(HeaderValue::from))
    }

    /// The header value to send, if any.
    pub(crate) fn value(&self) -> Option<&HeaderValue> {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_sent_in_seconds_or_left_out() {
        assert_eq!(MaxAge::new(Some(3600)).value().unwrap(), "3600");
        assert!(MaxAge::new(None).value().is_none());
    }
}
