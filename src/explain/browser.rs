//! What a browser does with the answers to a preflight and to the actual request, by the WHATWG
//! Fetch rules (the CORS check, the CORS-preflight fetch), whoever sent them: this gateway, an
//! nginx, or Ackee itself.

use std::fmt;

/// One HTTP answer as it came over the wire: status and header fields in order, duplicates kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header fields, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// Every value of a header, in order (names compared without case).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of a header combined as Fetch does: joined with `", "`, or `None` if absent.
    pub(crate) fn combined(&self, name: &str) -> Option<String> {
        let all = self.all(name);
        (!all.is_empty()).then(|| all.join(", "))
    }
}

/// What the page's script asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The page's origin, serialised as a browser does.
    pub origin: String,
    /// The request method, as the browser sends it.
    pub method: String,
    /// The request's header fields set by the script.
    pub headers: Vec<(String, String)>,
}

impl Ask {
    /// The tracker's request: `POST` with `Content-Type: application/json;charset=UTF-8`.
    pub(crate) fn tracker(origin: &str) -> Ask {
        Ask {
            origin: origin.to_owned(),
            method: "POST".to_owned(),
            headers: vec![(
                "Content-Type".to_owned(),
                "application/json;charset=UTF-8".to_owned(),
            )],
        }
    }

    /// The names a preflight lists in `Access-Control-Request-Headers`: the request's
    /// non-safelisted header names, lowercased, sorted, without duplicates.
    pub(crate) fn unsafe_header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .headers
            .iter()
            .filter(|(k, v)| !is_safelisted(k, v))
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether the method is one of GET, HEAD and POST, which need no listing.
    pub(crate) fn safelisted_method(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD" | "POST")
    }
}

/// Whether a request header is CORS-safelisted (simplified to the names and, for
/// `Content-Type`, the three types Fetch allows).
pub(crate) fn is_safelisted(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "accept" | "accept-language" | "content-language" => true,
        "content-type" => {
            let essence = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            matches!(
                essence.as_str(),
                "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
            )
        }
        _ => false,
    }
}

/// Which of the two requests an answer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The `OPTIONS` preflight.
    Preflight,
    /// The actual request (the tracker's `POST`).
    Actual,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Preflight => "preflight",
            Stage::Actual => "actual request",
        })
    }
}

/// Something a browser would object to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A 3xx. A preflight is never redirected; the tracker's POST is lost on a redirect.
    Redirect {
        /// Which request.
        stage: Stage,
        /// The 3xx status.
        status: u16,
        /// Where it pointed, if it said.
        location: Option<String>,
    },
    /// The preflight's status is not 200–299.
    NotOk {
        /// The status.
        status: u16,
    },
    /// No `Access-Control-Allow-Origin`.
    NoAllowOrigin {
        /// Which request.
        stage: Stage,
    },
    /// Two or more `Access-Control-Allow-Origin` headers (or one with a list).
    SeveralAllowOrigin {
        /// Which request.
        stage: Stage,
        /// Every value.
        values: Vec<String>,
    },
    /// `Access-Control-Allow-Origin: *` on a request with credentials.
    WildcardWithCredentials {
        /// Which request.
        stage: Stage,
    },
    /// `Access-Control-Allow-Origin` is not the page's origin, byte for byte.
    OtherAllowOrigin {
        /// Which request.
        stage: Stage,
        /// The value sent.
        value: String,
    },
    /// With credentials, `Access-Control-Allow-Credentials` is not exactly `true`.
    NoCredentials {
        /// Which request.
        stage: Stage,
        /// The value sent, if any.
        found: Option<String>,
    },
    /// The method is not in `Access-Control-Allow-Methods`.
    MethodNotAllowed {
        /// The method.
        method: String,
        /// What the server allows.
        allowed: Option<String>,
    },
    /// A request header is not in `Access-Control-Allow-Headers`.
    HeaderNotAllowed {
        /// The header name.
        name: String,
        /// What the server allows.
        allowed: Option<String>,
    },
    /// The allowed origin is echoed but `Vary` does not list `Origin`. Browsers accept it; a
    /// cache may hand one site's answer to another.
    MissingVary {
        /// Which request.
        stage: Stage,
    },
}

impl Finding {
    /// Whether the browser refuses (true) or only a cache is at risk (false).
    pub(crate) fn is_failure(&self) -> bool {
        !matches!(self, Finding::MissingVary { .. })
    }

    /// The request the finding is about.
    pub(crate) fn stage(&self) -> Stage {
        match self {
            Finding::NotOk { .. }
            | Finding::MethodNotAllowed { .. }
            | Finding::HeaderNotAllowed { .. } => Stage::Preflight,
            Finding::Redirect { stage, .. }
            | Finding::NoAllowOrigin { stage }
            | Finding::SeveralAllowOrigin { stage, .. }
            | Finding::WildcardWithCredentials { stage }
            | Finding::OtherAllowOrigin { stage, .. }
            | Finding::NoCredentials { stage, .. }
            | Finding::MissingVary { stage } => *stage,
        }
    }
}

fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The Fetch "CORS check" of one answer, plus the `Vary` warning.
fn cors_check(stage: Stage, ask: &Ask, a: &Answer, credentials: bool, out: &mut Vec<Finding>) {
    let values = a.all("access-control-allow-origin");
    match values.as_slice() {
        [] => {
            out.push(Finding::NoAllowOrigin { stage });
            return;
        }
        [one] if !one.contains(',') => {
            let one = one.trim();
            if one == "*" {
                if credentials {
                    out.push(Finding::WildcardWithCredentials { stage });
                }
                return;
            }
            if one != ask.origin {
                out.push(Finding::OtherAllowOrigin {
                    stage,
                    value: one.to_owned(),
                });
                return;
            }
        }
        several => {
            out.push(Finding::SeveralAllowOrigin {
                stage,
                values: several.iter().map(|v| v.trim().to_owned()).collect(),
            });
            return;
        }
    }
    // The origin is echoed: the answer depends on it, so caches must know.
    let vary = a.combined("vary").unwrap_or_default();
    let varies = split_list(&vary)
        .iter()
        .any(|v| v.eq_ignore_ascii_case("origin") || *v == "*");
    if !varies {
        out.push(Finding::MissingVary { stage });
    }
    if credentials {
        let acac = a.combined("access-control-allow-credentials");
        if acac.as_deref() != Some("true") {
            out.push(Finding::NoCredentials { stage, found: acac });
        }
    }
}

fn redirect(stage: Stage, a: &Answer) -> Option<Finding> {
    (300..400).contains(&a.status).then(|| Finding::Redirect {
        stage,
        status: a.status,
        location: a.all("location").first().map(|s| s.to_string()),
    })
}

/// Checks a preflight's answer as a browser does. Any failure here means the actual request
/// is never sent.
pub(crate) fn check_preflight(ask: &Ask, a: &Answer, credentials: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(r) = redirect(Stage::Preflight, a) {
        out.push(r);
        return out;
    }
    if !(200..300).contains(&a.status) {
        out.push(Finding::NotOk { status: a.status });
    }
    cors_check(Stage::Preflight, ask, a, credentials, &mut out);
    if !succeeds(&out) {
        // The browser stops here; the allowed methods and headers are never looked at.
        return out;
    }
    let methods = a.combined("access-control-allow-methods");
    let method_list = methods.as_deref().map(split_list).unwrap_or_default();
    let listed =
        method_list.contains(&ask.method.as_str()) || (!credentials && method_list.contains(&"*"));
    if !ask.safelisted_method() && !listed {
        out.push(Finding::MethodNotAllowed {
            method: ask.method.clone(),
            allowed: methods.clone(),
        });
    }
    let headers = a.combined("access-control-allow-headers");
    let header_list = headers.as_deref().map(split_list).unwrap_or_default();
    for name in ask.unsafe_header_names() {
        let listed = header_list.iter().any(|h| h.eq_ignore_ascii_case(&name))
            || (!credentials && name != "authorization" && header_list.contains(&"*"));
        if !listed {
            out.push(Finding::HeaderNotAllowed {
                name,
                allowed: headers.clone(),
            });
        }
    }
    out
}

/// Checks the actual request's answer as a browser does.
pub(crate) fn check_actual(ask: &Ask, a: &Answer, credentials: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(r) = redirect(Stage::Actual, a) {
        out.push(r);
        return out;
    }
    cors_check(Stage::Actual, ask, a, credentials, &mut out);
    out
}

/// Whether a list of findings lets the request through.
pub(crate) fn succeeds(findings: &[Finding]) -> bool {
    !findings.iter().any(Finding::is_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://blog.example.com";

    fn answer(status: u16, headers: &[(&str, &str)]) -> Answer {
        Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("Access-Control-Allow-Origin", O),
        ("Access-Control-Allow-Methods", "GET, POST, PATCH, OPTIONS"),
        (
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, Time-Zone",
        ),
        ("Access-Control-Allow-Credentials", "true"),
        ("Vary", "Origin"),
    ];

    fn with(changes: &[(&str, Option<&str>)]) -> Vec<(&'static str, String)> {
        let mut h: Vec<(&'static str, String)> =
            GOOD.iter().map(|(k, v)| (*k, v.to_string())).collect();
        for (name, value) in changes {
            h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            if let Some(v) = value {
                let k = GOOD
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map_or("Location", |(k, _)| k);
                h.push((k, v.to_string()));
            }
        }
        h
    }

    #[test]
    fn preflights_are_judged_by_the_fetch_rules() {
        type Case = (
            &'static str,
            u16,
            Vec<(&'static str, String)>,
            &'static str,
            bool,
            Vec<&'static str>,
        );
        let two = {
            let mut h = with(&[]);
            h.push(("Access-Control-Allow-Origin", O.to_owned()));
            h
        };
        let cases: Vec<Case> = vec![
            ("the gateway's answer", 204, with(&[]), "POST", true, vec![]),
            (
                "without credentials too",
                204,
                with(&[]),
                "POST",
                false,
                vec![],
            ),
            (
                "two allow-origin headers",
                204,
                two,
                "POST",
                false,
                vec!["SeveralAllowOrigin"],
            ),
            (
                "* with credentials",
                204,
                with(&[("Access-Control-Allow-Origin", Some("*")), ("Vary", None)]),
                "POST",
                true,
                vec!["WildcardWithCredentials"],
            ),
            (
                "* without credentials",
                204,
                with(&[("Access-Control-Allow-Origin", Some("*")), ("Vary", None)]),
                "POST",
                false,
                vec![],
            ),
            (
                "a trailing slash",
                204,
                with(&[(
                    "Access-Control-Allow-Origin",
                    Some("https://blog.example.com/"),
                )]),
                "POST",
                true,
                vec!["OtherAllowOrigin"],
            ),
            (
                "no vary",
                204,
                with(&[("Vary", None)]),
                "POST",
                true,
                vec!["MissingVary"],
            ),
            (
                "no credentials header",
                204,
                with(&[("Access-Control-Allow-Credentials", None)]),
                "POST",
                true,
                vec!["NoCredentials"],
            ),
            (
                "no credentials header, credentials off",
                204,
                with(&[("Access-Control-Allow-Credentials", None)]),
                "POST",
                false,
                vec![],
            ),
            (
                "PATCH not allowed",
                204,
                with(&[("Access-Control-Allow-Methods", Some("GET, POST"))]),
                "PATCH",
                true,
                vec!["MethodNotAllowed"],
            ),
            (
                "content-type not allowed",
                204,
                with(&[("Access-Control-Allow-Headers", Some("Authorization"))]),
                "POST",
                true,
                vec!["HeaderNotAllowed"],
            ),
            (
                "* headers count only without credentials",
                204,
                with(&[("Access-Control-Allow-Headers", Some("*"))]),
                "POST",
                true,
                vec!["HeaderNotAllowed"],
            ),
            (
                "* headers without credentials",
                204,
                with(&[("Access-Control-Allow-Headers", Some("*"))]),
                "POST",
                false,
                vec![],
            ),
            (
                "a 404 preflight",
                404,
                with(&[]),
                "POST",
                true,
                vec!["NotOk"],
            ),
            (
                "a redirect",
                301,
                vec![("Location", "https://stats.example.com/api".to_owned())],
                "POST",
                true,
                vec!["Redirect"],
            ),
            (
                "nothing at all",
                403,
                vec![],
                "POST",
                true,
                vec!["NotOk", "NoAllowOrigin"],
            ),
        ];
        for (what, status, headers, method, credentials, want) in cases {
            let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut ask = Ask::tracker(O);
            ask.method = method.to_owned();
            let got = check_preflight(&ask, &answer(status, &refs), credentials);
            let names: Vec<String> = got
                .iter()
                .map(|f| {
                    format!("{f:?}")
                        .split([' ', '{'])
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(names, want, "{what}: {got:?}");
        }
    }

    #[test]
    fn the_actual_answer_needs_the_origin_and_credentials_only() {
        let ask = Ask::tracker(O);
        let ok = answer(
            200,
            &[
                ("Access-Control-Allow-Origin", O),
                ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Accept-Encoding, Origin"),
            ],
        );
        assert_eq!(check_actual(&ask, &ok, true), vec![]);
        let bare = answer(200, &[("Vary", "Origin")]);
        assert_eq!(
            check_actual(&ask, &bare, false),
            vec![Finding::NoAllowOrigin {
                stage: Stage::Actual
            }]
        );
        let moved = answer(302, &[("Location", "/api/")]);
        assert!(matches!(
            check_actual(&ask, &moved, true).as_slice(),
            [Finding::Redirect { status: 302, .. }]
        ));
    }

    #[test]
    fn safelisted_headers_need_no_listing() {
        let cases = [
            ("Content-Type", "application/json;charset=UTF-8", false),
            ("Content-Type", "text/plain;charset=UTF-8", true),
            ("Accept", "*/*", true),
            ("Authorization", "Bearer x", false),
            ("Time-Zone", "Europe/Berlin", false),
        ];
        for (name, value, want) in cases {
            assert_eq!(is_safelisted(name, value), want, "{name}: {value}");
        }
        let mut ask = Ask::tracker(O);
        ask.headers.push(("Time-Zone".into(), "UTC".into()));
        ask.headers.push(("Accept".into(), "*/*".into()));
        assert_eq!(ask.unsafe_header_names(), ["content-type", "time-zone"]);
    }
}
