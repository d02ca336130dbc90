//! `ackee-gateway explain`: the command line, and the two modes put together.
//!
//! Exit codes: 0 when a browser would succeed, 1 when it would not (an unreachable server
//! included), 2 for a usage or config error.

use std::time::Duration;

use super::browser::{Answer, Ask};
use super::offline::{ListSource, diagnose, simulate};
use super::online::{exchange, parse_url, tls_config};
use super::report::{Report, judge, render};
use super::visit::{VisitAsk, verdict};
use crate::ackee_origins;
use crate::config::{self, ENV_ALLOW_ORIGIN, Severity};
use crate::cors::CorsPolicy;
use crate::origin::{Entry, parse_entry};

/// The usage text.
pub(crate) const USAGE: &str = "\
usage: ackee-gateway explain --origin ORIGIN [-c FILE | --url URL] [options]

Says what a browser on ORIGIN gets from the gateway (offline, from the config) or from any
server (online, with --url: this gateway, an nginx, or Ackee itself), and why it fails; and
whether the tracker script is served from the edge, its size per encoding and its cache policy.

  --origin ORIGIN     the page's origin, such as https://blog.example.com
  -c, --conf FILE     offline: the gateway's config (default /etc/ackee-gateway/ackee-gateway.yaml);
                      ACKEE_ALLOW_ORIGIN applies as it does to the gateway
  --url URL           online: send a preflight and a harmless POST ({\"query\":\"{ __typename }\"})
                      to URL, such as https://stats.example.com/api
  --method METHOD     the request's method (default POST, as the tracker's)
  --header NAME[: VALUE]
                      another request header (repeatable); the tracker's Content-Type is always sent
  --no-credentials    decide for a tracker with ignoreOwnVisits: false (default: credentials on)
  --cacert FILE       online over https: trust these CA certificates instead of the system's
  --timeout SECONDS   online: per request (default 10)
  --user-agent UA     offline: also say whether a visit with this User-Agent is counted, or
                      answered at the edge as an ignored visit (visits in the config)
  --client IP         offline: the same for a visitor at this address (as the gateway resolves
                      it through trusted_proxies)
  --gpc, --dnt        offline: the same for a browser that sends Sec-GPC: 1, or DNT: 1

Exit codes: 0 a browser would succeed, 1 it would not, 2 usage or config error.
";

/// The parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// The page's origin, as typed.
    pub origin: String,
    /// The config file (offline).
    pub conf: String,
    /// The server (online).
    pub url: Option<String>,
    /// The method.
    pub method: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Whether the tracker sends credentials.
    pub credentials: bool,
    /// CA certificates for https.
    pub cacert: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The visitor whose visit is judged, if any of its flags was given.
    pub visit: Option<VisitAsk>,
}

/// Parses the arguments after `explain`. `Ok(None)` means help was printed.
pub(crate) fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args {
        origin: String::new(),
        conf: "/etc/ackee-gateway/ackee-gateway.yaml".to_owned(),
        url: None,
        method: "POST".to_owned(),
        headers: Vec::new(),
        credentials: true,
        cacert: None,
        timeout: Duration::from_secs(10),
        visit: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--origin" => a.origin = value()?,
            "-c" | "--conf" => a.conf = value()?,
            "--url" => a.url = Some(value()?),
            "--method" | "-X" => a.method = normalise_method(&value()?),
            "--header" | "-H" => {
                let h = value()?;
                let (k, v) = match h.split_once(':') {
                    Some((k, v)) => (k.trim(), v.trim()),
                    None => (h.trim(), "x"),
                };
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(format!(
                        "--header \"{h}\" needs a header name, as in --header Time-Zone"
                    ));
                }
                a.headers.push((k.to_owned(), v.to_owned()));
            }
            "--no-credentials" => a.credentials = false,
            "--cacert" => a.cacert = Some(value()?),
            "--timeout" => {
                let v = value()?;
                let s: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && *s <= 300.0)
                    .ok_or_else(|| format!("--timeout \"{v}\" must be seconds from 0 to 300"))?;
                a.timeout = Duration::from_secs_f64(s);
            }
            "--user-agent" | "-A" => {
                a.visit.get_or_insert_with(VisitAsk::default).user_agent = value()?;
            }
            "--client" => {
                let v = value()?;
                let ip = v.trim().parse().map_err(|_| {
                    format!("--client \"{v}\" is not an IP address; write one such as 192.0.2.7 or 2001:db8::7")
                })?;
                a.visit.get_or_insert_with(VisitAsk::default).client = Some(ip);
            }
            "--gpc" => a.visit.get_or_insert_with(VisitAsk::default).gpc = true,
            "--dnt" => a.visit.get_or_insert_with(VisitAsk::default).dnt = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    if a.origin.is_empty() {
        return Err("--origin is required, as in --origin https://blog.example.com".to_owned());
    }
    if a.url.is_some() && a.visit.is_some() {
        return Err("--user-agent, --client, --gpc and --dnt are judged from a config (-c FILE), not online: the server sees your own address and user agent".to_owned());
    }
    Ok(Some(a))
}

/// Browsers upper-case these methods and send every other one as written.
fn normalise_method(m: &str) -> String {
    let upper = m.to_ascii_uppercase();
    if ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"].contains(&upper.as_str()) {
        upper
    } else {
        m.to_owned()
    }
}

/// The origin as a browser would send it, and a note if the typed one was not in that form.
pub(crate) fn browser_origin(typed: &str) -> Result<(String, Option<String>), String> {
    match parse_entry(typed) {
        Ok(Entry::Exact(o)) => {
            let note = (o != typed.trim()).then(|| {
                format!("note: a browser sends the origin \"{typed}\" as \"{o}\"; explaining that")
            });
            Ok((o, note))
        }
        Ok(_) => Err(format!(
            "--origin \"{typed}\" is a pattern; give one page's origin, such as https://blog.example.com"
        )),
        Err(e) => {
            // A path or a trailing slash: the fix names the origin a browser would send.
            let fixed = e
                .fix
                .strip_prefix("write \"")
                .and_then(|f| f.strip_suffix('"'))
                .filter(|f| !f.contains('*'));
            match fixed {
                Some(o) => Ok((
                    o.to_owned(),
                    Some(format!(
                        "note: --origin {e}: a browser never sends a path or a trailing slash in Origin; explaining \"{o}\""
                    )),
                )),
                None => Err(format!("--origin {e}")),
            }
        }
    }
}

fn ask_for(args: &Args, origin: &str) -> Ask {
    let mut ask = Ask::tracker(origin);
    ask.method = args.method.clone();
    ask.headers.extend(args.headers.iter().cloned());
    ask
}

/// Runs `explain`: prints the report (or the problem) and returns the exit code.
pub fn run(argv: &[String]) -> u8 {
    let args = match parse(argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("ackee-gateway explain: {e}\n\n{USAGE}");
            return 2;
        }
    };
    let (origin, note) = match browser_origin(&args.origin) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ackee-gateway explain: {e}");
            return 2;
        }
    };
    if let Some(n) = note {
        println!("{n}");
    }
    let ask = ask_for(&args, &origin);
    let report = match &args.url {
        Some(url) => online(&args, url, ask).map(|r| (r, None)),
        None => offline(&args, ask),
    };
    match report {
        Ok((r, visit)) => {
            print!("{}", render(&r));
            if let Some(v) = visit {
                print!("{v}");
            }
            if r.succeeds() { 0 } else { 1 }
        }
        Err((code, e)) => {
            eprintln!("{e}");
            code
        }
    }
}

/// Polls Ackee's domain list as the gateway does at start-up, merges its origins into
/// `entries` and the policy, and says what it found. Also returns whether Ackee could offer
/// the asked origin (its scheme is one `origins_from_ackee` derives).
fn from_ackee(
    a: &ackee_origins::Settings,
    cfg: &config::Config,
    policy: &CorsPolicy,
    ask: &Ask,
    entries: &mut Vec<Entry>,
) -> (Vec<String>, bool) {
    let mut from_ackee_lines: Vec<String> = Vec::new();
    let mut ackee_offers = false;
    let targets: Vec<ackee_origins::Target> = cfg
        .upstream
        .replicas
        .iter()
        .map(config::Replica::domains_target)
        .collect();
    match ackee_origins::poll(a, &targets) {
        Ok(domains) => {
            let titles = || domains.iter().map(|d| d.title.as_str());
            let derived = ackee_origins::titles::derive(titles(), &a.rules);
            let set = ackee_origins::refresh::merge(entries, &derived.origins);
            *entries = set.entries();
            policy.live_origins().store(set);
            ackee_offers = a.rules.schemes.iter().any(|s| {
                ask.origin.starts_with(s.as_str())
                    && ask.origin[s.as_str().len()..].starts_with("://")
            });
            from_ackee_lines.push(format!(
                "Origins from Ackee: {} domain(s) give {} origin(s)",
                domains.len(),
                derived.origins.len()
            ));
            let statically = cfg.cors.origins.find(&ask.origin).is_some();
            if let Some(title) =
                ackee_origins::titles::title_giving(titles(), &a.rules, &ask.origin)
            {
                from_ackee_lines.push(format!(
                    "\"{}\" comes from Ackee: the domain titled \"{title}\"{}",
                    ask.origin,
                    if statically {
                        " (it is in the static list too)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Err(f) => {
            eprintln!(
                "ackee-gateway explain: cannot read Ackee's domain list ({}: {}); explaining with the static list alone",
                f.reason.as_str(),
                f.detail
            );
            from_ackee_lines.push(
                "Origins from Ackee: none, Ackee's domain list could not be read (see above)"
                    .to_owned(),
            );
        }
    }
    (from_ackee_lines, ackee_offers)
}

/// The offline report, and the verdict on the visit if one was asked about.
fn offline(args: &Args, ask: Ask) -> Result<(Report, Option<String>), (u8, String)> {
    let env = std::env::var(ENV_ALLOW_ORIGIN).ok();
    let loaded = config::load(&args.conf, env.as_deref()).map_err(|diags| {
        let mut text = diags.to_string();
        text.push_str("ackee-gateway explain: the configuration has problems; fix them first");
        (2, text)
    })?;
    for w in loaded
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        eprintln!("{w}");
    }
    let cfg = loaded.config;
    let mut entries = cfg.cors.origins.entries();
    let policy = CorsPolicy::new(cfg.cors.clone()).map_err(|e| (2, e))?;
    // With origins_from_ackee, ask Ackee for its domains as the gateway does at start-up.
    let (from_ackee_lines, ackee_offers) = match &cfg.cors.from_ackee {
        Some(a) => from_ackee(a, &cfg, &policy, &ask, &mut entries),
        None => (Vec::new(), false),
    };
    let source = if cfg.origins_from_env {
        ListSource::Env
    } else {
        ListSource::File(args.conf.clone())
    };
    let sim = simulate(&policy, &ask);
    let with_credentials = judge(&ask, &sim.preflight, &sim.actual, true);
    let without_credentials = judge(&ask, &sim.preflight, &sim.actual, false);
    let deciding = if args.credentials {
        &with_credentials
    } else {
        &without_credentials
    };
    let mut diagnosis = diagnose(&sim, &ask, &entries, &source, deciding, args.credentials);
    if let Some(d) = diagnosis.as_mut().filter(|_| ackee_offers) {
        if sim.refusal == Some(crate::cors::Refusal::Origin) {
            let host = ask.origin.split("://").nth(1).unwrap_or("");
            d.fix = format!(
                "add a domain titled \"{host}\" in Ackee (Settings, Domains; allowed within cors.origins_from_ackee.interval_seconds), or {}",
                d.fix
            );
        }
    }
    let from = if cfg.origins_from_env {
        format!(" (allowed origins from {ENV_ALLOW_ORIGIN})")
    } else {
        String::new()
    };
    let mut subject = format!("ackee-gateway with {}{from}, offline", args.conf);
    let tracker_lines = super::tracker::offline_lines(&cfg);
    for line in from_ackee_lines.into_iter().chain(tracker_lines) {
        subject.push('\n');
        subject.push_str(&line);
    }
    let visit = match &args.visit {
        Some(v) => Some(verdict(&cfg.visits, v, &args.conf).map_err(|e| (2, e))?),
        None => None,
    };
    let report = Report {
        subject,
        ask,
        preflight: sim.preflight,
        actual: sim.actual,
        actual_status_is_ackees: true,
        with_credentials,
        without_credentials,
        credentials: args.credentials,
        diagnosis,
    };
    Ok((report, visit))
}

fn online(args: &Args, url: &str, ask: Ask) -> Result<Report, (u8, String)> {
    let fail = |e: String| (2, format!("ackee-gateway explain: {e}"));
    let unreachable = |e: String| {
        (
            1,
            format!("ackee-gateway explain: {e}\nResult: a browser cannot reach the server either"),
        )
    };
    let target = parse_url(url).map_err(fail)?;
    let tls = if target.https {
        Some(tls_config(args.cacert.as_deref()).map_err(fail)?)
    } else {
        None
    };
    let acrh = ask.unsafe_header_names().join(",");
    let mut pre = vec![
        ("Origin".to_owned(), ask.origin.clone()),
        (
            "Access-Control-Request-Method".to_owned(),
            ask.method.clone(),
        ),
    ];
    if !acrh.is_empty() {
        pre.push(("Access-Control-Request-Headers".to_owned(), acrh));
    }
    let preflight: Answer =
        exchange(&target, tls.as_ref(), "OPTIONS", &pre, b"", args.timeout).map_err(unreachable)?;
    let mut headers = vec![("Origin".to_owned(), ask.origin.clone())];
    headers.extend(ask.headers.iter().cloned());
    let body: &[u8] = if ask.method == "GET" || ask.method == "HEAD" {
        b""
    } else {
        br#"{"query":"{ __typename }"}"#
    };
    let actual = exchange(
        &target,
        tls.as_ref(),
        &ask.method,
        &headers,
        body,
        args.timeout,
    )
    .map_err(unreachable)?;
    let with_credentials = judge(&ask, &preflight, &actual, true);
    let without_credentials = judge(&ask, &preflight, &actual, false);
    let mut subject = format!("{url}, online");
    for line in super::tracker::online_lines(&target, tls.as_ref(), args.timeout) {
        subject.push('\n');
        subject.push_str(&line);
    }
    Ok(Report {
        subject,
        ask,
        preflight,
        actual,
        actual_status_is_ackees: false,
        with_credentials,
        without_credentials,
        credentials: args.credentials,
        diagnosis: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_command_line_is_read_as_documented() {
        let a = parse(&argv(
            "--origin https://a.test -c gw.yaml --method patch --header Time-Zone --header X-A:1 --no-credentials",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(a.origin, "https://a.test");
        assert_eq!(a.conf, "gw.yaml");
        assert_eq!(a.method, "patch", "browsers send PATCH as written");
        assert_eq!(
            a.headers,
            [("Time-Zone".into(), "x".into()), ("X-A".into(), "1".into())]
        );
        assert!(!a.credentials);
        assert_eq!(a.visit, None);
        let v = parse(&argv(
            "--origin https://a.test --user-agent curl/8 --client 192.0.2.7 --gpc",
        ))
        .unwrap()
        .unwrap()
        .visit
        .unwrap();
        assert_eq!(v.user_agent, "curl/8");
        assert_eq!(v.client, Some("192.0.2.7".parse().unwrap()));
        assert!(v.gpc && !v.dnt);
        let b = parse(&argv(
            "--origin=https://a.test --url=http://127.0.0.1:1/api --method delete",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(b.url.as_deref(), Some("http://127.0.0.1:1/api"));
        assert_eq!(b.method, "DELETE");
        for bad in [
            "",
            "--origin",
            "--origin x --bogus",
            "--origin x --timeout 0",
            "--origin x --client office",
            "--origin x --url http://127.0.0.1:1/api --user-agent curl/8",
        ] {
            assert!(parse(&argv(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse(&argv("--help")).unwrap(), None);
    }

    #[test]
    fn a_typed_origin_becomes_what_a_browser_sends() {
        let cases: &[(&str, Result<&str, ()>, bool)] = &[
            (
                "https://blog.example.com",
                Ok("https://blog.example.com"),
                false,
            ),
            (
                "HTTPS://Blog.Example.com:443",
                Ok("https://blog.example.com"),
                true,
            ),
            (
                "https://blog.example.com/",
                Ok("https://blog.example.com"),
                true,
            ),
            (
                "https://blog.example.com/post/1",
                Ok("https://blog.example.com"),
                true,
            ),
            ("https://*.example.com", Err(()), false),
            ("ftp://example.com", Err(()), false),
        ];
        for (typed, want, noted) in cases {
            let got = browser_origin(typed);
            match (want, &got) {
                (Ok(w), Ok((o, note))) => {
                    assert_eq!(o, w, "{typed}");
                    assert_eq!(note.is_some(), *noted, "{typed}: {note:?}");
                }
                (Err(()), Err(_)) => {}
                _ => panic!("{typed}: {got:?}"),
            }
        }
    }
}
