//! Logs: levels on stderr for lifecycle events, and the optional access log, one line per
//! request, as text on standard output or JSON in a file.

mod common;

use std::time::Duration;

use common::*;

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
