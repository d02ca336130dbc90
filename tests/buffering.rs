//! Request bodies are read whole before a replica is chosen: a client that trickles its body
//! holds no Ackee connection, a body that stops arriving gets 408, and Ackee receives each
//! body with a `Content-Length`, whatever framing the client used.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::{Conn, preflight, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Spec};

const ORIGIN: &str = "https://example.com";

/// The head of a tracker POST whose body has `len` bytes.
fn head(len: usize, extra: &str) -> Vec<u8> {
    format!(
        "POST /api HTTP/1.1\r\nHost: gateway.test\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
    .into_bytes()
}

#[test]
fn trickling_clients_hold_no_ackee_connection_until_their_body_is_whole() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let body = mutation_body("createRecord");
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);

    // Twenty clients send the head and half of the body, then pause.
    let mut clients: Vec<Conn> = (0..20)
        .map(|_| {
            let mut c = Conn::open(gw.http);
            let mut bytes = head(body.len(), "");
            bytes.extend_from_slice(first);
            c.send_raw(&bytes);
            c
        })
        .collect();

    // A whole request still goes through, and it is the only head Ackee has seen besides the
    // health checks: none of the twenty reached a replica.
    let whole = request(
        gw.http,
        "POST",
        "/api",
        &[("Origin", ORIGIN), ("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(whole.status, 200);
    let heads = ackee.heads();
    let health = ackee.health_checks() as u64;
    assert!(
        heads <= health + 1 + 1,
        "{heads} heads reached Ackee: {health} health checks, one whole POST (and at most one check in flight)"
    );
    assert_eq!(ackee.count(), 1);

    // Once their bodies are whole, every one is delivered, exactly once and intact.
    for c in &mut clients {
        c.send_raw(rest);
    }
    for c in &mut clients {
        assert_eq!(c.read_response(false).status, 200);
    }
    let seen = ackee.seen();
    assert_eq!(seen.len(), 21);
    assert!(seen.iter().all(|s| s.body == body.as_bytes()));
}

#[test]
fn a_body_that_stops_arriving_gets_408_and_is_counted() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("limits:\n  body_timeout_seconds: 0.3"));
    let mut c = Conn::open(gw.http);
    let mut bytes = head(100, "");
    bytes.extend_from_slice(b"{\"query\":");
    c.send_raw(&bytes);
    let r = c.read_response(false);
    assert_eq!(r.status, 408);
    assert_eq!(
        r.text(),
        "Request Timeout: the request body stopped arriving\n"
    );
    assert_eq!(r.headers_named("access-control-allow-origin"), [ORIGIN]);
    assert!(c.is_closed_by_peer(), "the connection closes after a 408");
    assert_eq!(ackee.count(), 0, "Ackee never saw the request");

    let metrics = request(gw.metrics, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("ackee_gateway_limit_rejections_total{limit=\"body_timeout\"} 1"),
        "{metrics}"
    );
    // The gateway keeps serving.
    assert_eq!(preflight(gw.http, ORIGIN).status, 204);
}

#[test]
fn chunked_bodies_reach_ackee_with_a_content_length() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let body = mutation_body("updateRecord");
    let (a, b) = body.as_bytes().split_at(10);
    let mut raw = format!(
        "POST /api HTTP/1.1\r\nHost: gateway.test\r\nOrigin: {ORIGIN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for part in [a, b] {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut c = Conn::open(gw.http);
    c.send_raw(&raw);
    assert_eq!(c.read_response(false).status, 200);
    // The connection stays usable.
    assert_eq!(
        c.request("POST", "/api", &[("Origin", ORIGIN)], body.as_bytes())
            .status,
        200
    );
    let seen = ackee.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(
        seen[0].header("content-length"),
        Some(&*body.len().to_string())
    );
    assert_eq!(seen[0].header("transfer-encoding"), None);
}

#[test]
fn expect_100_continue_is_answered_at_the_edge_and_the_connection_stays_usable() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let body = mutation_body("createAction");
    let mut c = Conn::open(gw.http);
    c.send_raw(&head(body.len(), "Expect: 100-continue\r\n"));
    assert_eq!(c.read_response(true).status, 100);
    c.send_raw(body.as_bytes());
    assert_eq!(c.read_response(false).status, 200);
    assert_eq!(
        c.request("POST", "/api", &[("Origin", ORIGIN)], body.as_bytes())
            .status,
        200
    );
    let seen = ackee.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, body.as_bytes());
    assert_eq!(
        seen[0].header("expect"),
        None,
        "Ackee is not asked to continue"
    );
}

#[test]
fn a_body_over_the_limit_still_gets_413_when_it_arrives_in_pieces() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("limits:\n  max_body_bytes: 1024"));
    let mut c = Conn::open(gw.http);
    c.send_raw(b"POST /api HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        let mut chunk = b"200\r\n".to_vec();
        chunk.extend_from_slice(&[b'x'; 512]);
        chunk.extend_from_slice(b"\r\n");
        c.send_raw(&chunk);
    }
    assert_eq!(c.read_response(false).status, 413);
    assert_eq!(ackee.count(), 0);
}
