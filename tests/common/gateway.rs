//! Starting the real `ackee-gateway` binary on loopback with ephemeral ports, and scraping it.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client;
use super::process::{binary, eventually};

/// A free loopback port, found by binding port 0, never the same twice in one test binary.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The TCP ports a process is listening on, read from /proc, so a test knows the socket is
/// really this process's and not some other test's that took the same port.
pub fn listening_ports(pid: u32) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" || !inodes.contains(cols[9]) {
                continue;
            }
            if let Some(port) = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// What to put in the gateway's config.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Replica addresses, named `ackee-0`, `ackee-1`, ...
    pub replicas: Vec<SocketAddr>,
    /// Replica weights, in the same order; empty means the default weight.
    pub weights: Vec<u32>,
    /// Lines under `cors:`, without indentation.
    pub cors: String,
    /// Extra lines under `upstream:`, without indentation.
    pub upstream: String,
    /// Extra lines under the listener entry, without indentation.
    pub listener: String,
    /// Extra top-level lines.
    pub top: String,
    /// Lines of a second, TLS listener entry (its `tls:` block and more), if any.
    pub tls_listener: Option<String>,
    /// Environment variables for the process.
    pub env: Vec<(String, String)>,
    /// `grace_period_seconds` and `graceful_shutdown_timeout_seconds`.
    pub grace: (u64, u64),
    /// Set `JOURNAL_STREAM` to the `dev:ino` of the stderr file, as systemd does when stderr
    /// is the journal.
    pub journal: bool,
    /// The `assets` section: a word (`off`, the default here, so that tests of proxying see
    /// their requests reach Ackee) or the lines of a mapping, without indentation.
    pub assets: String,
    /// Fixed (http, metrics, https) ports instead of new free ones, for a test that must tell
    /// another program (an ACME server) the ports first.
    pub ports: Option<(u16, u16, u16)>,
    /// `RLIMIT_NOFILE` (soft and hard) for the process, if not the test's own.
    pub nofile: Option<u64>,
}

impl Spec {
    /// One replica, origins `https://example.com` and `https://*.example.org`.
    pub fn new(ackee: SocketAddr) -> Spec {
        Spec {
            replicas: vec![ackee],
            weights: Vec::new(),
            cors: "allowed_origins: [\"https://example.com\", \"https://*.example.org\"]"
                .to_owned(),
            upstream: String::new(),
            listener: String::new(),
            top: String::new(),
            tls_listener: None,
            env: Vec::new(),
            grace: (0, 1),
            journal: false,
            assets: "off".to_owned(),
            ports: None,
            nofile: None,
        }
    }

    /// The `assets` section: `on`, `off`, or the lines of a mapping.
    pub fn assets(mut self, lines: &str) -> Spec {
        self.assets = lines.to_owned();
        self
    }

    /// Listens on these (http, metrics, https) ports.
    pub fn ports(mut self, http: u16, metrics: u16, https: u16) -> Spec {
        self.ports = Some((http, metrics, https));
        self
    }

    /// Runs the gateway with this many file descriptors at most (soft and hard limit).
    pub fn nofile(mut self, n: u64) -> Spec {
        self.nofile = Some(n);
        self
    }

    /// Makes stderr look like the journal to the gateway.
    pub fn journal(mut self) -> Spec {
        self.journal = true;
        self
    }

    /// Sets `grace_period_seconds` and `graceful_shutdown_timeout_seconds`.
    pub fn grace(mut self, period: u64, timeout: u64) -> Spec {
        self.grace = (period, timeout);
        self
    }

    /// Several replicas, named `ackee-0`, `ackee-1`, ... in this order.
    pub fn replicas(mut self, replicas: &[SocketAddr]) -> Spec {
        self.replicas = replicas.to_vec();
        self
    }

    /// Weights for the replicas, in the same order.
    pub fn weights(mut self, weights: &[u32]) -> Spec {
        self.weights = weights.to_vec();
        self
    }

    pub fn tls_listener(mut self, lines: &str) -> Spec {
        self.tls_listener = Some(lines.to_owned());
        self
    }

    pub fn cors(mut self, lines: &str) -> Spec {
        self.cors = lines.to_owned();
        self
    }

    pub fn upstream(mut self, lines: &str) -> Spec {
        self.upstream = lines.to_owned();
        self
    }

    pub fn listener(mut self, lines: &str) -> Spec {
        self.listener = lines.to_owned();
        self
    }

    pub fn top(mut self, lines: &str) -> Spec {
        self.top = lines.to_owned();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Spec {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Renders the YAML.
    pub fn yaml(&self, dir: &Path, http: u16, metrics: u16, https: u16) -> String {
        let indent = |text: &str, n: usize| {
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("{}{l}\n", " ".repeat(n)))
                .collect::<String>()
        };
        let mut y = format!(
            "threads: 1\npid_file: \"{d}/gw.pid\"\nupgrade_sock: \"{d}/upgrade.sock\"\ngrace_period_seconds: {g}\ngraceful_shutdown_timeout_seconds: {t}\n",
            d = dir.display(),
            g = self.grace.0,
            t = self.grace.1,
        );
        y.push_str(&format!(
            "listeners:\n  - name: public\n    address: \"127.0.0.1:{http}\"\n"
        ));
        y.push_str(&indent(&self.listener, 4));
        if let Some(tls) = &self.tls_listener {
            y.push_str(&format!(
                "  - name: secure\n    address: \"127.0.0.1:{https}\"\n"
            ));
            y.push_str(&indent(tls, 4));
        }
        y.push_str(&format!("metrics:\n  address: \"127.0.0.1:{metrics}\"\n"));
        y.push_str("upstream:\n  replicas:\n");
        for (i, r) in self.replicas.iter().enumerate() {
            y.push_str(&format!("    - name: ackee-{i}\n      address: \"{r}\"\n"));
            if let Some(w) = self.weights.get(i) {
                y.push_str(&format!("      weight: {w}\n"));
            }
        }
        y.push_str(&indent(&self.upstream, 2));
        y.push_str("cors:\n");
        y.push_str(&indent(&self.cors, 2));
        if self.assets.contains(':') {
            y.push_str("assets:\n");
            y.push_str(&indent(&self.assets, 2));
        } else {
            y.push_str(&format!("assets: {}\n", self.assets));
        }
        y.push_str(&indent(&self.top, 0));
        y
    }
}

/// A running gateway. Dropping it kills the process.
pub struct Gateway {
    pub child: Child,
    pub http: SocketAddr,
    /// The TLS listener, if the spec has one.
    pub https: SocketAddr,
    pub metrics: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Gateway {
    /// Starts the binary with the spec and waits until both ports accept connections.
    pub fn start(spec: &Spec) -> Gateway {
        let mut last = String::new();
        for _attempt in 0..3 {
            match Self::try_start(spec) {
                Ok(g) => return g,
                // Another process took a port between our probe and the bind: try new ports.
                Err(log) if log.contains("Address already in use") || log.contains("is in use") => {
                    last = log
                }
                Err(log) => panic!("the gateway did not start:\n{log}"),
            }
        }
        panic!("the gateway did not start after 3 attempts:\n{last}");
    }

    fn try_start(spec: &Spec) -> Result<Gateway, String> {
        let dir = tempfile::tempdir().unwrap();
        let (http, metrics, https) = spec
            .ports
            .unwrap_or_else(|| (free_port(), free_port(), free_port()));
        let config = dir.path().join("gateway.yaml");
        fs::write(&config, spec.yaml(dir.path(), http, metrics, https)).unwrap();
        let stderr = dir.path().join("stderr.log");
        let stdout = dir.path().join("stdout.log");
        let mut cmd = Command::new(binary());
        cmd.arg("-c")
            .arg(&config)
            .env_remove("ACKEE_ALLOW_ORIGIN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        if spec.journal {
            use std::os::unix::fs::MetadataExt;
            let meta = fs::metadata(&stderr).unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        if let Some(n) = spec.nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: the closure runs between fork and exec and only calls setrlimit, which is
            // async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd.spawn().expect("spawn ackee-gateway");
        let mut g = Gateway {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], http)),
            https: SocketAddr::from(([127, 0, 0, 1], https)),
            metrics: SocketAddr::from(([127, 0, 0, 1], metrics)),
            dir,
            config,
            stderr,
            stdout,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = g.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", g.stderr()));
            }
            if g.stderr().contains("is in use") {
                // Another test took a port between our probe and the bind.
                return Err(format!("Address already in use:\n{}", g.stderr()));
            }
            let ports = listening_ports(g.child.id());
            let tls_ready = spec.tls_listener.is_none() || ports.contains(&https);
            if ports.contains(&http) && ports.contains(&metrics) && tls_ready {
                return Ok(g);
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 60 s:\n{}", g.stderr()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote to stdout so far (the access log goes there by default).
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Starts a second process with `-u` on the same config, to take over this one's sockets
    /// in a graceful upgrade. It waits for the sockets, so it is not ready until this one
    /// gets SIGQUIT.
    pub fn spawn_upgrade(&self) -> Child {
        Command::new(binary())
            .arg("-u")
            .arg("-c")
            .arg(&self.config)
            .env_remove("ACKEE_ALLOW_ORIGIN")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.path().join("upgrade-stderr.log")).unwrap())
            .spawn()
            .expect("spawn ackee-gateway -u")
    }

    /// What the upgrading process wrote to stderr.
    pub fn upgrade_stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("upgrade-stderr.log")).unwrap_or_default()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Scrapes `/metrics`.
    pub fn scrape(&self) -> Scrape {
        let r = client::request(self.metrics, "GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200, "GET /metrics");
        Scrape::parse(&r.text())
    }

    /// Scrapes until `settled` holds, for counters that move just after the response is sent.
    pub fn scrape_until(&self, what: &str, settled: impl Fn(&Scrape) -> bool) -> Scrape {
        eventually(Duration::from_secs(10), what, || {
            let s = self.scrape();
            settled(&s).then_some(s)
        })
    }

    /// Sends a signal by name (`TERM`, `QUIT`, `HUP`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        eventually(limit, "the gateway to exit", || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed `/metrics` page: series (name plus sorted labels) to value.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub series: BTreeMap<String, f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((key, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    series.insert(key.to_owned(), v);
                }
            }
        }
        Scrape {
            series,
            text: text.to_owned(),
        }
    }

    /// The value of a series; labels in any order; 0 if absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels = labels.to_vec();
        labels.sort();
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        self.series.get(&key).copied().unwrap_or(0.0)
    }

    /// The sum of the series of a metric whose labels include all of `labels` (and any others,
    /// such as `protocol`).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let prefix = format!("{name}{{");
        self.series
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.strip_suffix('}')?, v)))
            .filter(|(inner, _)| {
                let have: Vec<&str> = inner.split(',').collect();
                labels
                    .iter()
                    .all(|(k, v)| have.contains(&format!("{k}=\"{v}\"").as_str()))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The sum of every series of a metric, whatever its labels.
    pub fn total(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.series
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether any series of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.series
            .keys()
            .any(|k| k == name || k.starts_with(&format!("{name}{{")))
    }
}
