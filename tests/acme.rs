//! Certificates the gateway obtains and renews itself, against a real ACME server: Pebble
//! (Debian's `pebble`), started here on loopback with its DNS server resolving every name to
//! 127.0.0.1, validating on the gateway's own listeners.
//!
//! First issuance over HTTP-01 and over TLS-ALPN-01, the certificate served by SNI and trusted
//! through Pebble's root, a restart that reuses the stored certificate without an order, a
//! renewal (Pebble issuing 30-second certificates) swapped in under load with no failed
//! request, the CA down (old certificate kept, the failure counted and logged once) or
//! answering errors (its problem document in the log and in `ackee-gateway certificates`), and
//! bad ACME configs refused by `-t` without contacting any CA.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod pebble;
    pub mod process;
    pub mod tls;
}

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_ackee::FakeAckee;
use common::gateway::{Gateway, Spec, free_port};
use common::pebble::{Pebble, PebbleSpec};
use common::process::{binary, eventually, eventually_or_else, run};
use common::tls::connect;

const NAME: &str = "stats.acme.test";
const ISSUED: &str = "ackee_gateway_acme_orders_total";

/// Ports for the gateway, known before Pebble starts (it validates on them).
struct Ports {
    http: u16,
    metrics: u16,
    https: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            http: free_port(),
            metrics: free_port(),
            https: free_port(),
        }
    }
}

fn pebble(ports: &Ports, validity: Option<u64>, env: &[(&str, &str)]) -> Pebble {
    Pebble::start(&PebbleSpec {
        http_port: ports.http,
        tls_port: ports.https,
        validity_seconds: validity,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        eab: None,
    })
}

/// A gateway with a plain listener (HTTP-01, redirecting to HTTPS) and a TLS listener with a
/// managed certificate for [`NAME`].
fn spec(ackee: &FakeAckee, ports: &Ports, ca: &Pebble, state: &Path, challenge: &str) -> Spec {
    Spec::new(ackee.addr)
        .ports(ports.http, ports.metrics, ports.https)
        .listener("redirect_to_https: true")
        .tls_listener(&format!(
            r#"tls:
  acme:
    domains: ["{NAME}"]
    contact: "mailto:admin@acme.test"
    directory: "{dir}"
    directory_ca: "{ca}"
    challenge: {challenge}"#,
            dir = ca.directory,
            ca = ca.ca_file.display(),
        ))
        .top(&format!("state_directory: \"{}\"", state.display()))
}

fn orders(gw: &Gateway, result: &str) -> f64 {
    gw.scrape()
        .get(ISSUED, &[("certificate", NAME), ("result", result)])
}

/// `ackee-gateway certificates` on the gateway's config: its exit code and standard output.
fn certificates(gw: &Gateway) -> (Option<i32>, String) {
    let out = std::process::Command::new(binary())
        .args(["certificates", "-c"])
        .arg(&gw.config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Waits until `n` orders were issued and logged: the order is counted before its line is
/// written.
fn wait_issued(gw: &Gateway, n: f64, ca: &Pebble) {
    eventually_or_else(
        Duration::from_secs(60),
        || {
            let logged = gw.stderr().matches(") issued by ").count() as f64;
            (orders(gw, "issued") >= n && logged >= n).then_some(())
        },
        || {
            format!(
                "no certificate issued after 60 s\ngateway:\n{}\npebble:\n{}",
                gw.stderr(),
                ca.log()
            )
        },
    );
}

/// A TLS handshake for `sni` that verifies the chain against Pebble's root; the leaf served.
fn handshake(gw: &Gateway, config: rustls::ClientConfig, sni: &str) -> Result<Vec<u8>, String> {
    connect(gw.https, sni, config).map(|c| c.leaf)
}

fn leaf_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn first_issuance(challenge: &str) {
    let ports = Ports::new();
    let ca = pebble(&ports, None, &[]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&spec(&ackee, &ports, &ca, state.path(), challenge));
    wait_issued(&gw, 1.0, &ca);
    assert_eq!(orders(&gw, "failed"), 0.0, "{}", gw.stderr());

    // Served by SNI, and trusted through Pebble's root.
    let mut c = connect(gw.https, NAME, ca.client_config()).expect("handshake");
    assert_eq!(leaf_names(&c.leaf), vec![NAME.to_owned()]);
    let r = c.conn.request("GET", "/tracker.js", &[("Host", NAME)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // The expiry gauge is the certificate's.
    let expiry = gw.scrape().get(
        "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
        &[("certificate", NAME)],
    );
    assert!(expiry > 1e9, "expiry {expiry}");

    // Stored with private modes.
    let pem = state
        .path()
        .join(format!("acme/certificates/{NAME}/certificate.pem"));
    assert_eq!(mode(&pem), 0o600);
    let accounts: Vec<_> = std::fs::read_dir(state.path().join("acme/accounts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(mode(&accounts[0]), 0o600);
    let log = gw.stderr();
    assert!(
        log.contains("none is stored yet; ordering it from"),
        "{log}"
    );
    assert!(
        log.contains(&format!("certificate \"{NAME}\" ({NAME}) issued by")),
        "{log}"
    );
}

#[test]
fn first_issuance_over_http_01_is_served_by_sni() {
    first_issuance("http-01");
}

#[test]
fn first_issuance_over_tls_alpn_01_is_served_by_sni() {
    first_issuance("tls-alpn-01");
}

#[test]
fn a_restart_serves_the_stored_certificate_without_a_new_order() {
    let ports = Ports::new();
    let ca = pebble(&ports, None, &[]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let spec = spec(&ackee, &ports, &ca, state.path(), "http-01");
    let first_leaf = {
        let gw = Gateway::start(&spec);
        wait_issued(&gw, 1.0, &ca);
        handshake(&gw, ca.client_config(), NAME).unwrap()
    };
    let gw = Gateway::start(&spec);
    // Served at once, from the state directory.
    let leaf = handshake(&gw, ca.client_config(), NAME).expect("handshake after restart");
    assert_eq!(leaf, first_leaf);
    assert!(
        gw.stderr().contains("the stored one from"),
        "{}",
        gw.stderr()
    );
    // And no order: give it a moment in which an order would have run and finished.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(orders(&gw, "issued") + orders(&gw, "failed"), 0.0);
    assert!(!gw.stderr().contains("ordering it"), "{}", gw.stderr());
    // `ackee-gateway certificates` shows it.
    let (code, text) = certificates(&gw);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!(
        "certificate \"{NAME}\": {NAME} from {}",
        ca.directory
    )));
    assert!(
        text.contains("issuer:       CN=Pebble Intermediate CA"),
        "{text}"
    );
    assert!(text.contains("last error:   none"), "{text}");
}

#[test]
fn a_renewal_is_swapped_in_under_load_without_a_failed_request() {
    let ports = Ports::new();
    // 30-second certificates: renewal is due after 20 s.
    let ca = pebble(&ports, Some(30), &[]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&spec(&ackee, &ports, &ca, state.path(), "http-01"));
    wait_issued(&gw, 1.0, &ca);
    let config = ca.client_config();
    // A keep-alive connection opened before the renewal, used again after it.
    let mut kept = connect(gw.https, NAME, config.clone()).expect("handshake");
    let r = kept
        .conn
        .request("GET", "/tracker.js", &[("Host", NAME)], b"");
    assert_eq!(r.status, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let leaves = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failures, requests, leaves) = (
                stop.clone(),
                failures.clone(),
                requests.clone(),
                leaves.clone(),
            );
            let (config, addr) = (config.clone(), gw.https);
            std::thread::spawn(move || {
                // Bounded: at most 3 minutes of requests, each on a new connection.
                let deadline = std::time::Instant::now() + Duration::from_secs(180);
                while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    let outcome = connect(addr, NAME, config.clone()).and_then(|mut c| {
                        let r = c
                            .conn
                            .try_request("GET", "/tracker.js", &[("Host", NAME)], b"")?;
                        (r.status == 200)
                            .then_some(c.leaf)
                            .ok_or(format!("status {}", r.status))
                    });
                    match outcome {
                        Ok(leaf) => {
                            leaves.lock().unwrap().insert(leaf);
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(90), "the renewal", || {
        (orders(&gw, "issued") >= 2.0).then_some(())
    });
    // Let the clients see the new certificate too.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while leaves.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        failures.len(),
        requests.load(Ordering::SeqCst),
        &failures[..failures.len().min(5)],
        gw.stderr()
    );
    assert!(
        leaves.lock().unwrap().len() >= 2,
        "no renewed certificate was served"
    );
    // The connection from before the swap still works, with its old certificate.
    let r = kept
        .conn
        .try_request("GET", "/tracker.js", &[("Host", NAME)], b"")
        .expect("the kept connection survives the swap");
    assert_eq!(r.status, 200);
    assert!(leaves.lock().unwrap().iter().any(|l| *l != kept.leaf));
    assert_eq!(orders(&gw, "failed"), 0.0, "{}", gw.stderr());
}

#[test]
fn with_the_ca_down_the_old_certificate_stays_and_the_failure_is_counted_and_logged_once() {
    let ports = Ports::new();
    let mut ca = pebble(&ports, Some(30), &[]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&spec(&ackee, &ports, &ca, state.path(), "http-01"));
    wait_issued(&gw, 1.0, &ca);
    let config = ca.client_config();
    let leaf = handshake(&gw, config.clone(), NAME).unwrap();
    ca.stop();
    let next = || {
        gw.scrape().get(
            "ackee_gateway_acme_next_order_timestamp_seconds",
            &[("certificate", NAME)],
        )
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    // A failed order is counted, then logged, then its next attempt is set: wait for all three.
    eventually_or_else(
        Duration::from_secs(60),
        || {
            let logged = gw.stderr().contains("the order failed");
            (orders(&gw, "failed") >= 1.0 && logged && next() > now() + 20.0).then_some(())
        },
        || {
            format!(
                "a failed renewal, logged, its retry after the backoff (next attempt {} at {}):\n{}",
                next(),
                now(),
                gw.stderr()
            )
        },
    );
    // The old certificate is still served.
    assert_eq!(handshake(&gw, config, NAME).unwrap(), leaf);
    let log = gw.stderr();
    assert_eq!(
        log.matches("the order failed").count(),
        1,
        "logged once per change:\n{log}"
    );
    assert!(log.contains("cannot talk to the CA"), "{log}");
    assert!(
        log.contains("the current certificate stays in use"),
        "{log}"
    );
    let (next, now) = (next(), now());
    assert!(
        next > now + 20.0,
        "the retry waits for the backoff: {next} vs {now}"
    );
}

#[test]
fn a_ca_that_answers_errors_is_reported_with_its_problem_document() {
    let ports = Ports::new();
    // Pebble rejects every nonce: each request gets a badNonce problem document.
    let ca = pebble(&ports, None, &[("PEBBLE_WFE_NONCEREJECT", "100")]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&spec(&ackee, &ports, &ca, state.path(), "http-01"));
    // A failed order is counted, then logged, then written to the status file that
    // `ackee-gateway certificates` reads: wait for all three.
    let (code, text) = eventually_or_else(
        Duration::from_secs(60),
        || {
            let logged = gw.stderr().contains("the order failed");
            if orders(&gw, "failed") < 1.0 || !logged {
                return None;
            }
            let (code, text) = certificates(&gw);
            text.contains("badNonce").then_some((code, text))
        },
        || {
            format!(
                "a failed order, logged and in the status:\n{}\ncertificates:\n{}",
                gw.stderr(),
                certificates(&gw).1
            )
        },
    );
    assert_eq!(orders(&gw, "issued"), 0.0);
    let log = gw.stderr();
    assert!(
        log.contains("urn:ietf:params:acme:error:badNonce"),
        "the CA's problem type is logged:\n{log}"
    );
    assert!(log.contains("there is still no certificate"), "{log}");
    // No certificate for the name: the handshake fails.
    assert!(handshake(&gw, ca.client_config(), NAME).is_err());
    // The expiry alert sees it as expired.
    let expiry = gw.scrape().get(
        "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
        &[("certificate", NAME)],
    );
    assert_eq!(expiry, 0.0);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("none yet"), "{text}");
    assert!(text.contains("last error:"), "{text}");
    assert!(text.contains("badNonce"), "{text}");
}

#[test]
fn bad_acme_configs_are_refused_by_t_without_contacting_a_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let readonly = dir.path().join("readonly");
    std::fs::create_dir(&readonly).unwrap();
    std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o500)).unwrap();
    let config = |acme: &str, state: &str| {
        format!(
            r#"listeners:
  - address: "127.0.0.1:18080"
  - address: "127.0.0.1:18443"
    tls:
      acme:
{acme}
state_directory: "{state}"
cors:
  allowed_origins: ["https://example.com"]
upstream:
  replicas: [{{address: "127.0.0.1:3000"}}]
"#
        )
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "        domains: [\"*.example.com\"]",
            "",
            "domains[0]: \"*.example.com\" is a wildcard",
        ),
        (
            "        domains: [\"192.0.2.7\"]",
            "",
            "domains[0]: \"192.0.2.7\" is an IP address",
        ),
        (
            "        domains: [stats.example.com]\n        contact: admin@example.com",
            "",
            "contact: \"admin@example.com\" is not a mailto URL",
        ),
        (
            "        domains: [stats.example.com]\n        directory: http://127.0.0.1:1/dir",
            "",
            "directory: \"http://127.0.0.1:1/dir\" is not an https URL",
        ),
        (
            "        domains: [stats.example.com]\n        directory_ca: /nonexistent/ca.pem",
            "",
            "directory_ca: \"/nonexistent/ca.pem\" cannot be read",
        ),
        (
            "        domains: [stats.example.com]\n        challenge: dns-01",
            "",
            "challenge: found \"dns-01\"; write http-01 or tls-alpn-01",
        ),
        (
            "        contact: \"mailto:a@example.com\"",
            "",
            "domains: missing",
        ),
    ];
    for (acme, state, want) in cases {
        let state = if state.is_empty() {
            format!("{d}/state")
        } else {
            state.to_string()
        };
        let file = dir.path().join("gw.yaml");
        std::fs::write(&file, config(acme, &state)).unwrap();
        let (code, err) = run(&["-t", "-c", file.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{acme}: {err}");
        assert!(err.contains(want), "{acme}: want {want:?} in\n{err}");
    }
    // A state directory the gateway cannot write (unless root, who can write anywhere).
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let file = dir.path().join("gw.yaml");
        let state = format!("{}/state", readonly.display());
        std::fs::write(
            &file,
            config("        domains: [stats.example.com]", &state),
        )
        .unwrap();
        let (code, err) = run(&["-t", "-c", file.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("state_directory:"), "{err}");
    }
    // HTTP-01 without a plain listener.
    let file = dir.path().join("gw.yaml");
    let text = config(
        "        domains: [stats.example.com]\n        challenge: http-01",
        &format!("{d}/state"),
    )
    .replace("  - address: \"127.0.0.1:18080\"\n", "");
    std::fs::write(&file, text).unwrap();
    let (code, err) = run(&["-t", "-c", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is http-01, but no listener serves plain HTTP"),
        "{err}"
    );
    // A valid config is valid at once: `-t` contacts no CA (this directory does not exist).
    std::fs::write(
        &file,
        config(
            "        domains: [stats.example.com]\n        directory: https://127.0.0.1:1/dir",
            &format!("{d}/state"),
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, err) = run(&["-t", "-c", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!dir.path().join("state").exists(), "-t created nothing");
}

#[test]
fn two_gateways_on_one_state_directory_order_the_certificate_once() {
    // Pebble validates on the first gateway's ports; the second listens elsewhere. Whichever
    // takes the order lock orders (the first answers the second's HTTP-01 tokens from the
    // state directory); the other waits and serves what was stored.
    let ports = Ports::new();
    let other = Ports::new();
    let ca = pebble(&ports, None, &[]);
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let first = spec(&ackee, &ports, &ca, state.path(), "http-01");
    let second = spec(&ackee, &other, &ca, state.path(), "http-01");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Gateway::start(&first));
        let b = s.spawn(|| Gateway::start(&second));
        (a.join().unwrap(), b.join().unwrap())
    });
    let config = ca.client_config();
    // When this times out (it did once, under the whole suite's load), what each gateway
    // logged is the only account of why.
    // The gateway that orders serves the certificate, then counts the order: wait for the
    // count too.
    let leaf = eventually_or_else(
        Duration::from_secs(120),
        || {
            let la = handshake(&a, config.clone(), NAME).ok()?;
            let lb = handshake(&b, config.clone(), NAME).ok()?;
            (orders(&a, "issued") + orders(&b, "issued") >= 1.0).then_some((la, lb))
        },
        || {
            format!(
                "both to serve a certificate within 120 s:\nfirst:\n{}\nsecond:\n{}",
                a.stderr(),
                b.stderr()
            )
        },
    );
    assert_eq!(leaf.0, leaf.1, "both serve the one certificate stored");
    let issued = orders(&a, "issued") + orders(&b, "issued");
    assert_eq!(
        issued,
        1.0,
        "one order in all:\nfirst:\n{}\nsecond:\n{}",
        a.stderr(),
        b.stderr()
    );
    assert_eq!(
        orders(&a, "failed") + orders(&b, "failed"),
        0.0,
        "no failed order:\nfirst:\n{}\nsecond:\n{}",
        a.stderr(),
        b.stderr()
    );
}

#[test]
fn a_ca_that_requires_external_account_binding_gets_it() {
    let ports = Ports::new();
    // Pebble's example MAC key (pebble-config-external-account-bindings.json).
    let (kid, key) = (
        "kid-1",
        "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    );
    let ca = Pebble::start(&PebbleSpec {
        http_port: ports.http,
        tls_port: ports.https,
        eab: Some((kid.to_owned(), key.to_owned())),
        ..PebbleSpec::default()
    });
    let ackee = FakeAckee::start();
    let state = tempfile::tempdir().unwrap();
    let with = |binding: &str| {
        let s = spec(&ackee, &ports, &ca, state.path(), "http-01");
        let tls = s.tls_listener.clone().unwrap();
        s.tls_listener(&format!("{tls}\n    external_account: {binding}"))
    };
    // Without the binding Pebble refuses the account, with its problem document.
    {
        let gw = Gateway::start(&with("null"));
        // Counted, then logged: wait for the line too.
        let log = eventually_or_else(
            Duration::from_secs(60),
            || {
                let log = gw.stderr();
                (orders(&gw, "failed") >= 1.0 && log.contains("the order failed")).then_some(log)
            },
            || format!("a failed order, logged:\n{}", gw.stderr()),
        );
        assert!(log.contains("externalAccountRequired"), "{log}");
    }
    let gw = Gateway::start(&with(&format!("{{key_id: {kid}, hmac_key: \"{key}\"}}")));
    wait_issued(&gw, 1.0, &ca);
    assert_eq!(
        leaf_names(&handshake(&gw, ca.client_config(), NAME).unwrap()),
        vec![NAME.to_owned()]
    );
}
