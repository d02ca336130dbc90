//! The systemd unit checked with the real tools: `systemd-analyze verify` and `security`, the
//! values it must keep, the shipped config it runs, and its start and reload commands run in
//! order against the real binary, as systemd would run them (without its sandbox). Needs
//! `apt-get install systemd`; tests/reload_systemd.rs runs the unit under a real systemd.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod assets;
    pub mod process;
}

use common::assets::{assert_success, read, systemd_analyze, text, yaml};
use common::process::eventually;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_yaml::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ackee-gateway");

/// Where the unit expects the binary and the config (as the Debian package installs them).
const UNIT_BIN: &str = "/usr/bin/ackee-gateway";
const UNIT_CONF: &str = "/etc/ackee-gateway/ackee-gateway.yaml";

/// pingora's fixed wait between handing the sockets to a new process and its graceful
/// shutdown (`CLOSE_TIMEOUT` in pingora-core's server module).
const PINGORA_CLOSE_TIMEOUT_SECONDS: u64 = 5;

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
