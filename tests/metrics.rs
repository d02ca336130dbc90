//! /metrics: every count moves by exactly what the requests did, and no label carries
//! anything the client controls.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
    pub mod tls;
}

use common::client::{preflight, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Spec};

/// Sends the traffic the counters are checked against: 11 requests in all.
fn send_eleven_requests(gw: &Gateway, ackee: &mut FakeAckee) {
    let preflight_with = |method: &str, headers: &str| {
        let mut fields = vec![
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", method),
        ];
        if !headers.is_empty() {
            fields.push(("Access-Control-Request-Headers", headers));
        }
        request(gw.http, "OPTIONS", "/api", &fields, b"").status
    };
    // 2 allowed preflights, 3 refused (origin, method, header).
    for _ in 0..2 {
        assert_eq!(preflight(gw.http, "https://example.com").status, 204);
    }
    let evil = "https://evil-origin-label.test";
    assert_eq!(preflight(gw.http, evil).status, 403);
    assert_eq!(preflight_with("DELETE", ""), 403);
    assert_eq!(preflight_with("POST", "x-evil"), 403);
    // 3 proxied POSTs: 2 allowed, 1 refused at the edge (reject mode).
    let body = mutation_body("createRecord");
    let post = |origin| {
        request(
            gw.http,
            "POST",
            "/api",
            &[("Origin", origin)],
            body.as_bytes(),
        )
    };
    for _ in 0..2 {
        assert_eq!(post("https://example.com").status, 200);
    }
    assert_eq!(post(evil).status, 403);
    // 1 GET without origin, then Ackee down: the refused connect takes the only replica
    // down, so the POST gets 503 with Retry-After.
    assert_eq!(request(gw.http, "GET", "/tracker.js", &[], b"").status, 200);
    ackee.stop();
    let down = request(gw.http, "POST", "/api", &[], body.as_bytes());
    assert_eq!(down.status, 503);
    // 1 oversized header.
    let long = "x".repeat(20_000);
    let too_long = request(gw.http, "GET", "/", &[("X-Long", &long)], b"");
    assert_eq!(too_long.status, 431);
}

/// A metric family, the labels of one series, and by how much it must have moved.
type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

#[test]
fn counters_move_by_exactly_the_expected_amounts() {
    let mut ackee = FakeAckee::start();
    let gw = Gateway::start(
        &Spec::new(ackee.addr)
            .cors("allowed_origins: [\"https://example.com\"]\ndisallowed_origin: reject"),
    );
    let before = gw.scrape();
    send_eleven_requests(&gw, &mut ackee);

    // Requests are counted as they finish, just after the answer is sent: wait for all 11.
    let req = "ackee_gateway_requests_total";
    let after = gw.scrape_until("11 requests to be counted", |s| {
        s.total(req) - before.total(req) == 11.0
    });
    let rej = "ackee_gateway_cors_rejections_total";
    let replica = ("replica", "ackee-0");
    let want: &[Expected] = &[
        (
            "ackee_gateway_preflights_total",
            &[("result", "allowed")],
            2.0,
        ),
        (
            "ackee_gateway_preflights_total",
            &[("result", "refused")],
            3.0,
        ),
        (rej, &[("reason", "origin"), ("request", "preflight")], 1.0),
        (rej, &[("reason", "method"), ("request", "preflight")], 1.0),
        (rej, &[("reason", "header"), ("request", "preflight")], 1.0),
        (rej, &[("reason", "origin"), ("request", "actual")], 1.0),
        (
            req,
            &[
                ("protocol", "http1"),
                ("method", "OPTIONS"),
                ("status", "2xx"),
            ],
            2.0,
        ),
        (
            req,
            &[
                ("protocol", "http1"),
                ("method", "OPTIONS"),
                ("status", "4xx"),
            ],
            3.0,
        ),
        (
            req,
            &[("protocol", "http1"), ("method", "POST"), ("status", "2xx")],
            2.0,
        ),
        (
            req,
            &[("protocol", "http1"), ("method", "POST"), ("status", "4xx")],
            1.0,
        ),
        (
            req,
            &[("protocol", "http1"), ("method", "POST"), ("status", "5xx")],
            1.0,
        ),
        (
            req,
            &[("protocol", "http1"), ("method", "GET"), ("status", "2xx")],
            1.0,
        ),
        (
            req,
            &[("protocol", "http1"), ("method", "GET"), ("status", "4xx")],
            1.0,
        ),
        // Two POSTs and one GET reached Ackee.
        (
            "ackee_gateway_upstream_response_seconds_count",
            &[replica],
            3.0,
        ),
        (
            "ackee_gateway_upstream_errors_total",
            &[replica, ("kind", "connect_refused")],
            1.0,
        ),
        (
            "ackee_gateway_limit_rejections_total",
            &[("limit", "header")],
            1.0,
        ),
    ];
    for (name, labels, n) in want {
        let delta = after.get(name, labels) - before.get(name, labels);
        assert_eq!(delta, *n, "{name} {labels:?}");
    }
    let latency = "ackee_gateway_upstream_response_seconds_sum";
    assert!(after.get(latency, &[replica]) > before.get(latency, &[replica]));
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(after.get("ackee_gateway_build_info", &version), 1.0);
    assert!(
        !after.text.contains("evil-origin-label"),
        "a raw Origin must never become a label"
    );
}

#[test]
fn every_metric_in_the_readme_table_is_exported_and_vice_versa() {
    // A TLS listener with a certificate and a managed one (its CA is never reached), so the
    // per-certificate families have series too.
    let ca = common::tls::TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf(&["stats.example.com"]).write(certs.path(), "stats");
    let ackee = FakeAckee::start();
    let spec = Spec::new(ackee.addr)
        .tls_listener(&format!(
            "tls: {{certificates: [{{name: stats, cert: \"{}\", key: \"{}\"}}], acme: {{domains: [acme.example.com], directory: \"https://127.0.0.1:9/dir\"}}}}",
            cert.display(),
            key.display()
        ))
        .top(&format!("state_directory: \"{}/state\"", certs.path().display()));
    let gw = Gateway::start(&spec);
    let scrape = gw.scrape();
    let exported: std::collections::BTreeSet<String> = scrape
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `ackee_gateway_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("ackee_gateway_{n}"))
        .collect();
    assert_eq!(
        exported, documented,
        "the README's metrics table must list exactly the exported metrics"
    );
    for name in &exported {
        assert!(name.starts_with("ackee_gateway_"), "{name}");
    }
}

#[test]
fn the_metrics_listener_serves_only_slash_metrics() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let r = request(gw.metrics, "GET", "/", &[], b"");
    assert_eq!(r.status, 404);
    let r = request(gw.metrics, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
}
