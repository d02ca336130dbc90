//! Proof in a real browser: Debian's headless Chromium runs the real ackee-tracker (npm, pinned
//! in tests/browser/package-lock.json) against the real gateway binary, in front of the fake
//! Ackee 3.4.2. CORS is enforced by browsers, so this is the test that says the gateway works.
//!
//! Test pages are served from two loopback origins, `http://127.0.0.1:PORT` and
//! `http://localhost:OTHERPORT`, by small in-process web sites on ephemeral ports; the Node
//! driver (tests/browser/drive.mjs, playwright-core with /usr/bin/chromium) reports what the
//! page, the console and DevTools' Network domain saw.
//!
//! Needs: `apt-get install chromium libnss3-tools` and `npm ci --prefix tests/browser`. Without
//! them every test here fails and says what to install.
//!
//! Steps, one test each (one Chromium launch each, one at a time):
//! 1. an allowed origin with credentials (the tracker's default): record and action reach
//!    Ackee, the tracker gets their ids, no CORS error;
//! 2. a refused origin, `disallowed_origin: reject`: nothing reaches Ackee, the browser reports
//!    the CORS failure;
//! 3. `allowed_origins: ["*"]`: the tracker works with `ignoreOwnVisits: false` only; with
//!    credentials it fails cleanly;
//! 4. step 1 over HTTPS and HTTP/2 through the TLS listener, the test CA trusted by Chromium;
//! 5. the preflight and rejection counters move exactly as the browser's requests did (checked
//!    in every step, and on its own over a mixed run);
//! 6. `cors.origins_from_ackee`: a site (`http://blog.test`, served through the test site as
//!    Chromium's proxy) is refused, then added to the fake Ackee's domain list, and the same
//!    gateway process lets the tracker record from it;
//! 7. the page embeds the real tracker from the gateway as Ackee's documentation shows, the
//!    gateway serves it from its edge copy, and the second page view takes it from the
//!    browser's cache (or a 304) instead of downloading it again;
//! 8. step 1 over HTTP/3: Chromium told to use QUIC for the gateway's origin records a visit,
//!    DevTools reports `h3` for every preflight and POST, and the gateway's metrics count them
//!    as `http3`;
//! 9. a headless browser's visit (Chromium's own `HeadlessChrome` user agent) is answered at the
//!    edge with Ackee's answer for an ignored visit: the tracker stops quietly, no error, Ackee
//!    receives nothing, the counter moves; the same page as a desktop browser is recorded;
//! 10. how many tracker writes an open tab sends a minute, with the real tracker on a fake
//!     clock.
//!
//! Headless Chromium sends `HeadlessChrome` in its user agent, which the gateway ignores as a
//! bot by default, so every visit but step 9's headless one has a desktop Chrome's user agent
//! (set through DevTools, `BROWSER_UA`).

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod http3;
    pub mod process;
    pub mod tls;
}

use common::client::preflight;
use common::fake_ackee::FakeAckee;
use common::gateway::{Gateway, Scrape, Spec};
use common::process::eventually;
#[path = "browser/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::fake_ackee::Seen;
use common::tls::TestCa;
use harness::*;

/// One Chromium at a time: CI has 2 cores.
fn one_browser_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn origin_of(host: &str, site: &Site) -> String {
    format!("http://{host}:{}", site.port())
}

/// What Ackee received for one visit: its createRecord (by domain id), its createAction (by
/// event id) and the updateAction for the action id the tracker got back.
fn received_for(ackee: &FakeAckee, plan: &VisitPlan, visit: &Visit) -> Vec<Seen> {
    ackee
        .seen()
        .into_iter()
        .filter(|s| {
            let body = String::from_utf8_lossy(&s.body);
            body.contains(&plan.domain_id)
                || body.contains(&plan.event_id)
                || visit.action_id.as_deref().is_some_and(|a| body.contains(a))
        })
        .collect()
}

fn describe_seen(seen: &[Seen]) -> String {
    seen.iter()
        .map(|s| {
            format!(
                "    {} {} {:?} origin {:?}\n",
                s.method,
                s.path,
                s.mutation(),
                s.header("origin")
            )
        })
        .collect()
}

/// The tracker worked: record, action and the action's update reached Ackee from `origin`,
/// the tracker got the ids back, and the browser reported no error of any kind.
fn assert_tracker_worked(
    step: &str,
    ackee: &FakeAckee,
    plan: &VisitPlan,
    visit: &Visit,
    origin: &str,
    credentials: bool,
) {
    let seen = received_for(ackee, plan, visit);
    let problem = tracker_problem(visit, credentials)
        .or_else(|| ackee_problem(ackee, &seen, origin))
        .or_else(|| browser_problem(visit));
    if let Some(what) = problem {
        panic!(
            "{step}: {what}\n{}  Ackee received for this visit:\n{}",
            visit.describe(),
            describe_seen(&seen)
        );
    }
}

/// What went wrong in the page: the tracker's three requests and the ids it got back.
fn tracker_problem(visit: &Visit, credentials: bool) -> Option<String> {
    if visit.thrown.is_some() || !visit.page_errors.is_empty() {
        return Some("the page threw".into());
    }
    let ops: Vec<&str> = visit.xhrs.iter().map(|x| x.op.as_str()).collect();
    if ops != ["createRecord", "createAction", "updateAction"] {
        return Some(
            "the tracker did not send createRecord, createAction, then updateAction".into(),
        );
    }
    if visit
        .xhrs
        .iter()
        .any(|x| x.outcome != "load" || x.status != 200)
    {
        return Some("a tracker request did not load with status 200".into());
    }
    if visit.xhrs.iter().any(|x| x.with_credentials != credentials) {
        return Some(format!(
            "the tracker's requests were expected with withCredentials = {credentials}"
        ));
    }
    let (Some(record_id), Some(action_id)) = (&visit.record_id, &visit.action_id) else {
        return Some("the tracker did not get the record id and the action id back".into());
    };
    // The fake Ackee hands out ids of this form.
    if let Some(id) = [record_id, action_id]
        .into_iter()
        .find(|id| !id.starts_with("00000000-0000-4000-8000-"))
    {
        return Some(format!("{id:?} is not an id Ackee handed out"));
    }
    (record_id == action_id).then(|| "the record and the action got the same id".into())
}

/// What went wrong at Ackee: exactly the three mutations, each from `origin`, no preflight.
fn ackee_problem(ackee: &FakeAckee, seen: &[Seen], origin: &str) -> Option<String> {
    let count = |m: &str| seen.iter().filter(|s| s.mutation() == Some(m)).count();
    // The updateAction counts only if it carries the action id the tracker got back.
    if seen.len() != 3
        || count("createRecord") != 1
        || count("createAction") != 1
        || count("updateAction") != 1
    {
        return Some(
            "Ackee did not receive exactly one createRecord, one createAction, and one \
             updateAction for the action id the tracker got back"
                .into(),
        );
    }
    if seen.iter().any(|s| s.header("origin") != Some(origin)) {
        return Some(format!(
            "Ackee should have seen Origin {origin} on each request"
        ));
    }
    if ackee.seen().iter().any(|s| s.method == "OPTIONS") {
        return Some("a preflight reached Ackee; the gateway answers them at the edge".into());
    }
    None
}

/// What the browser itself reported: CORS and console errors, failed requests, DevTools.
fn browser_problem(visit: &Visit) -> Option<String> {
    if !visit.cors_console_errors().is_empty() {
        return Some("the browser reported a CORS error".into());
    }
    if visit.console.iter().any(|(t, _)| t == "error") {
        return Some("the browser's console has an error".into());
    }
    let network_failed = visit
        .network
        .iter()
        .any(|r| r.failed.is_some() || r.cors_error.is_some());
    if !visit.failed_requests.is_empty() || network_failed {
        return Some("a request failed in the browser".into());
    }
    let posts = visit.api("POST");
    if posts.len() != 3 || posts.iter().any(|r| r.status != Some(200)) {
        return Some("DevTools should show three POST /api answered with 200".into());
    }
    None
}

/// The browser refused the tracker's requests for CORS: nothing of this visit reached Ackee,
/// nothing was thrown uncaught, no ids, and each request has a console error about CORS that
/// contains `message`, and the DevTools CORS error `cors_error`.
fn assert_tracker_blocked(
    step: &str,
    ackee: &FakeAckee,
    plan: &VisitPlan,
    visit: &Visit,
    message: &str,
    cors_error: &str,
) {
    let seen = received_for(ackee, plan, visit);
    let context = format!(
        "{}  Ackee received for this visit:\n{}",
        visit.describe(),
        describe_seen(&seen)
    );
    let fail = |what: &str| -> ! { panic!("{step}: {what}\n{context}") };

    if !seen.is_empty() {
        fail("a request of this visit reached Ackee");
    }
    if visit.thrown.is_some() || !visit.page_errors.is_empty() {
        fail("something was thrown (the tracker should fail without an uncaught exception)");
    }
    let ops: Vec<&str> = visit.xhrs.iter().map(|x| x.op.as_str()).collect();
    if ops != ["createRecord", "createAction"] {
        fail("the tracker should have tried createRecord and createAction, and nothing more");
    }
    if visit
        .xhrs
        .iter()
        .any(|x| x.outcome != "error" || x.status != 0)
    {
        fail("each tracker request should end in a network error (status 0) in the page");
    }
    if visit.record_id.is_some() || visit.action_id.is_some() {
        fail("the tracker got ids although its requests were refused");
    }
    let cors = visit.cors_console_errors();
    if cors.len() != visit.xhrs.len() || cors.iter().any(|t| !t.contains(message)) {
        fail(&format!(
            "the console should have one CORS error per request, each containing {message:?}"
        ));
    }
    let posts = visit.api("POST");
    if posts.len() != visit.xhrs.len()
        || posts
            .iter()
            .any(|r| r.status.is_some() || r.cors_error.as_deref() != Some(cors_error))
    {
        fail(&format!(
            "DevTools should show each POST /api failed with CORS error {cors_error}"
        ));
    }
    if visit.failed_requests.len() != visit.xhrs.len() {
        fail("Playwright should report each tracker request as failed");
    }
}

/// Step 5: the counters moved exactly as the browser's requests did: one preflight counted as
/// allowed for each OPTIONS the gateway answered 204, one refused (and one origin rejection)
/// for each it answered 403, no rejected actual request, and the POSTs counted.
fn assert_counters_match_the_browser(step: &str, gw: &Gateway, before: &Scrape, visits: &[Visit]) {
    let preflights: Vec<&harness::NetRequest> =
        visits.iter().flat_map(|v| v.preflights()).collect();
    let browser_log: String = preflights
        .iter()
        .map(|r| format!("    OPTIONS {} -> {:?}\n", r.url, r.status))
        .collect();
    assert!(
        preflights
            .iter()
            .all(|r| matches!(r.status, Some(204) | Some(403))),
        "{step} (counters): every preflight should have been answered 204 or 403:\n{browser_log}"
    );
    assert!(
        !preflights.is_empty(),
        "{step} (counters): Chromium sent no preflight"
    );
    let allowed = preflights.iter().filter(|r| r.status == Some(204)).count() as f64;
    let refused = preflights.iter().filter(|r| r.status == Some(403)).count() as f64;
    let posts = visits
        .iter()
        .flat_map(|v| v.api("POST"))
        .filter(|r| r.status == Some(200))
        .count() as f64;

    const PRE: &str = "ackee_gateway_preflights_total";
    const REJ: &str = "ackee_gateway_cors_rejections_total";
    const REQ: &str = "ackee_gateway_requests_total";
    // (metric, labels, how far it should have moved)
    type Expected = (&'static str, Vec<(&'static str, &'static str)>, f64);
    let mut expected: Vec<Expected> = vec![
        (PRE, vec![("result", "allowed")], allowed),
        (PRE, vec![("result", "refused")], refused),
        (REQ, vec![("method", "OPTIONS"), ("status", "2xx")], allowed),
        (REQ, vec![("method", "OPTIONS"), ("status", "4xx")], refused),
        (REQ, vec![("method", "POST"), ("status", "2xx")], posts),
    ];
    for reason in ["origin", "method", "header"] {
        for request in ["preflight", "actual"] {
            let n = if (reason, request) == ("origin", "preflight") {
                refused
            } else {
                0.0
            };
            expected.push((REJ, vec![("reason", reason), ("request", request)], n));
        }
    }
    // Summed over the labels not named (the protocol: HTTP/1.1, HTTP/2 or HTTP/3).
    let moved = |s: &Scrape, name: &str, labels: &[(&str, &str)]| {
        s.sum(name, labels) - before.sum(name, labels)
    };
    let matches = |s: &Scrape| {
        expected
            .iter()
            .all(|(name, labels, n)| moved(s, name, labels) == *n)
    };
    // Counters move just after each response is sent: poll, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = gw.scrape();
    while !matches(&last) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        last = gw.scrape();
    }
    if !matches(&last) {
        let table: String = expected
            .iter()
            .map(|(name, labels, n)| {
                format!(
                    "    {name}{labels:?}: moved by {}, the browser's requests say {n}\n",
                    moved(&last, name, labels)
                )
            })
            .collect();
        panic!(
            "{step} (counters): /metrics did not move as the browser's requests did\n{table}  preflights Chromium sent:\n{browser_log}"
        );
    }
}

/// cors lines for a gateway that allows exactly `origin`.
fn allow_only(origin: &str, disallowed: &str) -> String {
    format!("allowed_origins: [\"{origin}\"]\ndisallowed_origin: {disallowed}")
}

#[test]
fn step1_allowed_origin_with_credentials_gets_record_and_action_ids_back() {
    const STEP: &str = "step 1 (allowed origin, credentials on)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&allow_only(&origin, "reject")));
    let before = gw.scrape();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plan = plan("allowed origin", 1, &origin, &server, None);
    let visits = run_browser(STEP, None, std::slice::from_ref(&plan));
    assert_tracker_worked(STEP, &ackee, &plan, &visits[0], &origin, true);
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

#[test]
fn step2_refused_origin_in_reject_mode_reaches_nothing_and_the_browser_reports_cors() {
    const STEP: &str = "step 2 (refused origin, disallowed_origin: reject)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let allowed_site = Site::start();
    let refused_site = Site::start();
    let allowed = origin_of("127.0.0.1", &allowed_site);
    let refused = origin_of("localhost", &refused_site);
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&allow_only(&allowed, "reject")));
    let before = gw.scrape();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plan = plan("refused origin", 2, &refused, &server, None);
    let visits = run_browser(STEP, None, std::slice::from_ref(&plan));
    let v = &visits[0];
    assert_eq!(
        ackee.count(),
        0,
        "{STEP}: nothing may reach Ackee:\n{}",
        describe_seen(&ackee.seen())
    );
    assert!(
        !v.preflights().is_empty() && v.preflights().iter().all(|r| r.status == Some(403)),
        "{STEP}: the gateway should have refused each preflight with 403\n{}",
        v.describe()
    );
    assert_tracker_blocked(
        STEP,
        &ackee,
        &plan,
        v,
        &format!("from origin '{refused}' has been blocked by CORS policy"),
        "PreflightMissingAllowOriginHeader",
    );
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

#[test]
fn step3_wildcard_works_without_credentials_and_fails_cleanly_with_them() {
    const STEP: &str = "step 3 (allowed_origins: [\"*\"])";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors("allowed_origins: [\"*\"]"));
    let before = gw.scrape();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plans = [
        plan(
            "'*', ignoreOwnVisits: false",
            3,
            &origin,
            &server,
            Some(false),
        ),
        plan(
            "'*', tracker defaults (credentials)",
            4,
            &origin,
            &server,
            None,
        ),
    ];
    let visits = run_browser(STEP, None, &plans);
    let (without, with) = (&plans[0], &plans[1]);
    assert_tracker_worked(
        &format!("{STEP}, ignoreOwnVisits: false"),
        &ackee,
        without,
        &visits[0],
        &origin,
        false,
    );
    assert_tracker_blocked(
        &format!("{STEP}, default ignoreOwnVisits (credentials)"),
        &ackee,
        with,
        &visits[1],
        "wildcard '*'",
        "PreflightWildcardOriginNotAllowed",
    );
    assert_eq!(
        ackee.count(),
        3,
        "{STEP}: only the visit without credentials should have reached Ackee:\n{}",
        describe_seen(&ackee.seen())
    );
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

/// Adds the test CA to a private NSS database in `home`, where Chromium on Linux looks
/// ($HOME/.pki/nssdb).
fn trust_in_nss(home: &Path, ca: &TestCa) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let ca_file = home.join("test-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let db_arg = format!("sql:{}", db.display());
    let run = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("step 4: certutil could not run ({e}): apt-get install libnss3-tools")
            });
        assert!(
            out.status.success(),
            "step 4: certutil {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db_arg, "--empty-password"]);
    run(&[
        "-A",
        "-d",
        &db_arg,
        "-n",
        "ackee-gateway test CA",
        "-t",
        "C,,",
        "-i",
        &ca_file.to_string_lossy(),
    ]);
}

#[test]
fn step4_allowed_origin_over_https_and_http2() {
    const STEP: &str = "step 4 (allowed origin over HTTPS and HTTP/2)";
    require_tools(true);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["localhost"]).write(certs.path(), "localhost");
    let tls = format!(
        "tls:\n  certificates:\n    - name: localhost\n      cert: \"{}\"\n      key: \"{}\"",
        cert.display(),
        key.display()
    );
    let gw = Gateway::start(
        &Spec::new(ackee.addr)
            .cors(&allow_only(&origin, "reject"))
            .tls_listener(&tls),
    );
    let before = gw.scrape();
    let server = format!("https://localhost:{}", gw.https.port());

    let plan = plan("allowed origin over HTTPS", 5, &origin, &server, None);
    let trust = |home: &Path| trust_in_nss(home, &ca);
    let visits = run_browser(STEP, Some(&trust), std::slice::from_ref(&plan));
    let v = &visits[0];
    assert_tracker_worked(STEP, &ackee, &plan, v, &origin, true);
    let api: Vec<_> = v.api("OPTIONS").into_iter().chain(v.api("POST")).collect();
    assert!(
        api.iter().all(|r| r.url.starts_with("https://localhost:")
            && r.protocol.as_deref() == Some("h2")),
        "{STEP}: every preflight and POST should have gone over HTTPS with HTTP/2 (h2)\n{}",
        v.describe()
    );
    assert!(
        received_for(&ackee, &plan, v)
            .iter()
            .all(|s| s.header("x-forwarded-proto") == Some("https")),
        "{STEP}: Ackee should see X-Forwarded-Proto: https"
    );
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

#[test]
fn step5_preflight_counters_move_exactly_as_the_browsers_preflights() {
    const STEP: &str = "step 5 (counters over a mixed run, disallowed_origin: forward)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let allowed_site = Site::start();
    let refused_site = Site::start();
    let allowed = origin_of("127.0.0.1", &allowed_site);
    let refused = origin_of("localhost", &refused_site);
    let ackee = FakeAckee::start();
    // The default mode: the browser still sends nothing after a refused preflight.
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&allow_only(&allowed, "forward")));
    let before = gw.scrape();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plans = [
        plan("allowed origin", 6, &allowed, &server, None),
        plan("refused origin", 7, &refused, &server, None),
        // Chromium may answer this one's preflights from its preflight cache.
        plan("allowed origin again", 8, &allowed, &server, None),
    ];
    let visits = run_browser(STEP, None, &plans);
    assert_tracker_worked(STEP, &ackee, &plans[0], &visits[0], &allowed, true);
    assert_tracker_blocked(
        STEP,
        &ackee,
        &plans[1],
        &visits[1],
        &format!("from origin '{refused}' has been blocked by CORS policy"),
        "PreflightMissingAllowOriginHeader",
    );
    assert_tracker_worked(STEP, &ackee, &plans[2], &visits[2], &allowed, true);
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

/// Step 6: a site added in Ackee's dashboard works without a restart. Origins from Ackee are
/// host names without a port, so the site is `http://blog.test`: Chromium fetches its pages
/// through the test site acting as its proxy (`--proxy-server`), while the gateway on
/// 127.0.0.1 is reached directly (Chromium never proxies loopback). Before the domain is in
/// Ackee the tracker is refused; after, the same gateway process lets it record.
#[test]
fn step6_a_domain_added_in_ackee_is_allowed_without_a_restart() {
    const STEP: &str = "step 6 (origins from Ackee's domain list)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = "http://blog.test";
    let proxy = format!("--proxy-server=http://127.0.0.1:{}", site.port());
    let ackee = FakeAckee::start();
    ackee.set(|b| {
        b.token = Some("browser-test-token".into());
        b.domains = vec!["other.example".into()];
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "browser-test-token\n").unwrap();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&format!(
        "allowed_origins: [\"https://static.example\"]\ndisallowed_origin: reject\norigins_from_ackee:\n  token_file: \"{}\"\n  interval_seconds: 0.2\n  schemes: [http]",
        token.display()
    )));
    let pid = gw.child.id();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let before = plan("before the domain is in Ackee", 61, origin, &server, None);
    let visits = run_browser_with(STEP, None, std::slice::from_ref(&before), &[&proxy]);
    assert_tracker_blocked(
        STEP,
        &ackee,
        &before,
        &visits[0],
        &format!("from origin '{origin}' has been blocked by CORS policy"),
        "PreflightMissingAllowOriginHeader",
    );

    // The site is added in Ackee's dashboard; the gateway's next poll allows it, and then logs
    // it (a preflight can see the new list before the line is written): wait for both.
    ackee.set(|b| b.domains.push("blog.test".into()));
    let allowed_line = r#"origins from Ackee: now allowed: "http://blog.test""#;
    eventually(
        Duration::from_secs(10),
        "the gateway to allow the new domain, and log it",
        || {
            (preflight(gw.http, origin).status == 204 && gw.stderr().contains(allowed_line))
                .then_some(())
        },
    );
    let after = plan("after the domain was added", 62, origin, &server, None);
    let visits = run_browser_with(STEP, None, std::slice::from_ref(&after), &[&proxy]);
    assert_tracker_worked(STEP, &ackee, &after, &visits[0], origin, true);
    assert_eq!(gw.child.id(), pid);
    assert!(
        gw.stderr().contains(allowed_line),
        "{STEP}: the gateway should have logged the new origin:\n{}",
        gw.stderr()
    );
}

/// Step 7: the page embeds the tracker as Ackee's documentation shows it, from the gateway
/// (`<script async src=".../tracker.js" data-ackee-server=... data-ackee-domain-id=...>`). The
/// gateway serves the real tracker from its edge copy, compressed; the visit is recorded; and
/// on the second page view the browser does not download the tracker again (its cache, or a
/// 304 with no body). Ackee sees the gateway's own fetches of its files and the visits, never
/// a browser's request for the tracker.
#[test]
fn step7_the_tracker_from_the_edge_records_and_is_not_downloaded_again() {
    const STEP: &str = "step 7 (the tracker from the gateway's edge copy)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let real_tracker =
        std::fs::read(harness::dir().join("node_modules/ackee-tracker/dist/ackee-tracker.min.js"))
            .unwrap();
    ackee.set(|b| {
        b.files.insert(
            "/tracker.js".into(),
            (
                200,
                "text/javascript; charset=utf-8".into(),
                real_tracker.clone(),
            ),
        );
    });
    let spec = Spec::new(ackee.addr)
        .cors(&allow_only(&origin, "reject"))
        .assets("refresh_seconds: 60");
    let gw = Gateway::start(&spec);
    gw.scrape_until("the edge copy", |s| {
        s.get("ackee_gateway_assets_served", &[]) == 1.0
    });
    let server = format!("http://127.0.0.1:{}", gw.http.port());
    let first = plan_embedded("first page view", 71, &origin, &server);
    let second = plan_embedded("second page view", 72, &origin, &server);
    let visits = run_browser(STEP, None, &[first, second]);
    let fail = |what: &str| -> ! {
        let all: String = visits.iter().map(Visit::describe).collect();
        panic!(
            "{STEP}: {what}\n{all}  Ackee saw:\n{}",
            describe_seen(&ackee.seen())
        )
    };
    for (i, v) in visits.iter().enumerate() {
        if v.thrown.is_some()
            || !v.page_errors.is_empty()
            || v.console.iter().any(|(t, _)| t == "error")
        {
            fail(&format!("page view {}: an error in the page", i + 1));
        }
        let ops: Vec<&str> = v.xhrs.iter().map(|x| x.op.as_str()).collect();
        if ops != ["createRecord"] || v.xhrs[0].status != 200 {
            fail(&format!(
                "page view {}: the tracker should have sent one createRecord, answered 200",
                i + 1
            ));
        }
    }
    let tracker = |v: &Visit| -> Vec<harness::NetRequest> {
        v.network
            .iter()
            .filter(|r| r.url == format!("{server}/tracker.js"))
            .cloned()
            .collect()
    };
    let t1 = tracker(&visits[0]);
    if t1.len() != 1 || t1[0].from_cache || t1[0].status != Some(200) {
        fail("the first page view should have downloaded tracker.js once, with 200");
    }
    if t1[0].content_encoding.is_none() {
        fail("the first download of tracker.js should have been compressed");
    }
    let t2 = tracker(&visits[1]);
    let again = t2.iter().any(|r| !r.from_cache && r.status != Some(304));
    if t2.is_empty() || again {
        fail(
            "the second page view should have taken tracker.js from the browser's cache, or a 304",
        );
    }
    let records = ackee
        .seen()
        .iter()
        .filter(|s| s.mutation() == Some("createRecord"))
        .count();
    if records != 2 {
        fail(&format!(
            "Ackee should have recorded both page views, it got {records} createRecord"
        ));
    }
    if ackee.seen().iter().any(|s| s.path == "/tracker.js") {
        fail("a browser's request for tracker.js reached Ackee");
    }
    // Every request for the tracker that left the browser was counted at the edge.
    let on_wire = t1.len() + t2.iter().filter(|r| !r.from_cache).count();
    let s = gw.scrape_until("the edge answers to be counted", |s| {
        s.total("ackee_gateway_assets_responses_total") >= on_wire as f64
    });
    let counted = s.total("ackee_gateway_assets_responses_total");
    if counted != on_wire as f64 {
        fail(&format!(
            "{counted} edge answers counted, the browser sent {on_wire} requests for tracker.js"
        ));
    }
}

#[test]
fn step8_allowed_origin_over_http3() {
    const STEP: &str = "step 8 (allowed origin over HTTP/3)";
    require_tools(true);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["localhost"]).write(certs.path(), "localhost");
    let tls = format!(
        "tls:\n  certificates:\n    - name: localhost\n      cert: \"{}\"\n      key: \"{}\"\nhttp3: true",
        cert.display(),
        key.display()
    );
    let gw = Gateway::start(
        &Spec::new(ackee.addr)
            .cors(&allow_only(&origin, "reject"))
            .tls_listener(&tls),
    );
    common::http3::wait_udp(gw.child.id(), gw.https.port());
    let before = gw.scrape();
    let authority = format!("localhost:{}", gw.https.port());
    let server = format!("https://{authority}");

    let plan = plan("allowed origin over HTTP/3", 9, &origin, &server, None);
    let trust = |home: &Path| trust_in_nss(home, &ca);
    // QUIC for this origin from the first request, without waiting for Alt-Svc; the test CA
    // in the NSS database is trusted over QUIC as over TCP (Chromium 156). The gateway listens
    // on 127.0.0.1: with QUIC forced there is no fallback from ::1 as over TCP.
    let force = format!("--origin-to-force-quic-on={authority}");
    let visits = run_browser_with(
        STEP,
        Some(&trust),
        std::slice::from_ref(&plan),
        &[
            "--enable-quic",
            &force,
            "--host-resolver-rules=MAP localhost 127.0.0.1",
        ],
    );
    let v = &visits[0];
    assert_tracker_worked(STEP, &ackee, &plan, v, &origin, true);
    let api: Vec<_> = v.api("OPTIONS").into_iter().chain(v.api("POST")).collect();
    assert!(
        !api.is_empty()
            && api
                .iter()
                .all(|r| r.url.starts_with("https://localhost:")
                    && r.protocol.as_deref() == Some("h3")),
        "{STEP}: every preflight and POST should have gone over HTTP/3 (h3)\n{}",
        v.describe()
    );
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
    let m = gw.scrape();
    let posts = m.get(
        "ackee_gateway_requests_total",
        &[("protocol", "http3"), ("method", "POST"), ("status", "2xx")],
    ) - before.get(
        "ackee_gateway_requests_total",
        &[("protocol", "http3"), ("method", "POST"), ("status", "2xx")],
    );
    assert_eq!(
        posts, 3.0,
        "{STEP}: the gateway counted the tracker's POSTs as HTTP/3"
    );
    assert!(m.get("ackee_gateway_quic_handshakes_total", &[("result", "ok")]) >= 1.0);
}

/// The tracker was told its visit is ignored, as Ackee tells it: both writes answered 200 with
/// the fixed id, the tracker's own warning for each and no error, no id handed to the page,
/// no update sent, and nothing of the visit reached Ackee.
fn assert_tracker_ignored(step: &str, ackee: &FakeAckee, plan: &VisitPlan, visit: &Visit) {
    let seen = received_for(ackee, plan, visit);
    let context = format!(
        "{}  Ackee received for this visit:\n{}",
        visit.describe(),
        describe_seen(&seen)
    );
    let fail = |what: &str| -> ! { panic!("{step}: {what}\n{context}") };
    if !seen.is_empty() {
        fail("a request of this visit reached Ackee");
    }
    if visit.thrown.is_some() || !visit.page_errors.is_empty() {
        fail("something was thrown");
    }
    if visit.console.iter().any(|(t, _)| t == "error") {
        fail("the browser's console has an error");
    }
    let warnings = visit
        .console
        .iter()
        .filter(|(t, text)| {
            t == "warning" && text == "Ackee ignores you because this is your own site"
        })
        .count();
    if warnings != 2 {
        fail("the tracker should have said twice that Ackee ignores the visit");
    }
    let ops: Vec<&str> = visit.xhrs.iter().map(|x| x.op.as_str()).collect();
    if ops != ["createRecord", "createAction"] {
        fail("the tracker should have sent createRecord and createAction, and no update");
    }
    if visit
        .xhrs
        .iter()
        .any(|x| x.outcome != "load" || x.status != 200 || !x.with_credentials)
    {
        fail("each tracker request should load with status 200, credentials on");
    }
    if visit.record_id.is_some() || visit.action_id.is_some() {
        fail("the tracker handed the page an id; it does not for an ignored visit");
    }
    let posts = visit.api("POST");
    if posts.len() != 2
        || posts
            .iter()
            .any(|r| r.status != Some(200) || r.failed.is_some())
    {
        fail("DevTools should show two POST /api answered with 200");
    }
}

#[test]
fn step9_a_headless_browsers_visit_is_ignored_at_the_edge_and_a_desktop_browsers_recorded() {
    const STEP: &str = "step 9 (a headless browser's visit, ignored at the edge)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    // visits.ignore_bots is on by default.
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&allow_only(&origin, "reject")));
    let before = gw.scrape();
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plans = [
        plan(
            "Chromium's own headless user agent",
            91,
            &origin,
            &server,
            None,
        )
        .headless(),
        plan(
            "the same page as a desktop Chrome",
            92,
            &origin,
            &server,
            None,
        ),
    ];
    let visits = run_browser(STEP, None, &plans);
    let (headless, desktop) = (&visits[0], &visits[1]);
    assert!(
        headless.user_agent.contains("HeadlessChrome/"),
        "{STEP}: the first visit should be Chromium's own headless user agent\n{}",
        headless.describe()
    );
    assert_eq!(desktop.user_agent, BROWSER_UA, "{STEP}");
    assert_tracker_ignored(STEP, &ackee, &plans[0], headless);
    assert_tracker_worked(STEP, &ackee, &plans[1], desktop, &origin, true);
    const IGNORED: &str = "ackee_gateway_visits_ignored_total";
    let moved = |s: &Scrape, reason: &str| {
        s.get(IGNORED, &[("reason", reason)]) - before.get(IGNORED, &[("reason", reason)])
    };
    let after = gw.scrape_until("the ignored visit to be counted", |s| {
        moved(s, "bot") == 2.0
    });
    assert_eq!(
        after.total(IGNORED) - before.total(IGNORED),
        2.0,
        "{STEP}: only the headless visit's two writes were ignored"
    );
    assert_counters_match_the_browser(STEP, &gw, &before, &visits);
}

/// Step 10: the tracker's own rate. A page keeps its record open (no `stop()`), on Playwright's
/// fake clock advanced by one minute: ackee-tracker 5.1.3 sends its `createRecord` and then an
/// `updateRecord` every 15 s while the tab is visible, so an open tab sends 5 page-view writes a
/// minute (and one more per page view, and whatever actions the site records). The figure
/// behind the tracker limit's default (README, "Rate limits").
#[test]
fn step10_an_open_tab_sends_five_tracker_writes_a_minute() {
    const STEP: &str = "step 10 (tracker writes per open tab per minute)";
    require_tools(false);
    let _one = one_browser_at_a_time();
    let site = Site::start();
    let origin = origin_of("127.0.0.1", &site);
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&allow_only(&origin, "reject")));
    let server = format!("http://127.0.0.1:{}", gw.http.port());

    let plan = plan("a tab open for a minute", 101, &origin, &server, None).stay_for(60_000);
    let visits = run_browser(STEP, None, std::slice::from_ref(&plan));
    let v = &visits[0];
    let count = |op: &str| v.xhrs.iter().filter(|x| x.op == op).count();
    let page_view_writes = count("createRecord") + count("updateRecord");
    eprintln!(
        "{STEP}: in one minute the tab sent {} createRecord and {} updateRecord ({page_view_writes} page-view writes), and {} createAction and {} updateAction for the page's event",
        count("createRecord"),
        count("updateRecord"),
        count("createAction"),
        count("updateAction"),
    );
    assert_eq!(
        (count("createRecord"), count("updateRecord")),
        (1, 4),
        "{STEP}: one createRecord, then an updateRecord every 15 s\n{}",
        v.describe()
    );
    assert!(
        v.xhrs
            .iter()
            .all(|x| x.outcome == "load" && x.status == 200),
        "{STEP}: every write answered 200\n{}",
        v.describe()
    );
    let record_id = v.record_id.as_deref().expect("the record id");
    let updates = ackee
        .seen()
        .iter()
        .filter(|s| {
            s.mutation() == Some("updateRecord")
                && String::from_utf8_lossy(&s.body).contains(record_id)
        })
        .count();
    assert_eq!(
        updates, 4,
        "{STEP}: Ackee received the four updates of the record"
    );
}
