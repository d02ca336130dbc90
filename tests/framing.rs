//! Framing and hop-by-hop hygiene, compared with nginx: ambiguous lengths, a missing `Host`,
//! hop-by-hop response headers, and pipelined requests.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::{Conn, Response, preflight, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Spec};

fn raw(gw: &Gateway, bytes: &str) -> (Conn, Option<Response>) {
    let mut c = Conn::open(gw.http);
    c.send_raw(bytes.as_bytes());
    let r = c.try_read_response(false);
    (c, r)
}

#[test]
fn two_identical_content_lengths_reach_ackee_as_one() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let (_c, r) = raw(
        &gw,
        "POST /api HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    );
    let r = r.expect("an answer");
    if r.status == 200 {
        let seen = ackee.seen();
        assert_eq!(seen[0].headers_named("content-length"), ["5"]);
        assert_eq!(seen[0].body, b"hello");
    } else {
        assert_eq!(r.status, 400);
        assert_eq!(ackee.count(), 0);
    }
}

#[test]
fn ambiguous_lengths_are_refused_with_400() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    for (what, req) in [
        (
            "different lengths",
            "POST /api HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "length and chunked",
            "POST /api HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
    ] {
        let (_c, r) = raw(&gw, req);
        assert_eq!(r.map(|r| r.status), Some(400), "{what}");
    }
    assert_eq!(ackee.count(), 0, "nothing ambiguous reaches Ackee");
    let m = gw.scrape();
    assert!(
        m.get(
            "ackee_gateway_request_rejections_total",
            &[("reason", "framing")]
        ) >= 1.0,
        "{}",
        m.text
    );
}

#[test]
fn an_http_1_1_request_without_host_gets_400() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let (_c, r) = raw(&gw, "GET /tracker.js HTTP/1.1\r\n\r\n");
    assert_eq!(r.map(|r| r.status), Some(400));
    assert_eq!(ackee.count(), 0);
    let (_c, r) = raw(&gw, "GET /tracker.js HTTP/1.0\r\n\r\n");
    assert_eq!(r.map(|r| r.status), Some(200), "HTTP/1.0 needs no Host");
    assert_eq!(
        gw.scrape().get(
            "ackee_gateway_request_rejections_total",
            &[("reason", "missing_host")]
        ),
        1.0
    );
}

#[test]
fn hop_by_hop_response_headers_never_reach_the_client() {
    let ackee = FakeAckee::start();
    ackee.set(|b| b.vary = Some("Accept-Encoding".to_owned()));
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let r = request(gw.http, "GET", "/tracker.js", &[], b"");
    assert_eq!(r.status, 200);
    // The fake sends "Connection: keep-alive" and "Keep-Alive: timeout=5", as Node does.
    assert!(r.header("keep-alive").is_none(), "{:?}", r.headers);
}

#[test]
fn a_preflight_and_a_post_in_one_write_are_both_answered_in_order() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let body = mutation_body("createRecord");
    let both = format!(
        "OPTIONS /api HTTP/1.1\r\nHost: a.test\r\nOrigin: https://example.com\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\nPOST /api HTTP/1.1\r\nHost: a.test\r\nOrigin: https://example.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut c, first) = raw(&gw, &both);
    assert_eq!(first.map(|r| r.status), Some(204));
    match c.try_read_response(false) {
        Some(second) => {
            assert_eq!(second.status, 200);
            assert_eq!(ackee.count(), 1);
        }
        // Not answered: then the connection must be closed, so the client knows to resend.
        None => assert!(c.is_closed_by_peer(), "the POST was silently swallowed"),
    }
}

#[test]
fn a_uri_too_long_gets_414_whether_the_gateway_or_its_parser_sees_it() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    // Over max_header_bytes (16384) but parseable: the gateway's own check.
    let path = format!("/api?{}", "q".repeat(20 * 1024));
    let r = request(gw.http, "GET", &path, &[], b"");
    assert_eq!(r.status, 414);
    assert_eq!(r.text(), "URI Too Long\n");
    // 100 KB: too long for the parser itself (http::Uri stops at 64 KiB).
    let path = format!("/api?{}", "q".repeat(100 * 1024));
    let mut c = Conn::open(gw.http);
    c.send_raw(format!("GET {path} HTTP/1.1\r\nHost: gateway.test\r\n\r\n").as_bytes());
    assert_eq!(c.read_response(false).status, 414);
    assert!(c.is_closed_by_peer());
    assert_eq!(ackee.count(), 0);
    let scrape = gw.scrape();
    assert_eq!(
        scrape.get("ackee_gateway_limit_rejections_total", &[("limit", "uri")]),
        2.0
    );
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);
}

#[test]
fn a_head_that_trickles_in_is_cut_at_its_deadline_with_408() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("limits:\n  header_timeout_seconds: 0.5"));
    let mut c = Conn::open(gw.http);
    // One header line now, the rest never: the head can not complete.
    c.send_raw(b"POST /api HTTP/1.1\r\nHost: gateway.test\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 408);
    assert!(c.is_closed_by_peer(), "the connection closes after a 408");
    assert_eq!(ackee.count(), 0);
    let scrape = gw.scrape();
    assert_eq!(
        scrape.get(
            "ackee_gateway_limit_rejections_total",
            &[("limit", "header_timeout")]
        ),
        1.0
    );
    // A head that arrives in time is served.
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);
}

#[test]
fn a_head_the_parser_cannot_read_is_counted() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let mut c = Conn::open(gw.http);
    c.send_raw(b"THIS IS NOT HTTP\r\n\r\n");
    let r = c.try_read_response(false);
    assert!(r.is_none_or(|r| r.status == 400));
    let scrape = gw.scrape();
    assert_eq!(
        scrape.get(
            "ackee_gateway_request_rejections_total",
            &[("reason", "unparsable")]
        ),
        1.0
    );
}
