//! Zero-downtime reload: a graceful upgrade (`-u`, then SIGQUIT to the old process) under a
//! steady stream of preflights and POSTs loses no request and refuses no connection; a reload
//! with a broken config leaves the old process serving.

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
use common::process::{eventually, run};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    /// Requests resent because the server closed an idle keep-alive connection before reading
    /// them, as browsers do. Not failures: the request was never processed.
    resent: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// Method, headers, body and the expected status of one request of the stream.
type Step = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
);

fn requests() -> Vec<Step> {
    vec![
        (
            "OPTIONS",
            vec![
                ("Origin", "https://example.com"),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            Vec::new(),
            204,
        ),
        (
            "POST",
            vec![
                ("Origin", "https://example.com"),
                ("Content-Type", "application/json"),
            ],
            mutation_body("createRecord").into_bytes(),
            200,
        ),
    ]
}

/// The workers send thousands of POSTs from 127.0.0.1, more than any per-client limit allows.
const UNLIMITED: &str = "rate_limits: {tracker: {requests_per_minute: off}}";

/// Sends preflight + POST pairs over one keep-alive connection until told to stop.
fn keepalive_worker(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut conn: Option<Conn> = None;
    let mut reused = false;
    while !stop.load(Ordering::SeqCst) {
        for (method, headers, body, want) in requests() {
            loop {
                if conn.is_none() {
                    match Conn::try_open(addr) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            tally.fail(format!("keep-alive connect: {e}"));
                            return;
                        }
                    }
                    reused = false;
                }
                let c = conn.as_mut().expect("connected above");
                match c.try_request(method, "/api", &headers, &body) {
                    Ok(r) => {
                        if r.status != want {
                            tally.fail(format!(
                                "keep-alive {method}: status {} {}",
                                r.status,
                                r.text()
                            ));
                        } else {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        reused = true;
                        if r.header("connection") == Some("close") {
                            conn = None;
                        }
                        break;
                    }
                    Err(_) if reused => {
                        // The server closed the idle connection as it shut down: resend on a
                        // new connection, as HTTP clients do for a reused connection.
                        tally.resent.fetch_add(1, Ordering::SeqCst);
                        conn = None;
                    }
                    Err(e) => {
                        tally.fail(format!("keep-alive {method} on a fresh connection: {e}"));
                        conn = None;
                        break;
                    }
                }
            }
        }
    }
}

/// Sends each request on a new connection until told to stop.
fn fresh_worker(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    while !stop.load(Ordering::SeqCst) {
        for (method, headers, body, want) in requests() {
            match Conn::try_open(addr) {
                Err(e) => tally.fail(format!("fresh connect refused: {e}")),
                Ok(mut c) => match c.try_request(method, "/api", &headers, &body) {
                    Ok(r) if r.status == want => {
                        tally.ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        tally.fail(format!("fresh {method}: status {} {}", r.status, r.text()))
                    }
                    Err(e) => tally.fail(format!("fresh {method}: {e}")),
                },
            }
        }
    }
}

/// Clients that send requests from background threads until stopped, and what they saw.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// A client that opens a connection per request, and with `keepalive` one that reuses
    /// its connection.
    fn start(addr: std::net::SocketAddr, keepalive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut workers = Vec::new();
        let (s, t) = (stop.clone(), tally.clone());
        workers.push(std::thread::spawn(move || fresh_worker(addr, s, t)));
        if keepalive {
            let (s, t) = (stop.clone(), tally.clone());
            workers.push(std::thread::spawn(move || keepalive_worker(addr, s, t)));
        }
        Load {
            stop,
            tally,
            workers,
        }
    }

    /// Waits for `n` more answers.
    fn served(&self, n: usize) {
        let start = self.tally.ok.load(Ordering::SeqCst);
        eventually(
            Duration::from_secs(60),
            &format!("{n} more answers"),
            || (self.tally.ok.load(Ordering::SeqCst) >= start + n).then_some(()),
        );
    }

    /// Stops the clients; the requests that failed.
    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            w.join().unwrap();
        }
        self.tally.failures.lock().unwrap().clone()
    }
}

#[test]
fn a_graceful_upgrade_under_load_loses_no_request() {
    let ackee = FakeAckee::start();
    let mut old = Gateway::start(&Spec::new(ackee.addr).top(UNLIMITED).grace(1, 1));
    let upgrade_sock = old.dir.path().join("upgrade.sock");
    assert!(!upgrade_sock.exists());

    let load = Load::start(old.http, true);
    let served = |n| load.served(n);
    served(40);

    // The new process waits on the upgrade socket for the listeners...
    let mut new = old.spawn_upgrade();
    eventually(
        Duration::from_secs(30),
        "the new process to listen on the upgrade socket",
        || upgrade_sock.exists().then_some(()),
    );
    // ...which the old one hands over on SIGQUIT, then keeps serving what it has and exits.
    old.signal("QUIT");
    served(40);
    // CLOSE_TIMEOUT (5 s, pingora's window for the new process to start accepting) +
    // grace_period_seconds (1) + graceful_shutdown_timeout_seconds (1), plus slack for a busy CI.
    let status = old.wait_exit(Duration::from_secs(25));
    assert!(
        status.success(),
        "the old process exited with {status}\n{}",
        old.stderr()
    );
    served(40);

    let tally = load.tally.clone();
    let failures = load.stop();
    let (ok, resent) = (
        tally.ok.load(Ordering::SeqCst),
        tally.resent.load(Ordering::SeqCst),
    );
    assert!(
        failures.is_empty(),
        "{} of {ok} requests failed during the upgrade: {failures:?}\nold:\n{}\nnew:\n{}",
        failures.len(),
        old.stderr(),
        old.upgrade_stderr()
    );
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new process is serving"
    );
    let m = old.scrape();
    assert!(
        m.get(
            "ackee_gateway_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == 1.0
    );
    eprintln!("upgrade: {ok} answers, {resent} resent after an idle keep-alive close");
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn a_reload_with_a_broken_config_leaves_the_old_process_serving() {
    let ackee = FakeAckee::start();
    let mut old = Gateway::start(&Spec::new(ackee.addr).top(UNLIMITED));
    let good = std::fs::read_to_string(&old.config).unwrap();
    std::fs::write(&old.config, good.replace("listeners:", "listenrs:")).unwrap();

    // What the reload does first: validate. It fails, so nothing else runs.
    let (code, stderr) = run(&["-t", "-c", &old.config.display().to_string()], &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("listenrs: unknown key; did you mean \"listeners\"?"),
        "{stderr}"
    );

    // Even started by hand, a new process with the broken config exits 2 before it touches the
    // upgrade socket, and the old process is never told to go.
    let mut new = old.spawn_upgrade();
    let status = eventually(
        Duration::from_secs(30),
        "the broken upgrade to exit",
        || new.try_wait().unwrap(),
    );
    assert_eq!(status.code(), Some(2), "{}", old.upgrade_stderr());
    assert!(!old.dir.path().join("upgrade.sock").exists());

    assert_eq!(preflight(old.http, "https://example.com").status, 204);
    assert_eq!(
        request(old.http, "GET", "/tracker.js", &[], b"").status,
        200
    );
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "the old process still runs"
    );
}

#[test]
fn an_upgrade_that_cannot_bind_an_added_listener_fails_before_the_hand_over() {
    let ackee = FakeAckee::start();
    let gw = Gateway::start(&Spec::new(ackee.addr).top(UNLIMITED));
    // Another process holds the port the new config adds.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let yaml = std::fs::read_to_string(&gw.config).unwrap();
    let yaml = yaml.replacen(
        "metrics:",
        &format!("  - name: extra\n    address: \"{busy_addr}\"\nmetrics:"),
        1,
    );
    std::fs::write(&gw.config, yaml).unwrap();
    let mut upgrade = gw.spawn_upgrade();
    let status = eventually(Duration::from_secs(20), "the -u process to give up", || {
        upgrade.try_wait().ok().flatten()
    });
    assert!(!status.success(), "{}", gw.upgrade_stderr());
    let stderr = gw.upgrade_stderr();
    assert!(
        stderr.contains(&format!(
            "listeners[1].address: cannot listen on {busy_addr}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("the running gateway keeps its sockets"),
        "{stderr}"
    );
    // The old process was never asked to hand over, and serves on.
    assert_eq!(preflight(gw.http, "https://example.com").status, 204);
    drop(busy);
}

/// Starts a `-u` process on `gw`'s config whose stderr goes to `log` in the gateway's directory.
fn spawn_upgrade_logged(gw: &Gateway, log: &str) -> std::process::Child {
    std::process::Command::new(common::process::binary())
        .args(["-u", "-c"])
        .arg(&gw.config)
        .env_remove("ACKEE_ALLOW_ORIGIN")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(gw.dir.path().join(log)).unwrap())
        .spawn()
        .expect("spawn ackee-gateway -u")
}

#[test]
fn a_second_upgrade_waits_for_the_first_instead_of_taking_its_socket() {
    let ackee = FakeAckee::start();
    let mut old = Gateway::start(&Spec::new(ackee.addr).top(UNLIMITED).grace(1, 1));
    let upgrade_sock = old.dir.path().join("upgrade.sock");
    let dir = old.dir.path().to_owned();
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();

    let load = Load::start(old.http, false);
    let served = |n| load.served(n);
    served(20);

    // The first new process waits on the upgrade socket; a second one, started before the old
    // process has handed over, waits for the first instead of unlinking that socket.
    let socket_waits = |what: &str| {
        eventually(Duration::from_secs(30), what, || {
            upgrade_sock.exists().then_some(())
        })
    };
    let mut first = spawn_upgrade_logged(&old, "first.log");
    socket_waits("the first new process to listen on the upgrade socket");
    let mut second = spawn_upgrade_logged(&old, "second.log");
    let logged = |name: &str, line: &str, what: &str| {
        eventually(Duration::from_secs(30), what, || {
            log(name).contains(line).then_some(())
        })
    };
    logged(
        "second.log",
        "another upgrade holds",
        "the second to wait for the first",
    );

    // The hand-over to the first goes through...
    old.signal("QUIT");
    logged(
        "first.log",
        "serving on every listener",
        "the first to serve",
    );
    served(20);
    // ...and only then does the second one wait on the socket, and take over from the first.
    socket_waits("the second new process to listen on the upgrade socket");
    let quit = std::process::Command::new("kill")
        .args(["-QUIT", &first.id().to_string()])
        .status();
    assert!(quit.is_ok_and(|s| s.success()), "kill -QUIT the first");
    logged(
        "second.log",
        "serving on every listener",
        "the second to serve",
    );
    served(20);
    let status = eventually(Duration::from_secs(30), "the first to exit", || {
        first.try_wait().unwrap()
    });
    assert!(status.success(), "{}", log("first.log"));
    let status = old.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", old.stderr());

    let failures = load.stop();
    assert!(
        failures.is_empty(),
        "{} requests failed: {failures:?}\nfirst:\n{}\nsecond:\n{}",
        failures.len(),
        log("first.log"),
        log("second.log")
    );
    for name in ["first.log", "second.log"] {
        let text = log(name);
        assert!(
            !text.contains("panicked") && !text.contains("Unable to send"),
            "{name}:\n{text}"
        );
    }
    assert!(second.try_wait().unwrap().is_none(), "the second serves");
    let _ = second.kill();
    let _ = second.wait();
}
