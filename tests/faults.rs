//! Staged failures of Ackee: every one ends with the visit delivered or a clear answer.
//! A replica that closes pooled connections under the gateway, a lone Ackee that restarts.

mod common;

use common::*;

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
