//! HTTP/3 over real UDP sockets, with an independent client (aioquic, from PyPI, in the virtual
//! environment the README's test command creates): the CORS vectors of the HTTP/1.1 tests, the
//! tracker's POST as Ackee receives it, Alt-Svc on the TCP answers, the limits, refusals of
//! protocol abuse (each counted, every other client still served), every TLS 1.3 cipher suite
//! a browser offers, certificate reloads, and stop and graceful upgrade under load.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod http3;
    pub mod process;
    pub mod tls;
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::client::{Response, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Scrape, Spec};
use common::http3::{Answer, Req, Target, require_aioquic, run as h3, wait_udp};
use common::process::{eventually, run};
use common::tls::{TestCa, connect, h2_request};
use serde_json::json;

const STATS: &str = "stats.example.com";
const ACAO: &str = "access-control-allow-origin";

/// The TLS listener's lines: one certificate for `STATS`, and `http3` as given.
fn tls_lines(dir: &Path, http3: &str) -> String {
    format!(
        "tls:\n  certificates:\n    - name: stats\n      cert: \"{d}/stats.pem\"\n      key: \"{d}/stats.key\"\nhttp3: {http3}",
        d = dir.display()
    )
}

struct Setup {
    ca: TestCa,
    certs: tempfile::TempDir,
    ackee: FakeAckee,
    gw: Gateway,
    h3: Target,
}

/// A gateway whose TLS listener has `http3` (`true`, or a mapping in flow style).
fn setup_with(http3: &str, extra: impl FnOnce(Spec) -> Spec) -> Setup {
    require_aioquic();
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    ca.leaf(&[STATS]).write(certs.path(), "stats");
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let ackee = FakeAckee::start();
    let spec = extra(Spec::new(ackee.addr).tls_listener(&tls_lines(certs.path(), http3)));
    let gw = Gateway::start(&spec);
    wait_udp(gw.child.id(), gw.https.port());
    let h3 = target(&gw, ca_file);
    Setup {
        ca,
        certs,
        ackee,
        gw,
        h3,
    }
}

fn target(gw: &Gateway, ca: PathBuf) -> Target {
    Target {
        addr: gw.https,
        server_name: STATS.to_owned(),
        ca,
    }
}

fn setup() -> Setup {
    setup_with("true", |s| s)
}

fn preflight_req(origin: &str) -> Req {
    Req::new("OPTIONS", "/api")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
}

/// The same preflight over HTTP/1.1 on the plain listener.
fn h1_preflight(gw: &Gateway, headers: &[(&str, &str)]) -> Response {
    request(gw.http, "OPTIONS", "/api", headers, b"")
}

/// The headers of an answer that a protocol does not change: all but `date` and `alt-svc`,
/// names lowercased, in order.
fn comparable(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "date" | "alt-svc" | "connection" | "content-length"
            )
        })
        .collect()
}

#[test]
fn the_cors_vectors_of_http1_get_the_same_answers_over_http3() {
    let s = setup();
    let post = ("access-control-request-method", "POST");
    let ok = ("origin", "https://example.com");
    let vectors: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "allowed",
            vec![ok, post, ("access-control-request-headers", "content-type")],
        ),
        (
            "subdomain, any depth",
            vec![("origin", "https://a.b.c.example.org"), post],
        ),
        (
            "unknown origin",
            vec![("origin", "https://evil.test"), post],
        ),
        (
            "substring of an allowed origin",
            vec![("origin", "https://example.co"), post],
        ),
        (
            "allowed origin as a prefix",
            vec![("origin", "https://example.com.evil.net"), post],
        ),
        (
            "suffix without a label boundary",
            vec![("origin", "https://evilexample.org"), post],
        ),
        (
            "pattern parent itself",
            vec![("origin", "https://example.org"), post],
        ),
        ("null origin", vec![("origin", "null"), post]),
        ("empty origin", vec![("origin", ""), post]),
        ("two origin headers", vec![ok, ok, post]),
        (
            "method not allowed",
            vec![ok, ("access-control-request-method", "DELETE")],
        ),
        (
            "header not allowed",
            vec![
                ok,
                post,
                ("access-control-request-headers", "content-type,x-evil"),
            ],
        ),
    ];
    let reqs: Vec<Req> = vectors
        .iter()
        .map(|(_, headers)| {
            headers
                .iter()
                .fold(Req::new("OPTIONS", "/api"), |r, (k, v)| r.header(k, v))
        })
        .collect();
    let answers = Answer::all(&s.h3.requests(&reqs));
    for ((what, headers), h3) in vectors.iter().zip(&answers) {
        let h1 = h1_preflight(&s.gw, headers);
        assert_eq!(h3.status, Some(h1.status), "{what}: {:?}", h3.raw);
        assert_eq!(
            comparable(&h3.headers),
            comparable(&h1.headers),
            "{what}: the same headers over HTTP/3 as over HTTP/1.1"
        );
        assert_eq!(h3.body.as_bytes(), h1.body.as_slice(), "{what}");
        assert_eq!(h3.headers_named("vary"), ["Origin"], "{what}");
        // A whole answer ends with a FIN, and the request's side is not stopped with a code
        // HTTP/3 does not define (hyperium/h3#321: curl reported such streams as reset).
        assert_eq!(h3.reset, None, "{what}: {:?}", h3.raw);
        assert!(
            h3.raw["stopped"].is_null(),
            "{what}: STOP_SENDING {:?}",
            h3.raw["stopped"]
        );
    }
    assert_eq!(answers[0].status, Some(204));
    assert_eq!(answers[0].headers_named(ACAO), ["https://example.com"]);
    assert_eq!(
        answers[1].headers_named(ACAO),
        ["https://a.b.c.example.org"]
    );
    assert_eq!(answers[2].status, Some(403));
    assert_eq!(
        answers[2].body,
        "Forbidden: this origin is not allowed to use this Ackee server (CORS)\n"
    );
    assert_eq!(s.ackee.count(), 0, "no preflight reaches Ackee");

    // An OPTIONS without Access-Control-Request-Method is an ordinary request: proxied.
    let r =
        s.h3.request(Req::new("OPTIONS", "/api").header("origin", "https://example.com"));
    assert_eq!(r.status, Some(204));
    assert_eq!(s.ackee.count(), 1);
    assert_eq!(r.headers_named(ACAO), ["https://example.com"]);

    // Counted as HTTP/3, in the same metrics. Each request is counted by its own task after
    // its answer is sent (the last, proxied one too): wait for every count asserted.
    let h3_options = |m: &Scrape, status| {
        m.get(
            "ackee_gateway_requests_total",
            &[
                ("protocol", "http3"),
                ("method", "OPTIONS"),
                ("status", status),
            ],
        )
    };
    let m = s.gw.scrape_until("the HTTP/3 requests to be counted", |m| {
        h3_options(m, "4xx") >= 10.0 && h3_options(m, "2xx") >= 3.0
    });
    assert_eq!(h3_options(&m, "4xx"), 10.0);
    assert_eq!(h3_options(&m, "2xx"), 3.0);
    assert_eq!(
        m.get("ackee_gateway_preflights_total", &[("result", "refused")]),
        20.0,
        "ten over each protocol"
    );
}

#[test]
fn the_tracker_post_reaches_ackee_whole_with_the_quic_peer_as_client() {
    let s = setup_with("true", |spec| spec.top("access_log: {format: json}"));
    s.ackee
        .set(|b| b.ackee_allow_origin = Some("https://example.com".to_owned()));
    let body = mutation_body("createRecord");
    let r = s.h3.request(
        Req::new("POST", "/api")
            .header("origin", "https://example.com")
            .header("content-type", "application/json;charset=UTF-8")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-client-ip", "6.6.6.6")
            .header("x-real-ip", "6.6.6.6")
            .body(&body),
    );
    assert_eq!(r.status, Some(200), "{:?}", r.raw);
    assert!(r.body.contains("createRecord"), "{}", r.body);
    assert_eq!(
        r.headers_named(ACAO),
        ["https://example.com"],
        "exactly one"
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.headers_named("vary"), ["Origin"]);
    assert_eq!(
        r.header("access-control-allow-methods"),
        None,
        "Ackee's own are removed"
    );

    let seen = s.ackee.seen();
    assert_eq!(seen.len(), 1);
    let a = &seen[0];
    assert_eq!((a.method.as_str(), a.path.as_str()), ("POST", "/api"));
    assert_eq!(a.body, body.as_bytes(), "the body arrives whole");
    assert_eq!(
        a.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(a.header("transfer-encoding"), None);
    assert_eq!(
        a.header("host"),
        Some(format!("{STATS}:{}", s.gw.https.port()).as_str()),
        ":authority becomes Host"
    );
    assert_eq!(
        a.headers_named("x-forwarded-for"),
        ["127.0.0.1"],
        "the QUIC peer"
    );
    assert_eq!(a.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(a.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        a.header("x-client-ip"),
        None,
        "a client's own claim is removed"
    );

    // The access log has it, like any other request.
    let log = eventually(Duration::from_secs(10), "the access log line", || {
        let out = s.gw.stdout();
        out.contains("\"POST\"").then_some(out)
    });
    assert!(
        log.contains("\"status\":200") && log.contains("ackee-0"),
        "{log}"
    );
}

#[test]
fn an_answer_cut_off_by_ackee_is_reset_not_ended_as_if_whole() {
    let s = setup();
    s.ackee.set(|b| b.truncate_body = Some(5));
    let r = s.h3.request(Req::new("GET", "/tracker.js"));
    // The head may or may not have left before the reset, which discards what is unsent.
    assert!(matches!(r.status, None | Some(200)), "{:?}", r.raw);
    assert_eq!(
        r.reset,
        Some(0x102),
        "H3_INTERNAL_ERROR, so the client does not take 5 bytes for the whole script: {:?}",
        r.raw
    );
}

#[test]
fn tcp_answers_advertise_http3_on_the_same_port_and_http3_answers_do_not() {
    let s = setup_with("{alt_svc_max_age_seconds: 3600}", |spec| spec);
    let want = format!("h3=\":{}\"; ma=3600", s.gw.https.port());
    let c = connect(s.gw.https, STATS, s.ca.client_config(&[b"http/1.1"])).unwrap();
    let mut conn = c.conn;
    let h1 = conn.request(
        "OPTIONS",
        "/api",
        &[
            ("Host", STATS),
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(h1.status, 204);
    assert_eq!(
        h1.headers_named("alt-svc"),
        [want.as_str()],
        "HTTP/1.1 over TLS"
    );
    let proxied = conn.request("GET", "/tracker.js", &[("Host", STATS)], b"");
    assert_eq!(
        proxied.headers_named("alt-svc"),
        [want.as_str()],
        "a proxied answer"
    );
    let (h2, alpn) = h2_request(
        &s.ca,
        s.gw.https,
        &format!("{STATS}:{}", s.gw.https.port()),
        "GET",
        "/tracker.js",
        &[],
        b"",
    );
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.headers_named("alt-svc"), [want.as_str()], "HTTP/2");
    let plain = request(s.gw.http, "GET", "/tracker.js", &[], b"");
    assert_eq!(plain.header("alt-svc"), None, "not on the plain listener");
    let r = s.h3.request(Req::new("GET", "/tracker.js"));
    assert_eq!(r.status, Some(200));
    assert_eq!(r.header("alt-svc"), None, "not over HTTP/3 itself");
}

#[test]
fn every_tls13_cipher_suite_a_browser_offers_is_accepted() {
    let s = setup();
    for suite in [
        "AES_128_GCM_SHA256",
        "AES_256_GCM_SHA384",
        "CHACHA20_POLY1305_SHA256",
    ] {
        let result = h3(s.h3.job(json!({
            "cipher": suite,
            "requests": [preflight_req("https://example.com").json()],
        })));
        assert_eq!(result["cipher"], suite, "{result}");
        assert_eq!(
            Answer::first(&result).status,
            Some(204),
            "{suite}: {result}"
        );
    }
}

#[test]
fn the_limits_apply_over_http3_as_over_http1() {
    let s = setup_with("{max_concurrent_streams: 7}", |spec| {
        spec.top("limits: {max_body_bytes: 1000, max_header_bytes: 2048}\nrate_limits: {tracker: {requests_per_minute: 3}}")
    });
    let origin = ("origin", "https://example.com");
    let post = |body: &str| {
        Req::new("POST", "/api")
            .header(origin.0, origin.1)
            .header("content-type", "application/json")
            .body(body)
    };
    let big = "x".repeat(1500);
    let long = "y".repeat(3000);
    let huge = "z".repeat(20_000);
    let result = s.h3.requests(&[
        post(&big),
        post(&big).header("content-length", "1500"),
        Req::new("GET", "/tracker.js").header("x-long", &long),
        Req::new("GET", "/tracker.js").header("x-huge", &huge),
        post("{}"),
        post("{}"),
        post("{}"),
        post("{}"),
    ]);
    assert_eq!(result["max_streams_bidi"], 7, "requests at once: {result}");
    let a = Answer::all(&result);
    let statuses: Vec<Option<u16>> = a.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Some(413),
            Some(413),
            Some(431),
            Some(431),
            Some(200),
            Some(200),
            Some(200),
            Some(429)
        ],
        "{result}"
    );
    assert_eq!(a[0].headers_named(ACAO), ["https://example.com"]);
    assert!(a[7].header("retry-after").is_some());
    assert_eq!(
        s.ackee.count(),
        3,
        "only the three allowed POSTs reach Ackee"
    );
    // The requests run in tasks of their own, and h3 sends its 431 for a head it will not
    // decode before the gateway counts it: wait for every count asserted.
    let rate = |m: &Scrape| {
        m.get(
            "ackee_gateway_rate_limit_rejections_total",
            &[("rule", "tracker")],
        )
    };
    let limit = |m: &Scrape, l| m.get("ackee_gateway_limit_rejections_total", &[("limit", l)]);
    let undecoded = |m: &Scrape| {
        m.get(
            "ackee_gateway_quic_refusals_total",
            &[("reason", "header_too_large")],
        )
    };
    let m = s.gw.scrape_until("the limits to be counted", |m| {
        rate(m) >= 1.0
            && limit(m, "body") >= 2.0
            && limit(m, "header") >= 1.0
            && undecoded(m) >= 1.0
    });
    assert_eq!(rate(&m), 1.0);
    assert_eq!(limit(&m, "body"), 2.0);
    assert_eq!(
        limit(&m, "header"),
        1.0,
        "the gateway's own 431, as over HTTP/1.1"
    );
    assert_eq!(undecoded(&m), 1.0, "a head h3 would not decode");
}

#[test]
fn an_idle_connection_is_closed_after_idle_timeout_seconds() {
    let s = setup_with("{idle_timeout_seconds: 0.5}", |spec| spec);
    let result = h3(s.h3.job(json!({
        "requests": [Req::new("GET", "/tracker.js").json()],
        "wait_close": 10,
    })));
    assert_eq!(Answer::first(&result).status, Some(200));
    assert!(!result["closed"].is_null(), "closed while idle: {result}");
    let m = s.gw.scrape_until("the connection to be gone", |m| {
        m.get("ackee_gateway_quic_connections", &[]) == 0.0
    });
    assert_eq!(
        m.get("ackee_gateway_quic_handshakes_total", &[("result", "ok")]),
        1.0
    );
}

#[test]
fn a_stateless_retry_is_asked_of_new_clients_when_configured() {
    let s = setup_with("{retry_above_handshakes: 0}", |spec| spec);
    let result =
        h3(s.h3.job(json!({"requests": [preflight_req("https://example.com").json()]})));
    assert_eq!(
        result["retry"], true,
        "the client proved its address: {result}"
    );
    assert_eq!(Answer::first(&result).status, Some(204));
    let m = s.gw.scrape();
    assert_eq!(
        m.get("ackee_gateway_quic_refusals_total", &[("reason", "retry")]),
        1.0
    );

    // By default a client is asked only under a flood of handshakes.
    let d = setup();
    let result =
        h3(d.h3.job(json!({"requests": [preflight_req("https://example.com").json()]})));
    assert_eq!(result["retry"], false, "{result}");
}

#[test]
fn handshakes_beyond_max_handshakes_are_refused_and_counted() {
    let s = setup_with(
        "{max_handshakes: 1, retry_above_handshakes: 1000}",
        |spec| spec,
    );
    // Thirty clients start their handshakes at once; one handshake may be in progress.
    let result = h3(s.h3.job(json!({
        "mode": "handshakes",
        "count": 30,
        "threads": 30,
        "request": preflight_req("https://example.com").json(),
    })));
    assert!(result["ok"].as_u64().unwrap() >= 1, "{result}");
    assert!(
        result["failed"].as_u64().unwrap() >= 1,
        "some are refused: {result}"
    );
    let m = s.gw.scrape();
    let refused = m.get(
        "ackee_gateway_quic_refusals_total",
        &[("reason", "handshakes")],
    );
    assert_eq!(
        refused,
        result["failed"].as_f64().unwrap(),
        "each refusal counted: {result}"
    );
    assert_eq!(
        m.get("ackee_gateway_quic_handshakes_total", &[("result", "ok")]),
        result["ok"].as_f64().unwrap()
    );
    let ok = s.h3.request(preflight_req("https://example.com"));
    assert_eq!(ok.status, Some(204), "a client that comes alone is served");
}

/// Runs one abusive job and checks that a well-behaved client is served right after.
fn abuse_then_serve(s: &Setup, job: serde_json::Value) -> serde_json::Value {
    let result = h3(s.h3.job(job));
    let ok = s.h3.request(preflight_req("https://example.com"));
    assert_eq!(
        ok.status,
        Some(204),
        "another client is still served after {result}"
    );
    result
}

#[test]
fn protocol_abuse_is_refused_and_counted_and_other_clients_are_still_served() {
    let mut s = setup();
    // A HEADERS frame that declares 100 MB: cut off once the stream carries more than a
    // request may.
    let flood = abuse_then_serve(
        &s,
        json!({"mode": "headers_flood", "declared": 100_000_000, "send": 4_000_000}),
    );
    assert_eq!(
        flood["stopped"], 0x107,
        "STOP_SENDING H3_EXCESSIVE_LOAD: {flood}"
    );
    assert!(flood["sent"].as_u64().unwrap() < 1_000_000, "{flood}");

    // A header block that refers to the QPACK dynamic table the gateway does not offer,
    // after the client set its capacity to 64 KiB.
    let qpack = abuse_then_serve(&s, json!({"mode": "qpack_dynamic", "capacity": 65536}));
    assert_eq!(
        qpack["closed"]["error_code"], 0x200,
        "QPACK_DECOMPRESSION_FAILED: {qpack}"
    );

    // An HTTP/2 frame type, DATA before HEADERS, a second control stream.
    for (job, code) in [
        (
            json!({"mode": "frame", "frame_type": 2, "payload": "00"}),
            0x105,
        ),
        (
            json!({"mode": "frame", "frame_type": 0, "payload": "6869"}),
            0x105,
        ),
        (
            json!({"mode": "frame", "frame_type": 4, "payload": "", "on_control": true}),
            0x103,
        ),
    ] {
        let r = abuse_then_serve(&s, job.clone());
        assert_eq!(r["closed"]["error_code"], code, "{job}: {r}");
    }

    // Rapid reset: requests opened and cancelled at once.
    let rapid = abuse_then_serve(&s, json!({"mode": "rapid_reset", "count": 400}));
    assert_eq!(
        rapid["closed"]["error_code"], 0x107,
        "H3_EXCESSIVE_LOAD: {rapid}"
    );
    assert!(
        rapid["sent"].as_u64().unwrap() < 400,
        "cut off before the end: {rapid}"
    );

    // A connection closed for a protocol error is counted by its task after h3 has sent the
    // close, so each job's count may come after the next job has begun: wait for every count
    // asserted, not only the last job's.
    let want = [
        ("stream_too_large", 1.0),
        ("qpack", 1.0),
        ("malformed", 3.0),
        ("stream_resets", 1.0),
    ];
    let refusals = |m: &Scrape, r| m.get("ackee_gateway_quic_refusals_total", &[("reason", r)]);
    let m = s.gw.scrape_until("every refusal to be counted", |m| {
        want.iter().all(|(r, n)| refusals(m, r) >= *n)
    });
    for (r, n) in want {
        assert_eq!(refusals(&m, r), n, "{r}");
    }
    assert!(s.gw.child.try_wait().unwrap().is_none(), "still running");
    let log = s.gw.stderr();
    assert!(
        !log.contains("Fail to proxy"),
        "cancelled requests are counted, not logged one by one:\n{log}"
    );
}

#[test]
fn a_sighup_reloads_the_certificate_http3_handshakes_use() {
    let s = setup();
    let first =
        h3(s.h3.job(json!({"requests": [Req::new("GET", "/tracker.js").json()]})));
    let old = first["peer_certificate"].as_str().unwrap().to_owned();
    let renewed = s.ca.leaf_until(&[STATS], 2099, 1, 31);
    renewed.write(s.certs.path(), "stats");
    s.gw.signal("HUP");
    eventually(Duration::from_secs(20), "the reload to be counted", || {
        let m = s.gw.scrape();
        (m.get(
            "ackee_gateway_tls_certificate_reloads_total",
            &[("certificate", "stats"), ("result", "ok")],
        ) >= 1.0)
            .then_some(())
    });
    let after =
        h3(s.h3.job(json!({"requests": [Req::new("GET", "/tracker.js").json()]})));
    let new = after["peer_certificate"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        hex(&renewed.der),
        new,
        "new QUIC handshakes use the new certificate"
    );
    assert_eq!(Answer::first(&after).status, Some(200));
    assert_eq!(
        s.gw.scrape().get(
            "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
            &[("certificate", "stats")]
        ),
        4_073_500_800.0,
        "2099-01-31"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_stop_answers_the_requests_in_flight_over_http3() {
    let mut s = setup_with("true", |spec| spec.grace(3, 1));
    s.ackee.set(|b| b.delay = Some(Duration::from_millis(1500)));
    let job = s.h3.job(json!({
        "parallel": true,
        "requests": [
            Req::new("POST", "/api").header("content-type", "application/json").body(&mutation_body("createRecord")).json(),
            Req::new("POST", "/api").header("content-type", "application/json").body(&mutation_body("updateRecord")).json(),
        ],
    }));
    let client = std::thread::spawn(move || h3(job));
    eventually(Duration::from_secs(10), "both POSTs to reach Ackee", || {
        (s.ackee.count() == 2).then_some(())
    });
    s.gw.signal("TERM");
    let result = client.join().unwrap();
    for a in Answer::all(&result) {
        assert_eq!(a.status, Some(200), "answered during the stop: {result}");
        assert!(a.reset.is_none(), "{result}");
    }
    let status = s.gw.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status}\n{}", s.gw.stderr());
}

#[test]
fn a_graceful_upgrade_under_http3_load_loses_no_accepted_request() {
    let mut s = setup_with("true", |spec| {
        spec.top("rate_limits: {tracker: {requests_per_minute: off}}")
            .grace(2, 1)
    });
    let stop = s.certs.path().join("stop");
    let job = s.h3.job(json!({
        "mode": "load",
        "workers": 4,
        "seconds": 120,
        "stop_file": stop.display().to_string(),
        "request": Req::new("POST", "/api")
            .header("origin", "https://example.com")
            .header("content-type", "application/json")
            .body(&mutation_body("createRecord"))
            .json(),
    }));
    let load = std::thread::spawn(move || h3(job));
    eventually(Duration::from_secs(30), "the load to reach Ackee", || {
        (s.ackee.count() > 50).then_some(())
    });
    let upgrade_sock = s.gw.dir.path().join("upgrade.sock");
    let mut new = s.gw.spawn_upgrade();
    eventually(
        Duration::from_secs(30),
        "the new process to wait for the sockets",
        || upgrade_sock.exists().then_some(()),
    );
    s.gw.signal("QUIT");
    let status = s.gw.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "the old process: {status}\n{}",
        s.gw.stderr()
    );
    // The new process serves HTTP/3 on the socket it was handed.
    let before = s.ackee.count();
    eventually(
        Duration::from_secs(30),
        "the new process to serve the load",
        || (s.ackee.count() > before + 50).then_some(()),
    );
    std::fs::write(&stop, "").unwrap();
    let result = load.join().unwrap();
    let counts = &result["counts"];
    assert_eq!(
        counts["failed"],
        0,
        "no accepted request may fail: {result}\nold:\n{}\nnew:\n{}",
        s.gw.stderr(),
        s.gw.upgrade_stderr()
    );
    assert!(counts["ok"].as_u64().unwrap() > 100, "{result}");
    assert!(new.try_wait().unwrap().is_none(), "the new process runs");
    let took_over = s.gw.upgrade_stderr();
    assert!(
        took_over.contains("using the UDP socket handed over"),
        "the new process serves on the old one's UDP socket:\n{took_over}"
    );
    assert!(
        s.gw.stderr()
            .contains("the socket goes to the new process; connections get a GOAWAY"),
        "{}",
        s.gw.stderr()
    );
    eprintln!("HTTP/3 upgrade: {result}");
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn a_udp_port_in_use_stops_the_start_with_the_key_to_fix() {
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    ca.leaf(&[STATS]).write(certs.path(), "stats");
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let yaml = format!(
        "listeners:\n  - address: \"{addr}\"\n    {}\ncors: {{allowed_origins: [\"https://example.com\"]}}\nupstream: {{replicas: [{{address: \"127.0.0.1:3000\"}}]}}\n",
        tls_lines(certs.path(), "true").replace('\n', "\n    ")
    );
    let path = certs.path().join("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    let p = path.display().to_string();
    let (code, stderr) = run(&["-c", &p], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {p}: listeners[0].http3: cannot listen on {addr} over UDP (Address already in use"
        )),
        "{stderr}"
    );
}
