//! Proxied requests: Ackee's CORS headers replaced, `Vary` merged, the fate of disallowed
//! origins, forwarded headers, upstream failures and size limits, over real sockets.

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
use common::process::eventually;

use std::time::Duration;

const ACAO: &str = "access-control-allow-origin";

fn post(gw: &Gateway, origin: Option<&str>) -> Response {
    let body = mutation_body("createRecord");
    let mut headers = vec![("Content-Type", "application/json;charset=UTF-8")];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    request(gw.http, "POST", "/api", &headers, body.as_bytes())
}

#[test]
fn ackees_own_cors_headers_are_replaced_never_duplicated() {
    let ackee = FakeAckee::start();
    // Ackee configured with ACKEE_ALLOW_ORIGIN sends its own headers, matched by substring.
    ackee.set(|b| b.ackee_allow_origin = Some("https://example.com,https://other.test".into()));
    let gw = Gateway::start(&Spec::new(ackee.addr));

    let r = post(&gw, Some("https://example.com"));
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named(ACAO), ["https://example.com"]);
    assert_eq!(
        r.headers_named("access-control-allow-credentials"),
        ["true"]
    );
    assert_eq!(
        r.cors_header_names(),
        [ACAO, "access-control-allow-credentials"],
        "only the gateway's own CORS headers"
    );
    assert_eq!(r.headers_named("vary"), ["Origin"]);
    assert!(r.text().contains("createRecord"));
}

#[test]
fn vary_is_merged_with_the_vary_ackee_sent() {
    let ackee = FakeAckee::start();
    ackee.set(|b| b.vary = Some("Accept-Encoding".into()));
    let gw = Gateway::start(&Spec::new(ackee.addr));
    for origin in [Some("https://example.com"), Some("https://evil.test"), None] {
        let r = post(&gw, origin);
        assert_eq!(
            r.headers_named("vary"),
            ["Accept-Encoding, Origin"],
            "origin {origin:?}"
        );
    }
}

#[test]
fn a_disallowed_origin_is_forwarded_without_cors_headers_by_default() {
    let ackee = FakeAckee::start();
    ackee.set(|b| b.ackee_allow_origin = Some("https://evil.test".into()));
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let r = post(&gw, Some("https://evil.test"));
    assert_eq!(
        r.status,
        200,
        "forwarded to Ackee: {:?} {:?} {}",
        ackee.seen(),
        r.headers,
        r.text()
    );
    assert_eq!(ackee.count(), 1);
    assert!(
        r.cors_header_names().is_empty(),
        "even Ackee's own: {:?}",
        r.headers
    );
    assert_eq!(r.headers_named("vary"), ["Origin"]);
}

#[test]
fn a_disallowed_origin_gets_403_at_the_edge_in_reject_mode() {
    let ackee = FakeAckee::start();
    let spec = Spec::new(ackee.addr)
        .cors("allowed_origins: [\"https://example.com\"]\ndisallowed_origin: reject");
    let gw = Gateway::start(&spec);
    let r = post(&gw, Some("https://evil.test"));
    assert_eq!(r.status, 403);
    assert!(r.cors_header_names().is_empty());
    assert_eq!(r.headers_named("vary"), ["Origin"]);
    assert_eq!(
        r.text(),
        "Forbidden: this origin is not allowed to use this Ackee server (CORS)\n"
    );
    assert_eq!(ackee.count(), 0, "Ackee never sees it");
    // The allowed origin, requests without Origin, and the dashboard's same-origin POSTs pass.
    assert_eq!(post(&gw, Some("https://example.com")).status, 200);
    assert_eq!(post(&gw, None).status, 200);
    let same = request(
        gw.http,
        "POST",
        "/api",
        &[
            ("Host", "stats.example.net"),
            ("Origin", "http://stats.example.net"),
        ],
        mutation_body("createRecord").as_bytes(),
    );
    assert_eq!(
        same.status, 200,
        "Ackee's dashboard posts with its own origin"
    );
    assert_eq!(ackee.count(), 3);
}

#[test]
fn requests_without_origin_pass_unchanged_apart_from_vary() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let r = request(gw.http, "GET", "/tracker.js", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, common::fake_ackee::tracker_stand_in());
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(r.cors_header_names().is_empty());
    assert_eq!(r.headers_named("vary"), ["Origin"]);
}

#[test]
fn forwarded_headers_are_set_and_spoofed_client_ip_headers_removed() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let spoofed = [
        ("X-Client-IP", "6.6.6.1"),
        ("CF-Connecting-IP", "6.6.6.2"),
        ("Fastly-Client-IP", "6.6.6.3"),
        ("True-Client-IP", "6.6.6.4"),
        ("X-Cluster-Client-IP", "6.6.6.5"),
        ("X-Forwarded", "for=6.6.6.6"),
        ("Forwarded-For", "6.6.6.7"),
        ("Forwarded", "for=6.6.6.8"),
        ("X-Forwarded-For", "6.6.6.9"),
        ("X-Real-IP", "6.6.6.10"),
        ("X-Forwarded-Proto", "https"),
    ];
    let mut headers = vec![
        ("Host", "stats.example.net"),
        ("Origin", "https://example.com"),
    ];
    headers.extend_from_slice(&spoofed);
    let r = request(
        gw.http,
        "POST",
        "/api",
        &headers,
        mutation_body("createRecord").as_bytes(),
    );
    assert_eq!(r.status, 200);
    let seen = &ackee.seen()[0];
    assert_eq!(
        seen.header("host"),
        Some("stats.example.net"),
        "Host is preserved"
    );
    assert_eq!(seen.headers_named("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.headers_named("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(seen.headers_named("x-forwarded-proto"), ["http"]);
    for (name, _) in &spoofed[..8] {
        assert_eq!(seen.header(name), None, "{name} must not reach Ackee");
    }
    assert!(
        !seen.headers.iter().any(|(_, v)| v.contains("6.6.6")),
        "{:?}",
        seen.headers
    );
}

#[test]
fn trusted_proxies_keep_their_client_ip_headers_and_get_appended_to() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top("trusted_proxies: [\"127.0.0.0/8\"]"));
    let r = request(
        gw.http,
        "GET",
        "/tracker.js",
        &[
            ("X-Client-IP", "203.0.113.5"),
            ("X-Forwarded-For", "203.0.113.5"),
            ("X-Real-IP", "203.0.113.5"),
            ("X-Forwarded-Proto", "https"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = &ackee.seen()[0];
    assert_eq!(seen.header("x-client-ip"), Some("203.0.113.5"));
    assert_eq!(
        seen.headers_named("x-forwarded-for"),
        ["203.0.113.5, 127.0.0.1"]
    );
    assert_eq!(seen.headers_named("x-real-ip"), ["203.0.113.5"]);
    assert_eq!(seen.headers_named("x-forwarded-proto"), ["https"]);
}

#[test]
fn ackee_down_gives_503_and_the_gateway_keeps_serving() {
    let mut ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    assert_eq!(post(&gw, Some("https://example.com")).status, 200);
    ackee.stop();

    // The refused connect takes the only replica down at once; with every replica down the
    // gateway still tried it, and the failed connect is answered 503 with Retry-After.
    let r = post(&gw, Some("https://example.com"));
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "Service Unavailable: no Ackee replica is up\n");
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(
        r.headers_named(ACAO),
        ["https://example.com"],
        "so the tracker can read the error"
    );
    assert_eq!(r.headers_named("vary"), ["Origin"]);
    assert_eq!(post(&gw, None).status, 503);
    // Preflights are still answered at the edge.
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);

    ackee.restart();
    let back = eventually(
        Duration::from_secs(20),
        "Ackee to be reachable again",
        || {
            let r = post(&gw, Some("https://example.com"));
            (r.status == 200).then_some(r)
        },
    );
    assert!(back.text().contains("createRecord"));
}

#[test]
fn a_slow_ackee_gives_504_and_the_gateway_keeps_serving() {
    let ackee = FakeAckee::start();
    ackee.set(|b| b.delay = Some(Duration::from_secs(3)));
    let gw = Gateway::start(&Spec::new(ackee.addr).upstream("read_timeout_seconds: 0.3"));
    let r = post(&gw, Some("https://example.com"));
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "Gateway Timeout: Ackee did not answer in time\n");
    ackee.set(|b| b.delay = None);
    assert_eq!(post(&gw, Some("https://example.com")).status, 200);
}

#[test]
fn upstream_connections_are_pooled_and_reused() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    for _ in 0..5 {
        assert_eq!(request(gw.http, "GET", "/tracker.js", &[], b"").status, 200);
    }
    let seen = ackee.seen();
    assert_eq!(seen.len(), 5);
    assert!(
        seen.iter().all(|s| s.connection == seen[0].connection),
        "one pooled connection served all five requests"
    );
}

#[test]
fn oversized_bodies_get_413_and_oversized_heads_431() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(
        &Spec::new(ackee.addr).top("limits:\n  max_body_bytes: 1024\n  max_header_bytes: 2048"),
    );

    let big = vec![b'x'; 4096];
    let r = request(
        gw.http,
        "POST",
        "/api",
        &[("Origin", "https://example.com")],
        &big,
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "Content Too Large\n");
    assert_eq!(r.headers_named(ACAO), ["https://example.com"]);

    // A chunked body has no declared length; it is counted as it streams.
    let mut conn = Conn::open(gw.http);
    let mut raw =
        b"POST /api HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'y'; 1024]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    conn.send_raw(&raw);
    assert_eq!(conn.read_response(false).status, 413);

    let long = "z".repeat(4096);
    let r = request(gw.http, "GET", "/tracker.js", &[("X-Long", &long)], b"");
    assert_eq!(r.status, 431);
    assert_eq!(r.text(), "Request Header Fields Too Large\n");

    // Small requests still pass.
    assert_eq!(post(&gw, Some("https://example.com")).status, 200);
    assert!(ackee.seen().iter().all(|s| s.body.len() <= 1024));
}

#[test]
fn malformed_requests_get_400_and_the_process_keeps_serving() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    for garbage in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Without Colon\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    ] {
        let mut conn = Conn::open(gw.http);
        conn.send_raw(garbage);
        if let Some(r) = conn.try_read_response(false) {
            assert!(
                (400..500).contains(&r.status),
                "{:?} got {}",
                String::from_utf8_lossy(garbage),
                r.status
            );
        }
    }
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);
    assert_eq!(post(&gw, Some("https://example.com")).status, 200);
}
