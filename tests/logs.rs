//! Logs: levels on stderr for lifecycle events, and the optional access log, one line per
//! request, as text on standard output or JSON in a file.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::{preflight, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Scrape, Spec};
use common::process::eventually;

use std::time::Duration;

fn traffic(gw: &Gateway) {
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);
    let body = mutation_body("createRecord");
    let r = request(
        gw.http,
        "POST",
        "/api?secret=query",
        &[("Origin", "https://example.com")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = request(
        gw.http,
        "POST",
        "/api",
        &[("Origin", "https://evil.test")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "forward mode");
}

#[test]
fn the_json_access_log_has_one_object_per_request() {
    let ackee = FakeAckee::start();
    let logdir = tempfile::tempdir().unwrap();
    let path = logdir.path().join("access.log");
    let gw = Gateway::start(&Spec::new(ackee.addr).top(&format!(
        "access_log: {{format: json, path: \"{}\"}}",
        path.display()
    )));
    traffic(&gw);
    let text = eventually(Duration::from_secs(10), "three access-log lines", || {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        (t.lines().count() >= 3).then_some(t)
    });
    let lines: Vec<serde_yaml::Value> = text
        .lines()
        .map(|l| serde_yaml::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let field = |i: usize, k: &str| lines[i][k].clone();
    assert_eq!(field(0, "method").as_str(), Some("OPTIONS"));
    assert_eq!(field(0, "status").as_u64(), Some(204));
    assert_eq!(field(0, "cors").as_str(), Some("preflight_allowed"));
    assert!(
        field(0, "replica").is_null(),
        "a preflight never reaches a replica"
    );
    assert_eq!(field(1, "method").as_str(), Some("POST"));
    assert_eq!(
        field(1, "path").as_str(),
        Some("/api"),
        "the query is left out"
    );
    assert_eq!(field(1, "cors").as_str(), Some("allowed"));
    assert_eq!(field(1, "replica").as_str(), Some("ackee-0"));
    assert_eq!(field(1, "client").as_str(), Some("127.0.0.1"));
    assert_eq!(field(2, "cors").as_str(), Some("refused"));
    for l in &lines {
        assert!(l["duration_ms"].as_f64().is_some());
        let time = l["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    }
    assert!(!text.contains("secret"));
}

#[test]
fn the_text_access_log_goes_to_standard_output_and_lifecycle_logs_to_stderr() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("access_log: {format: text}"));
    traffic(&gw);
    let out = eventually(Duration::from_secs(10), "three access-log lines", || {
        let t = gw.stdout();
        (t.lines().count() >= 3).then_some(t)
    });
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert!(lines.iter().all(|f| f.len() == 8), "{out}");
    assert_eq!(
        &lines[0][1..6],
        [
            "127.0.0.1",
            "OPTIONS",
            "/api",
            "204",
            "cors=preflight_allowed"
        ]
    );
    assert_eq!(lines[0][6], "replica=-");
    assert_eq!(
        &lines[1][2..7],
        ["POST", "/api", "200", "cors=allowed", "replica=ackee-0"]
    );
    assert_eq!(lines[2][5], "cors=refused");
    assert!(lines[0][7].starts_with("duration_ms="));

    let err = gw.stderr();
    assert!(err.contains(" INFO ] ackee-gateway "), "{err}");
    assert!(err.contains("replica \"ackee-0\" is up"), "{err}");
    assert!(
        !err.contains("POST /api"),
        "requests are not in the error log"
    );
}

#[test]
fn without_an_access_log_standard_output_stays_empty() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    traffic(&gw);
    assert_eq!(gw.stdout(), "");
}

const FAST_CHECKS: &str = "health_check: {interval_seconds: 0.1, timeout_seconds: 0.5, unhealthy_after: 2, healthy_after: 2}";

/// Waits until stderr contains `needle`, and returns it.
fn stderr_with(gw: &Gateway, needle: &str) -> String {
    eventually(Duration::from_secs(20), needle, || {
        let t = gw.stderr();
        t.contains(needle).then_some(t)
    })
}

#[test]
fn when_stderr_is_the_journal_every_line_carries_its_syslog_priority() {
    let mut ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).upstream(FAST_CHECKS).journal());
    stderr_with(&gw, "is up");
    ackee.stop();
    let err = stderr_with(&gw, "is down");
    for line in err.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line without its priority: {line:?}\n{err}"
        );
    }
    let line = |needle: &str| err.lines().find(|l| l.contains(needle)).unwrap();
    assert!(line("ackee-gateway 0.").starts_with("<6>"), "{err}");
    assert!(
        line("replica \"ackee-0\" is up").starts_with("<6>"),
        "{err}"
    );
    assert!(
        line("replica \"ackee-0\" is down").starts_with("<4>"),
        "{err}"
    );
    // What `journalctl -p warning` shows: priorities 0 to 4, here only the warning.
    let shown: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("<3>") || l.starts_with("<4>"))
        .collect();
    assert!(
        shown
            .iter()
            .all(|l| l.contains("is down") || l.starts_with("<4>warning: ")),
        "only warnings and errors are at priority 4 or less: {shown:?}"
    );
    // The config warning FAST_CHECKS provokes (timeout longer than interval) is one of them.
    assert!(shown.iter().any(|l| l.contains("timeout_seconds")), "{err}");
    assert!(
        !err.contains(" INFO ]"),
        "no timestamp or level word: {err}"
    );
}

#[test]
fn a_journal_stream_that_is_not_stderr_leaves_the_usual_format() {
    // A service that inherited JOURNAL_STREAM but writes stderr to a file.
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).env("JOURNAL_STREAM", "1:1"));
    let err = stderr_with(&gw, "is up");
    assert!(err.contains(" INFO ] ackee-gateway "), "{err}");
    assert!(!err.lines().any(|l| l.starts_with('<')), "{err}");
}

#[test]
fn an_ackee_outage_logs_its_state_changes_not_every_failed_request() {
    let mut ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).upstream(FAST_CHECKS));
    stderr_with(&gw, "is up");
    let before = gw.stderr().lines().count();
    ackee.stop();
    let body = mutation_body("createRecord");
    let send = |n: usize| {
        for _ in 0..n {
            let r = request(
                gw.http,
                "POST",
                "/api",
                &[("Origin", "https://example.com")],
                body.as_bytes(),
            );
            assert!(r.status == 502 || r.status == 503, "{}", r.status);
        }
    };
    // Some of these may reach the replica before the checks mark it down (502), the rest get
    // 503; after the down line, every one gets 503.
    send(100);
    stderr_with(&gw, "is down");
    send(100);
    let scrape = gw.scrape_until("200 failed requests counted", |s| {
        s.get(
            "ackee_gateway_requests_total",
            &[("protocol", "http1"), ("method", "POST"), ("status", "5xx")],
        ) >= 200.0
    });
    assert!(scrape.get("ackee_gateway_upstream_unavailable_total", &[]) >= 100.0);
    let err = gw.stderr();
    assert!(!err.contains("Fail to proxy"), "{err}");
    assert_eq!(
        err.matches("requests are failing").count(),
        1,
        "the episode is announced once: {err}"
    );
    let added = err.lines().count() - before;
    assert!(
        added <= 5,
        "200 failed requests added {added} lines, not a bounded few:\n{err}"
    );
}

/// The INFO lines of a stderr log, without their timestamp and level.
fn info_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.split_once(" INFO ] ").map(|(_, message)| message))
        .collect()
}

/// Pingora's own bookkeeping of a start and a stop, which an operator does not need.
const BOOKKEEPING: [&str; 9] = [
    "Server starting",
    "Starting service",
    "dependency order",
    "waiting on dependencies",
    "Bootstrap",
    "exited.",
    "Broadcast",
    "Waiting for runtimes",
    "All runtimes exited",
];

#[test]
fn a_start_and_a_stop_log_what_an_operator_needs_and_nothing_of_pingoras_bookkeeping() {
    let ackee = FakeAckee::start();
    let mut gw = Gateway::start(&Spec::new(ackee.addr));
    stderr_with(&gw, "is up");
    let started = stderr_with(&gw, "serving on every listener");
    let pid = gw.child.id();
    let want = [
        format!("ackee-gateway {} starting", env!("CARGO_PKG_VERSION")),
        format!(
            "listeners: public on {} (http); metrics on {}",
            gw.http, gw.metrics
        ),
        format!("replicas: ackee-0 ({})", ackee.addr),
        "allowed origins: https://example.com, https://*.example.org".to_owned(),
        "replica \"ackee-0\" is up: it passes its health check".to_owned(),
        format!("serving on every listener (PID {pid})"),
    ];
    let mut lines = info_lines(&started);
    lines.sort_unstable();
    let mut wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    assert_eq!(lines, wanted, "the start's info lines:\n{started}");
    assert_eq!(
        started.lines().count(),
        want.len(),
        "nothing else, at any level:\n{started}"
    );

    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(20)).success());
    let log = gw.stderr();
    let stop = &log[started.len()..];
    let lines = info_lines(stop);
    assert_eq!(lines.len(), 2, "the stop's lines:\n{stop}");
    assert_eq!(
        lines[0],
        "stopping (SIGTERM): no new connections; requests in flight get 0 s, then 1 s to end"
    );
    assert!(
        lines[1].starts_with("stopped, ") && lines[1].ends_with(" s after the signal"),
        "{stop}"
    );
    assert_eq!(
        stop.lines().count(),
        2,
        "nothing else, at any level:\n{stop}"
    );
    for words in BOOKKEEPING {
        assert!(
            !log.contains(words),
            "pingora's {words:?} in the log:\n{log}"
        );
    }
}

#[test]
fn rust_log_brings_pingoras_bookkeeping_back_at_debug_level() {
    let ackee = FakeAckee::start();
    let mut gw = Gateway::start(&Spec::new(ackee.addr).env(
        "RUST_LOG",
        "info,pingora_core::server=debug,pingora_core::services=debug",
    ));
    stderr_with(&gw, "serving on every listener");
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(20)).success());
    let log = gw.stderr();
    for words in [
        "Starting services in dependency order",
        "All runtimes exited",
    ] {
        let line = log.lines().find(|l| l.contains(words));
        assert!(
            line.is_some_and(|l| l.contains(" DEBUG] ")),
            "{words:?} at debug level:\n{log}"
        );
    }
    assert!(
        info_lines(&log)
            .iter()
            .all(|l| !l.contains("Starting service")),
        "{log}"
    );
}

/// Opens a connection and sends `bytes`; dropping the stream closes it.
fn sent(addr: std::net::SocketAddr, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

#[test]
fn clients_that_leave_mid_request_are_counted_by_stage_and_logged_as_no_error() {
    const EACH: usize = 8;
    let ackee = FakeAckee::start();
    // Slow enough that the third kind of client leaves while Ackee is still answering.
    ackee.set(|b| b.delay = Some(Duration::from_secs(3)));
    let gw = Gateway::start(&Spec::new(ackee.addr));
    stderr_with(&gw, "is up");
    let before = gw.stderr().len();
    let body = mutation_body("createRecord");
    let head = format!(
        "POST /api HTTP/1.1\r\nHost: example.com\r\nOrigin: https://example.com\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // A head in part, then the close.
    for _ in 0..EACH {
        drop(sent(gw.http, &head.as_bytes()[..40]));
    }
    // The head and half the body.
    let half = format!("{head}{}", &body[..body.len() / 2]);
    for _ in 0..EACH {
        drop(sent(gw.http, half.as_bytes()));
    }
    // The whole request; the client leaves once Ackee has it, before it answers.
    let whole = format!("{head}{body}");
    let waiting: Vec<_> = (0..EACH).map(|_| sent(gw.http, whole.as_bytes())).collect();
    eventually(
        Duration::from_secs(20),
        "Ackee to have every request",
        || (ackee.count() >= EACH).then_some(()),
    );
    drop(waiting);

    let stage = |s: &Scrape, stage: &str| {
        s.get(
            "ackee_gateway_requests_abandoned_total",
            &[("stage", stage)],
        )
    };
    // A scrape reads the two metrics one after the other, not at one instant, so one taken
    // between a request's two counts can see it abandoned and not yet finished (CI saw 15
    // of 16): wait for both before asserting exact counts.
    let scrape = gw.scrape_until("every client that left counted", |s| {
        ["head", "body", "answer"]
            .iter()
            .all(|name| stage(s, name) >= EACH as f64)
            && s.total("ackee_gateway_requests_total") >= 2.0 * EACH as f64
    });
    for name in ["head", "body", "answer"] {
        assert_eq!(stage(&scrape, name), EACH as f64, "{name}");
    }
    // Those that sent a whole head are requests, finished without an answer.
    assert_eq!(
        scrape.get(
            "ackee_gateway_requests_total",
            &[
                ("protocol", "http1"),
                ("method", "POST"),
                ("status", "none")
            ],
        ),
        2.0 * EACH as f64,
        "{}\n{}",
        scrape
            .text
            .lines()
            .filter(|l| l.contains("requests_total") || l.contains("abandoned"))
            .collect::<Vec<_>>()
            .join("\n"),
        &gw.stderr()[before..]
    );
    assert_eq!(
        scrape.total("ackee_gateway_requests_total"),
        2.0 * EACH as f64
    );
    let log = gw.stderr();
    let added = &log[before..];
    assert!(
        !added.contains(" ERROR]") && !added.contains(" WARN ]"),
        "a client that leaves is no error of the gateway's:\n{added}"
    );
}
