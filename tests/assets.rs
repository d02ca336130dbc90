//! Ackee's static files served from the edge (`assets`), over real sockets against the fake
//! Ackee: every variant decodes to Ackee's exact bytes, `Accept-Encoding` with q-values,
//! `If-None-Match` and `HEAD`, a changed file taken at the next refresh and never half-served,
//! Ackee down at start-up then up, answers that are not taken, aliases, `assets: off`, the
//! headers every answer gets, the metrics, and the config's checks.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::client::{Conn, Response, request};
use common::fake_ackee::{FakeAckee, ackee_file, tracker_stand_in};
use common::gateway::{Gateway, Scrape, Spec};
use common::process::{binary, eventually, eventually_or_else, run};

const FILES: [&str; 6] = [
    "/tracker.js",
    "/",
    "/index.html",
    "/index.js",
    "/index.css",
    "/favicon.ico",
];

/// Fast health checks, so a replica that comes back is used within a fraction of a second.
const FAST_HEALTH: &str = "health_check: {interval_seconds: 0.05, timeout_seconds: 0.5, unhealthy_after: 1, healthy_after: 1}";

fn spec(ackee: &FakeAckee, assets: &str) -> Spec {
    Spec::new(ackee.addr).upstream(FAST_HEALTH).assets(assets)
}

/// Starts the gateway and waits until the edge copy is in use.
fn serving(spec: &Spec) -> Gateway {
    let gw = Gateway::start(spec);
    edge_copy_in_use(&gw, "no edge copy after 30 s; the gateway said");
    gw
}

/// Waits up to 30 s for the edge copy to be in use; on a timeout panics with `what` and what the
/// gateway logged.
fn edge_copy_in_use(gw: &Gateway, what: &str) {
    eventually_or_else(
        Duration::from_secs(30),
        || (gw.scrape().get("ackee_gateway_assets_served", &[]) == 1.0).then_some(()),
        || format!("{what}:\n{}", gw.stderr()),
    );
}

fn decode(r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding") {
        None => out.extend_from_slice(&r.body),
        Some("br") => {
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::stream::decode_all(&r.body[..]).unwrap(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    request(gw.http, "GET", path, headers, b"")
}

/// The coding of the smallest compressed variant of `path`: a tie in `Accept-Encoding` goes
/// to it.
fn smallest(gw: &Gateway, path: &str) -> &'static str {
    let size = |coding: &str| get(gw, path, &[("Accept-Encoding", coding)]).body.len();
    ["br", "gzip", "zstd"]
        .into_iter()
        .min_by_key(|c| size(c))
        .unwrap()
}

#[test]
fn every_variant_decodes_to_ackees_exact_bytes_with_its_own_headers() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "refresh_seconds: 60"));
    let before = ackee.count();
    for path in FILES {
        let (content_type, original) = ackee_file(path).unwrap();
        let mut etags = Vec::new();
        for accept in ["br", "gzip", "zstd", "identity", ""] {
            let headers: &[(&str, &str)] = if accept.is_empty() {
                &[]
            } else {
                &[("Accept-Encoding", accept)]
            };
            let r = get(&gw, path, headers);
            assert_eq!(r.status, 200, "{path} {accept}");
            assert_eq!(
                decode(&r),
                original,
                "{path} with Accept-Encoding {accept:?}"
            );
            assert_eq!(r.header("content-type"), Some(content_type), "{path}");
            assert_eq!(
                r.header("content-length"),
                Some(r.body.len().to_string().as_str()),
                "{path} {accept}: an exact Content-Length"
            );
            assert!(
                r.body.len() <= original.len(),
                "{path} {accept}: never larger"
            );
            let expect_cache = if path == "/tracker.js" {
                "public, max-age=3600, stale-while-revalidate=86400"
            } else {
                "no-cache"
            };
            assert_eq!(r.header("cache-control"), Some(expect_cache), "{path}");
            assert_eq!(
                r.headers_named("vary"),
                ["Accept-Encoding, Origin"],
                "{path}"
            );
            let etag = r.header("etag").expect("an ETag").to_owned();
            assert!(
                etag.starts_with('"') && !etag.starts_with("W/"),
                "strong: {etag}"
            );
            etags.push((r.header("content-encoding").map(str::to_owned), etag));
        }
        // One tag per variant: the same coding always has the same tag, two codings never.
        etags.sort();
        etags.dedup();
        let codings: std::collections::BTreeSet<_> = etags.iter().map(|(c, _)| c).collect();
        assert_eq!(codings.len(), etags.len(), "{path}: {etags:?}");
    }
    // The tracker compresses; the favicon's bytes do not, so it keeps identity alone.
    let best = get(
        &gw,
        "/tracker.js",
        &[("Accept-Encoding", "gzip, deflate, br, zstd")],
    );
    assert_eq!(
        best.header("content-encoding"),
        Some(smallest(&gw, "/tracker.js"))
    );
    assert!(
        best.body.len() * 3 < tracker_stand_in().len(),
        "{}",
        best.body.len()
    );
    let ico = get(
        &gw,
        "/favicon.ico",
        &[("Accept-Encoding", "gzip, br, zstd")],
    );
    assert_eq!(ico.header("content-encoding"), None);
    assert_eq!(ackee.count(), before, "none of these reached Ackee");
}

#[test]
fn accept_encoding_q_values_and_exclusions_are_honoured() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "refresh_seconds: 60"));
    let best = smallest(&gw, "/tracker.js");
    let cases: &[(&str, Option<&str>)] = &[
        ("gzip, deflate, br, zstd", Some(best)),
        (
            "gzip, br",
            Some(if best == "zstd" {
                smaller(&gw, "gzip", "br")
            } else {
                best
            }),
        ),
        ("gzip;q=1.0, br;q=0.5", Some("gzip")),
        ("zstd;q=0.9, gzip;q=0.8", Some("zstd")),
        ("br;q=0, gzip", Some("gzip")),
        ("identity;q=0, gzip;q=0.1", Some("gzip")),
        ("identity;q=0", None),
        ("*", Some(best)),
        ("*;q=0, gzip", Some("gzip")),
        ("gzip;q=0.5, identity", None),
        ("deflate", None),
        ("", None),
    ];
    for (accept, want) in cases {
        let r = get(&gw, "/tracker.js", &[("Accept-Encoding", accept)]);
        assert_eq!(
            r.header("content-encoding"),
            *want,
            "Accept-Encoding: {accept}"
        );
        assert_eq!(decode(&r), tracker_stand_in(), "Accept-Encoding: {accept}");
    }
    let none = get(&gw, "/tracker.js", &[]);
    assert_eq!(none.header("content-encoding"), None, "no Accept-Encoding");
}

/// Of two codings, the one whose variant of the tracker is smaller.
fn smaller(gw: &Gateway, a: &'static str, b: &'static str) -> &'static str {
    let size = |coding: &str| {
        get(gw, "/tracker.js", &[("Accept-Encoding", coding)])
            .body
            .len()
    };
    if size(a) <= size(b) { a } else { b }
}

#[test]
fn if_none_match_gets_304_with_the_same_validators_and_head_gets_no_body() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "refresh_seconds: 60"));
    let gz = [("Accept-Encoding", "gzip")];
    let full = get(&gw, "/tracker.js", &gz);
    let etag = full.header("etag").unwrap().to_owned();
    let weak = format!("W/{etag}");
    let list = format!("\"old\", {etag}");
    let mut conn = Conn::open(gw.http);
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let r = conn.request("GET", "/tracker.js", &[gz[0], ("If-None-Match", inm)], b"");
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("content-length"),
            None,
            "a 304 has no Content-Length"
        );
        for h in ["etag", "cache-control", "vary"] {
            assert_eq!(r.header(h), full.header(h), "{h} on the 304 for {inm}");
        }
    }
    // Another variant's tag, or a stale one: the whole answer.
    for inm in ["\"old\"", "\"\"", "junk"] {
        let r = conn.request("GET", "/tracker.js", &[gz[0], ("If-None-Match", inm)], b"");
        assert_eq!(r.status, 200, "If-None-Match: {inm}");
        assert_eq!(decode(&r), tracker_stand_in());
    }
    let br_tag = get(&gw, "/tracker.js", &[("Accept-Encoding", "br")]);
    let r = conn.request(
        "GET",
        "/tracker.js",
        &[gz[0], ("If-None-Match", br_tag.header("etag").unwrap())],
        b"",
    );
    assert_eq!(
        r.status, 200,
        "the br variant's tag does not validate the gzip one"
    );
    // HEAD: the GET's headers, no body, and the connection goes on.
    let head = conn.request("HEAD", "/tracker.js", &gz, b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for h in [
        "etag",
        "cache-control",
        "vary",
        "content-length",
        "content-encoding",
        "content-type",
    ] {
        assert_eq!(head.header(h), full.header(h), "{h} on HEAD");
    }
    let after = conn.request("GET", "/index.html", &[], b"");
    assert_eq!(after.status, 200, "keep-alive after 304s and HEAD");
    assert_eq!(after.body, ackee_file("/index.html").unwrap().1);
    // Counted once the answer is written: the client can read it first. An answer's bytes are
    // counted just after the answer itself, in another family that a scrape may read first:
    // wait for both.
    let gz_len = full.body.len() as f64;
    let gz_bytes = |s: &Scrape| {
        s.get(
            "ackee_gateway_assets_response_bytes_total",
            &[("encoding", "gzip")],
        )
    };
    let s = gw.scrape_until("every edge answer counted", |s| {
        s.total("ackee_gateway_assets_responses_total") >= 12.0 && gz_bytes(s) >= 5.0 * gz_len
    });
    let got = |file, encoding, status| {
        s.get(
            "ackee_gateway_assets_responses_total",
            &[("file", file), ("encoding", encoding), ("status", status)],
        )
    };
    assert_eq!(got("tracker", "gzip", "304"), 4.0);
    assert_eq!(
        got("tracker", "gzip", "200"),
        6.0,
        "full, 3 stale, another tag, HEAD"
    );
    assert_eq!(got("tracker", "br", "200"), 1.0);
    assert_eq!(got("index_html", "identity", "200"), 1.0);
    assert_eq!(
        gz_bytes(&s),
        5.0 * gz_len,
        "body bytes sent: the full answer, the 3 stale ones and another tag's, not the HEAD or the 304s"
    );
}

#[test]
fn a_changed_file_is_served_after_the_next_refresh_and_never_half_swapped() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "refresh_seconds: 0.05"));
    let version = |n: u8| -> Vec<u8> {
        let mut v = tracker_stand_in();
        v.extend_from_slice(format!("/* version {n} */\n").as_bytes());
        v.extend(std::iter::repeat_n(b'a' + n, 3000));
        v
    };
    let versions: Vec<Vec<u8>> = (0..4).map(version).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for accept in ["br", "gzip", "zstd", "identity"] {
        let stop = stop.clone();
        let allowed: Vec<Vec<u8>> = std::iter::once(tracker_stand_in())
            .chain(versions.iter().cloned())
            .collect();
        let addr = gw.http;
        readers.push(std::thread::spawn(move || {
            let mut conn = Conn::open(addr);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = conn.request("GET", "/tracker.js", &[("Accept-Encoding", accept)], b"");
                assert_eq!(r.status, 200);
                let body = decode(&r);
                assert!(
                    allowed.contains(&body),
                    "{accept}: a body that is no version of the tracker ({} bytes)",
                    body.len()
                );
                n += 1;
            }
            n
        }));
    }
    let mut seen_tags = std::collections::HashSet::new();
    for v in &versions {
        ackee.set(|b| {
            b.files.insert(
                "/tracker.js".into(),
                (200, "text/javascript; charset=utf-8".into(), v.clone()),
            );
        });
        let r = eventually(Duration::from_secs(20), "the new tracker", || {
            let r = get(&gw, "/tracker.js", &[("Accept-Encoding", "br")]);
            (decode(&r) == *v).then_some(r)
        });
        assert!(
            seen_tags.insert(r.header("etag").unwrap().to_owned()),
            "a new ETag per version"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        assert!(r.join().expect("a reader failed") > 0);
    }
    let s = gw.scrape_until("a refresh that finds nothing new", |s| {
        s.get(
            "ackee_gateway_assets_refreshes_total",
            &[("outcome", "unchanged")],
        ) >= 1.0
    });
    assert!(
        s.get(
            "ackee_gateway_assets_refreshes_total",
            &[("outcome", "changed")]
        ) >= 5.0
    );
    assert_eq!(ackee.count(), 0, "no visitor's request reached Ackee");
}

#[test]
fn ackee_down_at_start_up_is_proxied_until_a_copy_is_taken() {
    let mut ackee = FakeAckee::start();
    ackee.stop();
    // Without health checks the replica counts as up, so the refreshes try, fail and say so.
    let spec = spec(&ackee, "refresh_seconds: 0.05").upstream("health_check: {type: none}");
    let gw = Gateway::start(&spec);
    gw.scrape_until("a refresh that found Ackee down", |s| {
        s.get(
            "ackee_gateway_assets_refreshes_total",
            &[("outcome", "unreachable")],
        ) >= 1.0
    });
    let r = get(&gw, "/tracker.js", &[]);
    assert!(r.status >= 500, "Ackee is down: {}", r.status);
    assert_eq!(r.header("etag"), None);
    let s = gw.scrape();
    assert_eq!(s.get("ackee_gateway_assets_served", &[]), 0.0);
    ackee.restart();
    edge_copy_in_use(&gw, "no copy once Ackee is up");
    let r = get(&gw, "/tracker.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(decode(&r), tracker_stand_in());
    assert_eq!(
        visitors(&ackee, "/tracker.js"),
        0,
        "only the gateway's own fetches reached Ackee"
    );
    assert!(
        gw.stderr()
            .contains("Ackee's static files: cannot refresh (unreachable)")
    );
    assert!(
        gw.stderr()
            .contains("Ackee's static files: served from the edge")
    );
}

#[test]
fn answers_that_are_not_ackees_files_are_not_taken_and_the_last_copy_stays() {
    // Too large from the start: nothing is taken, the files are proxied.
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&spec(&ackee, "refresh_seconds: 0.05\nmax_file_bytes: 2048"));
    gw.scrape_until("a refresh refused for size", |s| {
        s.get(
            "ackee_gateway_assets_refreshes_total",
            &[("outcome", "too_large")],
        ) >= 1.0
    });
    let r = get(&gw, "/tracker.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(
        r.header("content-encoding"),
        None,
        "proxied as Ackee sends it"
    );
    assert_eq!(r.header("etag"), None);
    assert_eq!(visitors(&ackee, "/tracker.js"), 1);
    assert!(
        gw.stderr()
            .contains("larger than assets.max_file_bytes (2048 bytes)")
    );
    drop(gw);

    // A copy taken, then Ackee answers 500 or the wrong type: the copy stays in use. The wrong
    // type replaces the 500 with no good answer between them (a refresh every 50 ms would catch
    // one, and log the way back and a second failure), so the refreshes fail for one reason
    // throughout: one state change, one line.
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "refresh_seconds: 0.05"));
    let good = get(&gw, "/index.css", &[])
        .header("etag")
        .unwrap()
        .to_owned();
    let bad_answers = |s: &Scrape| {
        s.get(
            "ackee_gateway_assets_refreshes_total",
            &[("outcome", "bad_answer")],
        )
    };
    for (status, content_type) in [(500, "text/plain"), (200, "text/html; charset=utf-8")] {
        ackee.set(|b| {
            b.files.insert(
                "/index.css".into(),
                (
                    status,
                    content_type.into(),
                    b"<h1>Bad Gateway</h1>".to_vec(),
                ),
            );
        });
        // A fetch of the file after the change got this answer. Refreshes run one at a time,
        // so every refresh counted after that fetch was seen got it too.
        let fetched = fetches(&ackee, "/index.css");
        eventually(
            Duration::from_secs(20),
            "a refresh to fetch the new answer",
            || (fetches(&ackee, "/index.css") > fetched).then_some(()),
        );
        let label_before = bad_answers(&gw.scrape());
        gw.scrape_until("a refresh refused for its answer", |s| {
            bad_answers(s) > label_before
        });
        let r = get(&gw, "/index.css", &[]);
        assert_eq!(
            r.header("etag"),
            Some(good.as_str()),
            "the last good copy ({status} {content_type})"
        );
        assert_eq!(r.body, ackee_file("/index.css").unwrap().1);
    }
    ackee.set(|b| b.files.clear());
    let err = gw.stderr();
    assert!(err.contains("/index.css: Ackee answered 500"), "{err}");
    assert_eq!(
        err.matches("cannot refresh (bad answer)").count(),
        1,
        "one line per state change, not per refresh: {err}"
    );
    assert_eq!(ackee.count(), 0);
}

fn fetches(ackee: &FakeAckee, path: &str) -> usize {
    ackee
        .static_fetches()
        .iter()
        .filter(|s| s.path == path)
        .count()
}

/// The requests for `path` that reached Ackee other than the gateway's own fetches, read at
/// one instant: the refreshes go on fetching every 50 ms, so two separate counts (all requests,
/// then the fetches) can fall either side of one.
fn visitors(ackee: &FakeAckee, path: &str) -> usize {
    ackee.seen().iter().filter(|s| s.path == path).count()
}

#[test]
fn aliases_serve_the_tracker_and_assets_off_proxies_everything() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(
        &ackee,
        "tracker_aliases: [\"/stats.js\", \"/js/a.js\"]",
    ));
    for alias in ["/stats.js", "/js/a.js"] {
        let r = get(&gw, alias, &[("Accept-Encoding", "br")]);
        assert_eq!(r.status, 200, "{alias}");
        assert_eq!(decode(&r), tracker_stand_in(), "{alias}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=3600, stale-while-revalidate=86400")
        );
    }
    assert_eq!(
        ackee.count(),
        0,
        "Ackee knows no /stats.js, and never saw it"
    );
    let s = gw.scrape_until("both alias answers counted", |s| {
        s.total("ackee_gateway_assets_responses_total") >= 2.0
    });
    assert_eq!(
        s.get(
            "ackee_gateway_assets_responses_total",
            &[("file", "alias"), ("encoding", "br"), ("status", "200")]
        ),
        2.0
    );
    // Not an alias: Ackee's 404.
    assert_eq!(get(&gw, "/stats2.js", &[]).status, 404);
    drop(gw);

    let gw = Gateway::start(&spec(&ackee, "off"));
    let r = get(&gw, "/tracker.js", &[("Accept-Encoding", "br")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, tracker_stand_in());
    assert_eq!(r.header("etag"), None);
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(
        ackee.static_fetches().len(),
        5,
        "only the first gateway fetched the files"
    );
    let s = gw.scrape();
    assert_eq!(s.get("ackee_gateway_assets_served", &[]), 0.0);
    assert_eq!(s.total("ackee_gateway_assets_refreshes_total"), 0.0);
}

#[test]
fn edge_answers_get_cors_and_listener_headers_and_are_logged_and_counted() {
    let ackee = FakeAckee::start();
    let spec = spec(&ackee, "refresh_seconds: 60")
        .listener("response_headers: {X-Frame-Options: deny}")
        .top("access_log: {format: text}");
    let gw = serving(&spec);
    let r = get(&gw, "/tracker.js", &[("Origin", "https://example.com")]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("x-frame-options"), Some("deny"));
    assert_eq!(r.headers_named("vary"), ["Accept-Encoding, Origin"]);
    let other = get(&gw, "/tracker.js", &[("Origin", "https://evil.example")]);
    assert_eq!(other.status, 200, "disallowed_origin: forward");
    assert!(other.cors_header_names().is_empty());
    // A GET with a body goes to Ackee, so the body is never left unread.
    let with_body = request(gw.http, "GET", "/tracker.js", &[], b"x");
    assert_eq!(with_body.header("etag"), None);
    // POST /tracker.js is Ackee's 404, as before.
    assert_eq!(
        request(gw.http, "POST", "/tracker.js", &[], b"{}").status,
        404
    );
    let line = eventually(Duration::from_secs(10), "the access-log line", || {
        gw.stdout()
            .lines()
            .find(|l| l.contains("GET /tracker.js 200") && l.contains("replica=-"))
            .map(str::to_owned)
    });
    assert!(line.contains("cors=allowed"), "{line}");
    let s = gw.scrape_until("the requests counted", |s| {
        s.total("ackee_gateway_requests_total") >= 4.0
    });
    assert_eq!(
        s.get(
            "ackee_gateway_requests_total",
            &[("method", "GET"), ("status", "2xx"), ("protocol", "http1")]
        ),
        3.0,
        "the edge answer, the one to another origin and the one with a body"
    );
    assert_eq!(
        s.get("ackee_gateway_assets_refresh_interval_seconds", &[]),
        60.0
    );
    assert!(s.get("ackee_gateway_assets_age_seconds", &[]) < 60.0);
}

#[test]
fn the_config_check_names_every_assets_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    let yaml = r#"listeners: [{address: "127.0.0.1:8080"}]
cors: {allowed_origins: ["https://example.com"]}
upstream: {replicas: [{address: "127.0.0.1:3000"}]}
assets:
  refresh_seconds: 0
  max_file_bytes: 10
  tracker_aliases: ["/tracker.js", "/stats.js", "/stats.js", "stats.js", "/api/t.js"]
  cache_control: {tracker: "public, max-age=31536000, immutable", index_js: "", favicn: "x"}
"#;
    std::fs::write(&path, yaml).unwrap();
    let (code, err) = run(&["-t", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    for want in [
        "assets.cache_control.favicn: unknown key; did you mean \"favicon\"?",
        "assets.refresh_seconds: found 0;",
        "assets.max_file_bytes: found 10; write a number of bytes from 1024 to 67108864",
        "assets.tracker_aliases[0]: \"/tracker.js\" is already one of Ackee's static files; write a path such as \"/stats.js\"",
        "assets.tracker_aliases[2]: \"/stats.js\" is also assets.tracker_aliases[1]; remove one",
        "assets.tracker_aliases[3]: \"stats.js\" is not a path",
        "assets.tracker_aliases[4]: \"/api/t.js\" is under /api, which Ackee or the gateway answers",
        "warning: ",
        "assets.cache_control.tracker: says immutable",
        "assets.cache_control.index_js: found \"\"; write a Cache-Control value such as \"no-cache\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    for (value, ok) in [("off", true), ("false", true), ("on", true), ("42", false)] {
        std::fs::write(
            &path,
            format!(
                "{}assets: {value}\n",
                &yaml[..yaml.find("assets:").unwrap()]
            ),
        )
        .unwrap();
        let (code, err) = run(&["-t", "-c", path.to_str().unwrap()], &[]);
        assert_eq!(code == 0, ok, "assets: {value}: {err}");
        if !ok {
            assert!(
                err.contains("assets: found 42; write off, or a mapping"),
                "{err}"
            );
        }
    }
}

#[test]
fn explain_says_whether_the_tracker_is_served_from_the_edge_its_sizes_and_its_policy() {
    let ackee = FakeAckee::start();
    let gw = serving(&spec(&ackee, "tracker_aliases: [\"/stats.js\"]"));
    let conf = gw.config.to_str().unwrap();
    let (out, _) = explain(&["--origin", "https://example.com", "-c", conf]);
    let line = out
        .lines()
        .find(|l| l.starts_with("Tracker script: "))
        .unwrap_or_else(|| panic!("no tracker line in:\n{out}"));
    let identity = tracker_stand_in().len();
    for want in [
        "served from the edge at /tracker.js and /stats.js, from replica \"ackee-0\" now: ",
        &format!("{identity} B (br "),
        ", gzip ",
        ", zstd ",
        "Cache-Control: public, max-age=3600, stale-while-revalidate=86400",
    ] {
        assert!(line.contains(want), "{want:?} missing in: {line}");
    }
    // Online: the gateway's answers, and Ackee's own.
    let url = format!("http://{}/api", gw.http);
    let (out, _) = explain(&["--origin", "https://example.com", "--url", &url]);
    assert!(
        out.contains("compressed, cacheable and revalidated"),
        "{out}"
    );
    let url = format!("http://{}/api", ackee.addr);
    let (out, _) = explain(&["--origin", "https://example.com", "--url", &url]);
    assert!(out.contains("as Ackee itself sends it"), "{out}");
    drop(gw);
    let off = Gateway::start(&spec(&ackee, "off"));
    let (out, _) = explain(&[
        "--origin",
        "https://example.com",
        "-c",
        off.config.to_str().unwrap(),
    ]);
    assert!(
        out.contains("Tracker script: proxied to Ackee as Ackee sends it (assets: off)"),
        "{out}"
    );
}

/// Runs `ackee-gateway explain` and returns (stdout, exit code).
fn explain(args: &[&str]) -> (String, i32) {
    let out = std::process::Command::new(binary())
        .arg("explain")
        .args(args)
        .env_remove("ACKEE_ALLOW_ORIGIN")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}
