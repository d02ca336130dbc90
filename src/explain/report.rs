//! The text `explain` prints: the two answers with every CORS header, the browser's verdict
//! with the tracker's credentials on and off, and for each objection the reason and the fix.

use std::fmt::Write;

use super::browser::{Answer, Ask, Finding, Stage, succeeds};
use super::nearest::compare;
use super::offline::Diagnosis;

/// Everything one run of `explain` found.
#[derive(Clone, Debug)]
pub struct Report {
    /// What was asked: the gateway with a config file, or a URL.
    pub subject: String,
    /// The browser's request.
    pub ask: Ask,
    /// The preflight's answer.
    pub preflight: Answer,
    /// The actual request's answer.
    pub actual: Answer,
    /// Whether the actual answer's status is only a stand-in (offline: Ackee's status).
    pub actual_status_is_ackees: bool,
    /// The browser's objections with credentials (the tracker's default).
    pub with_credentials: Vec<Finding>,
    /// The browser's objections without credentials (`ignoreOwnVisits: false`).
    pub without_credentials: Vec<Finding>,
    /// Which of the two decides the exit code.
    pub credentials: bool,
    /// Offline: why the gateway refused, and the fix in its config.
    pub diagnosis: Option<Diagnosis>,
}

impl Report {
    /// Whether a browser would succeed in the mode that decides.
    pub(crate) fn succeeds(&self) -> bool {
        succeeds(if self.credentials {
            &self.with_credentials
        } else {
            &self.without_credentials
        })
    }
}

/// Runs a browser's checks: the preflight, then, if that passes, the actual request.
pub(crate) fn judge(
    ask: &Ask,
    preflight: &Answer,
    actual: &Answer,
    credentials: bool,
) -> Vec<Finding> {
    let mut f = super::browser::check_preflight(ask, preflight, credentials);
    if succeeds(&f) {
        f.extend(super::browser::check_actual(ask, actual, credentials));
    }
    f
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

fn is_cors_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("access-control-") || n == "vary" || n == "location"
}

fn answer_lines(out: &mut String, a: &Answer, stand_in: bool) {
    let note = if stand_in { " (Ackee's status)" } else { "" };
    let _ = writeln!(out, "  {} {}{note}", a.status, reason(a.status));
    let mut any = false;
    for (k, v) in a.headers.iter().filter(|(k, _)| is_cors_header(k)) {
        any = true;
        let _ = writeln!(out, "  {k}: {v}");
    }
    if !any {
        let _ = writeln!(out, "  (no CORS header, no Vary)");
    }
}

/// What a finding means, in one sentence.
pub(crate) fn describe(f: &Finding, origin: &str) -> String {
    match f {
        Finding::Redirect {
            stage,
            status,
            location,
        } => format!(
            "the {stage} was answered {status} with a redirect to {}: browsers never follow a redirect for a preflight, and the tracker's request is lost",
            location.as_deref().unwrap_or("(no Location)")
        ),
        Finding::NotOk { status } => format!(
            "the preflight was answered {status}; a browser needs 200 to 299 (Ackee and the gateway answer 204)"
        ),
        Finding::NoAllowOrigin { stage } => format!(
            "the {stage}'s answer has no Access-Control-Allow-Origin: the server does not allow \"{origin}\""
        ),
        Finding::SeveralAllowOrigin { stage, values } => format!(
            "the {stage}'s answer has {} Access-Control-Allow-Origin values ({}); a browser accepts exactly one",
            values.len(),
            values
                .iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Finding::WildcardWithCredentials { stage } => format!(
            "the {stage}'s answer allows \"*\", which browsers refuse on a request with credentials"
        ),
        Finding::OtherAllowOrigin { stage, value } => {
            let how = compare(origin, value)
                .map(|d| {
                    super::nearest::Nearest {
                        candidate: value.clone(),
                        difference: d,
                    }
                    .describe(origin)
                })
                .unwrap_or_else(|| format!("\"{value}\" is another origin than \"{origin}\""));
            format!("the {stage}'s Access-Control-Allow-Origin is not the page's origin: {how}")
        }
        Finding::NoCredentials { stage, found } => format!(
            "the {stage}'s answer has Access-Control-Allow-Credentials {}, and with credentials it must be exactly \"true\"",
            found
                .as_deref()
                .map_or("missing".to_owned(), |v| format!("\"{v}\""))
        ),
        Finding::MethodNotAllowed { method, allowed } => format!(
            "{method} is not in Access-Control-Allow-Methods ({})",
            allowed.as_deref().unwrap_or("missing")
        ),
        Finding::HeaderNotAllowed { name, allowed } => format!(
            "the request header {name} is not in Access-Control-Allow-Headers ({})",
            allowed.as_deref().unwrap_or("missing")
        ),
        Finding::MissingVary { stage } => format!(
            "the {stage}'s answer echoes the origin without Vary: Origin; browsers accept it, but a cache can serve one site's answer to another"
        ),
    }
}

/// What the server's operator should change, for any server.
pub(crate) fn fix(f: &Finding, origin: &str) -> String {
    match f {
        Finding::Redirect { location, .. } => format!(
            "point the tracker's server option at the final URL{}, so that no redirect happens (nginx: exempt /api and OPTIONS from the redirect)",
            location
                .as_deref()
                .map_or(String::new(), |l| format!(" ({l})"))
        ),
        Finding::NotOk { .. } => {
            "answer OPTIONS with 204 and the CORS headers (the gateway does this itself; with nginx, pass OPTIONS to Ackee or answer it in a location block)".to_owned()
        }
        Finding::NoAllowOrigin { .. } => format!(
            "allow \"{origin}\": add it to ACKEE_ALLOW_ORIGIN, to the nginx map, or to cors.allowed_origins"
        ),
        Finding::SeveralAllowOrigin { .. } => {
            "send one: usually nginx adds one with add_header and Ackee another (ACKEE_ALLOW_ORIGIN is set); remove one of them, or put the gateway in front, which removes Ackee's".to_owned()
        }
        Finding::WildcardWithCredentials { .. } => format!(
            "echo the origin (\"{origin}\") with Access-Control-Allow-Credentials: true instead of \"*\", or set ignoreOwnVisits: false in the tracker"
        ),
        Finding::OtherAllowOrigin { .. } => format!(
            "send exactly \"{origin}\": scheme and host in lowercase, the port only if it is not the default, no path, no trailing slash"
        ),
        Finding::NoCredentials { .. } => {
            "send Access-Control-Allow-Credentials: true, or set ignoreOwnVisits: false in the tracker".to_owned()
        }
        Finding::MethodNotAllowed { method, .. } => {
            format!("add {method} to Access-Control-Allow-Methods")
        }
        Finding::HeaderNotAllowed { name, .. } => {
            format!("add {name} to Access-Control-Allow-Headers")
        }
        Finding::MissingVary { .. } => "add Vary: Origin to every answer".to_owned(),
    }
}

fn verdict(out: &mut String, title: &str, findings: &[Finding], origin: &str) {
    let ok = succeeds(findings);
    let _ = writeln!(
        out,
        "{title}: {}",
        if ok {
            "a browser accepts it"
        } else {
            "a browser REFUSES it"
        }
    );
    for f in findings {
        let mark = if f.is_failure() { "refused" } else { "warning" };
        let _ = writeln!(out, "  {mark}: {}", describe(f, origin));
    }
    if !ok && !findings.iter().any(|f| f.stage() == Stage::Actual) {
        let _ = writeln!(
            out,
            "  (the browser stops at the preflight: the POST is never sent)"
        );
    }
}

/// Renders the report.
pub(crate) fn render(r: &Report) -> String {
    let mut out = String::new();
    let origin = r.ask.origin.as_str();
    let acrh = r.ask.unsafe_header_names().join(",");
    let _ = writeln!(out, "{}", r.subject);
    let _ = writeln!(
        out,
        "A page on {origin} sends {} with credentials {}.\n",
        r.ask.method,
        if r.credentials {
            "on (the tracker's default)"
        } else {
            "off"
        }
    );
    let _ = writeln!(
        out,
        "Preflight: OPTIONS with Origin: {origin}, Access-Control-Request-Method: {}{}",
        r.ask.method,
        if acrh.is_empty() {
            String::new()
        } else {
            format!(", Access-Control-Request-Headers: {acrh}")
        }
    );
    answer_lines(&mut out, &r.preflight, false);
    let _ = writeln!(out, "\nActual {} with Origin: {origin}", r.ask.method);
    answer_lines(&mut out, &r.actual, r.actual_status_is_ackees);
    let _ = writeln!(out);
    verdict(
        &mut out,
        "With credentials (tracker default, ignoreOwnVisits: true)",
        &r.with_credentials,
        origin,
    );
    verdict(
        &mut out,
        "Without credentials (ignoreOwnVisits: false)",
        &r.without_credentials,
        origin,
    );
    let deciding = if r.credentials {
        &r.with_credentials
    } else {
        &r.without_credentials
    };
    let _ = writeln!(out);
    if let Some(d) = &r.diagnosis {
        let _ = writeln!(out, "Why: {}", d.reason);
        if let Some(n) = &d.nearest {
            let _ = writeln!(out, "Nearest entry: {n}");
        }
        let _ = writeln!(out, "Fix: {}", d.fix);
    } else {
        let mut fixes: Vec<String> = Vec::new();
        for f in deciding {
            let line = fix(f, origin);
            if !fixes.contains(&line) {
                fixes.push(line);
            }
        }
        for line in &fixes {
            let _ = writeln!(out, "Fix: {line}");
        }
    }
    let _ = writeln!(
        out,
        "Result: {}",
        if r.succeeds() {
            "the tracker's requests get through"
        } else {
            "the tracker's requests FAIL in every browser"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finding_has_a_reason_and_a_fix() {
        let o = "https://blog.example.com";
        let a = Stage::Actual;
        let cases = [
            (
                Finding::Redirect {
                    stage: Stage::Preflight,
                    status: 301,
                    location: Some("https://x/api".into()),
                },
                "redirect",
                "final URL (https://x/api)",
            ),
            (Finding::NotOk { status: 404 }, "answered 404", "204"),
            (
                Finding::NoAllowOrigin { stage: a },
                "no Access-Control-Allow-Origin",
                "ACKEE_ALLOW_ORIGIN",
            ),
            (
                Finding::SeveralAllowOrigin {
                    stage: a,
                    values: vec![o.into(), o.into()],
                },
                "2 Access-Control-Allow-Origin values",
                "send one",
            ),
            (
                Finding::WildcardWithCredentials { stage: a },
                "\"*\"",
                "ignoreOwnVisits: false",
            ),
            (
                Finding::OtherAllowOrigin {
                    stage: a,
                    value: format!("{o}/"),
                },
                "trailing slash",
                "no trailing slash",
            ),
            (
                Finding::NoCredentials {
                    stage: a,
                    found: None,
                },
                "missing",
                "Access-Control-Allow-Credentials: true",
            ),
            (
                Finding::MethodNotAllowed {
                    method: "PATCH".into(),
                    allowed: Some("GET, POST".into()),
                },
                "PATCH is not",
                "add PATCH",
            ),
            (
                Finding::HeaderNotAllowed {
                    name: "content-type".into(),
                    allowed: None,
                },
                "content-type is not",
                "add content-type",
            ),
            (
                Finding::MissingVary { stage: a },
                "without Vary",
                "Vary: Origin",
            ),
        ];
        for (f, why, what) in cases {
            let d = describe(&f, o);
            let x = fix(&f, o);
            assert!(d.contains(why), "{f:?}: {d}");
            assert!(x.contains(what), "{f:?}: {x}");
        }
    }
}
