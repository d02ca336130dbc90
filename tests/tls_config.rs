//! TLS config errors from `ackee-gateway -t`: each names the file and key and says what is
//! wrong, with exit code 2; an expired certificate is a warning with its date.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod process;
    pub mod tls;
}

use common::process::run;

use std::fs;
use std::path::Path;

use common::tls::TestCa;

fn config(dir: &Path, listener_tls: &str) -> String {
    let text = format!(
        r#"listeners:
  - name: http
    address: "127.0.0.1:8080"
  - name: https
    address: "127.0.0.1:8443"
{listener_tls}
cors: {{allowed_origins: ["https://example.com"]}}
upstream: {{replicas: [{{address: "127.0.0.1:3000"}}]}}
"#
    );
    let path = dir.join("gw.yaml");
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn check(dir: &Path, listener_tls: &str) -> (i32, String, String) {
    let path = config(dir, listener_tls);
    let (code, stderr) = run(&["-t", "-c", &path], &[]);
    (code, stderr, path)
}

#[test]
fn an_unreadable_certificate_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (code, stderr, p) = check(
        dir.path(),
        &format!(
            "    tls: {{certificates: [{{cert: \"{d}/missing.pem\", key: \"{d}/missing.key\"}}]}}"
        ),
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {p}: listeners[1].tls.certificates[0].cert: cannot read \"{d}/missing.pem\" (No such file or directory (os error 2)); write the path of a PEM certificate chain, such as /etc/letsencrypt/live/NAME/fullchain.pem\n\
             ackee-gateway: 1 problem in the configuration; nothing was started\n"
        )
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let a = ca.leaf(&["stats.example.com"]);
    let b = ca.leaf(&["stats.example.com"]);
    let (cert, _) = a.write(dir.path(), "a");
    let (_, key) = b.write(dir.path(), "b");
    let (code, stderr, p) = check(
        dir.path(),
        &format!(
            "    tls: {{certificates: [{{cert: \"{}\", key: \"{}\"}}]}}",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {p}: listeners[1].tls.certificates[0].key: \"{}\" does not match the certificate in \"{}\"; write the key that was issued with that certificate\n\
             ackee-gateway: 1 problem in the configuration; nothing was started\n",
            key.display(),
            cert.display()
        )
    );
}

#[test]
fn a_server_name_the_certificate_does_not_cover_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let (cert, key) = ca
        .leaf(&["stats.example.com", "*.example.org"])
        .write(dir.path(), "a");
    let (code, stderr, p) = check(
        dir.path(),
        &format!(
            "    tls:\n      certificates:\n        - cert: \"{}\"\n          key: \"{}\"\n          server_names: [stats.example.com, a.example.org, ackee.example.net]",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {p}: listeners[1].tls.certificates[0].server_names[2]: \"ackee.example.net\" is not covered by the certificate in \"{}\" (it covers stats.example.com, *.example.org); remove it, or use a certificate issued for that name\n\
             ackee-gateway: 1 problem in the configuration; nothing was started\n",
            cert.display()
        )
    );
}

#[test]
fn an_expired_certificate_is_a_warning_with_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let (cert, key) = ca
        .leaf_until(&["stats.example.com"], 2021, 1, 1)
        .write(dir.path(), "old");
    let (code, stderr, p) = check(
        dir.path(),
        &format!(
            "    tls: {{certificates: [{{cert: \"{}\", key: \"{}\"}}]}}",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "warning: {p}: listeners[1].tls.certificates[0].cert: \"{}\" expired on 2021-01-01 00:00:00 UTC; browsers will refuse it until it is renewed (certbot renew)\n\
             ackee-gateway: {p} is valid\n",
            cert.display()
        )
    );
}

#[test]
fn listener_mistakes_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let (cert, key) = ca.leaf(&["stats.example.com"]).write(dir.path(), "a");
    let d = dir.path().display();
    let (code, stderr, p) = check(
        dir.path(),
        &format!(
            "    tls:\n      certificates: [{{name: stats, cert: \"{}\", key: \"{}\"}}]\n      default_certificate: stat\n    redirect_to_https: true\n    acme_webroot: \"{d}/no-such-dir\"",
            cert.display(),
            key.display()
        ),
    );
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {p}: listeners[1].tls.default_certificate: found \"stat\", which is not a certificate of this listener; write one of \"stats\"\n\
             error: {p}: listeners[1].redirect_to_https: is set on a TLS listener, which would redirect HTTPS to itself; set it on the plain-HTTP listener (port 80) instead\n\
             error: {p}: listeners[1].acme_webroot: \"{d}/no-such-dir\" cannot be used (No such file or directory (os error 2)); create it (mkdir -p {d}/no-such-dir) or write the directory certbot's --webroot-path uses\n\
             ackee-gateway: 3 problems in the configuration; nothing was started\n"
        )
    );
}

#[test]
fn files_that_hold_the_wrong_pem_say_which_file_and_what_it_should_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let (cert, key) = ca.leaf(&["stats.example.com"]).write(dir.path(), "a");
    let broken = dir.path().join("broken.pem");
    fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n").unwrap();
    let cases = [
        (
            &key,
            &key,
            "cert",
            "holds no PEM certificate; write the path of a PEM certificate chain (fullchain.pem)",
        ),
        (
            &cert,
            &cert,
            "key",
            "holds no PEM private key; write the path of the private key (privkey.pem)",
        ),
        (&broken, &key, "cert", "is not valid PEM ("),
        (&cert, &broken, "key", "is not valid PEM ("),
    ];
    for (cert_file, key_file, which, want) in cases {
        let (code, stderr, p) = check(
            dir.path(),
            &format!(
                "    tls: {{certificates: [{{cert: \"{}\", key: \"{}\"}}]}}",
                cert_file.display(),
                key_file.display()
            ),
        );
        let named = if which == "cert" { cert_file } else { key_file };
        let prefix = format!(
            "error: {p}: listeners[1].tls.certificates[0].{which}: \"{}\" {want}",
            named.display()
        );
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.starts_with(&prefix), "want {prefix}\ngot {stderr}");
    }
}

#[test]
fn http3_mistakes_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::generate();
    let (cert, key) = ca.leaf(&["stats.example.com"]).write(dir.path(), "a");
    let (cert, key) = (cert.display(), key.display());
    let text = format!(
        r#"listeners:
  - name: http
    address: "127.0.0.1:8080"
    http3: true
  - name: https
    address: "127.0.0.1:8443"
    tls: {{certificates: [{{name: a, cert: "{cert}", key: "{key}"}}]}}
    http3: {{max_concurrent_streams: 0, idle_timeout_seconds: 0, alt_svc_max_age: 5, retry_above_handshakes: -1}}
  - name: other
    address: "127.0.0.1:8444"
    tls: {{certificates: [{{name: b, cert: "{cert}", key: "{key}", server_names: [stats.example.com]}}]}}
    http3: "yes"
cors: {{allowed_origins: ["https://example.com"]}}
upstream: {{replicas: [{{address: "127.0.0.1:3000"}}]}}
"#
    );
    let path = dir.path().join("gw.yaml");
    fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    let (code, stderr) = run(&["-t", "-c", &p], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {p}: listeners[1].http3.alt_svc_max_age: unknown key; the keys allowed here are alt_svc_max_age_seconds, max_concurrent_streams, max_handshakes, retry_above_handshakes, idle_timeout_seconds\n\
             error: {p}: listeners[1].http3.retry_above_handshakes: found -1; write a number of handshakes from 0 (always) to 100000, such as 64\n\
             error: {p}: listeners[1].http3.idle_timeout_seconds: found 0; write a number of seconds greater than 0, such as 30\n\
             error: {p}: listeners[2].http3: found \"yes\"; write true, or a mapping such as {{alt_svc_max_age_seconds: 86400}}\n\
             error: {p}: listeners[0].http3: is set on a plain-HTTP listener; HTTP/3 always runs over TLS: set it on the listener with a tls section\n\
             error: {p}: listeners[1].http3.max_concurrent_streams: found 0; write a number of streams from 1 to 1000, such as 100\n\
             ackee-gateway: 6 problems in the configuration; nothing was started\n"
        )
    );
}
