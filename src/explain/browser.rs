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
mod tests;
