//! CORS decisions and response headers, computed without pingora.
//!
//! One header concern per file, in the manner of tower-http's `cors` module:
//!
//! | file | owns |
//! |---|---|
//! | [`allow_origin`] | reading `Origin`, choosing the `Access-Control-Allow-Origin` value |
//! | [`allow_methods`] | `Access-Control-Allow-Methods` and the method check |
//! | [`allow_headers`] | `Access-Control-Allow-Headers` and the requested-headers check |
//! | [`allow_credentials`] | `Access-Control-Allow-Credentials` |
//! | [`max_age`] | `Access-Control-Max-Age` |
//! | [`vary`] | merging `Vary: Origin` into a response |
//! | [`strip`] | finding Ackee's own `Access-Control-*` headers to remove |
//! | `decision` | a request's whole CORS fate, one `Decision`, and its log and metric labels |
//!
//! [`CorsPolicy`] ties them together. Every header value is built once, at start-up.

pub mod allow_credentials;
pub mod allow_headers;
pub mod allow_methods;
pub mod allow_origin;
pub(crate) mod decision;
pub mod max_age;
pub mod strip;
pub mod vary;

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

pub use allow_origin::{OriginVerdict, RequestOrigin};
pub(crate) use decision::{Decision, RequestKind, request_host};

use crate::origin::OriginSet;
use allow_credentials::AllowCredentials;
use allow_headers::AllowHeaders;
use allow_methods::AllowMethods;
use allow_origin::AllowOrigin;
use max_age::MaxAge;

/// Header names as written on HTTP/1.1 responses, in the case Ackee and nginx use.
pub mod names {
    /// `Access-Control-Allow-Origin`.
    pub(crate) const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";
    /// `Access-Control-Allow-Methods`.
    pub(crate) const ALLOW_METHODS: &str = "Access-Control-Allow-Methods";
    /// `Access-Control-Allow-Headers`.
    pub(crate) const ALLOW_HEADERS: &str = "Access-Control-Allow-Headers";
    /// `Access-Control-Allow-Credentials`.
    pub(crate) const ALLOW_CREDENTIALS: &str = "Access-Control-Allow-Credentials";
    /// `Access-Control-Max-Age`.
    pub(crate) const MAX_AGE: &str = "Access-Control-Max-Age";
    /// `Vary`.
    pub(crate) const VARY: &str = "Vary";
}

/// Ackee's own `Access-Control-Allow-Methods`, the default.
pub(crate) const ACKEE_METHODS: [&str; 4] = ["GET", "POST", "PATCH", "OPTIONS"];
/// Ackee's own `Access-Control-Allow-Headers`, the default.
pub(crate) const ACKEE_HEADERS: [&str; 3] = ["Content-Type", "Authorization", "Time-Zone"];
/// Ackee's own `Access-Control-Max-Age`, the default.
pub(crate) const ACKEE_MAX_AGE_SECONDS: u32 = 3600;

/// A method or header name as written in the config, trimmed: an RFC 9110 token, and not `*`.
/// Otherwise what is wrong, with `star` the message for `*` and `not_a` what it is not.
fn token<'a>(written: &'a str, star: &str, not_a: &str) -> Result<&'a str, String> {
    let text = written.trim();
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if text == "*" {
        Err(star.to_owned())
    } else if text.is_empty() || !text.bytes().all(tchar) {
        Err(format!("found \"{written}\", which is not {not_a}"))
    } else {
        Ok(text)
    }
}

/// Method or header names, each kept once whatever its case, first spelling first.
pub(crate) fn distinct(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
            out.push(name);
        }
    }
    out
}

/// What happens to an actual (non-preflight) request whose origin is not allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisallowedOrigin {
    /// Proxy it without CORS headers, so the browser blocks the response. Ackee's behaviour.
    Forward,
    /// Answer 403 at the edge; Ackee never sees it.
    Reject,
}

/// Validated CORS settings, the input to [`CorsPolicy::new`].
#[derive(Clone, Debug)]
pub struct CorsSettings {
    /// The compiled allow list.
    pub origins: OriginSet,
    /// Whether allowed origins get `Access-Control-Allow-Credentials: true`. Never with `*`.
    pub allow_credentials: bool,
    /// Methods a preflight may ask for.
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for.
    pub allowed_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds, or `None` to leave it out.
    pub max_age_seconds: Option<u32>,
    /// The fate of actual requests from origins that are not allowed.
    pub disallowed_origin: DisallowedOrigin,
    /// `origins_from_ackee`: origins polled from Ackee's domain list, merged with `origins`.
    pub from_ackee: Option<crate::ackee_origins::Settings>,
}

impl CorsSettings {
    /// Ackee's own CORS behaviour for the given allow list, plus the gateway's `forward` default.
    pub fn ackee_defaults(origins: OriginSet) -> Self {
        let allow_credentials = !origins.allows_any();
        CorsSettings {
            origins,
            allow_credentials,
            allowed_methods: ACKEE_METHODS.iter().map(|s| s.to_string()).collect(),
            allowed_headers: ACKEE_HEADERS.iter().map(|s| s.to_string()).collect(),
            max_age_seconds: Some(ACKEE_MAX_AGE_SECONDS),
            disallowed_origin: DisallowedOrigin::Forward,
            from_ackee: None,
        }
    }
}

/// Why a request was refused. Its label is one of a fixed set, safe for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The origin is not allowed (or is `null`, empty, or sent twice).
    Origin,
    /// The preflight asked for a method that is not allowed.
    Method,
    /// The preflight asked for a request header that is not allowed.
    Header,
}

impl Refusal {
    /// All reasons, for pre-registering metric series.
    pub(crate) const ALL: [Refusal; 3] = [Refusal::Origin, Refusal::Method, Refusal::Header];

    /// The metric label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Origin => "origin",
            Refusal::Method => "method",
            Refusal::Header => "header",
        }
    }

    /// The short text body of the 403.
    pub(crate) fn body(self) -> &'static [u8] {
        match self {
            Refusal::Origin => {
                b"Forbidden: this origin is not allowed to use this Ackee server (CORS)\n"
            }
            Refusal::Method => b"Forbidden: this method is not allowed by CORS\n",
            Refusal::Header => b"Forbidden: a requested header is not allowed by CORS\n",
        }
    }
}

/// The answer to a preflight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preflight {
    /// 204 with these `Access-Control-Allow-Origin` value and the policy's other headers.
    Allowed(HeaderValue),
    /// 403 without any `Access-Control-Allow-*` header.
    Refused(Refusal),
}

/// The compiled CORS policy. Built once; every request only reads it.
#[derive(Clone, Debug)]
pub struct CorsPolicy {
    origin: AllowOrigin,
    methods: AllowMethods,
    headers: AllowHeaders,
    credentials: AllowCredentials,
    max_age: MaxAge,
    disallowed: DisallowedOrigin,
}

/// `Access-Control-Request-Method`.
static ACRM: HeaderName = header::ACCESS_CONTROL_REQUEST_METHOD;

impl CorsPolicy {
    /// Compiles settings. Fails only if a method or header name cannot be a header value,
    /// which config validation already rules out.
    pub fn new(settings: CorsSettings) -> Result<Self, String> {
        let methods = AllowMethods::new(&settings.allowed_methods)
            .ok_or_else(|| "allowed_methods cannot form a header value".to_owned())?;
        let headers = AllowHeaders::new(&settings.allowed_headers)
            .ok_or_else(|| "allowed_headers cannot form a header value".to_owned())?;
        let any = settings.origins.allows_any();
        Ok(CorsPolicy {
            origin: AllowOrigin::new(settings.origins),
            methods,
            headers,
            credentials: AllowCredentials(settings.allow_credentials && !any),
            max_age: MaxAge::new(settings.max_age_seconds),
            disallowed: settings.disallowed_origin,
        })
    }

    /// A preflight is `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    /// Any other `OPTIONS` is an ordinary request.
    pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(&ACRM)
    }

    /// Decides a preflight: origin first, then method, then requested headers.
    pub fn preflight(&self, headers: &HeaderMap) -> Preflight {
        let allow_origin = match self.origin.verdict(RequestOrigin::of(headers)) {
            OriginVerdict::Allowed(v) => v,
            OriginVerdict::Absent | OriginVerdict::Refused => {
                return Preflight::Refused(Refusal::Origin);
            }
        };
        let mut methods = headers.get_all(&ACRM).iter();
        let method_ok = match (methods.next(), methods.next()) {
            (Some(m), None) => self.methods.allows(m.as_bytes()),
            _ => false,
        };
        if !method_ok {
            return Preflight::Refused(Refusal::Method);
        }
        if !self
            .headers
            .allows_all(headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS))
        {
            return Preflight::Refused(Refusal::Header);
        }
        Preflight::Allowed(allow_origin)
    }

    /// The headers of an allowed preflight's 204, `Vary: Origin` included. Names are spelt as
    /// Ackee and nginx spell them on HTTP/1.1; HTTP/2 lowercases them on the wire.
    pub(crate) fn preflight_headers(
        &self,
        allow_origin: HeaderValue,
    ) -> impl Iterator<Item = (&'static str, HeaderValue)> + '_ {
        [
            Some((names::ALLOW_ORIGIN, allow_origin)),
            Some((names::ALLOW_METHODS, self.methods.value().clone())),
            Some((names::ALLOW_HEADERS, self.headers.value().clone())),
            self.credentials
                .value()
                .map(|v| (names::ALLOW_CREDENTIALS, v.clone())),
            self.max_age.value().map(|v| (names::MAX_AGE, v.clone())),
            Some((names::VARY, vary::ORIGIN.clone())),
        ]
        .into_iter()
        .flatten()
    }

    /// Decides an actual (non-preflight) request's origin.
    pub(crate) fn actual(&self, headers: &HeaderMap) -> OriginVerdict {
        self.origin.verdict(RequestOrigin::of(headers))
    }

    /// `Access-Control-Allow-Credentials` for allowed origins, if credentials are on.
    pub(crate) fn credentials(&self) -> Option<&'static HeaderValue> {
        self.credentials.value()
    }

    /// Whether responses carry `Access-Control-Allow-Credentials: true`.
    #[cfg(test)]
    fn allows_credentials(&self) -> bool {
        self.credentials.0
    }

    /// The fate of actual requests from origins that are not allowed.
    pub(crate) fn disallowed_origin(&self) -> DisallowedOrigin {
        self.disallowed
    }

    /// The handle through which a refresh (origins from Ackee) swaps in a new allow list.
    pub(crate) fn live_origins(&self) -> &crate::origin::LiveOrigins {
        self.origin.live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    fn policy(entries: &[&str]) -> CorsPolicy {
        let set = OriginSet::new(entries.iter().map(|e| parse_entry(e).unwrap()));
        CorsPolicy::new(CorsSettings::ackee_defaults(set)).unwrap()
    }

    /// A request's headers from name and value pairs.
    pub(super) fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_options_with_origin_and_request_method_is_a_preflight() {
        let full = request(&[
            ("Origin", "https://a.test"),
            ("Access-Control-Request-Method", "POST"),
        ]);
        let no_acrm = request(&[("Origin", "https://a.test")]);
        let no_origin = request(&[("Access-Control-Request-Method", "POST")]);
        assert!(CorsPolicy::is_preflight(&Method::OPTIONS, &full));
        assert!(!CorsPolicy::is_preflight(&Method::POST, &full));
        assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &no_acrm));
        assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &no_origin));
    }

    const OK: &str = "https://example.com";

    /// The decision on a preflight with these `Origin`, `Access-Control-Request-Method` and
    /// `Access-Control-Request-Headers` fields (each written once per item).
    fn preflight(origins: &[&str], methods: &[&str], headers: &[&str]) -> Preflight {
        let mut pairs: Vec<(&str, &str)> = origins.iter().map(|o| ("Origin", *o)).collect();
        pairs.extend(
            methods
                .iter()
                .map(|m| ("Access-Control-Request-Method", *m)),
        );
        pairs.extend(
            headers
                .iter()
                .map(|h| ("Access-Control-Request-Headers", *h)),
        );
        policy(&[OK]).preflight(&request(&pairs))
    }

    #[test]
    fn preflights_from_a_listed_origin_for_ackees_methods_and_headers_are_allowed() {
        let allowed = Preflight::Allowed(HeaderValue::from_static(OK));
        assert_eq!(preflight(&[OK], &["POST"], &[]), allowed);
        assert_eq!(preflight(&[OK], &["POST"], &["content-type"]), allowed);
        assert_eq!(preflight(&[OK], &["PATCH"], &[]), allowed);
    }

    #[test]
    fn preflights_are_refused_by_origin_then_method_then_headers() {
        let refused = Preflight::Refused;
        for origins in [&["https://evil.test"][..], &["null"], &[OK, OK]] {
            let got = preflight(origins, &["POST"], &[]);
            assert_eq!(got, refused(Refusal::Origin), "{origins:?}");
        }
        let evil = preflight(&["https://evil.test"], &["DELETE"], &["x-evil"]);
        assert_eq!(
            evil,
            refused(Refusal::Origin),
            "the origin is checked first"
        );
        assert_eq!(preflight(&[OK], &["DELETE"], &[]), refused(Refusal::Method));
        let two = preflight(&[OK], &["POST", "GET"], &[]);
        assert_eq!(two, refused(Refusal::Method), "two request methods");
        let header = preflight(&[OK], &["POST"], &["content-type,x-evil"]);
        assert_eq!(header, refused(Refusal::Header));
    }

    #[test]
    fn an_allowed_preflight_carries_ackees_values_plus_vary() {
        let p = policy(&["https://example.com"]);
        let headers: Vec<(String, String)> = p
            .preflight_headers(HeaderValue::from_static("https://example.com"))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let want = [
            ("Access-Control-Allow-Origin", "https://example.com"),
            ("Access-Control-Allow-Methods", "GET, POST, PATCH, OPTIONS"),
            (
                "Access-Control-Allow-Headers",
                "Content-Type, Authorization, Time-Zone",
            ),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Max-Age", "3600"),
            ("Vary", "Origin"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(headers, want);
    }

    #[test]
    fn wildcard_mode_never_sends_credentials() {
        let p = policy(&["*"]);
        assert!(!p.allows_credentials());
        let names: Vec<String> = p
            .preflight_headers(HeaderValue::from_static("*"))
            .map(|(k, _)| k.to_string())
            .collect();
        assert!(!names.contains(&"Access-Control-Allow-Credentials".to_owned()));
    }
}
