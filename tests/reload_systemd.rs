//! `systemctl reload` under a real systemd: any sequence of reloads refuses no connection and
//! causes no restart.
//!
//! The test boots a systemd (Debian 12: systemd 252) in a container with `systemd-nspawn`
//! (package `systemd-container`), from a throw-away overlay of this machine's root file system
//! and with a private network. The shipped unit, the shipped config and the binary just built
//! are bind-mounted where the Debian package installs them. A client inside the container's
//! network namespace opens a new connection for every request, to the listener and to the
//! metrics port, while the test runs, one after another:
//!
//! 1. two `systemctl reload`s back to back,
//! 2. a reload during a reload (`systemctl reload --no-block`, then, while the unit is still
//!    reloading, `systemctl reload`),
//! 3. a `systemctl restart` (without load: a restart closes the ports) and a reload right after.
//!
//! After each, no connection was refused or failed, every reload succeeded, the unit is active
//! with a new main process that is the one in the PID file, systemd restarted nothing
//! (`NRestarts=0`), and the journal has no pingora panic and no failed socket hand-over.
//!
//! A second container runs Pebble (Let's Encrypt's test CA) and its DNS server as transient
//! units, and the gateway with a config whose TLS listener has a managed certificate
//! (`tls.acme`): the gateway orders it into the unit's `StateDirectory=` (0700, its key 0600),
//! and after `systemctl restart` and after `systemctl reload` serves the same certificate,
//! from the state directory, without a second order.
//!
//! `SHOW_JOURNAL=1` prints the unit's journal at the end. `ACKEE_GATEWAY_BIN` and
//! `ACKEE_GATEWAY_UNIT` replace the binary and the unit under test (to show that the test fails
//! with an older one).
//!
//! It needs root (to mount and to boot the container). Without root, or when this machine
//! cannot boot a container, it says why and passes without testing; a missing
//! `systemd-nspawn` fails it.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod process;
    pub mod tls;
}

use common::process::eventually;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const UNIT: &str = "ackee-gateway";
/// The shipped config's listener and metrics addresses, inside the container's own network
/// namespace (so fixed ports collide with nothing).
const LISTENER: &str = "127.0.0.1:8080";
const METRICS: &str = "127.0.0.1:9464";
const PID_FILE: &str = "/run/ackee-gateway/ackee-gateway.pid";

/// Runs `cmd` to completion, killing it after `limit`.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // Drain the pipes on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A booted container. Dropping it powers it off (and kills it if it does not go).
struct Container {
    nspawn: Child,
    /// The container's PID 1 (systemd), as this machine sees it.
    init: u32,
    dir: tempfile::TempDir,
}

/// The shell command that boots this machine's own "/" in a container named `name`, with the
/// gateway's binary, unit and config (`config`, or else the shipped one) bound in, and `more`
/// read-only binds (host path, container path).
fn nspawn_script(
    root: &std::path::Path,
    name: &str,
    config: Option<&Path>,
    more: &[(String, &str)],
) -> String {
    let config = config.map_or_else(
        || format!("{ROOT}/conf/ackee-gateway.yaml"),
        |c| c.display().to_string(),
    );
    let mut binds = vec![
        (common::process::binary(), "/usr/bin/ackee-gateway"),
        (
            std::env::var("ACKEE_GATEWAY_UNIT")
                .unwrap_or_else(|_| format!("{ROOT}/systemd/ackee-gateway.service")),
            "/etc/systemd/system/ackee-gateway.service",
        ),
        (config, "/etc/ackee-gateway/ackee-gateway.yaml"),
    ];
    binds.extend(more.iter().cloned());
    // nspawn refuses to boot "/" itself, so "/" is bind-mounted on a directory first, in a
    // mount namespace of its own that this machine never sees. --volatile=overlay puts a
    // tmpfs over it: nothing the container writes reaches this machine's disk.
    let mut script = format!("mount --bind / {} && exec systemd-nspawn", root.display());
    for arg in [
        "--boot".to_owned(),
        "--private-network".to_owned(),
        "--volatile=overlay".to_owned(),
        // No systemd runs on the host to register with or to allocate a scope from.
        "--register=no".to_owned(),
        "--keep-unit".to_owned(),
        "--console=passive".to_owned(),
        format!("--machine={name}"),
        format!("--directory={}", root.display()),
    ]
    .into_iter()
    .chain(
        binds
            .iter()
            .map(|(from, to)| format!("--bind-ro={from}:{to}")),
    ) {
        script.push(' ');
        script.push_str(&arg);
    }
    script
}

impl Container {
    /// Boots the container (with the shipped config, or `config`, and more read-only binds),
    /// or says why it cannot be booted here.
    fn boot_with(config: Option<&Path>, more: &[(String, &str)]) -> Result<Container, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let log = std::fs::File::create(dir.path().join("nspawn.log")).unwrap();
        let name = format!("ackee-reload-{}", std::process::id());
        let nspawn = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(nspawn_script(&root, &name, config, more))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut container = Container {
            init: 0,
            nspawn,
            dir,
        };
        container.find_init()?;
        container.wait_booted()?;
        Ok(container)
    }

    /// Waits for the container's systemd to start, and keeps its PID.
    fn find_init(&mut self) -> Result<(), String> {
        // unshare and sh exec systemd-nspawn, so its PID is the child's; the container's init
        // is a child of it.
        let nspawn_pid = self.nspawn.id();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.init == 0 {
            if let Some(status) = self.nspawn.try_wait().unwrap() {
                return Err(format!("systemd-nspawn exited ({status}):\n{}", self.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no systemd in the container after 30 s:\n{}",
                    self.log()
                ));
            }
            let children =
                std::fs::read_to_string(format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children"))
                    .unwrap_or_default();
            self.init = children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim_end() == "systemd")
                })
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits for the container's systemd to finish booting.
    fn wait_booted(&self) -> Result<(), String> {
        // "degraded" is fine: some of this machine's own services fail in a container. Until
        // systemd listens on its bus, systemctl cannot connect, and is asked again.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.run(
                &["systemctl", "is-system-running", "--wait"],
                Duration::from_secs(60),
            );
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if ["running", "degraded"].contains(&state.as_str()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the container's systemd did not finish booting: {}\n{}",
                    text(&out),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nspawn.log")).unwrap_or_default()
    }

    /// Runs a command inside the container (all its namespaces), killed after `limit`.
    fn run(&self, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.init))
            .arg("--all")
            .arg("--")
            .args(args);
        output_within(cmd, limit)
    }

    /// Runs a command inside the container; panics unless it succeeds. Returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\n{}\njournal:\n{}",
            out.status,
            text(&out),
            self.journal()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The unit's journal. journald stores what a process writes to its stream on its own
    /// time, so a line written before the event a test waited for may not be stored yet;
    /// `journalctl --sync` returns once every message written before it is stored.
    fn journal(&self) -> String {
        let sync = self.run(&["journalctl", "--sync"], Duration::from_secs(30));
        let out = self.run(
            &[
                "journalctl",
                "--unit",
                UNIT,
                "--no-pager",
                "--output=short-precise",
            ],
            Duration::from_secs(30),
        );
        if sync.status.success() {
            text(&out)
        } else {
            format!(
                "(journalctl --sync failed: {})\n{}",
                text(&sync),
                text(&out)
            )
        }
    }

    /// `systemctl show` properties of the unit.
    fn show(&self, property: &str) -> String {
        self.ok(&["systemctl", "show", "--value", "--property", property, UNIT])
            .trim()
            .to_owned()
    }

    fn pid_file(&self) -> Option<u32> {
        let out = self.run(&["cat", PID_FILE], Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// The container's network namespace, for the client threads.
    fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.init))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM makes systemd-nspawn power the container off.
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(self.nspawn.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.nspawn.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.nspawn.kill();
                let _ = self.nspawn.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the client saw.
#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    refused: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One request on a new connection; the status line's code.
fn one_request(addr: SocketAddr, request: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&head)),
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidData, line.into_owned()))
}

/// Clients in the container's network namespace: each opens a new connection for every
/// request, one to the listener (a preflight, answered by the gateway itself) and one to the
/// metrics port, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(netns: &Path) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let targets = [
            (
                LISTENER,
                "OPTIONS /api HTTP/1.1\r\nHost: localhost\r\nOrigin: https://example.com\r\n\
                 Access-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
                204,
            ),
            (
                METRICS,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                200,
            ),
        ];
        let threads = targets
            .into_iter()
            .map(|(addr, request, want)| {
                let (stop, tally) = (stop.clone(), tally.clone());
                let netns = std::fs::File::open(netns).unwrap();
                let addr: SocketAddr = addr.parse().unwrap();
                std::thread::spawn(move || {
                    // The network namespace is per thread: this one's sockets are the
                    // container's.
                    // SAFETY: setns(2) on an open namespace file; no memory is involved.
                    let r = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                    while !stop.load(Ordering::SeqCst) {
                        match one_request(addr, request) {
                            Ok(status) if status == want => {
                                tally.answered.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(status) => tally
                                .failures
                                .lock()
                                .unwrap()
                                .push(format!("{addr}: status {status}")),
                            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                                tally.refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => tally.failures.lock().unwrap().push(format!("{addr}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            threads,
        }
    }

    /// Waits until `n` more requests have been answered.
    fn served(&self, n: usize) {
        let start = self.tally.answered.load(Ordering::SeqCst);
        eventually(
            Duration::from_secs(30),
            &format!("{n} more answers"),
            || (self.tally.answered.load(Ordering::SeqCst) >= start + n).then_some(()),
        );
    }

    /// Stops the clients; answered, refused and failed requests.
    fn finish(self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.tally.failures.lock().unwrap().clone();
        (
            self.tally.answered.load(Ordering::SeqCst),
            self.tally.refused.load(Ordering::SeqCst),
            failures,
        )
    }
}

/// The unit is active and running, its main process is the PID file's, and systemd has not
/// restarted it. Returns the main PID.
fn settled(c: &Container, what: &str) -> u32 {
    eventually(
        Duration::from_secs(30),
        &format!("the unit to settle after {what}"),
        || {
            let state = format!("{}/{}", c.show("ActiveState"), c.show("SubState"));
            let main: u32 = c.show("MainPID").parse().unwrap_or(0);
            (state == "active/running" && main != 0 && c.pid_file() == Some(main)).then_some(main)
        },
    )
}

/// Right after `what` returned (no waiting here), systemd's main process holds the listening
/// socket of the listener and of the metrics port: a start or reload ends only when the new
/// process serves on every listener. `ss` names every process that holds each socket.
fn main_process_serves(c: &Container, what: &str) {
    let main = c.show("MainPID");
    let sockets = listening_sockets(c);
    for addr in [LISTENER, METRICS] {
        let holders = sockets
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(addr))
            .unwrap_or_else(|| panic!("nothing listens on {addr} after {what}:\n{sockets}"));
        assert!(
            holders.contains(&format!("pid={main},")),
            "{what} returned before the main process {main} held {addr}:\n{sockets}\n{}",
            c.journal()
        );
    }
}

/// The container's listening TCP sockets, each line naming the processes that hold it (`ss`).
fn listening_sockets(c: &Container) -> String {
    c.ok(&[
        "ss",
        "--no-header",
        "--listening",
        "--tcp",
        "--numeric",
        "--processes",
    ])
}

/// Waits until the processes the reloads replaced have closed their listening sockets (they
/// keep them for the upgrade's grace period). On a host, `systemctl stop` kills the unit's
/// whole control group, old processes included; inside this container systemd cannot
/// ("Failed to kill control group ...: Input/output error" under a hybrid cgroup host), so a
/// restart that came while an old process still listened found its ports taken.
fn only_the_main_process_listens(c: &Container, main: u32) {
    eventually(
        Duration::from_secs(30),
        "the replaced processes to close their listening sockets",
        || {
            let sockets = listening_sockets(c);
            let others = sockets
                .lines()
                .filter(|l| {
                    [LISTENER, METRICS].contains(&l.split_whitespace().nth(3).unwrap_or(""))
                })
                .flat_map(|l| l.split("pid=").skip(1))
                .filter_map(|p| p.split(',').next()?.parse::<u32>().ok())
                .any(|pid| pid != main);
            (!others).then_some(())
        },
    );
}

fn no_restart(c: &Container, what: &str) {
    assert_eq!(
        c.show("NRestarts"),
        "0",
        "systemd restarted the service during {what}:\n{}",
        c.journal()
    );
}

/// Runs `scenario` under load and checks that no connection was refused or failed. The
/// scenario starts once `warm_up` requests have been answered.
fn under_load(c: &Container, what: &str, warm_up: usize, scenario: impl FnOnce()) {
    let load = Load::start(&c.netns());
    load.served(warm_up);
    scenario();
    load.served(20);
    let (answered, refused, failures) = load.finish();
    eprintln!(
        "{what}: {answered} answered, {refused} refused, {} failed",
        failures.len()
    );
    assert!(
        refused == 0 && failures.is_empty(),
        "{what}: {refused} connections refused and {} failed of {answered} answered: {:?}\n\
         journal:\n{}",
        failures.len(),
        failures.iter().take(10).collect::<Vec<_>>(),
        c.journal()
    );
}

/// A container booted with systemd, or `None` (said on stderr) where none can boot here.
fn booted_container() -> Option<Container> {
    booted_container_with(None, &[])
}

/// [`booted_container`] with another config and more read-only binds.
fn booted_container_with(config: Option<&Path>, more: &[(String, &str)]) -> Option<Container> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: booting a container with systemd-nspawn needs root");
        return None;
    }
    let nspawn = Command::new("systemd-nspawn").arg("--version").output();
    assert!(
        nspawn.is_ok_and(|o| o.status.success()),
        "systemd-nspawn is missing: apt-get install systemd-container"
    );
    match Container::boot_with(config, more) {
        Ok(c) => {
            let version = c.ok(&["systemctl", "--version"]);
            eprintln!("{}", version.lines().next().unwrap_or(""));
            Some(c)
        }
        Err(reason) => {
            eprintln!("SKIPPED: this machine cannot boot a systemd container: {reason}");
            None
        }
    }
}

/// The README's installation steps 2 and 4, inside the container; the main PID once started.
fn install_and_start(c: &Container) -> u32 {
    let user = c.run(&["id", "ackee-gateway"], Duration::from_secs(10));
    if !user.status.success() {
        c.ok(&[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "ackee-gateway",
        ]);
    }
    c.ok(&["systemctl", "daemon-reload"]);
    c.ok(&["systemctl", "start", UNIT]);
    main_process_serves(c, "systemctl start");
    settled(c, "the start")
}

/// Five reloads were asked for, and five ran, each a hand-over, and the journal holds no
/// panic, failed hand-over or restart.
fn assert_five_clean_hand_overs(c: &Container) {
    let journal = c.journal();
    if std::env::var_os("SHOW_JOURNAL").is_some() {
        eprintln!("{journal}");
    }
    // The one asked for during another ran after it (systemd logs "Reloaded" once for the
    // two, as one job).
    let count = |what: &str| journal.lines().filter(|l| l.contains(what)).count();
    let reloads = count("Reloading ackee-gateway.service");
    // The old process's line as SIGQUIT arrives; a hand-over that failed would also say
    // "Unable to send listener sockets" (below).
    let hand_overs = count("handing over (SIGQUIT)");
    assert_eq!(
        (reloads, hand_overs),
        (5, 5),
        "five reloads, five hand-overs:\n{journal}"
    );
    for bad in [
        "panicked",
        "Unable to send listener sockets",
        "Giving up",
        "Main process exited",
        "Scheduled restart",
    ] {
        assert!(
            !journal.contains(bad),
            "the journal says {bad:?}:\n{journal}"
        );
    }
}

#[test]
fn any_sequence_of_reloads_refuses_no_connection_and_restarts_nothing() {
    let Some(c) = booted_container() else {
        return;
    };
    let mut main = install_and_start(&c);

    // 1. Two reloads back to back.
    under_load(&c, "reload; reload", 20, || {
        c.ok(&["systemctl", "reload", UNIT]);
        main_process_serves(&c, "the first reload");
        c.ok(&["systemctl", "reload", UNIT]);
        main_process_serves(&c, "the second reload");
    });
    let after = settled(&c, "reload; reload");
    assert_ne!(after, main, "the reloads did not replace the main process");
    no_restart(&c, "reload; reload");
    main = after;

    // 2. A reload while a reload runs.
    under_load(&c, "a reload during a reload", 20, || {
        c.ok(&["systemctl", "reload", "--no-block", UNIT]);
        eventually(Duration::from_secs(30), "the unit to be reloading", || {
            (c.show("ActiveState") == "reloading").then_some(())
        });
        c.ok(&["systemctl", "reload", UNIT]);
        main_process_serves(&c, "a reload during a reload");
    });
    let after = settled(&c, "a reload during a reload");
    assert_ne!(after, main, "the reloads did not replace the main process");
    no_restart(&c, "a reload during a reload");

    // 3. A reload right after a restart. The restart itself closes the ports for a moment
    // (a stop, then a start), so the clients start once it has returned, and the reload
    // follows at once: `systemctl restart` returning means the gateway serves.
    let before = settled(&c, "the reloads");
    only_the_main_process_listens(&c, before);
    c.ok(&["systemctl", "restart", UNIT]);
    main_process_serves(&c, "systemctl restart");
    let restarted: u32 = c.show("MainPID").parse().unwrap_or(0);
    assert!(
        restarted != 0 && restarted != before,
        "the restart did not start a new main process"
    );
    under_load(&c, "a reload right after a restart", 0, || {
        c.ok(&["systemctl", "reload", UNIT]);
        main_process_serves(&c, "a reload right after a restart");
    });
    let after = settled(&c, "a reload right after a restart");
    assert_ne!(
        after, restarted,
        "the reload did not replace the main process"
    );
    no_restart(&c, "a reload right after a restart");

    assert_five_clean_hand_overs(&c);
}

/// Where the ACME test's files are, inside the container.
const ACME_DIR: &str = "/etc/ackee-acme-test";
/// The name of the managed certificate in the ACME test.
const ACME_NAME: &str = "stats.acme.test";

/// Runs `f` on a thread inside the container's network namespace.
fn in_netns<T: Send + 'static>(c: &Container, f: impl FnOnce() -> T + Send + 'static) -> T {
    let netns = std::fs::File::open(c.netns()).unwrap();
    std::thread::spawn(move || {
        // SAFETY: setns(2) on an open namespace file; no memory is involved.
        let r = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// The files of the ACME test, in a directory the service user can read: Pebble's config and
/// the certificate of its HTTPS listener (from a test CA, which the gateway trusts as
/// `directory_ca`), and the gateway's config with a managed certificate. Inside the container's
/// own network, Pebble listens on 14000 (management 15000) and validates on the gateway's
/// ports 8080 (HTTP-01) and 8443.
fn acme_files(dir: &Path, ca: &common::tls::TestCa) {
    use std::os::unix::fs::PermissionsExt;
    let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
    leaf.write(dir, "pebble");
    std::fs::write(dir.join("pebble-ca.pem"), &ca.pem).unwrap();
    let pebble = format!(
        r#"{{"pebble": {{"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "{ACME_DIR}/pebble.pem", "privateKey": "{ACME_DIR}/pebble.key",
  "httpPort": 8080, "tlsPort": 8443, "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#
    );
    std::fs::write(dir.join("pebble.json"), pebble).unwrap();
    let config = format!(
        r#"pid_file: /run/ackee-gateway/ackee-gateway.pid
upgrade_sock: /run/ackee-gateway/upgrade.sock
daemon_wait_for_ready: true
grace_period_seconds: 3
graceful_shutdown_timeout_seconds: 2
threads: 1
listeners:
  - name: http
    address: "{LISTENER}"
    redirect_to_https: true
  - name: https
    address: "127.0.0.1:8443"
    tls:
      acme:
        domains: ["{ACME_NAME}"]
        contact: "mailto:admin@acme.test"
        directory: "https://127.0.0.1:14000/dir"
        directory_ca: "{ACME_DIR}/pebble-ca.pem"
cors:
  allowed_origins: ["https://example.com"]
upstream:
  replicas: [{{address: "127.0.0.1:3000"}}]
metrics:
  address: "{METRICS}"
"#
    );
    std::fs::write(dir.join("ackee-gateway.yaml"), config).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The leaf certificate the gateway serves for [`ACME_NAME`], verified against Pebble's root.
fn served_leaf(c: &Container, ca_pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca_pem = ca_pem.to_owned();
    in_netns(c, move || {
        // Pebble's root, from its management interface (over HTTPS with the test CA).
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |roots: rustls::RootCertStore| {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            c.resumption = rustls::client::Resumption::disabled();
            c
        };
        let management: SocketAddr = "127.0.0.1:15000".parse().unwrap();
        let mut m = common::tls::connect(management, "127.0.0.1", config(roots)).unwrap();
        let root = m
            .conn
            .request("GET", "/roots/0", &[("Host", "127.0.0.1")], b"");
        assert_eq!(root.status, 200);
        let mut pebble_roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(root.text().as_bytes()) {
            pebble_roots.add(cert.unwrap()).unwrap();
        }
        let gateway: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        common::tls::connect(gateway, ACME_NAME, config(pebble_roots))
            .expect("a TLS handshake for the managed certificate")
            .leaf
    })
}

#[test]
fn a_managed_certificate_survives_a_restart_and_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::TestCa::generate();
    acme_files(dir.path(), &ca);
    let config = dir.path().join("ackee-gateway.yaml");
    let binds = [(dir.path().display().to_string(), ACME_DIR)];
    let Some(c) = booted_container_with(Some(&config), &binds) else {
        return;
    };
    // Pebble and its DNS server (every name is 127.0.0.1) as transient units.
    c.ok(&[
        "systemd-run",
        "--unit=challtestsrv",
        "/usr/bin/pebble-challtestsrv",
        "-dns01",
        "127.0.0.1:8053",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-management",
        "127.0.0.1:8055",
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
    ]);
    c.ok(&[
        "systemd-run",
        "--unit=pebble",
        "--setenv=PEBBLE_VA_NOSLEEP=1",
        "--setenv=PEBBLE_WFE_NONCEREJECT=0",
        "/usr/bin/pebble",
        "-config",
        &format!("{ACME_DIR}/pebble.json"),
        "-dnsserver",
        "127.0.0.1:8053",
    ]);
    eventually(Duration::from_secs(30), "pebble to listen", || {
        let ss = c.ok(&["ss", "--no-header", "--listening", "--tcp", "--numeric"]);
        ss.contains("127.0.0.1:14000").then_some(())
    });
    install_and_start(&c);
    let conf = "/etc/ackee-gateway/ackee-gateway.yaml";
    eventually(
        Duration::from_secs(60),
        "the certificate to be issued",
        || {
            let out = c.run(
                &["ackee-gateway", "certificates", "-c", conf],
                Duration::from_secs(10),
            );
            out.status.success().then_some(())
        },
    );
    let pem = format!("/var/lib/ackee-gateway/acme/certificates/{ACME_NAME}/certificate.pem");
    let stored = c.ok(&["cat", &pem]);
    let modes = c.ok(&["stat", "-c", "%a %U", "/var/lib/ackee-gateway", &pem]);
    assert_eq!(modes, "700 ackee-gateway\n600 ackee-gateway\n");
    let leaf = served_leaf(&c, &ca.pem);

    for what in ["restart", "reload"] {
        c.ok(&["systemctl", what, UNIT]);
        main_process_serves(&c, what);
        settled(&c, what);
        assert_eq!(
            served_leaf(&c, &ca.pem),
            leaf,
            "after systemctl {what} the gateway serves another certificate:\n{}",
            c.journal()
        );
        assert_eq!(
            c.ok(&["cat", &pem]),
            stored,
            "the stored certificate changed"
        );
    }
    let journal = c.journal();
    assert_eq!(
        journal.matches("waiting for the CA").count(),
        1,
        "one order, none after the restart or the reload:\n{journal}"
    );
    assert!(
        journal.matches("the stored one from").count() >= 2,
        "the restarted and the reloaded gateway served the stored certificate:\n{journal}"
    );
    no_restart(&c, "a restart and a reload");
}
