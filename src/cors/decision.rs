//! The whole CORS fate of a request, decided once: the proxy matches on a [`Decision`], and the
//! access log and the metrics take their labels from it.

use http::{HeaderMap, HeaderValue, Method, Uri, header};

use super::allow_origin::is_same_origin;
use super::{CorsPolicy, DisallowedOrigin, OriginVerdict, Preflight, Refusal};

/// Whether a CORS refusal was of a preflight or of an actual request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    /// An `OPTIONS` preflight.
    Preflight,
    /// Any other request carrying `Origin`.
    Actual,
}

impl RequestKind {
    /// The metric label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestKind::Preflight => "preflight",
            RequestKind::Actual => "actual",
        }
    }
}

/// What CORS makes of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Decision {
    /// No `Origin`: CORS does not apply; only `Vary: Origin` is added.
    #[default]
    NotApplicable,
    /// The `Origin` is the gateway's own (`scheme://Host`): passes unchanged, in both modes.
    SameOrigin,
    /// A preflight answered 204 with this `Access-Control-Allow-Origin` and the policy's
    /// other headers ([`CorsPolicy::preflight_headers`]).
    PreflightAllowed(HeaderValue),
    /// A preflight answered 403, for this reason, without `Access-Control-Allow-*` headers.
    PreflightRefused(Refusal),
    /// An actual request from an allowed origin: proxied, and its response gets this
    /// `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    /// An actual request from an origin that is not allowed, proxied without CORS headers
    /// (`disallowed_origin: forward`).
    ForwardedBare,
    /// An actual request from an origin that is not allowed, answered 403 at the edge
    /// (`disallowed_origin: reject`).
    Rejected,
}

impl Decision {
    /// The `Access-Control-Allow-Origin` an actual response (proxied or answered at the edge)
    /// carries, if any.
    pub(crate) fn allow_origin(&self) -> Option<&HeaderValue> {
        match self {
            Decision::Allowed(v) => Some(v),
            _ => None,
        }
    }

    /// The word in the access log.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Decision::NotApplicable | Decision::SameOrigin => "none",
            Decision::Allowed(_) => "allowed",
            Decision::ForwardedBare | Decision::Rejected => "refused",
            Decision::PreflightAllowed(_) => "preflight_allowed",
            Decision::PreflightRefused(_) => "preflight_refused",
        }
    }

    /// For `ackee_gateway_preflights_total`: whether a preflight was allowed.
    pub(crate) fn preflight(&self) -> Option<bool> {
        match self {
            Decision::PreflightAllowed(_) => Some(true),
            Decision::PreflightRefused(_) => Some(false),
            _ => None,
        }
    }

    /// For `ackee_gateway_cors_rejections_total`: the reason and the kind of request refused.
    pub(crate) fn refusal(&self) -> Option<(Refusal, RequestKind)> {
        match self {
            Decision::PreflightRefused(r) => Some((*r, RequestKind::Preflight)),
            Decision::ForwardedBare | Decision::Rejected => {
                Some((Refusal::Origin, RequestKind::Actual))
            }
            _ => None,
        }
    }
}

/// The host the client addressed: `Host`, or the HTTP/2 `:authority`.
pub(crate) fn request_host<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a [u8] {
    match headers.get(header::HOST) {
        Some(h) => h.as_bytes(),
        None => uri.authority().map_or(&[][..], |a| a.as_str().as_bytes()),
    }
}

impl CorsPolicy {
    /// Decides a request's whole CORS fate. `scheme` is the listener's (`http` or `https`),
    /// for recognising the gateway's own origin.
    pub(crate) fn decide(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        scheme: &str,
    ) -> Decision {
        if CorsPolicy::is_preflight(method, headers) {
            return match self.preflight(headers) {
                Preflight::Allowed(v) => Decision::PreflightAllowed(v),
                Preflight::Refused(r) => Decision::PreflightRefused(r),
            };
        }
        match self.actual(headers) {
            OriginVerdict::Absent => Decision::NotApplicable,
            OriginVerdict::Allowed(v) => Decision::Allowed(v),
            OriginVerdict::Refused => {
                let host = request_host(uri, headers);
                let same_origin = headers
                    .get(header::ORIGIN)
                    .is_some_and(|o| is_same_origin(o, scheme, host));
                if same_origin {
                    Decision::SameOrigin
                } else if self.disallowed_origin() == DisallowedOrigin::Reject {
                    Decision::Rejected
                } else {
                    Decision::ForwardedBare
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cors::CorsSettings;
    use crate::origin::{OriginSet, parse_entry};

    fn policy(disallowed: DisallowedOrigin) -> CorsPolicy {
        let set = OriginSet::new([parse_entry("https://site.test").unwrap()]);
        let mut settings = CorsSettings::ackee_defaults(set);
        settings.disallowed_origin = disallowed;
        CorsPolicy::new(settings).unwrap()
    }

    use crate::cors::tests::request as headers;

    #[test]
    fn every_request_gets_one_decision() {
        use Decision::*;
        use DisallowedOrigin::{Forward as F, Reject as R};
        const OK: &str = "https://site.test";
        const EVIL: &str = "https://evil.test";
        const ACRM: &str = "Access-Control-Request-Method";
        let ok = || HeaderValue::from_static(OK);
        type Pairs = &'static [(&'static str, &'static str)];
        // (mode, scheme, method, uri, headers) -> decision, log label
        #[rustfmt::skip]
        let cases: Vec<(DisallowedOrigin, &str, Method, &str, Pairs, Decision, &str)> = vec![
            (F, "https", Method::OPTIONS, "/api", &[("Origin", OK), (ACRM, "POST")], PreflightAllowed(ok()), "preflight_allowed"),
            (F, "https", Method::OPTIONS, "/api", &[("Origin", EVIL), (ACRM, "POST")], PreflightRefused(Refusal::Origin), "preflight_refused"),
            (R, "https", Method::OPTIONS, "/api", &[("Origin", OK), (ACRM, "DELETE")], PreflightRefused(Refusal::Method), "preflight_refused"),
            // A preflight is refused even from the gateway's own origin.
            (F, "https", Method::OPTIONS, "/api", &[("Origin", "https://stats.test"), ("Host", "stats.test"), (ACRM, "POST")], PreflightRefused(Refusal::Origin), "preflight_refused"),
            // OPTIONS without Access-Control-Request-Method is an actual request.
            (F, "https", Method::OPTIONS, "/api", &[("Origin", OK)], Allowed(ok()), "allowed"),
            (F, "https", Method::POST, "/api", &[("Origin", OK)], Allowed(ok()), "allowed"),
            (F, "https", Method::POST, "/api", &[("Origin", EVIL)], ForwardedBare, "refused"),
            (R, "https", Method::POST, "/api", &[("Origin", EVIL)], Rejected, "refused"),
            (R, "https", Method::POST, "/api", &[("Origin", "null")], Rejected, "refused"),
            (F, "https", Method::GET, "/", &[], NotApplicable, "none"),
            (R, "https", Method::GET, "/", &[], NotApplicable, "none"),
            // The gateway's own origin passes in both modes, by Host or by :authority.
            (R, "https", Method::POST, "/api", &[("Origin", "https://stats.test"), ("Host", "stats.test:443")], SameOrigin, "none"),
            (F, "http", Method::POST, "/api", &[("Origin", "http://stats.test:8080"), ("Host", "stats.test:8080")], SameOrigin, "none"),
            (R, "https", Method::POST, "https://stats.test/api", &[("Origin", "https://stats.test")], SameOrigin, "none"),
            // The wrong scheme is another origin.
            (R, "https", Method::POST, "/api", &[("Origin", "http://stats.test"), ("Host", "stats.test")], Rejected, "refused"),
        ];
        for (mode, scheme, method, uri, pairs, want, label) in cases {
            let uri: Uri = uri.parse().unwrap();
            let got = policy(mode).decide(&method, &uri, &headers(pairs), scheme);
            assert_eq!(got, want, "{mode:?} {scheme} {method} {uri} {pairs:?}");
            assert_eq!(got.as_str(), label, "{pairs:?}");
        }
    }

    #[test]
    fn metric_labels_follow_the_decision() {
        let v = HeaderValue::from_static("https://site.test");
        let d = Decision::PreflightRefused(Refusal::Header);
        assert_eq!(d.preflight(), Some(false));
        assert_eq!(d.refusal(), Some((Refusal::Header, RequestKind::Preflight)));
        let d = Decision::PreflightAllowed(v.clone());
        assert_eq!(
            (d.preflight(), d.refusal(), d.allow_origin()),
            (Some(true), None, None)
        );
        for d in [Decision::ForwardedBare, Decision::Rejected] {
            assert_eq!(d.preflight(), None);
            assert_eq!(d.refusal(), Some((Refusal::Origin, RequestKind::Actual)));
            assert_eq!(d.allow_origin(), None);
        }
        for d in [Decision::NotApplicable, Decision::SameOrigin] {
            assert_eq!(
                (d.preflight(), d.refusal(), d.allow_origin()),
                (None, None, None)
            );
        }
        let d = Decision::Allowed(v.clone());
        assert_eq!(
            (d.preflight(), d.refusal(), d.allow_origin()),
            (None, None, Some(&v))
        );
    }
}
