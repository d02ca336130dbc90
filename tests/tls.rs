//! TLS termination over real sockets: SNI selection, ALPN (h2 and h1), CORS over HTTP/2, the
//! HTTPS redirect, the ACME webroot, certificate reloads and their metrics. Certificates are
//! made at test time and every client verifies against the test CA.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
    pub mod tls;
}

use common::client::{Conn, Response, request};
use common::fake_ackee::{FakeAckee, mutation_body};
use common::gateway::{Gateway, Scrape, Spec};
use common::process::{eventually, eventually_or_else};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::{TestCa, connect, h2_request};

const STATS: &str = "stats.example.com";
const ORG: &str = "ackee.example.org";

/// Two certificates: `stats` (default) for stats.example.com and `org` for ackee.example.org.
fn tls_lines(dir: &Path) -> String {
    format!(
        r#"tls:
  certificates:
    - name: stats
      cert: "{d}/stats.pem"
      key: "{d}/stats.key"
    - name: org
      cert: "{d}/org.pem"
      key: "{d}/org.key"
      server_names: ["{ORG}"]
  default_certificate: stats
response_headers:
  Strict-Transport-Security: "max-age=31536000"
  X-Frame-Options: deny"#,
        d = dir.display()
    )
}

struct Setup {
    ca: TestCa,
    certs: tempfile::TempDir,
    stats: common::tls::Leaf,
    org: common::tls::Leaf,
    ackee: FakeAckee,
    gw: Gateway,
}

fn setup(extra: impl FnOnce(Spec) -> Spec) -> Setup {
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    let stats = ca.leaf_until(&[STATS], 2098, 6, 30);
    let org = ca.leaf(&[ORG]);
    stats.write(certs.path(), "stats");
    org.write(certs.path(), "org");
    let ackee = FakeAckee::start();
    let spec = extra(Spec::new(ackee.addr).tls_listener(&tls_lines(certs.path())));
    let gw = Gateway::start(&spec);
    Setup {
        ca,
        certs,
        stats,
        org,
        ackee,
        gw,
    }
}

fn served_leaf(s: &Setup, sni: Option<&str>, verify_as: &str) -> Vec<u8> {
    let seen = Arc::new(Mutex::new(None));
    let config =
        s.ca.inspecting_config(sni.is_some(), verify_as, seen.clone());
    let c = connect(s.gw.https, sni.unwrap_or(verify_as), config).expect("handshake");
    assert_eq!(c.leaf, seen.lock().unwrap().clone().unwrap());
    c.leaf
}

#[test]
fn sni_selects_the_certificate_and_unknown_or_missing_names_get_the_default() {
    let s = setup(|spec| spec);
    assert_eq!(served_leaf(&s, Some(ORG), ORG), s.org.der);
    assert_eq!(served_leaf(&s, Some(STATS), STATS), s.stats.der);
    assert_eq!(
        served_leaf(&s, Some("unknown.example.net"), STATS),
        s.stats.der
    );
    assert_eq!(served_leaf(&s, None, STATS), s.stats.der);
}

#[test]
fn h2_is_negotiated_and_h1_is_the_fallback() {
    let s = setup(|spec| spec);
    let h2 = connect(s.gw.https, STATS, s.ca.client_config(&[b"h2", b"http/1.1"])).unwrap();
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    let mut h1 = connect(s.gw.https, STATS, s.ca.client_config(&[b"http/1.1"])).unwrap();
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let r = h1
        .conn
        .request("GET", "/tracker.js", &[("Host", STATS)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(r.header("x-frame-options"), Some("deny"));
    let seen = &s.ackee.seen()[0];
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("host"), Some(STATS));
}

/// The headers of an answer, each expected once with this value.
fn assert_each_once(r: &Response, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(r.headers_named(name), [*value], "{name}");
    }
}

#[test]
fn a_preflight_over_h2_is_answered_at_the_edge_as_over_http1() {
    let s = setup(|spec| spec);
    let (pre, alpn) = h2_request(
        &s.ca,
        s.gw.https,
        STATS,
        "OPTIONS",
        "/api",
        &[
            ("origin", "https://example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(pre.status, 204);
    assert_each_once(
        &pre,
        &[
            ("access-control-allow-origin", "https://example.com"),
            ("access-control-allow-methods", "GET, POST, PATCH, OPTIONS"),
            (
                "access-control-allow-headers",
                "Content-Type, Authorization, Time-Zone",
            ),
            ("access-control-allow-credentials", "true"),
            ("access-control-max-age", "3600"),
            ("vary", "Origin"),
            ("strict-transport-security", "max-age=31536000"),
        ],
    );
    assert_eq!(s.ackee.count(), 0);

    let refused_origin = [
        ("origin", "https://evil.test"),
        ("access-control-request-method", "POST"),
    ];
    let (refused, _) = h2_request(
        &s.ca,
        s.gw.https,
        STATS,
        "OPTIONS",
        "/api",
        &refused_origin,
        b"",
    );
    assert_eq!(refused.status, 403);
    assert!(refused.cors_header_names().is_empty());
}

#[test]
fn a_post_over_h2_reaches_ackee_as_http1_with_its_cors_headers_replaced() {
    let s = setup(|spec| spec);
    s.ackee
        .set(|b| b.ackee_allow_origin = Some("https://example.com".into()));
    let body = mutation_body("createRecord");
    let (post, _) = h2_request(
        &s.ca,
        s.gw.https,
        STATS,
        "POST",
        "/api",
        &[
            ("origin", "https://example.com"),
            ("content-type", "application/json;charset=UTF-8"),
        ],
        body.as_bytes(),
    );
    assert_eq!(post.status, 200);
    assert!(post.text().contains("createRecord"));
    assert_each_once(
        &post,
        &[
            ("access-control-allow-origin", "https://example.com"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Origin"),
        ],
    );
    let cors = post.cors_header_names();
    assert_eq!(
        cors.len(),
        2,
        "Ackee's own were stripped: {:?}",
        post.headers
    );
    let seen = &s.ackee.seen()[0];
    assert_eq!(
        seen.header("host"),
        Some(STATS),
        "HTTP/2 :authority becomes Host"
    );
    assert_eq!(seen.body, body.as_bytes());
}

#[test]
fn the_expiry_gauge_is_each_certificates_not_after() {
    let s = setup(|spec| spec);
    let m = s.gw.scrape();
    let expiry = "ackee_gateway_tls_certificate_expiry_timestamp_seconds";
    // 2098-06-30T00:00:00Z and 2099-12-31T00:00:00Z.
    assert_eq!(m.get(expiry, &[("certificate", "stats")]), 4_054_924_800.0);
    assert_eq!(m.get(expiry, &[("certificate", "org")]), 4_102_358_400.0);
}

#[test]
fn handshakes_are_counted_by_result() {
    let s = setup(|spec| spec);
    let before = s.gw.scrape();
    for _ in 0..2 {
        connect(s.gw.https, STATS, s.ca.client_config(&[b"http/1.1"])).unwrap();
    }
    // Plain HTTP sent to the TLS port is a failed handshake.
    let mut plain = Conn::open(s.gw.https);
    plain.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.try_read_response(false).is_none());
    let h = "ackee_gateway_tls_handshakes_total";
    // The server counts a handshake after the client has seen it finish, so wait for both
    // counts, then check that neither went further.
    let moved = |m: &Scrape, result: &str| {
        m.get(h, &[("result", result)]) - before.get(h, &[("result", result)])
    };
    let after =
        s.gw.scrape_until("two good and one failed handshake counted", |m| {
            moved(m, "failed") >= 1.0 && moved(m, "ok") >= 2.0
        });
    assert_eq!(moved(&after, "failed"), 1.0);
    assert_eq!(moved(&after, "ok"), 2.0);
}

fn reloads(gw: &Gateway, cert: &str, result: &str) -> f64 {
    gw.scrape().get(
        "ackee_gateway_tls_certificate_reloads_total",
        &[("certificate", cert), ("result", result)],
    )
}

#[test]
fn sighup_reloads_certificates_without_dropping_open_connections() {
    let mut s = setup(|spec| spec);
    let mut open = connect(s.gw.https, STATS, s.ca.client_config(&[b"http/1.1"])).unwrap();
    assert_eq!(open.leaf, s.stats.der);
    assert_eq!(
        open.conn
            .request("GET", "/tracker.js", &[("Host", STATS)], b"")
            .status,
        200
    );

    let renewed = s.ca.leaf_until(&[STATS], 2099, 1, 31);
    renewed.write(s.certs.path(), "stats");
    s.gw.signal("HUP");
    eventually(Duration::from_secs(20), "the reload to be counted", || {
        (reloads(&s.gw, "stats", "ok") >= 1.0).then_some(())
    });

    let fresh = connect(s.gw.https, STATS, s.ca.client_config(&[b"http/1.1"])).unwrap();
    assert_eq!(
        fresh.leaf, renewed.der,
        "new handshakes use the new certificate"
    );
    let r = open
        .conn
        .request("GET", "/tracker.js", &[("Host", STATS)], b"");
    assert_eq!(r.status, 200, "the open connection is untouched");
    let m = s.gw.scrape();
    assert_eq!(
        m.get(
            "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
            &[("certificate", "stats")]
        ),
        4_073_500_800.0,
        "2099-01-31"
    );
    assert!(s.gw.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn a_bad_reload_keeps_the_old_certificate_and_is_counted() {
    let s = setup(|spec| spec);
    // A key that belongs to another certificate.
    let other = s.ca.leaf(&[STATS]);
    std::fs::write(s.certs.path().join("stats.key"), &other.key_pem).unwrap();
    // And a missing file for the other one.
    std::fs::remove_file(s.certs.path().join("org.pem")).unwrap();
    s.gw.signal("HUP");
    // Each failure is counted, then logged: wait for the lines too.
    let log = eventually_or_else(
        Duration::from_secs(20),
        || {
            let log = s.gw.stderr();
            let counted =
                reloads(&s.gw, "stats", "failed") >= 1.0 && reloads(&s.gw, "org", "failed") >= 1.0;
            let logged = log.contains("certificate \"stats\" was not reloaded")
                && log.contains("certificate \"org\" was not reloaded");
            (counted && logged).then_some(log)
        },
        || format!("both failures to be counted and logged:\n{}", s.gw.stderr()),
    );
    assert_eq!(served_leaf(&s, Some(STATS), STATS), s.stats.der);
    assert_eq!(served_leaf(&s, Some(ORG), ORG), s.org.der);
    assert!(
        log.contains("certificate \"stats\" was not reloaded, the old one stays in use")
            && log.contains("does not match the certificate"),
        "{log}"
    );
    assert!(
        log.contains("certificate \"org\" was not reloaded") && log.contains("org.pem"),
        "{log}"
    );
}

#[test]
fn watched_certificate_files_are_reloaded_when_they_change() {
    let s = setup(|spec| {
        let mut tls = spec.tls_listener.clone().unwrap();
        tls = tls.replace(
            "  default_certificate: stats",
            "  default_certificate: stats\n  watch: true\n  watch_interval_seconds: 0.2",
        );
        spec.tls_listener(&tls)
    });
    let renewed = s.ca.leaf_until(&[ORG], 2097, 3, 1);
    // The two files change one after the other, as with a renewal tool: a look in between sees
    // a certificate with the wrong key, fails and keeps the old pair; the next one succeeds.
    renewed.write(s.certs.path(), "org");
    eventually(Duration::from_secs(20), "the watcher to reload org", || {
        let leaf = served_leaf(&s, Some(ORG), ORG);
        (leaf == renewed.der).then_some(())
    });
    assert!(reloads(&s.gw, "org", "ok") >= 1.0);
}

#[test]
fn the_http_listener_redirects_to_https_keeping_host_path_and_query() {
    let s = setup(|spec| spec.listener("redirect_to_https: true"));
    let r = request(
        s.gw.http,
        "GET",
        "/tracker.js?v=2",
        &[("Host", "stats.example.com:80")],
        b"",
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://stats.example.com/tracker.js?v=2")
    );
    let r = request(
        s.gw.http,
        "POST",
        "/api",
        &[("Host", STATS), ("Origin", "https://example.com")],
        b"{}",
    );
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://stats.example.com/api"));
    assert_eq!(s.ackee.count(), 0);
}

#[test]
fn the_acme_webroot_serves_challenge_tokens_and_refuses_everything_else() {
    let webroot = tempfile::tempdir().unwrap();
    let challenges = webroot.path().join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(
        challenges.join("Xy9_token-1"),
        "Xy9_token-1.key-authorisation",
    )
    .unwrap();
    std::fs::write(webroot.path().join("private.txt"), "secret").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("passwd"), "root:x:0:0").unwrap();
    std::os::unix::fs::symlink(outside.path().join("passwd"), challenges.join("escape")).unwrap();
    let root = webroot.path().display().to_string();
    let s = setup(|spec| {
        spec.listener(&format!(
            "redirect_to_https: true\nacme_webroot: \"{root}\""
        ))
    });

    let ok = request(
        s.gw.http,
        "GET",
        "/.well-known/acme-challenge/Xy9_token-1",
        &[("Host", STATS)],
        b"",
    );
    assert_eq!(
        ok.status, 200,
        "challenges are served even with the redirect on"
    );
    assert_eq!(ok.text(), "Xy9_token-1.key-authorisation");
    for path in [
        "/.well-known/acme-challenge/missing",
        "/.well-known/acme-challenge/../../private.txt",
        "/.well-known/acme-challenge/..%2f..%2fprivate.txt",
        "/.well-known/acme-challenge/%2e%2e/private.txt",
        "/.well-known/acme-challenge/escape",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge",
    ] {
        let r = request(s.gw.http, "GET", path, &[("Host", STATS)], b"");
        assert_eq!(r.status, 404, "{path}");
        assert!(
            !r.text().contains("secret") && !r.text().contains("root:"),
            "{path}"
        );
    }
    assert_eq!(s.ackee.count(), 0);
    let m = s.gw.scrape();
    assert_eq!(
        m.get(
            "ackee_gateway_acme_challenges_total",
            &[("result", "served")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "ackee_gateway_acme_challenges_total",
            &[("result", "not_found")]
        ),
        7.0
    );
}

#[test]
fn an_h2_body_ending_with_an_empty_data_frame_reaches_ackee_once_and_well_framed() {
    // pingora issue #935: such a body, sent on chunked, got its terminator twice, which
    // poisoned the pooled connection to Ackee.
    let s = setup(|spec| spec);
    let bodies: Vec<String> = ["createRecord", "updateRecord", "createAction"]
        .iter()
        .map(|m| mutation_body(m))
        .collect();
    for body in &bodies {
        let r = common::tls::h2_request_empty_end(
            &s.ca,
            s.gw.https,
            STATS,
            "POST",
            "/api",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A plain request after them on the same pooled upstream connection.
    let (r, _) = h2_request(&s.ca, s.gw.https, STATS, "GET", "/tracker.js", &[], b"");
    assert_eq!(r.status, 200);
    let seen = s.ackee.seen();
    let posts: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), bodies.len(), "each body reached Ackee once");
    for (seen, body) in posts.iter().zip(&bodies) {
        assert_eq!(seen.body, body.as_bytes());
        assert_eq!(
            seen.headers_named("content-length"),
            [body.len().to_string()]
        );
        assert!(seen.header("transfer-encoding").is_none());
    }
    assert_eq!(
        seen.iter()
            .map(|r| r.connection)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1,
        "one upstream connection carried them all, so none was poisoned"
    );
}
