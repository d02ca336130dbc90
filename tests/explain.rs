//! `ackee-gateway explain`, run as the real binary: offline against config files, online against
//! the real gateway (plain and TLS), the fake Ackee, and a fake server that misbehaves in each
//! of the ways browsers refuse.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod fake_cors;
    pub mod gateway;
    pub mod process;
    pub mod tls;
}

use common::fake_ackee::FakeAckee;
use common::gateway::{Gateway, Spec};

use std::process::Command;

use common::fake_cors::{FakeCors, Misbehaviour};
use common::process::binary;
use common::tls::TestCa;

/// Runs `ackee-gateway explain ARGS`: (exit code, stdout, stderr).
fn explain(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.arg("explain")
        .args(args)
        .env_remove("ACKEE_ALLOW_ORIGIN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ackee-gateway explain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CONFIG: &str = r#"
listeners:
  - address: "127.0.0.1:18080"
upstream:
  replicas:
    - address: "127.0.0.1:3000"
cors:
  allowed_origins: ["https://www.example.com", "https://*.example.org", "https://shop.example.net"]
"#;

fn config_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

/// The line that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{out}"))
}

#[test]
fn offline_each_common_mistake_gets_its_reason_nearest_entry_and_fix() {
    let (_dir, conf) = config_file();
    // (origin, env ACKEE_ALLOW_ORIGIN, exit code, the nearest-entry words, the fix words)
    let cases: &[(&str, Option<&str>, i32, &str, &str)] = &[
        ("https://www.example.com", None, 0, "", ""),
        ("https://a.b.example.org", None, 0, "", ""),
        (
            "https://example.com",
            None,
            1,
            "differ by \"www.\"",
            "add \"https://example.com\" to cors.allowed_origins in",
        ),
        (
            "http://shop.example.net",
            None,
            1,
            "has the other scheme",
            "serve the site over https, or add \"http://shop.example.net\"",
        ),
        (
            "https://shop.example.net:8443",
            None,
            1,
            "has another port",
            "add \"https://shop.example.net:8443\"",
        ),
        (
            "https://example.org",
            None,
            1,
            "covers subdomains only",
            "a pattern never covers the apex, so list both",
        ),
        (
            "https://example.com",
            Some("*"),
            1,
            "only without credentials",
            "replace \"*\" with your sites' origins, such as \"https://example.com\" (ACKEE_ALLOW_ORIGIN)",
        ),
    ];
    for (origin, env, code, nearest, fix) in cases {
        let env: Vec<(&str, &str)> = env.iter().map(|v| ("ACKEE_ALLOW_ORIGIN", *v)).collect();
        let (got, out, err) = explain(&["-c", &conf, "--origin", origin], &env);
        assert_eq!(got, *code, "{origin}:\n{out}\n{err}");
        if *code == 0 {
            assert!(out.contains("a browser accepts it"), "{out}");
            continue;
        }
        assert!(
            line(&out, "Nearest entry: ").contains(nearest),
            "{origin}:\n{out}"
        );
        assert!(line(&out, "Fix: ").contains(fix), "{origin}:\n{out}");
    }
}

#[test]
fn offline_prints_the_preflight_and_post_headers_and_both_credentials_modes() {
    let (_dir, conf) = config_file();
    let (code, out, _) = explain(&["-c", &conf, "--origin", "https://www.example.com"], &[]);
    assert_eq!(code, 0, "{out}");
    for want in [
        "  204 No Content",
        "  Access-Control-Allow-Origin: https://www.example.com",
        "  Access-Control-Allow-Methods: GET, POST, PATCH, OPTIONS",
        "  Access-Control-Allow-Headers: Content-Type, Authorization, Time-Zone",
        "  Access-Control-Allow-Credentials: true",
        "  Access-Control-Max-Age: 3600",
        "  Vary: Origin",
        "With credentials (tracker default, ignoreOwnVisits: true): a browser accepts it",
        "Without credentials (ignoreOwnVisits: false): a browser accepts it",
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} missing:\n{out}");
    }
    // A trailing slash is what a browser never sends: explained for the origin it does send.
    let (code, out, _) = explain(&["-c", &conf, "--origin", "https://www.example.com/"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("note: --origin \"https://www.example.com/\" has a path"),
        "{out}"
    );
    // `*` decides by the credentials mode asked for.
    let star = [("ACKEE_ALLOW_ORIGIN", "*")];
    let on = explain(&["-c", &conf, "--origin", "https://x.test"], &star);
    let off = explain(
        &[
            "-c",
            &conf,
            "--origin",
            "https://x.test",
            "--no-credentials",
        ],
        &star,
    );
    assert_eq!((on.0, off.0), (1, 0), "{}\n{}", on.1, off.1);
}

#[test]
fn offline_refused_methods_and_headers_name_the_key_to_change() {
    let (_dir, conf) = config_file();
    let origin = "https://www.example.com";
    let (code, out, _) = explain(
        &["-c", &conf, "--origin", origin, "--method", "DELETE"],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        line(&out, "Fix: "),
        "Fix: add \"DELETE\" to cors.allowed_methods"
    );
    let (code, out, _) = explain(
        &["-c", &conf, "--origin", origin, "--header", "X-Debug: 1"],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        line(&out, "Fix: "),
        "Fix: add \"x-debug\" to cors.allowed_headers"
    );
}

#[test]
fn usage_and_config_errors_exit_2() {
    let (_dir, conf) = config_file();
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        CONFIG.replace("https://shop.example.net", "https://shop.example.net/"),
    )
    .unwrap();
    let bad = bad.path().display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&[], "--origin is required"),
        (
            &["--origin", "https://a.test", "--frobnicate"],
            "unknown argument",
        ),
        (
            &["--origin", "https://*.a.test", "-c", &conf],
            "is a pattern",
        ),
        (
            &["--origin", "https://a.test", "-c", "/nonexistent.yaml"],
            "cannot be read",
        ),
        (
            &["--origin", "https://a.test", "-c", &bad],
            "has a path; write \"https://shop.example.net\"",
        ),
        (
            &[
                "--origin",
                "https://a.test",
                "--url",
                "stats.example.com/api",
            ],
            "must start with https:// or http://",
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = explain(args, &[]);
        assert_eq!(code, 2, "{args:?}:\n{out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn online_each_misbehaviour_is_named_with_its_fix() {
    let o = "https://blog.example.com";
    // (misbehaviour, extra args, exit code, words in a "refused:"/"warning:" line, fix words)
    let cases: &[(Misbehaviour, &[&str], i32, &str, &str)] = &[
        (Misbehaviour::None, &[], 0, "", ""),
        (
            Misbehaviour::TwoAllowOrigins,
            &[],
            1,
            "2 Access-Control-Allow-Origin values",
            "send one",
        ),
        (
            Misbehaviour::Wildcard,
            &[],
            1,
            "allows \"*\"",
            "instead of \"*\"",
        ),
        (Misbehaviour::Wildcard, &["--no-credentials"], 0, "", ""),
        (Misbehaviour::NoVary, &[], 0, "without Vary: Origin", ""),
        (
            Misbehaviour::MethodsWithoutPatch,
            &["--method", "PATCH"],
            1,
            "PATCH is not in Access-Control-Allow-Methods (GET, POST)",
            "add PATCH to Access-Control-Allow-Methods",
        ),
        (
            Misbehaviour::HeadersWithoutContentType,
            &[],
            1,
            "content-type is not in Access-Control-Allow-Headers",
            "add content-type",
        ),
        (
            Misbehaviour::PreflightNotAllowed,
            &[],
            1,
            "answered 405",
            "answer OPTIONS with 204",
        ),
        (
            Misbehaviour::Redirect,
            &[],
            1,
            "redirect to https://stats.example.com/api",
            "final URL (https://stats.example.com/api)",
        ),
    ];
    for (how, extra, code, finding, fix) in cases {
        let server = FakeCors::start(*how);
        let url = server.url();
        let mut args = vec!["--url", url.as_str(), "--origin", o];
        args.extend_from_slice(extra);
        let (got, out, err) = explain(&args, &[]);
        assert_eq!(got, *code, "{how:?}:\n{out}{err}");
        if !finding.is_empty() {
            assert!(
                out.lines().any(
                    |l| (l.starts_with("  refused: ") || l.starts_with("  warning: "))
                        && l.contains(finding)
                ),
                "{how:?}: {finding:?} missing:\n{out}"
            );
        }
        if !fix.is_empty() {
            assert!(line(&out, "Fix: ").contains(fix), "{how:?}:\n{out}");
        }
    }
}

#[test]
fn online_against_the_gateway_ackee_itself_and_nothing() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr));
    let url = format!("http://{}/api", gw.http);
    let (code, out, err) = explain(&["--url", &url, "--origin", "https://example.com"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("  Access-Control-Allow-Credentials: true"),
        "{out}"
    );
    let (code, out, _) = explain(&["--url", &url, "--origin", "https://www.example.com"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("answered 403"), "{out}");
    assert!(
        ackee.seen().iter().all(|s| s.method != "OPTIONS"),
        "preflights stay at the edge"
    );

    // Ackee itself, with ACKEE_ALLOW_ORIGIN set: it works, but without Vary.
    ackee.set(|b| b.ackee_allow_origin = Some("https://example.com".into()));
    let direct = format!("http://{}/api", ackee.addr);
    let (code, out, _) = explain(&["--url", &direct, "--origin", "https://example.com"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("without Vary: Origin"), "{out}");

    // Nothing listening: a browser fails too.
    let closed = format!("http://127.0.0.1:{}/api", common::gateway::free_port());
    let (code, _, err) = explain(
        &[
            "--url",
            &closed,
            "--origin",
            "https://example.com",
            "--timeout",
            "5",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn online_over_https_trusts_the_given_ca() {
    let ca = TestCa::generate();
    let certs = tempfile::tempdir().unwrap();
    ca.leaf(&["localhost"]).write(certs.path(), "local");
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let ackee = FakeAckee::start();
    let tls = format!(
        "tls:\n  certificates:\n    - name: local\n      cert: \"{d}/local.pem\"\n      key: \"{d}/local.key\"",
        d = certs.path().display()
    );
    let gw = Gateway::start(&Spec::new(ackee.addr).tls_listener(&tls));
    let url = format!("https://localhost:{}/api", gw.https.port());
    let ca_arg = ca_file.display().to_string();
    let (code, out, err) = explain(
        &[
            "--url",
            &url,
            "--origin",
            "https://example.com",
            "--cacert",
            &ca_arg,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  204 No Content"), "{out}");
}

#[test]
fn offline_a_visit_is_judged_by_the_rules_of_visits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        format!("{CONFIG}visits:\n  ignore_networks: [\"192.0.2.0/24\"]\n  honor_dnt: true\n"),
    )
    .unwrap();
    let conf = path.display().to_string();
    let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36";
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
    let origin = "https://www.example.com";
    // (extra arguments, the verdict line)
    let cases: &[(&[&str], &str)] = &[
        (
            &["--user-agent", headless],
            "  IGNORED at the edge: the user agent matches \"headless\" of isbot's list (visits.ignore_bots)",
        ),
        (
            &["--user-agent", chrome, "--client", "192.0.2.50"],
            "  IGNORED at the edge: the client is in visits.ignore_networks (\"192.0.2.0/24\")",
        ),
        (
            &["--user-agent", chrome, "--client", "198.51.100.50", "--dnt"],
            "  IGNORED at the edge: the browser sends DNT: 1 and visits.honor_dnt is true",
        ),
        (
            &["--user-agent", chrome, "--client", "198.51.100.50", "--gpc"],
            "  COUNTED: no rule in visits holds; the tracker's writes go to Ackee",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["-c", &conf, "--origin", origin];
        args.extend_from_slice(extra);
        let (code, out, err) = explain(&args, &[]);
        assert_eq!(code, 0, "{extra:?}: CORS decides the exit code\n{out}{err}");
        assert!(
            out.contains("Result: "),
            "{extra:?}: the CORS report comes first\n{out}"
        );
        let verdicts = line_opt(&out, "  IGNORED") + line_opt(&out, "  COUNTED");
        assert_eq!(verdicts, 1, "one verdict\n{out}");
        assert!(
            out.lines().any(|l| l == *want),
            "{extra:?}: no line {want:?} in\n{out}"
        );
    }
    let (code, _, err) = explain(
        &[
            "--url",
            "http://127.0.0.1:1/api",
            "--origin",
            origin,
            "--client",
            "192.0.2.1",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("judged from a config"), "{err}");
}

fn line_opt(out: &str, prefix: &str) -> usize {
    usize::from(out.lines().any(|l| l.starts_with(prefix)))
}
