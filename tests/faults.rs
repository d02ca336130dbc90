//! Staged failures of Ackee: every one ends with the visit delivered or a clear answer.
//! A replica that closes pooled connections under the gateway, a lone Ackee that restarts.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::request;
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Spec};
use common::process::eventually;

use std::time::Duration;

fn retries(gw: &Gateway, replica: &str, reason: &str) -> f64 {
    gw.scrape().get(
        "ackee_gateway_upstream_retries_total",
        &[("replica", replica), ("reason", reason)],
    )
}

#[test]
fn a_stale_pooled_connection_is_retried_on_a_new_one_for_idempotent_requests() {
    let ackee = FakeAckee::start();
    ackee.set(|b| b.close_every = Some(3));
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let mut failed = Vec::new();
    for i in 0..150 {
        let r = request(gw.http, "GET", "/tracker.js", &[], b"");
        if r.status != 200 {
            failed.push((i, r.status, r.text()));
        }
    }
    assert!(failed.is_empty(), "failed GETs: {failed:?}");
    let n = retries(&gw, "ackee-0", "reused_connection");
    assert!(n >= 40.0, "the retries are counted: {n}");
}

#[test]
fn a_post_on_a_stale_pooled_connection_is_never_sent_twice() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    // A GET leaves a pooled connection; the POST reuses it and Ackee closes it.
    assert_eq!(request(gw.http, "GET", "/tracker.js", &[], b"").status, 200);
    ackee.set(|b| b.close_every = Some(2));
    let body = mutation_body("createRecord");
    let r = request(
        gw.http,
        "POST",
        "/api",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    let posts = ackee.seen().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 1, "the POST reached Ackee once");
    assert_eq!(retries(&gw, "ackee-0", "reused_connection"), 0.0);
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

#[test]
fn a_lone_ackee_that_listens_again_gets_visits_before_its_checks_catch_up() {
    let mut ackee = FakeAckee::start();
    // Down after one failed check, up only after 20 passes (10 s): long enough that any 503
    // after the restart would come from the stale health state.
    let gw = Gateway::start(&Spec::new(ackee.addr).upstream(
        "health_check: {interval_seconds: 0.5, timeout_seconds: 0.5, unhealthy_after: 1, healthy_after: 20}",
    ));
    ackee.stop();
    wait_health(&gw, "ackee-0", 0.0);
    let r = request(
        gw.http,
        "GET",
        "/tracker.js",
        &[("Origin", "https://example.com")],
        b"",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.header("retry-after"),
        Some("5"),
        "the connect failed: 503"
    );
    ackee.restart();
    for i in 0..20 {
        let r = request(gw.http, "GET", "/tracker.js", &[], b"");
        assert_eq!(r.status, 200, "request {i} after Ackee listened again");
    }
    assert_eq!(
        healthy(&gw, "ackee-0"),
        0.0,
        "still marked down, yet served"
    );
}

#[test]
fn a_replica_that_refuses_a_connection_is_down_at_once() {
    let a = FakeAckee::start_named("a");
    let mut b = FakeAckee::start_named("b");
    // One check at start, then none for an hour: only the refusal can take b down.
    let gw = Gateway::start(
        &Spec::new(a.addr)
            .replicas(&[a.addr, b.addr])
            .upstream("health_check: {interval_seconds: 3600, timeout_seconds: 1}"),
    );
    assert_eq!(healthy(&gw, "ackee-1"), 1.0);
    b.stop();
    for _ in 0..10 {
        let r = request(gw.http, "GET", "/tracker.js", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-replica"), Some("a"));
    }
    assert_eq!(healthy(&gw, "ackee-1"), 0.0);
    assert_eq!(
        retries(&gw, "ackee-1", "connect_error"),
        1.0,
        "only the first request met the closed port"
    );
    assert!(
        gw.stderr().contains("\"ackee-1\" is down"),
        "{}",
        gw.stderr()
    );
}
