//! Visits worth counting, over real sockets against the fake Ackee: an ignored visit (a bot's
//! user agent, the owner's network, Global Privacy Control, Do Not Track) never reaches Ackee
//! and gets Ackee's own answer, the fixed id, with the gateway's CORS headers; a counted visit
//! reaches Ackee byte for byte; updates of the fixed id are answered at the edge; nothing else
//! is touched; ignored visits do not use up a client's tracker limit. And the bot matcher gives
//! the same verdict as isbot's own JavaScript expression, run by Node, on isbot's fixtures.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::{Conn, Response};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Scrape, Spec};

use std::path::Path;
use std::process::Command;

use ackee_gateway::visits::{BotMatcher, FIXED_ID};

const ORIGIN: &str = "https://example.com";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36";
const IGNORED: &str = "ackee_gateway_visits_ignored_total";

/// A tracker write as ackee-tracker sends it, with `user_agent` and more headers.
fn write(c: &mut Conn, body: &str, user_agent: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("Origin", ORIGIN),
        ("Content-Type", "application/json;charset=UTF-8"),
        ("User-Agent", user_agent),
    ];
    headers.extend_from_slice(extra);
    c.request("POST", "/api", &headers, body.as_bytes())
}

/// An update as ackee-tracker sends it, for `id`.
fn update_body(mutation: &str, id: &str) -> String {
    format!(
        r#"{{"query":"\n\t\t\tmutation {mutation}($recordId: ID!) {{\n\t\t\t\t{mutation}(id: $recordId) {{\n\t\t\t\t\tsuccess\n\t\t\t\t}}\n\t\t\t}}\n\t\t","variables":{{"recordId":"{id}"}}}}"#
    )
}

fn ignored_answer(mutation: &str) -> String {
    format!("{{\"data\":{{\"{mutation}\":{{\"payload\":{{\"id\":\"{FIXED_ID}\"}}}}}}}}\n")
}

/// The answer is Ackee's for an ignored visit, with the gateway's CORS headers for ORIGIN.
fn assert_ignored(r: &Response, body: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(r.text(), body, "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{what}"
    );
    assert_eq!(
        r.header("access-control-allow-credentials"),
        Some("true"),
        "{what}"
    );
    assert_eq!(r.header("vary"), Some("Origin"), "{what}");
    assert!(r.header("x-replica").is_none(), "{what}: answered by Ackee");
}

/// The answer came from Ackee (the fake names itself in `X-Replica`).
fn assert_from_ackee(r: &Response, what: &str) {
    assert_eq!(r.status, 200, "{what}: {r:?}");
    assert_eq!(r.header("x-replica"), Some("ackee"), "{what}: {r:?}");
}

fn reason(s: &Scrape, reason: &str) -> f64 {
    s.get(IGNORED, &[("reason", reason)])
}

#[test]
fn a_bots_visit_never_reaches_ackee_and_gets_the_fixed_id_with_cors_headers() {
    let ackee = FakeAckee::start();
    // ignore_bots is on by default.
    let gw = Gateway::start(
        &Spec::new(ackee.addr).listener("response_headers: {X-Frame-Options: deny}"),
    );
    let mut c = Conn::open(gw.http);
    let r = write(&mut c, &mutation_body("createRecord"), HEADLESS, &[]);
    assert_ignored(
        &r,
        &ignored_answer("createRecord"),
        "createRecord from HeadlessChrome",
    );
    assert_eq!(
        r.header("x-frame-options"),
        Some("deny"),
        "the listener's headers too"
    );
    let r = write(&mut c, &mutation_body("createAction"), "curl/8.14.1", &[]);
    assert_ignored(
        &r,
        &ignored_answer("createAction"),
        "createAction from curl",
    );
    // A bot's update of a real record is Ackee's to answer (the rules never ignore an update
    // of another id), and the connection was kept open for it.
    let r = write(
        &mut c,
        &update_body("updateRecord", "00000000-0000-4000-8000-000000000001"),
        HEADLESS,
        &[],
    );
    assert_from_ackee(&r, "a bot's update of a real record");
    let seen = ackee.seen();
    assert_eq!(seen.len(), 1, "only the update reached Ackee: {seen:?}");
    assert_eq!(seen[0].mutation(), Some("updateRecord"));
    let posts = |s: &Scrape| {
        s.get(
            "ackee_gateway_requests_total",
            &[("protocol", "http1"), ("method", "POST"), ("status", "2xx")],
        )
    };
    let s = gw.scrape_until("the requests to be counted", |s| posts(s) == 3.0);
    assert_eq!(reason(&s, "bot"), 2.0);
    for other in ["network", "gpc", "dnt", "ignored_id"] {
        assert_eq!(reason(&s, other), 0.0, "{other}");
    }
}

#[test]
fn a_counted_visit_reaches_ackee_unchanged() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let mut c = Conn::open(gw.http);
    let body = mutation_body("createRecord");
    for (ua, what) in [
        (CHROME, "Chrome"),
        ("", "no User-Agent at all, as isbot decides"),
    ] {
        let mut headers = vec![
            ("Origin", ORIGIN),
            ("Content-Type", "application/json;charset=UTF-8"),
        ];
        if !ua.is_empty() {
            headers.push(("User-Agent", ua));
        }
        let r = c.request("POST", "/api", &headers, body.as_bytes());
        assert_from_ackee(&r, what);
        assert!(
            r.text().contains("00000000-0000-4000-8000-"),
            "{what}: Ackee's id: {}",
            r.text()
        );
        assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    }
    // A body in several chunks (chunked framing) is read whole, then sent on unchanged.
    let half = body.len() / 2;
    let chunked = format!(
        "POST /api HTTP/1.1\r\nHost: gw.test\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nUser-Agent: {CHROME}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        &body[..half],
        body.len() - half,
        &body[half..]
    );
    c.send_raw(chunked.as_bytes());
    assert_from_ackee(&c.read_response(false), "a chunked body");
    let seen = ackee.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, body.as_bytes(), "Ackee got the body byte for byte");
        assert_eq!(s.header("origin"), Some(ORIGIN));
    }
    assert_eq!(seen[0].header("user-agent"), Some(CHROME));
    let s = gw.scrape();
    assert_eq!(s.total(IGNORED), 0.0);
}

#[test]
fn a_bots_body_in_chunks_is_recognised_too() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let mut c = Conn::open(gw.http);
    let body = mutation_body("createRecord");
    let mut raw = format!(
        "POST /api HTTP/1.1\r\nHost: gw.test\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nUser-Agent: {HEADLESS}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for piece in body.as_bytes().chunks(40) {
        raw.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            String::from_utf8_lossy(piece)
        ));
    }
    raw.push_str("0\r\n\r\n");
    c.send_raw(raw.as_bytes());
    let r = c.read_response(false);
    assert_ignored(
        &r,
        &ignored_answer("createRecord"),
        "a chunked body from a bot",
    );
    assert_eq!(ackee.count(), 0);
}

#[test]
fn updates_of_the_fixed_id_are_answered_at_the_edge() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let mut c = Conn::open(gw.http);
    for mutation in ["updateRecord", "updateAction"] {
        let r = write(&mut c, &update_body(mutation, FIXED_ID), CHROME, &[]);
        let want = format!("{{\"data\":{{\"{mutation}\":{{\"success\":true}}}}}}\n");
        assert_ignored(&r, &want, mutation);
    }
    // Another id is Ackee's.
    let r = write(
        &mut c,
        &update_body("updateRecord", "00000000-0000-4000-8000-000000000007"),
        CHROME,
        &[],
    );
    assert_from_ackee(&r, "an update of a real record");
    assert_eq!(ackee.count(), 1);
    gw.scrape_until("the updates to be counted", |s| {
        reason(s, "ignored_id") == 2.0
    });
}

#[test]
fn the_owners_networks_gpc_and_dnt_are_ignored_when_asked() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top(
        "trusted_proxies: [\"127.0.0.1\"]\nvisits:\n  ignore_networks: [\"127.0.0.2\", \"192.0.2.0/24\", \"2001:db8::/32\"]\n  honor_gpc: true\n  honor_dnt: true",
    ));
    let create = mutation_body("createRecord");
    let answer = ignored_answer("createRecord");
    // The office, connecting directly.
    let mut office = Conn::from_address("127.0.0.2", gw.http);
    assert_ignored(
        &write(&mut office, &create, CHROME, &[]),
        &answer,
        "from 127.0.0.2",
    );
    // Someone else, directly: counted, whatever it claims to be forwarded for.
    let mut other = Conn::from_address("127.0.0.3", gw.http);
    let r = write(
        &mut other,
        &create,
        CHROME,
        &[("X-Forwarded-For", "192.0.2.9")],
    );
    assert_from_ackee(&r, "an untrusted peer that forwards an ignored address");
    // Through the trusted proxy: the forwarded client decides.
    let mut proxy = Conn::from_address("127.0.0.1", gw.http);
    for (xff, ignored) in [
        ("192.0.2.9", true),
        ("2001:db8::5", true),
        ("198.51.100.4", false),
        // A visitor who writes an office address on the left is still who the proxy saw.
        ("192.0.2.9, 198.51.100.4", false),
    ] {
        let r = write(&mut proxy, &create, CHROME, &[("X-Forwarded-For", xff)]);
        if ignored {
            assert_ignored(&r, &answer, xff);
        } else {
            assert_from_ackee(&r, xff);
        }
    }
    // Privacy signals.
    assert_ignored(
        &write(&mut other, &create, CHROME, &[("Sec-GPC", "1")]),
        &answer,
        "Sec-GPC: 1",
    );
    assert_ignored(
        &write(&mut other, &create, CHROME, &[("DNT", "1")]),
        &answer,
        "DNT: 1",
    );
    assert_from_ackee(
        &write(&mut other, &create, CHROME, &[("DNT", "0")]),
        "DNT: 0",
    );
    assert_eq!(ackee.count(), 4);
    let s = gw.scrape_until("the ignored visits to be counted", |s| {
        s.total(IGNORED) == 5.0
    });
    assert_eq!(reason(&s, "network"), 3.0);
    assert_eq!(reason(&s, "gpc"), 1.0);
    assert_eq!(reason(&s, "dnt"), 1.0);
}

#[test]
fn with_every_rule_off_nothing_is_touched() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("visits: {ignore_bots: false}"));
    let mut c = Conn::open(gw.http);
    assert_from_ackee(
        &write(&mut c, &mutation_body("createRecord"), HEADLESS, &[]),
        "a bot",
    );
    assert_from_ackee(
        &write(
            &mut c,
            &update_body("updateRecord", FIXED_ID),
            HEADLESS,
            &[],
        ),
        "the fixed id",
    );
    assert_eq!(ackee.count(), 2);
}

#[test]
fn reads_the_dashboard_and_every_other_request_go_to_ackee_untouched() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&format!(
        "allowed_origins: [\"{ORIGIN}\"]\ndisallowed_origin: forward"
    )));
    let mut c = Conn::open(gw.http);
    let bot = [("User-Agent", HEADLESS)];
    let json = ("Content-Type", "application/json");
    let create = mutation_body("createRecord");
    let persisted = r#"{"operationName":"createRecord","variables":{},"extensions":{"persistedQuery":{"version":1,"sha256Hash":"0f"}}}"#;
    let login = r#"{"operationName":"createToken","variables":{"input":{"username":"a","password":"b"}},"query":"mutation createToken($input: CreateTokenInput!) { createToken(input: $input) { payload { id } } }"}"#;
    // (method, path, headers, body, what)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("GET", "/tracker.js", bot.to_vec(), "", "the tracker script"),
        ("GET", "/", bot.to_vec(), "", "the dashboard's page"),
        (
            "POST",
            "/api",
            vec![bot[0], json, ("Authorization", "Bearer t")],
            r#"{"query":"{ domains { id title } }"}"#,
            "the dashboard's query",
        ),
        ("POST", "/api", vec![bot[0], json], login, "a login"),
        (
            "POST",
            "/api",
            vec![bot[0], ("Content-Type", "text/plain")],
            create.as_str(),
            "a body that is not JSON by its type",
        ),
        (
            "POST",
            "/api",
            vec![bot[0], json],
            "createRecord, but not JSON",
            "a body that is not JSON",
        ),
        (
            "POST",
            "/api",
            vec![bot[0], json],
            persisted,
            "a persisted query",
        ),
        (
            "POST",
            "/api/",
            vec![bot[0], json],
            create.as_str(),
            "another path",
        ),
        (
            "PATCH",
            "/domains/d/records/r",
            vec![bot[0], json],
            "{}",
            "the pre-4.0 tracker",
        ),
    ];
    for (method, path, headers, body, what) in &cases {
        let r = c.request(method, path, headers, body.as_bytes());
        assert!(
            r.header("x-replica").is_some(),
            "{what} was answered at the edge: {r:?}"
        );
    }
    assert_eq!(ackee.count(), cases.len());
    for (s, (_, _, _, body, what)) in ackee.seen().iter().zip(&cases) {
        assert_eq!(s.body, body.as_bytes(), "{what}: unchanged");
    }
    // A batch of tracker writes from a bot is answered as Apollo answers a batch.
    let batch = format!(
        "[{},{}]",
        mutation_body("createRecord"),
        mutation_body("createAction")
    );
    let r = write(&mut c, &batch, HEADLESS, &[]);
    let want = format!(
        "[{},{}]\n",
        ignored_answer("createRecord").trim_end(),
        ignored_answer("createAction").trim_end()
    );
    assert_ignored(&r, &want, "a batch");
    assert_eq!(ackee.count(), cases.len());
    // An origin that is not allowed (forward mode) gets Ackee's answer without CORS headers.
    let r = c.request(
        "POST",
        "/api",
        &[("Origin", "https://elsewhere.example"), json, bot[0]],
        create.as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), ignored_answer("createRecord"));
    assert!(r.cors_header_names().is_empty(), "{r:?}");
    assert_eq!(r.header("vary"), Some("Origin"));
}

#[test]
fn ignored_visits_leave_the_tracker_limit_to_the_visitors_behind_the_address() {
    let ackee = FakeAckee::start();
    let gw =
        Gateway::start(&Spec::new(ackee.addr).top(
            "rate_limits: {tracker: {requests_per_minute: 3}, login: {requests_per_minute: 1}}",
        ));
    let mut c = Conn::open(gw.http);
    let create = mutation_body("createRecord");
    for i in 0..10 {
        let r = write(&mut c, &create, HEADLESS, &[]);
        assert_eq!(r.status, 200, "bot write {i}");
    }
    for i in 0..3 {
        assert_from_ackee(
            &write(&mut c, &create, CHROME, &[]),
            &format!("visitor write {i}"),
        );
    }
    let r = write(&mut c, &create, CHROME, &[]);
    assert_eq!(r.status, 429, "the fourth visitor write in a minute");
    // A 429 for tracker writes is counted apart from a login's.
    let login = r#"{"query":"mutation { createToken(input: {username: \"a\", password: \"b\"}) { payload { id } } }"}"#;
    for _ in 0..2 {
        write(&mut c, login, CHROME, &[]);
    }
    let s = gw.scrape_until("the refusals to be counted", |s| {
        s.get(
            "ackee_gateway_rate_limit_rejections_total",
            &[("rule", "login")],
        ) == 1.0
    });
    assert_eq!(
        s.get(
            "ackee_gateway_rate_limit_rejections_total",
            &[("rule", "tracker")]
        ),
        1.0
    );
    assert_eq!(reason(&s, "bot"), 10.0);
}

/// Runs isbot's own expression (`new RegExp(list.join("|"), "i")`, what `isbot()` tests) in
/// Node on every user agent.
fn isbot_in_node(patterns: &Path, uas: &[String], dir: &Path) -> Vec<bool> {
    let input = dir.join("uas.json");
    std::fs::write(&input, serde_json::to_string(uas).unwrap()).unwrap();
    let script = r#"
        const fs = require("fs");
        const list = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        const uas = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
        const re = new RegExp(list.join("|"), "i");
        process.stdout.write(JSON.stringify(uas.map((ua) => ua !== "" && re.test(ua))));
    "#;
    let out = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(patterns)
        .arg(&input)
        .output()
        .expect("node runs (apt-get install nodejs)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fixture(name: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/isbot/{name}.yml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let map: serde_yaml::Mapping = serde_yaml::from_str(&text).unwrap();
    map.values()
        .flat_map(|v| v.as_sequence().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_bot_matcher_agrees_with_isbots_javascript_on_its_fixtures() {
    let matcher = BotMatcher::isbot().unwrap();
    let patterns = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/visits/isbot/patterns.json");
    let dir = tempfile::tempdir().unwrap();
    let browsers = fixture("browsers");
    let crawlers = fixture("crawlers");
    assert!(browsers.len() > 500 && crawlers.len() > 500);
    let mut uas: Vec<String> = browsers.iter().chain(&crawlers).cloned().collect();
    // And some that exercise the rewritten lookarounds on both sides.
    for extra in [
        "Mozilla/5.0 (Linux; Android 14; wv) GoogleApp/1",
        "x channel/google",
        "a cubot phone",
        "camscan",
        "libhttp/1",
        "Java;",
        "gnews",
        "newssapphire",
        "",
        "x\u{e9}bot",
    ] {
        uas.push(extra.to_owned());
    }
    let js = isbot_in_node(&patterns, &uas, dir.path());
    let differ: Vec<(&String, bool)> = uas
        .iter()
        .zip(&js)
        .filter(|(ua, js)| matcher.is_bot(ua.as_bytes()) != **js)
        .map(|(ua, js)| (ua, *js))
        .collect();
    assert!(
        differ.is_empty(),
        "the gateway and isbot (JavaScript) disagree on {} user agents (ua, isbot's verdict): {differ:#?}",
        differ.len()
    );
    assert!(
        crawlers.iter().all(|ua| matcher.is_bot(ua.as_bytes())),
        "every crawler of isbot's fixtures is a bot"
    );
    let browsers_taken = browsers
        .iter()
        .filter(|ua| matcher.is_bot(ua.as_bytes()))
        .count();
    assert!(
        browsers_taken <= 2,
        "{browsers_taken} of isbot's browser fixtures are taken for bots (isbot takes the same)"
    );
}
