//! Preflights are answered at the edge: the real binary in front of a fake Ackee that would
//! answer them too, and must never see one.

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

const ACAO: &str = "access-control-allow-origin";

#[test]
fn an_allowed_preflight_gets_204_with_ackees_headers_and_never_reaches_ackee() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));

    let r = preflight(gw.http, "https://example.com");
    assert_eq!(r.status, 204);
    assert_eq!(r.headers_named(ACAO), ["https://example.com"]);
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, PATCH, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type, Authorization, Time-Zone")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("3600"));
    assert_eq!(r.headers_named("vary"), ["Origin"]);
    assert!(r.body.is_empty());
    assert_eq!(ackee.count(), 0, "the preflight must not reach Ackee");
}

#[test]
fn the_connection_stays_open_after_a_preflight_for_the_tracker_post() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));

    let mut conn = Conn::open(gw.http);
    let origin = [("Origin", "https://example.com")];
    let pre = conn.request(
        "OPTIONS",
        "/api",
        &[
            origin[0],
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_ne!(pre.header("connection"), Some("close"));
    let body = mutation_body("createRecord");
    let post = conn.request(
        "POST",
        "/api",
        &[
            origin[0],
            ("Content-Type", "application/json;charset=UTF-8"),
        ],
        body.as_bytes(),
    );
    assert_eq!(post.status, 200);
    assert!(post.text().contains("createRecord"));
    // A refused preflight keeps the connection too.
    let refused = conn.request(
        "OPTIONS",
        "/api",
        &[
            ("Origin", "https://evil.test"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(refused.status, 403);
    let again = conn.request("GET", "/tracker.js", &[], b"");
    assert_eq!(again.status, 200);
    assert_eq!(ackee.count(), 2);
}

/// Sends a preflight with these fields and checks the refusal: 403, no
/// Access-Control-Allow-*, `Vary: Origin`, and a plain-text body naming the `reason`.
fn assert_refused(gw: &Gateway, what: &str, headers: &[(&str, &str)], reason: &str) {
    let r = request(gw.http, "OPTIONS", "/api", headers, b"");
    assert_eq!(r.status, 403, "{what}");
    assert!(
        !r.headers
            .iter()
            .any(|(k, _)| k.starts_with("access-control-allow-")),
        "{what}: no Access-Control-Allow-* on a refusal, got {:?}",
        r.headers
    );
    assert_eq!(r.headers_named("vary"), ["Origin"], "{what}");
    let plain = Some("text/plain; charset=utf-8");
    assert_eq!(r.header("content-type"), plain, "{what}");
    let body = match reason {
        "origin" => "Forbidden: this origin is not allowed to use this Ackee server (CORS)\n",
        "method" => "Forbidden: this method is not allowed by CORS\n",
        _ => "Forbidden: a requested header is not allowed by CORS\n",
    };
    assert_eq!(r.text(), body, "{what}");
}

#[test]
fn refused_preflights_get_403_without_allow_headers_but_with_vary() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let post = ("Access-Control-Request-Method", "POST");
    for (what, origin) in [
        ("unknown origin", "https://evil.test"),
        ("substring of an allowed origin", "https://example.co"),
        (
            "allowed origin as a prefix of another host",
            "https://example.com.evil.net",
        ),
        ("suffix without a label boundary", "https://evilexample.org"),
        ("pattern parent itself", "https://example.org"),
        ("null origin", "null"),
        ("empty origin", ""),
    ] {
        assert_refused(&gw, what, &[("Origin", origin), post], "origin");
    }
    let ok = ("Origin", "https://example.com");
    assert_refused(&gw, "two origin headers", &[ok, ok, post], "origin");
    let delete = ("Access-Control-Request-Method", "DELETE");
    assert_refused(&gw, "method not allowed", &[ok, delete], "method");
    let evil = ("Access-Control-Request-Headers", "content-type,x-evil");
    assert_refused(&gw, "header not allowed", &[ok, post, evil], "header");
    assert_eq!(ackee.count(), 0, "refused preflights must not reach Ackee");
}

#[test]
fn subdomain_patterns_allow_any_depth_and_echo_the_request_origin() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    for origin in ["https://www.example.org", "https://a.b.c.example.org"] {
        let r = preflight(gw.http, origin);
        assert_eq!(r.status, 204, "{origin}");
        assert_eq!(r.headers_named(ACAO), [origin]);
    }
}

#[test]
fn options_without_a_request_method_is_an_ordinary_request_and_is_proxied() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let r = request(
        gw.http,
        "OPTIONS",
        "/api",
        &[("Origin", "https://example.com")],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(ackee.count(), 1);
    assert_eq!(ackee.seen()[0].method, "OPTIONS");
    assert_eq!(r.headers_named(ACAO), ["https://example.com"]);
}

#[test]
fn custom_methods_headers_max_age_and_credentials_are_configurable() {
    let ackee = FakeAckee::start();
    let spec = Spec::new(ackee.addr).cors(
        "allowed_origins: [\"https://example.com\"]\nallow_credentials: false\nallowed_methods: [POST]\nallowed_headers: [Content-Type, X-Site]\nmax_age_seconds: 600",
    );
    let gw = Gateway::start(&spec);
    let r = request(
        gw.http,
        "OPTIONS",
        "/api",
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "x-site"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type, X-Site")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let patch = request(
        gw.http,
        "OPTIONS",
        "/api",
        &[
            ("Origin", "https://example.com"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
        b"",
    );
    assert_eq!(patch.status, 403);
}

#[test]
fn ackee_allow_origin_replaces_the_configured_list_with_ackees_meaning() {
    let ackee = FakeAckee::start();
    let spec = Spec::new(ackee.addr).env(
        "ACKEE_ALLOW_ORIGIN",
        "https://a.example, http://localhost:8080 ,https://B.example",
    );
    let gw = Gateway::start(&spec);
    for origin in [
        "https://a.example",
        "http://localhost:8080",
        "https://b.example",
    ] {
        assert_eq!(preflight(gw.http, origin).status, 204, "{origin}");
    }
    assert_eq!(
        preflight(gw.http, "https://example.com").status,
        403,
        "the file's list is replaced"
    );
    assert!(
        gw.stderr()
            .contains("is replaced by the environment variable ACKEE_ALLOW_ORIGIN")
    );
}

#[test]
fn a_star_allows_any_origin_without_credentials() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).env("ACKEE_ALLOW_ORIGIN", "*"));
    let r = preflight(gw.http, "https://anything.test");
    assert_eq!(r.status, 204);
    assert_eq!(r.headers_named(ACAO), ["*"]);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(preflight(gw.http, "null").status, 403);
}
