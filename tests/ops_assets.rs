//! The operations assets are checked with the real tools: the systemd unit with
//! `systemd-analyze` (and its start and reload commands run against the real binary), the
//! Prometheus scrape job and alert rules with `promtool`, the Grafana dashboard's queries with
//! `promtool` too. Both tools must be installed (Debian 12: `apt-get install prometheus
//! systemd`); a missing tool fails the test, it is never skipped.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::{Mapping, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_ackee-gateway");

/// Where the unit expects the binary and the config (as the Debian package installs them).
const UNIT_BIN: &str = "/usr/bin/ackee-gateway";
const UNIT_CONF: &str = "/etc/ackee-gateway/ackee-gateway.yaml";

/// Every metric the gateway exports: the README's metrics table, which tests/metrics.rs keeps
/// identical to what /metrics serves. The dashboard and the rules may use no other.
fn exported_metrics() -> Vec<String> {
    read("README.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `ackee_gateway_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("ackee_gateway_{n}"))
        .collect()
}
/// Histograms also appear as `_bucket`, `_sum` and `_count` series.
const HISTOGRAMS: &[&str] = &["ackee_gateway_upstream_response_seconds"];

/// pingora's fixed wait between handing the sockets to a new process and its graceful
/// shutdown (`CLOSE_TIMEOUT` in pingora-core's server module).
const PINGORA_CLOSE_TIMEOUT_SECONDS: u64 = 5;

fn path(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Runs an external tool; a tool that is not installed fails the test with the package to
/// install.
fn run_tool<S: AsRef<OsStr>>(tool: &str, package: &str, args: &[S]) -> Output {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` is not installed, so the operations assets cannot be checked; \
             install it with `apt-get install {package}` (CI installs it)"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

fn promtool<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_tool("promtool", "prometheus", args)
}

fn systemd_analyze<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_tool("systemd-analyze", "systemd", args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(out)
    );
}

fn write_yaml(file: &Path, value: &Value) {
    fs::write(file, serde_yaml::to_string(value).unwrap()).unwrap();
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(Value::from(k), v);
    }
    Value::Mapping(m)
}

// ---------------------------------------------------------------------------------------------
// The systemd unit

const UNIT: &str = "systemd/ackee-gateway.service";

/// The values of `key=` in the unit, in order (comments and sections ignored).
fn unit_values(key: &str) -> Vec<String> {
    read(UNIT)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

fn unit_value(key: &str) -> String {
    let v = unit_values(key);
    assert_eq!(v.len(), 1, "{UNIT} must set {key}= exactly once: {v:?}");
    v[0].clone()
}

/// A copy of the unit, under its own name, that runs `binary` instead of /usr/bin's.
fn unit_copy(dir: &Path, binary: &str, extra: &str) -> PathBuf {
    assert!(
        !binary.contains(char::is_whitespace),
        "the test binary's path {binary:?} has whitespace; systemd would need quotes"
    );
    let unit = read(UNIT).replace(UNIT_BIN, binary) + extra;
    let file = dir.join("ackee-gateway.service");
    fs::write(&file, unit).unwrap();
    file
}

/// A systemd time span such as `15s`, `15`, `1min 30s` or `500ms`, in seconds.
fn timespan_seconds(v: &str) -> f64 {
    let mut total = 0.0;
    for token in v.split_whitespace() {
        let split = token
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(token.len());
        let (n, unit) = token.split_at(split);
        let n: f64 = n
            .parse()
            .unwrap_or_else(|_| panic!("cannot read the time span {v:?}"));
        total += n * match unit {
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "ms" | "msec" => 0.001,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            other => panic!("unknown time unit {other:?} in {v:?}"),
        };
    }
    total
}

#[test]
fn systemd_analyze_verifies_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // `verify` checks that every Exec*= binary exists, so the copy runs the binary just built.
    // It does not look up User=, so the ackee-gateway user need not exist here.
    let unit = unit_copy(dir.path(), BIN, "");
    let out = systemd_analyze(&[OsStr::new("verify"), unit.as_os_str()]);
    let output = text(&out);
    assert_success("systemd-analyze verify", &out);
    let about_the_unit: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("ackee-gateway"))
        .collect();
    assert!(
        about_the_unit.is_empty(),
        "systemd-analyze verify warns about the unit:\n{output}"
    );

    // The check itself works here: a broken copy is reported.
    let broken = tempfile::tempdir().unwrap();
    let unit = unit_copy(broken.path(), BIN, "NotASystemdKey=1\n");
    let out = systemd_analyze(&[OsStr::new("verify"), unit.as_os_str()]);
    assert!(
        text(&out).contains("NotASystemdKey"),
        "systemd-analyze verify did not report an unknown key, so it cannot be trusted here:\n{}",
        text(&out)
    );
}

#[test]
fn the_unit_stays_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path(), BIN, "");
    // Exposure 0.0 (locked down) to 10.0 (unprotected); --threshold is in tenths. The unit
    // scores 1.4; a network proxy that binds ports 80 and 443 cannot go much lower.
    let out = systemd_analyze(&[
        OsStr::new("security"),
        OsStr::new("--offline=true"),
        OsStr::new("--threshold=20"),
        unit.as_os_str(),
    ]);
    assert_success("systemd-analyze security (exposure above 2.0)", &out);
}

#[test]
fn the_unit_runs_the_packaged_paths_and_reloads_by_validate_then_upgrade() {
    assert_eq!(unit_value("Type"), "forking");
    assert_eq!(
        unit_value("ExecStart"),
        format!("{UNIT_BIN} -d -c {UNIT_CONF}")
    );
    let runtime_dir = format!("/run/{}", unit_value("RuntimeDirectory"));
    let pid_file = unit_value("PIDFile");
    assert_eq!(
        Path::new(&pid_file).parent(),
        Some(Path::new(&runtime_dir)),
        "PIDFile must be in the RuntimeDirectory, the only place the service can write"
    );
    assert_eq!(
        unit_values("ExecStartPost"),
        [format!("{UNIT_BIN} --wait-ready -c {UNIT_CONF}")],
        "a start ends when the gateway serves, so a reload right after it has sockets to take"
    );
    assert_eq!(
        unit_values("ExecReload"),
        [
            format!("{UNIT_BIN} -t -c {UNIT_CONF}"),
            format!("{UNIT_BIN} -u -d -c {UNIT_CONF}"),
            "/bin/kill -QUIT $MAINPID".to_owned(),
            format!("{UNIT_BIN} --wait-ready -c {UNIT_CONF}"),
        ],
        "reload = validate, then the new process with -u, then SIGQUIT to the old one, then \
         wait until the new one serves (see the comment in the unit for the order; \
         tests/reload_systemd.rs runs it under systemd)"
    );
}

/// pingora's grace periods, from the shipped config (the binary's defaults when absent).
fn grace_periods() -> (u64, u64) {
    let conf = yaml("conf/ackee-gateway.yaml");
    let seconds = |key: &str, default: u64| {
        conf.get(key).map_or(default, |v| {
            v.as_u64()
                .unwrap_or_else(|| panic!("{key} in conf/ackee-gateway.yaml is not a number"))
        })
    };
    (
        seconds("grace_period_seconds", 3),
        seconds("graceful_shutdown_timeout_seconds", 2),
    )
}

#[test]
fn the_stop_timeout_covers_the_grace_periods() {
    let (grace, shutdown) = grace_periods();
    let timeout = timespan_seconds(&unit_value("TimeoutStopSec"));
    assert!(
        timeout > (grace + shutdown) as f64,
        "TimeoutStopSec={timeout}s does not exceed grace_period_seconds ({grace}) + \
         graceful_shutdown_timeout_seconds ({shutdown}): systemd would SIGKILL a graceful stop"
    );
    // A stop right after a reload waits for the old process, which exits
    // CLOSE_TIMEOUT + grace + shutdown seconds after its SIGQUIT.
    let upgrade = PINGORA_CLOSE_TIMEOUT_SECONDS + grace + shutdown;
    assert!(
        timeout > upgrade as f64,
        "TimeoutStopSec={timeout}s does not exceed the {upgrade} s an upgraded-away process \
         takes to exit (5 + {grace} + {shutdown})"
    );
}

#[test]
fn the_shipped_config_runs_under_the_unit() {
    // The Debian package installs conf/ackee-gateway.yaml as the unit's config file.
    let conf = yaml("conf/ackee-gateway.yaml");
    let key = |k: &str| conf.get(k).and_then(Value::as_str).map(str::to_owned);
    let pid_file = unit_value("PIDFile");
    let runtime_dir = format!("/run/{}", unit_value("RuntimeDirectory"));
    let mut problems = Vec::new();
    if key("pid_file").as_deref() != Some(pid_file.as_str()) {
        problems.push(format!(
            "pid_file is {:?}; write `pid_file: {pid_file}` (the unit's PIDFile; with \
             PrivateTmp=yes a PID file in /tmp is invisible to systemd and the start times out)",
            key("pid_file")
        ));
    }
    let sock = key("upgrade_sock").unwrap_or_default();
    if Path::new(&sock).parent() != Some(Path::new(&runtime_dir)) {
        problems.push(format!(
            "upgrade_sock is {sock:?}; write `upgrade_sock: {runtime_dir}/upgrade.sock` (the \
             only directory the service may write, shared by the old and the new process)"
        ));
    }
    if conf.get("daemon_wait_for_ready").and_then(Value::as_bool) != Some(true) {
        problems.push(
            "daemon_wait_for_ready is not true; write `daemon_wait_for_ready: true`, so that \
             ExecReload's `-u -d` returns only once the new process runs, and a new process \
             that fails to start fails the reload before the old one gets SIGQUIT"
                .to_owned(),
        );
    }
    assert!(
        problems.is_empty(),
        "conf/ackee-gateway.yaml does not fit {UNIT}:\n  {}",
        problems.join("\n  ")
    );
}

// The unit's ExecStart and ExecReload, run in order against the real binary as systemd would
// (without its sandbox), on a config in a temporary directory.

fn alive(pid: u32) -> bool {
    // Signal 0 only asks whether the process exists. A daemon is re-parented to init, which
    // reaps it, so a dead one does not linger as a zombie.
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Polls `f` until it gives a value; panics with `what` after `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The inode of the socket listening on 127.0.0.1:`port`, from /proc/net/tcp.
fn listening_inode(port: u16) -> Option<String> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_owned())
    })
}

/// Whether process `pid` has the socket with this inode among its file descriptors.
fn holds_socket(pid: u32, inode: &str) -> bool {
    let wanted = format!("socket:[{inode}]");
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()))
    })
}

/// The status of a CORS preflight, which the gateway answers itself (no Ackee needed).
fn preflight_status(port: u16) -> Result<u16, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "OPTIONS /api HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://example.com\r\n\
         Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&head)));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {line:?}"))
}

/// The gateway run the way the unit runs it, in a temporary directory. Kills every process
/// it saw when dropped, whatever happened to the test.
struct Service {
    dir: tempfile::TempDir,
    port: u16,
    pids: Vec<u32>,
}

impl Service {
    /// `systemctl start`: ExecStart forks and returns; the PID file names the daemon, and
    /// ExecStartPost returns once it serves.
    fn start() -> Service {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut service = Service {
            dir,
            port,
            pids: Vec::new(),
        };
        service.write_config(true);
        service
            .run(&unit_value("ExecStart"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        for line in unit_values("ExecStartPost") {
            service.run(&line, None).unwrap_or_else(|e| panic!("{e}"));
        }
        let pid = eventually(Duration::from_secs(10), "the PID file", || {
            service.pid().filter(|&p| alive(p))
        });
        service.pids.push(pid);
        let status = eventually(Duration::from_secs(10), "the listener", || {
            preflight_status(port).ok()
        });
        assert_eq!(status, 204, "{}", service.log());
        service
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("ackee-gateway.yaml")
    }

    /// The config: a listener on the test's port, short grace periods, pingora's files here.
    fn write_config(&self, valid: bool) {
        let d = self.dir.path().display();
        let port = self.port;
        let threads = if valid { 1 } else { 0 };
        fs::write(
            self.conf(),
            format!(
                "threads: {threads}\npid_file: \"{d}/ackee-gateway.pid\"\n\
                 upgrade_sock: \"{d}/upgrade.sock\"\ndaemon_wait_for_ready: true\n\
                 grace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 1\n\
                 listeners:\n  - address: \"127.0.0.1:{port}\"\n\
                 cors:\n  allowed_origins: [\"https://example.com\"]\n\
                 upstream:\n  replicas:\n    - address: \"127.0.0.1:9\"\n"
            ),
        )
        .unwrap();
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("ackee-gateway.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// One of the unit's command lines, as systemd runs it: split on spaces, $MAINPID expanded
    /// when the line starts. Everything it and the daemons print goes to the log file.
    fn run(&self, line: &str, main_pid: Option<u32>) -> Result<(), String> {
        let line = line
            .replace(UNIT_BIN, BIN)
            .replace(UNIT_CONF, &self.conf().to_string_lossy());
        let line = match main_pid {
            Some(pid) => line.replace("$MAINPID", &pid.to_string()),
            None => line,
        };
        assert!(!line.contains(['"', '\'', '$']), "cannot run {line:?} here");
        let words: Vec<&str> = line.split_whitespace().collect();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .unwrap();
        let status = Command::new(words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap_or_else(|e| panic!("running {line}: {e}"));
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{line}` failed ({status}):\n{}", self.log()))
        }
    }

    /// `systemctl reload`: the ExecReload lines in order, up to the first that fails.
    fn reload(&self, main_pid: u32) -> Result<(), String> {
        unit_values("ExecReload")
            .iter()
            .try_for_each(|line| self.run(line, Some(main_pid)))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.pids.extend(self.pid());
        for &pid in &self.pids {
            sigkill(pid);
        }
    }
}

#[test]
fn the_units_reload_hands_the_listener_to_a_new_main_process() {
    let mut service = Service::start();
    let old = service.pids[0];
    let inode = listening_inode(service.port).expect("the listening socket in /proc/net/tcp");

    service.reload(old).unwrap_or_else(|e| panic!("{e}"));

    // What systemd reads from PIDFile when ExecReload has finished: the new process, already
    // written (daemon_wait_for_ready made `-u -d` wait for it).
    let new = service.pid().expect("a PID file after the reload");
    service.pids.push(new);
    assert_ne!(new, old, "the PID file still names the old process");
    assert!(
        alive(new),
        "the new main process {new} is not running:\n{}",
        service.log()
    );

    // The old process handed the listening socket over after its SIGQUIT, and the reload's
    // last step (--wait-ready) returned only once the new process held it.
    assert!(
        holds_socket(new, &inode),
        "the reload ended before the new process held the listening socket:\n{}",
        service.log()
    );
    // With the old process gone for good, the same port still answers: the new one serves it.
    sigkill(old);
    eventually(
        Duration::from_secs(10),
        "the old process to be gone",
        || (!alive(old)).then_some(()),
    );
    assert_eq!(
        preflight_status(service.port),
        Ok(204),
        "the new process does not serve the port:\n{}",
        service.log()
    );
}

#[test]
fn a_reload_with_a_broken_config_leaves_the_running_process_alone() {
    let service = Service::start();
    let old = service.pids[0];
    service.write_config(false);

    let error = service.reload(old).expect_err("the reload must fail");
    assert!(
        error.contains(" -t -c "),
        "the reload must stop at the `-t` check, before anything else runs: {error}"
    );
    assert!(
        error.contains("threads"),
        "the log names the problem: {error}"
    );
    assert_eq!(
        service.pid(),
        Some(old),
        "the PID file still names the old process"
    );
    assert!(
        alive(old),
        "the old process was stopped:\n{}",
        service.log()
    );
    assert_eq!(preflight_status(service.port), Ok(204), "{}", service.log());
}

// ---------------------------------------------------------------------------------------------
// Prometheus and Grafana

const SCRAPE: &str = "conf/prometheus/scrape.yml";
const ALERTS: &str = "conf/prometheus/alerts.yml";
const DASHBOARD: &str = "conf/grafana/ackee-gateway.json";

/// Every `ackee_gateway_*` name in `text` that is not an exported metric.
fn unknown_metric_names(text: &str) -> BTreeSet<String> {
    let exported = exported_metrics();
    assert!(
        exported.len() >= 15,
        "the README's metrics table was not found"
    );
    let known = |name: &str| {
        exported.iter().any(|m| m == name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| HISTOGRAMS.contains(&base))
            })
    };
    let mut unknown = BTreeSet::new();
    for (i, _) in text.match_indices("ackee_gateway_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let preceded_by_name_char = text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !preceded_by_name_char && !known(&name) {
            unknown.insert(name);
        }
    }
    unknown
}

#[test]
fn the_rules_and_the_dashboard_use_only_exported_metrics() {
    for file in [ALERTS, DASHBOARD] {
        let unknown = unknown_metric_names(&read(file));
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the gateway does not export: {unknown:?}"
        );
    }
    assert_eq!(
        unknown_metric_names(
            "x ackee_gateway_nope_total ackee_gateway_upstream_response_seconds_bucket"
        ),
        BTreeSet::from(["ackee_gateway_nope_total".to_owned()]),
        "the name scanner itself"
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = path(ALERTS);
    let out = promtool(&[OsStr::new("check"), OsStr::new("rules"), rules.as_os_str()]);
    assert_success("promtool check rules", &out);
}

#[test]
fn every_alert_has_a_duration_a_severity_and_an_explanation() {
    let rules = yaml(ALERTS);
    let mut names = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            assert!(rule.get("for").is_some(), "{name} has no `for:`");
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("critical" | "warning" | "info")
                ),
                "{name} has no severity label"
            );
            for a in ["summary", "description"] {
                assert!(
                    rule["annotations"][a]
                        .as_str()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "{name} has no {a}"
                );
            }
            names.push((name, rule["expr"].as_str().unwrap().trim().to_owned()));
        }
    }
    for wanted in [
        "AckeeGatewayReplicaDown",
        "AckeeGatewayAllReplicasDown",
        "AckeeGatewayCorsRejectionSpike",
        "AckeeGatewayHigh5xxRate",
        "AckeeGatewayCertificateExpiresSoon",
        "AckeeGatewayOriginsRefreshFailing",
    ] {
        assert!(names.iter().any(|(n, _)| n == wanted), "no alert {wanted}");
    }
    let cert = names
        .iter()
        .find(|(n, _)| n == "AckeeGatewayCertificateExpiresSoon")
        .unwrap();
    assert_eq!(
        cert.1,
        "ackee_gateway_tls_certificate_expiry_timestamp_seconds - time() < 14 * 24 * 3600"
    );
}

/// The alerts fire on the series that should fire them, and stay quiet on the others
/// (`promtool test rules`; an alert not listed at an eval time must not be firing then).
const RULE_TESTS: &str = r#"
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="ackee-gateway", instance="gw1"}'
        values: '1x10'
      - series: 'up{job="ackee-gateway", instance="gw2"}'
        values: '0x10'
      # gw1: one of two replicas down. gw3: its only replica down.
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="a"}'
        values: '1x10'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="b"}'
        values: '0x10'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw3", replica="only"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 1m
        alertname: AckeeGatewayReplicaDown
      - eval_time: 3m
        alertname: AckeeGatewayReplicaDown
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, replica: b}
      - eval_time: 3m
        alertname: AckeeGatewayAllReplicasDown
        exp_alerts:
          - exp_labels: {severity: critical, job: ackee-gateway, instance: gw3}
      - eval_time: 3m
        alertname: AckeeGatewayDown
        exp_alerts:
          - exp_labels: {severity: critical, job: ackee-gateway, instance: gw2}
  - interval: 1m
    input_series:
      # gw1 per minute: 60 POSTs answered 2xx, 15 answered 5xx, 45 preflights refused for
      # their origin, 2 bodies over the limit.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="POST", status="2xx"}'
        values: '0+60x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="POST", status="5xx"}'
        values: '0+15x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="OPTIONS", status="4xx"}'
        values: '0+45x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw1", reason="origin", request="preflight"}'
        values: '0+45x40'
      - series: 'ackee_gateway_limit_rejections_total{job="ackee-gateway", instance="gw1", limit="body"}'
        values: '0+2x40'
      # gw2: healthy traffic with a few failures and refusals.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw2", method="POST", status="2xx"}'
        values: '0+600x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw2", method="POST", status="5xx"}'
        values: '0+6x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw2", reason="origin", request="actual"}'
        values: '0+30x40'
      # gw3: almost no traffic, all of it failing: below the floors.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw3", method="POST", status="5xx"}'
        values: '0+0.2x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw3", reason="origin", request="preflight"}'
        values: '0+0.2x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayHigh5xxRate
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 30m
        alertname: AckeeGatewayCorsRejectionSpike
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 30m
        alertname: AckeeGatewayLimitRejections
        exp_alerts:
          - exp_labels: {severity: info, job: ackee-gateway, instance: gw1, limit: body}
  - interval: 1m
    input_series:
      # gw1: a password guesser, 20 logins refused a minute, and a replayer, 30 tracker writes
      # refused a minute. gw2: a person who mistyped twice, once; a burst of refused tracker
      # writes that stops after 10 minutes.
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw1", rule="login"}'
        values: '0+20x40'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw1", rule="tracker"}'
        values: '0+30x40'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw2", rule="login"}'
        values: '0x10 2x30'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw2", rule="tracker"}'
        values: '0+120x10 1200x30'
    alert_rule_test:
      - eval_time: 3m
        alertname: AckeeGatewayLoginRateLimited
      - eval_time: 12m
        alertname: AckeeGatewayLoginRateLimited
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 12m
        alertname: AckeeGatewayTrackerRateLimited
      - eval_time: 30m
        alertname: AckeeGatewayTrackerRateLimited
        exp_alerts:
          - exp_labels: {severity: info, job: ackee-gateway, instance: gw1}
  - interval: 1m
    input_series:
      # At time 0, "soon" expires in 1,000,000 s (11.6 days), "later" in 3.2 years.
      - series: 'ackee_gateway_tls_certificate_expiry_timestamp_seconds{job="ackee-gateway", instance="gw1", certificate="soon"}'
        values: '1000000x150'
      - series: 'ackee_gateway_tls_certificate_expiry_timestamp_seconds{job="ackee-gateway", instance="gw1", certificate="later"}'
        values: '100000000x150'
      - series: 'ackee_gateway_tls_certificate_reloads_total{job="ackee-gateway", instance="gw1", certificate="soon", result="failed"}'
        values: '0x30 1x120'
      - series: 'ackee_gateway_tls_certificate_reloads_total{job="ackee-gateway", instance="gw1", certificate="later", result="ok"}'
        values: '0x30 1x120'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayCertificateExpiresSoon
      - eval_time: 2h
        alertname: AckeeGatewayCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: soon}
      - eval_time: 40m
        alertname: AckeeGatewayCertificateReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: soon, result: failed}
  - interval: 1m
    input_series:
      # "failing": every ACME order fails from minute 10 on. "recovered": one fails at minute
      # 10, the retry succeeds at minute 12.
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="failing", result="failed"}'
        values: '0x10 1+1x80'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="failing", result="issued"}'
        values: '0x90'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="recovered", result="failed"}'
        values: '0x10 1x80'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="recovered", result="issued"}'
        values: '0x12 1x78'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayAcmeOrderFailing
      - eval_time: 60m
        alertname: AckeeGatewayAcmeOrderFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: failing, result: failed}
  - interval: 1m
    input_series:
      # gw1: origins_from_ackee, Ackee refuses the token from the start (never a success).
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw1", reason="token_refused"}'
        values: '0+1x60'
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw1", reason="unreachable"}'
        values: '0x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw1"}'
        values: '0x60'
      # gw2: without origins_from_ackee: everything stays 0.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw2", reason="unreachable"}'
        values: '0x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw2"}'
        values: '0x60'
      # gw3: a poll fails now and then, but one succeeds every minute.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw3", reason="unreachable"}'
        values: '0+1x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0+60x60'
      # gw4: worked for 10 minutes, then Ackee went away.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw4", reason="unreachable"}'
        values: '0x10 1+1x50'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw4"}'
        values: '0+60x10 600x50'
    alert_rule_test:
      - eval_time: 12m
        alertname: AckeeGatewayOriginsRefreshFailing
      - eval_time: 22m
        alertname: AckeeGatewayOriginsRefreshFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, reason: token_refused}
      - eval_time: 33m
        alertname: AckeeGatewayOriginsRefreshFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, reason: token_refused}
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw4, reason: unreachable}
  - interval: 1m
    input_series:
      # gw1: assets every 60 s, refreshes fail from minute 5 while Ackee is up.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw1"}'
        values: '0x5 60+60x40'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw1"}'
        values: '60x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="a"}'
        values: '1x45'
      # gw2: the same age, but Ackee is down: AckeeGatewayAllReplicasDown speaks for it.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw2"}'
        values: '0x5 60+60x40'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw2"}'
        values: '60x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw2", replica="a"}'
        values: '0x45'
      # gw3: assets off: the age grows since start-up, the interval is 0.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0+60x45'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw3", replica="a"}'
        values: '1x45'
    alert_rule_test:
      - eval_time: 15m
        alertname: AckeeGatewayAssetsStale
      - eval_time: 22m
        alertname: AckeeGatewayAssetsStale
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
"#;

#[test]
fn the_alerts_fire_when_they_should_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    // promtool compares annotations too; they are prose, checked by `check rules` above, so the
    // copy under test leaves them out.
    let mut rules = yaml(ALERTS);
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    let rules_file = dir.path().join("alerts.yml");
    write_yaml(&rules_file, &rules);
    let mut tests: Value = serde_yaml::from_str(RULE_TESTS).unwrap();
    tests.as_mapping_mut().unwrap().insert(
        Value::from("rule_files"),
        Value::Sequence(vec![Value::from(rules_file.to_string_lossy().as_ref())]),
    );
    let tests_file = dir.path().join("tests.yml");
    write_yaml(&tests_file, &tests);
    let out = promtool(&[
        OsStr::new("test"),
        OsStr::new("rules"),
        tests_file.as_os_str(),
    ]);
    assert_success("promtool test rules", &out);
}

#[test]
fn promtool_accepts_a_prometheus_config_with_the_scrape_job_and_the_rules() {
    let scrape = yaml(SCRAPE);
    let jobs = scrape["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("ackee-gateway"))
        .expect("a job named ackee-gateway");
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let metrics_address = yaml("conf/ackee-gateway.yaml")["metrics"]["address"]
        .as_str()
        .expect("metrics.address in conf/ackee-gateway.yaml")
        .to_owned();
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .expect("static_configs[0].targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        targets,
        [metrics_address.as_str()],
        "the scrape target is the shipped config's metrics.address"
    );

    // Debian 12's Prometheus (2.42) has no scrape_config_files, so the job is copied in.
    let dir = tempfile::tempdir().unwrap();
    let config = map(vec![
        (
            "global",
            map(vec![
                ("scrape_interval", Value::from("15s")),
                ("evaluation_interval", Value::from("15s")),
            ]),
        ),
        (
            "rule_files",
            Value::Sequence(vec![Value::from(path(ALERTS).to_string_lossy().as_ref())]),
        ),
        ("scrape_configs", Value::Sequence(jobs.clone())),
    ]);
    let file = dir.path().join("prometheus.yml");
    write_yaml(&file, &config);
    let out = promtool(&[OsStr::new("check"), OsStr::new("config"), file.as_os_str()]);
    assert_success("promtool check config", &out);
}

/// Every string under an `expr` key, with the path to it.
fn exprs(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or("?");
                match (k, v) {
                    ("expr", Value::String(e)) => out.push((at.clone(), e.clone())),
                    _ => exprs(v, format!("{at}.{k}"), out),
                }
            }
        }
        Value::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                exprs(v, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn dashboard() -> Value {
    // JSON is YAML, so serde_yaml reads the dashboard.
    yaml(DASHBOARD)
}

#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    assert_eq!(d["uid"].as_str(), Some("ackee-gateway"));
    assert!(d["title"].as_str().is_some());
    let variables = d["templating"]["list"]
        .as_sequence()
        .expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["type"].as_str() == Some("datasource")
                && v["query"].as_str() == Some("prometheus")
                && v["name"].as_str() == Some("datasource")),
        "a datasource variable named `datasource`, so the import asks for the Prometheus"
    );
    let panels = d["panels"].as_sequence().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        let title = p["title"]
            .as_str()
            .expect("every panel has a title")
            .to_owned();
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id on {title}"
        );
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].as_u64().is_some(), "{title}: gridPos.{k}");
        }
        if p["type"].as_str() != Some("row") {
            assert_eq!(
                p["datasource"]["uid"].as_str(),
                Some("${datasource}"),
                "{title}"
            );
            let targets = p["targets"].as_sequence().expect("targets");
            assert!(!targets.is_empty(), "{title} has no query");
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some(),
                    "{title}: a target without expr"
                );
                assert_eq!(
                    t["datasource"]["uid"].as_str(),
                    Some("${datasource}"),
                    "{title}"
                );
            }
        }
        titles.push(title);
    }
    for wanted in [
        "Preflights answered at the edge",
        "Rejections by reason",
        "Requests by status",
        "Upstream latency p50 / p90 / p99",
        "Replica health",
        "Certificate expiry (days left)",
    ] {
        assert!(titles.iter().any(|t| t == wanted), "no panel {wanted:?}");
    }
    let mut all = Vec::new();
    exprs(&d, String::new(), &mut all);
    for q in ["0.5", "0.9", "0.99"] {
        assert!(
            all.iter()
                .any(|(_, e)| e.starts_with(&format!("histogram_quantile({q},"))
                    && e.contains("by (replica, le)")),
            "no p{q} latency by replica"
        );
    }
}

#[test]
fn promtool_accepts_every_dashboard_query() {
    let mut all = Vec::new();
    exprs(&dashboard(), String::new(), &mut all);
    assert!(all.len() >= 10, "only {} queries found", all.len());
    // As recording rules, with Grafana's variables replaced by what they expand to.
    let rules: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            assert!(!e.contains('$'), "an unknown Grafana variable in {e}");
            map(vec![
                ("record", Value::from(format!("dashboard:query_{i}"))),
                ("expr", Value::from(e)),
            ])
        })
        .collect();
    let file = map(vec![(
        "groups",
        Value::Sequence(vec![map(vec![
            ("name", Value::from("dashboard")),
            ("rules", Value::Sequence(rules)),
        ])]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("dashboard.yml");
    write_yaml(&rules_file, &file);
    let out = promtool(&[
        OsStr::new("check"),
        OsStr::new("rules"),
        rules_file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}\nqueries: {all:#?}",
        text(&out)
    );
}
