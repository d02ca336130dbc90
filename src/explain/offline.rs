//! What the gateway, with a given CORS policy, answers a browser on a given site: the preflight
//! and the actual request, computed by [`crate::cors`] exactly as the proxy does, without a
//! network. And, on a refusal, why, the entry it came nearest to, and the fix.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::browser::{Answer, Ask, Finding};
use super::nearest::{Difference, Nearest, nearest_entry};
use crate::cors::{CorsPolicy, DisallowedOrigin, OriginVerdict, Preflight, Refusal, names};
use crate::origin::Entry;

/// The gateway's two answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulated {
    /// The preflight's answer.
    pub preflight: Answer,
    /// Why the preflight was refused, if it was.
    pub refusal: Option<Refusal>,
    /// The CORS headers on the answer to the actual request (its status is Ackee's, shown
    /// as 200, unless the gateway refuses it at the edge).
    pub actual: Answer,
    /// The configured `Access-Control-Allow-Headers` value.
    pub allowed_headers: String,
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

fn text(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// Computes what the gateway answers.
pub(crate) fn simulate(policy: &CorsPolicy, ask: &Ask) -> Simulated {
    let acrh = ask.unsafe_header_names().join(",");
    let mut pairs = vec![
        ("Origin", ask.origin.as_str()),
        ("Access-Control-Request-Method", ask.method.as_str()),
    ];
    if !acrh.is_empty() {
        pairs.push(("Access-Control-Request-Headers", acrh.as_str()));
    }
    let (preflight, refusal) = match policy.preflight(&header_map(&pairs)) {
        Preflight::Allowed(v) => (
            Answer {
                status: 204,
                headers: policy
                    .preflight_headers(v)
                    .map(|(k, v)| (k.to_owned(), text(&v)))
                    .collect(),
            },
            None,
        ),
        Preflight::Refused(r) => (
            Answer {
                status: 403,
                headers: vec![
                    (
                        "Content-Type".to_owned(),
                        "text/plain; charset=utf-8".to_owned(),
                    ),
                    (names::VARY.to_owned(), "Origin".to_owned()),
                ],
            },
            Some(r),
        ),
    };
    let vary = (names::VARY.to_owned(), "Origin".to_owned());
    let actual = match policy.actual(&header_map(&[("Origin", ask.origin.as_str())])) {
        OriginVerdict::Allowed(v) => {
            let mut headers = vec![(names::ALLOW_ORIGIN.to_owned(), text(&v))];
            if let Some(c) = policy.credentials() {
                headers.push((names::ALLOW_CREDENTIALS.to_owned(), text(c)));
            }
            headers.push(vary);
            Answer {
                status: 200,
                headers,
            }
        }
        _ if policy.disallowed_origin() == DisallowedOrigin::Reject => Answer {
            status: 403,
            headers: vec![vary],
        },
        _ => Answer {
            status: 200,
            headers: vec![vary],
        },
    };
    let allowed_headers = policy
        .preflight_headers(HeaderValue::from_static("*"))
        .find(|(k, _)| *k == names::ALLOW_HEADERS)
        .map(|(_, v)| text(&v))
        .unwrap_or_default();
    Simulated {
        preflight,
        refusal,
        actual,
        allowed_headers,
    }
}

/// Where the allow list came from, for the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListSource {
    /// `cors.allowed_origins` in this file.
    File(String),
    /// The `ACKEE_ALLOW_ORIGIN` environment variable.
    Env,
}

impl ListSource {
    fn add(&self, what: &str) -> String {
        match self {
            ListSource::File(f) => format!("add \"{what}\" to cors.allowed_origins in {f}"),
            ListSource::Env => format!("add \"{what}\" to ACKEE_ALLOW_ORIGIN (comma-separated)"),
        }
    }
}

/// The explanation of a refusal or a browser failure against the gateway's config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// Why, in one sentence.
    pub reason: String,
    /// The configured entry the origin came nearest to, described.
    pub nearest: Option<String>,
    /// What to write.
    pub fix: String,
}

/// Explains why the gateway's answers fail in a browser, given the config's entries.
///
/// `findings` are the browser's objections (with the credentials mode that decides);
/// `credentials` is that mode.
pub(crate) fn diagnose(
    sim: &Simulated,
    ask: &Ask,
    entries: &[Entry],
    source: &ListSource,
    findings: &[Finding],
    credentials: bool,
) -> Option<Diagnosis> {
    let origin = ask.origin.as_str();
    match sim.refusal {
        Some(Refusal::Origin) => {
            let near: Option<Nearest> = nearest_entry(origin, entries);
            let fix = match near.as_ref().map(|n| &n.difference) {
                Some(Difference::ApexNotCovered) => format!(
                    "{}; a pattern never covers the apex, so list both",
                    source.add(origin)
                ),
                Some(Difference::Www) => format!(
                    "{}, or redirect one of the two names to the other before the tracker runs",
                    source.add(origin)
                ),
                Some(Difference::Scheme) if origin.starts_with("http://") => {
                    format!("serve the site over https, or {}", source.add(origin))
                }
                _ => source.add(origin),
            };
            Some(Diagnosis {
                reason: format!("the origin \"{origin}\" is not in the allow list"),
                nearest: near.map(|n| n.describe(origin)),
                fix,
            })
        }
        Some(Refusal::Method) => Some(Diagnosis {
            reason: format!("the method {} is not in cors.allowed_methods", ask.method),
            nearest: None,
            fix: format!("add \"{}\" to cors.allowed_methods", ask.method),
        }),
        Some(Refusal::Header) => {
            let allowed = &sim.allowed_headers;
            let missing: Vec<String> = ask
                .unsafe_header_names()
                .into_iter()
                .filter(|n| !allowed.split(',').any(|a| a.trim().eq_ignore_ascii_case(n)))
                .collect();
            Some(Diagnosis {
                reason: format!(
                    "the request header{} {} {} not in cors.allowed_headers",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" }
                ),
                nearest: None,
                fix: format!("add {} to cors.allowed_headers", quote_list(&missing)),
            })
        }
        None => {
            let wildcard = findings
                .iter()
                .any(|f| matches!(f, Finding::WildcardWithCredentials { .. }));
            (wildcard && credentials).then(|| Diagnosis {
                reason: "the allow list is \"*\", which means no credentials, and the tracker sends them (its ignoreOwnVisits is on by default)".to_owned(),
                nearest: entries.contains(&Entry::Any).then(|| "\"*\" allows every origin, but only without credentials".to_owned()),
                fix: format!(
                    "replace \"*\" with your sites' origins, such as \"{origin}\" ({}), or set ignoreOwnVisits: false in the tracker",
                    match source {
                        ListSource::File(f) => format!("cors.allowed_origins in {f}"),
                        ListSource::Env => "ACKEE_ALLOW_ORIGIN".to_owned(),
                    }
                ),
            })
        }
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::browser::{check_actual, check_preflight, succeeds};
    use super::*;
    use crate::cors::CorsSettings;
    use crate::origin::{OriginSet, parse_entry};

    fn policy(list: &[&str]) -> (CorsPolicy, Vec<Entry>) {
        let entries: Vec<Entry> = list.iter().map(|e| parse_entry(e).unwrap()).collect();
        let set = OriginSet::new(entries.clone());
        (
            CorsPolicy::new(CorsSettings::ackee_defaults(set)).unwrap(),
            entries,
        )
    }

    /// Explains a tracker request of `method` from `origin` against `list`: whether it
    /// succeeds with credentials and without, and the fix suggested with credentials.
    fn explain(origin: &str, list: &[&str], method: &str) -> (bool, bool, Option<String>) {
        let (p, entries) = policy(list);
        let mut ask = Ask::tracker(origin);
        ask.method = method.to_string();
        let sim = simulate(&p, &ask);
        let judge = |c: bool| {
            let mut f = check_preflight(&ask, &sim.preflight, c);
            if succeeds(&f) {
                f.extend(check_actual(&ask, &sim.actual, c));
            }
            f
        };
        let (on, off) = (judge(true), judge(false));
        assert!(on.iter().all(|f| !matches!(f, Finding::MissingVary { .. })));
        let source = ListSource::File("gw.yaml".into());
        let d = diagnose(&sim, &ask, &entries, &source, &on, true);
        (succeeds(&on), succeeds(&off), d.map(|d| d.fix))
    }

    /// Asserts that a refused request gets a fix containing `want`, with or without credentials.
    fn refused_with_fix(origin: &str, list: &[&str], method: &str, want: &str) {
        let (with, without, fix) = explain(origin, list, method);
        assert!(!with && !without, "{origin} {list:?} {method}");
        let fix = fix.unwrap_or_default();
        assert!(fix.contains(want), "{origin} {list:?}: {fix}");
    }

    #[test]
    fn listed_origins_and_patterns_succeed_with_nothing_to_fix() {
        for (origin, list) in [
            ("https://example.com", "https://example.com"),
            ("https://a.example.org", "https://*.example.org"),
        ] {
            assert_eq!(explain(origin, &[list], "POST"), (true, true, None));
        }
    }

    #[test]
    fn near_misses_name_the_entry_to_add() {
        let com = &["https://example.com"];
        refused_with_fix(
            "https://www.example.com",
            com,
            "POST",
            "add \"https://www.example.com\" to cors.allowed_origins in gw.yaml, or redirect",
        );
        refused_with_fix(
            "http://example.com",
            com,
            "POST",
            "serve the site over https, or add \"http://example.com\"",
        );
        let port = "add \"https://example.com:8443\"";
        refused_with_fix("https://example.com:8443", com, "POST", port);
        let apex = "a pattern never covers the apex";
        refused_with_fix(
            "https://example.org",
            &["https://*.example.org"],
            "POST",
            apex,
        );
        let method = "add \"DELETE\" to cors.allowed_methods";
        refused_with_fix("https://example.com", com, "DELETE", method);
    }

    #[test]
    fn star_fails_only_with_credentials_and_says_to_list_the_origins() {
        let (with, without, fix) = explain("https://example.com", &["*"], "POST");
        assert!(!with && without);
        let want = "replace \"*\" with your sites' origins, such as \"https://example.com\"";
        assert!(fix.unwrap_or_default().contains(want));
    }

    #[test]
    fn a_refused_header_is_named() {
        let (p, entries) = policy(&["https://example.com"]);
        let mut ask = Ask::tracker("https://example.com");
        ask.headers.push(("X-Debug".into(), "1".into()));
        let sim = simulate(&p, &ask);
        assert_eq!(sim.refusal, Some(Refusal::Header));
        let d = diagnose(&sim, &ask, &entries, &ListSource::Env, &[], true).unwrap();
        assert_eq!(d.fix, "add \"x-debug\" to cors.allowed_headers");
    }
}
