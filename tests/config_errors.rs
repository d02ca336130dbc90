//! The binary's answer to bad configuration: every problem in one run, each with the file, the
//! key path, what was found and what to write, and exit code 2. `-t` validates and exits.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod process;
}

use common::process::run;

use std::fs;

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("gw.yaml");
    fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn dash_t_accepts_the_shipped_config_with_exit_0() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/ackee-gateway.yaml");
    let (code, stderr) = run(&["-t", "-c", conf], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, format!("ackee-gateway: {conf} is valid\n"));
}

#[test]
fn every_problem_is_printed_exactly_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"threads: 0
listeners:
  - address: "127.0.0.1:8080"
    nmae: public
cors:
  allowed_origins:
    - "https://example.com"
    - "https://*.example.org"
    - "https://stats.example.com/"
    - "null"
  allow_credential: true
  max_age_seconds: soon
upstream:
  replicas:
    - address: "127.0.0.1"
metrcs:
  address: "127.0.0.1:9464"
"#,
    );
    let (code, stderr) = run(&["-t", "-c", &path], &[]);
    assert_eq!(code, 2);
    let want = format!(
        r#"error: {p}: metrcs: unknown key; did you mean "metrics"?
error: {p}: listeners[0].nmae: unknown key; did you mean "name"?
error: {p}: cors.allow_credential: unknown key; did you mean "allow_credentials"?
error: {p}: cors.max_age_seconds: found "soon"; write a whole number of seconds such as 3600
error: {p}: threads: found 0; write a whole number from 1 to 1024
error: {p}: cors.allowed_origins[2]: "https://stats.example.com/" has a path; write "https://stats.example.com"
error: {p}: cors.allowed_origins[3]: "null" is what sandboxed frames, file: pages and redirects send, and it never identifies a site; remove it
error: {p}: upstream.replicas[0].address: found "127.0.0.1" without a port; write "127.0.0.1:3000" if Ackee listens on its default port
ackee-gateway: 8 problems in the configuration; nothing was started
"#,
        p = path
    );
    assert_eq!(stderr, want);
}

#[test]
fn starting_with_a_bad_config_also_exits_2_without_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "listeners: []\n");
    let (code, stderr) = run(&["-c", &path], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("error: {path}: listeners: is empty;")),
        "{stderr}"
    );
    assert!(stderr.ends_with("nothing was started\n"), "{stderr}");
}

#[test]
fn a_bad_ackee_allow_origin_in_the_environment_stops_the_binary_with_exit_2() {
    // The binary reads the variable from its environment; config_load.rs checks the words.
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/ackee-gateway.yaml");
    let env = [(
        "ACKEE_ALLOW_ORIGIN",
        "https://a.example, https://b.example/",
    )];
    let (code, stderr) = run(&["-t", "-c", conf], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("\nerror: environment variable ACKEE_ALLOW_ORIGIN: [1]: "),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("ackee-gateway: 1 problem in the configuration; nothing was started\n"),
        "{stderr}"
    );
}

#[test]
fn a_missing_file_and_bad_arguments_exit_2() {
    let (code, stderr) = run(&["-t", "-c", "/nonexistent/gw.yaml"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr
            .starts_with("error: /nonexistent/gw.yaml: cannot be read (No such file or directory"),
        "{stderr}"
    );
    let (code, stderr) = run(&["--frobnicate"], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("ackee-gateway: unknown argument \"--frobnicate\""),
        "{stderr}"
    );
}

#[test]
fn an_address_already_in_use_is_reported_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!(
            r#"listeners: [{{address: "{addr}"}}]
cors: {{allowed_origins: ["https://example.com"]}}
upstream: {{replicas: [{{address: "127.0.0.1:3000"}}], health_check: {{type: none}}}}
"#
        ),
    );
    let (code, stderr) = run(&["-c", &path], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "error: {path}: listeners[0].address: cannot listen on {addr} (Address already in use (os error 98)); another process listens there"
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("ackee-gateway: cannot listen; nothing was started\n"),
        "{stderr}"
    );
}

#[test]
fn invalid_yaml_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "listeners: [\n  {address: \"127.0.0.1:8080\"\n");
    let (code, stderr) = run(&["-t", "-c", &path], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!("error: {path}: is not valid YAML: ")),
        "{stderr}"
    );
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn body_limits_beyond_what_is_buffered_and_unbounded_body_timeouts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"listeners:
  - address: "127.0.0.1:8080"
cors:
  allowed_origins: ["https://example.com"]
upstream:
  replicas:
    - address: "127.0.0.1:3000"
limits:
  max_body_bytes: 1000000
  body_timeout_seconds: 1e20
"#,
    );
    let (code, stderr) = run(&["-t", "-c", &path], &[]);
    assert_eq!(code, 2);
    let want = format!(
        "error: {path}: limits.max_body_bytes: found 1000000; write a number of bytes from 1 to 65536: bodies are read whole before a replica is chosen, and at most 64 KiB is buffered (tracker bodies are a few hundred bytes)
error: {path}: limits.body_timeout_seconds: found 100000000000000000000; write a number of seconds from 0.001 to 3600, such as 15
ackee-gateway: 2 problems in the configuration; nothing was started
"
    );
    assert_eq!(stderr, want);
}

#[test]
fn a_health_check_path_that_is_no_request_target_fails_dash_t() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/{}", "a".repeat(64 * 1024));
    let cases = [
        ("/health<x>", "write \"/health%3Cx%3E\""),
        ("/gesundheit-ü", "write \"/gesundheit-%C3%BC\""),
        ("/he\\x01alth", "write \"/he%01alth\""),
        (long.as_str(), "write a path of at most 2048 bytes"),
    ];
    for (path, fix) in cases {
        let conf = write(
            &dir,
            &format!(
                "listeners: [{{address: \"127.0.0.1:8080\"}}]\ncors: {{allowed_origins: [\"https://example.com\"]}}\nupstream:\n  replicas: [{{address: \"127.0.0.1:3000\"}}]\n  health_check: {{path: \"{path}\"}}\n"
            ),
        );
        let (code, stderr) = run(&["-t", "-c", &conf], &[]);
        assert_eq!(code, 2, "{path:.40}: {stderr}");
        let prefix = format!("error: {conf}: upstream.health_check.path: found ");
        assert!(stderr.starts_with(&prefix), "{stderr}");
        assert!(stderr.contains(fix), "{path:.40}: {stderr}");
    }
}

#[test]
fn every_duration_is_bounded_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"listeners:
  - address: "127.0.0.1:8080"
cors:
  allowed_origins: ["https://example.com"]
upstream:
  replicas:
    - address: "127.0.0.1:3000"
  connect_timeout_seconds: 1e20
  read_timeout_seconds: 1e20
  write_timeout_seconds: 1e20
  idle_timeout_seconds: 1e20
  health_check:
    interval_seconds: 1e20
    timeout_seconds: 1e20
"#,
    );
    let (code, stderr) = run(&["-t", "-c", &path], &[]);
    assert_eq!(code, 2, "{stderr}");
    let big = "100000000000000000000";
    let want = format!(
        "error: {path}: upstream.health_check.interval_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 2
error: {path}: upstream.health_check.timeout_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 1
error: {path}: upstream.connect_timeout_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 2
error: {path}: upstream.read_timeout_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 60
error: {path}: upstream.write_timeout_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 30
error: {path}: upstream.idle_timeout_seconds: found {big}; write a number of seconds from 0.001 to 3600, such as 4
ackee-gateway: 6 problems in the configuration; nothing was started
"
    );
    assert_eq!(stderr, want);
}

/// Runs the binary, failing the test (instead of hanging it) if it does not exit in 20 s.
fn run_bounded(args: &[&str]) -> (i32, String) {
    let mut child = std::process::Command::new(common::process::binary())
        .args(args)
        .env_remove("ACKEE_ALLOW_ORIGIN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ackee-gateway {args:?} did not exit within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_certificate_key_or_config_that_is_a_fifo_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = fifo.to_string_lossy().into_owned();
    let path = write(
        &dir,
        &format!(
            r#"listeners:
  - address: "127.0.0.1:8443"
    tls:
      certificates:
        - {{cert: "{fifo}", key: "{fifo}"}}
cors:
  allowed_origins: ["https://example.com"]
upstream:
  replicas:
    - address: "127.0.0.1:3000"
"#
        ),
    );
    let (code, stderr) = run_bounded(&["-t", "-c", &path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cert: cannot read \"{fifo}\" (it is a FIFO, not a regular file); write the path of a PEM certificate chain"
        )),
        "{stderr}"
    );
    let (code, stderr) = run_bounded(&["-t", "-c", &fifo]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("(it is a FIFO, not a regular file)"),
        "{stderr}"
    );
}
