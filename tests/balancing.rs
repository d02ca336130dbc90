//! Load balancing across three fake Ackee replicas: weights, consistent hashing, health checks,
//! failover while a replica stops, and 503 when none is up — with the gauges following along.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::{Response, preflight, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Spec};
use common::process::eventually;

use std::collections::HashMap;
use std::time::Duration;

/// Fast health checks so replicas come and go within a test.
const FAST_CHECKS: &str = "health_check: {interval_seconds: 0.1, timeout_seconds: 0.5, unhealthy_after: 2, healthy_after: 2}";

fn three() -> Vec<FakeAckee> {
    ["a", "b", "c"]
        .iter()
        .map(|n| FakeAckee::start_named(n))
        .collect()
}

fn spec(replicas: &[FakeAckee]) -> Spec {
    let addrs: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    Spec::new(addrs[0]).replicas(&addrs).upstream(FAST_CHECKS)
}

fn served_by(r: &Response) -> String {
    r.header("x-replica").unwrap_or("none").to_owned()
}

fn healthy(gw: &Gateway, replica: &str) -> f64 {
    gw.scrape()
        .get("ackee_gateway_upstream_healthy", &[("replica", replica)])
}

fn wait_health(gw: &Gateway, replica: &str, want: f64) {
    eventually(
        Duration::from_secs(20),
        &format!("{replica} health to be {want}"),
        || (healthy(gw, replica) == want).then_some(()),
    );
}

fn post(gw: &Gateway) -> Response {
    request(
        gw.http,
        "POST",
        "/api",
        &[
            ("Origin", "https://example.com"),
            ("Content-Type", "application/json"),
        ],
        mutation_body("createRecord").as_bytes(),
    )
}

#[test]
fn weighted_round_robin_splits_traffic_by_weight() {
    let replicas = three();
    let gw = Gateway::start(&spec(&replicas).weights(&[1, 2, 3]));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..60 {
        let r = request(gw.http, "GET", "/tracker.js", &[], b"");
        assert_eq!(r.status, 200);
        *counts.entry(served_by(&r)).or_default() += 1;
    }
    assert_eq!(counts["a"], 10, "{counts:?}");
    assert_eq!(counts["b"], 20, "{counts:?}");
    assert_eq!(counts["c"], 30, "{counts:?}");
    let m = gw.scrape();
    for (name, n) in [("ackee-0", 10.0), ("ackee-1", 20.0), ("ackee-2", 30.0)] {
        let got = m.get(
            "ackee_gateway_upstream_requests_total",
            &[("replica", name), ("outcome", "2xx")],
        );
        assert_eq!(got, n, "{name}");
        let latency = m.get(
            "ackee_gateway_upstream_response_seconds_count",
            &[("replica", name)],
        );
        assert_eq!(latency, n, "{name}");
    }
}

#[test]
fn random_selection_follows_the_weights_too() {
    let replicas = three();
    let gw = Gateway::start(
        &spec(&replicas[..2])
            .weights(&[1, 4])
            .upstream(&format!("selection: random\n{FAST_CHECKS}")),
    );
    let mut b = 0;
    for _ in 0..300 {
        let r = request(gw.http, "GET", "/tracker.js", &[], b"");
        if served_by(&r) == "b" {
            b += 1;
        }
    }
    // Expected 240 of 300; the bounds are many standard deviations wide.
    assert!((180..=290).contains(&b), "b served {b} of 300");
}

#[test]
fn consistent_hashing_keeps_each_client_on_one_replica() {
    let replicas = three();
    let gw = Gateway::start(
        &spec(&replicas)
            .upstream(&format!("selection: consistent_hash\n{FAST_CHECKS}"))
            .top("trusted_proxies: [\"127.0.0.0/8\"]"),
    );
    let mut used = std::collections::HashSet::new();
    for client in 1..=30 {
        let ip = format!("198.51.100.{client}");
        let first = served_by(&request(
            gw.http,
            "GET",
            "/tracker.js",
            &[("X-Forwarded-For", &ip)],
            b"",
        ));
        for _ in 0..5 {
            let again = served_by(&request(
                gw.http,
                "GET",
                "/tracker.js",
                &[("X-Forwarded-For", &ip)],
                b"",
            ));
            assert_eq!(again, first, "client {ip} moved");
        }
        used.insert(first);
    }
    assert!(used.len() >= 2, "30 clients all hashed to {used:?}");
}

#[test]
fn a_replica_stopped_mid_stream_costs_no_request_and_comes_back_after_its_checks() {
    let mut replicas = three();
    // Checks slow enough that a request, not the health check, finds the stopped replica
    // first: with FAST_CHECKS a loaded machine let the checks take it out (0.2 s) before the
    // round robin came back to it, and nothing was retried.
    let addrs: Vec<_> = replicas.iter().map(|r| r.addr).collect();
    let gw = Gateway::start(&Spec::new(addrs[0]).replicas(&addrs).upstream(
        "health_check: {interval_seconds: 1, timeout_seconds: 0.5, unhealthy_after: 5, healthy_after: 2}",
    ));
    let before = gw.scrape();
    let mut failures = Vec::new();
    for i in 0..60 {
        if i == 20 {
            replicas[1].stop();
        }
        let pre = preflight(gw.http, "https://example.com");
        let r = post(&gw);
        if pre.status != 204 || r.status != 200 {
            failures.push((i, pre.status, r.status, r.text()));
        }
    }
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let seen_b = replicas[1].count();
    assert!(
        seen_b > 0 && seen_b <= 7,
        "b served {seen_b} of the first 20 POSTs only"
    );
    wait_health(&gw, "ackee-1", 0.0);
    let m = gw.scrape();
    assert!(
        m.get(
            "ackee_gateway_upstream_retries_total",
            &[("replica", "ackee-1"), ("reason", "connect_error")]
        ) - before.get(
            "ackee_gateway_upstream_retries_total",
            &[("replica", "ackee-1"), ("reason", "connect_error")]
        ) >= 1.0,
        "the first request after the stop was retried on another replica"
    );

    replicas[1].restart();
    wait_health(&gw, "ackee-1", 1.0);
    eventually(Duration::from_secs(20), "b to get traffic again", || {
        let r = post(&gw);
        assert_eq!(r.status, 200);
        (served_by(&r) == "b").then_some(())
    });
}

#[test]
fn a_replica_failing_its_health_check_is_taken_out() {
    let replicas = three();
    let gw = Gateway::start(&spec(&replicas));
    replicas[2].set(|b| b.health_status = Some(500));
    wait_health(&gw, "ackee-2", 0.0);
    let c_before = replicas[2].count();
    for _ in 0..20 {
        assert_eq!(post(&gw).status, 200);
    }
    assert_eq!(
        replicas[2].count(),
        c_before,
        "no traffic to a replica that fails its check"
    );
    assert_eq!(healthy(&gw, "ackee-0"), 1.0);
    assert_eq!(healthy(&gw, "ackee-1"), 1.0);
    replicas[2].set(|b| b.health_status = None);
    wait_health(&gw, "ackee-2", 1.0);
}

#[test]
fn a_replica_that_never_passed_gets_no_traffic_until_its_first_pass() {
    let replicas = three();
    replicas[0].set(|b| b.health_status = Some(503));
    let gw = Gateway::start(&spec(&replicas));
    assert_eq!(healthy(&gw, "ackee-0"), 0.0);
    for _ in 0..12 {
        assert_eq!(post(&gw).status, 200);
    }
    assert_eq!(replicas[0].count(), 0);
    replicas[0].set(|b| b.health_status = None);
    wait_health(&gw, "ackee-0", 1.0);
    eventually(Duration::from_secs(20), "a to get traffic", || {
        post(&gw);
        (replicas[0].count() > 0).then_some(())
    });
}

#[test]
fn all_replicas_down_gives_503_with_retry_after_and_recovers() {
    let mut replicas = three();
    let gw = Gateway::start(&spec(&replicas));
    for r in &mut replicas {
        r.stop();
    }
    for name in ["ackee-0", "ackee-1", "ackee-2"] {
        wait_health(&gw, name, 0.0);
    }
    let before = gw.scrape();
    let r = post(&gw);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.text(), "Service Unavailable: no Ackee replica is up\n");
    assert_eq!(
        r.headers_named("access-control-allow-origin"),
        ["https://example.com"]
    );
    assert_eq!(
        preflight(gw.http, "https://example.com").status,
        204,
        "preflights still answered"
    );
    let after = gw.scrape();
    assert_eq!(
        after.get("ackee_gateway_upstream_unavailable_total", &[])
            - before.get("ackee_gateway_upstream_unavailable_total", &[]),
        1.0
    );

    replicas[2].restart();
    wait_health(&gw, "ackee-2", 1.0);
    let r = post(&gw);
    assert_eq!(r.status, 200);
    assert_eq!(served_by(&r), "c");
}

#[test]
fn a_post_that_reached_a_replica_is_not_retried() {
    let replicas = three();
    replicas[0].set(|b| b.delay = Some(Duration::from_secs(3)));
    let gw = Gateway::start(
        &spec(&replicas[..2])
            .weights(&[1, 1])
            .upstream(&format!("read_timeout_seconds: 0.3\n{FAST_CHECKS}")),
    );
    let mut saw_504 = false;
    for _ in 0..4 {
        let r = post(&gw);
        if r.status == 504 {
            saw_504 = true;
        } else {
            assert_eq!(r.status, 200);
            assert_eq!(served_by(&r), "b");
        }
    }
    assert!(
        saw_504,
        "a slow replica's POST is answered 504, not retried"
    );
    let posts_to_b = replicas[1]
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .count();
    assert_eq!(posts_to_b, 2, "b got only its own share");
    let m = gw.scrape();
    assert_eq!(
        m.get(
            "ackee_gateway_upstream_requests_total",
            &[("replica", "ackee-0"), ("outcome", "error")]
        ),
        2.0
    );
}

#[test]
fn a_tcp_health_check_only_needs_the_port_to_accept() {
    let mut replicas = three();
    replicas[0].set(|b| b.health_status = Some(500));
    let gw = Gateway::start(&spec(&replicas[..2]).upstream(
        "health_check: {type: tcp, interval_seconds: 0.1, timeout_seconds: 0.5, unhealthy_after: 2, healthy_after: 2}",
    ));
    assert_eq!(
        healthy(&gw, "ackee-0"),
        1.0,
        "a 500 on the HTTP path does not matter to a TCP check"
    );
    replicas[1].stop();
    wait_health(&gw, "ackee-1", 0.0);
}
