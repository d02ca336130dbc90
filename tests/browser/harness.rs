//! Support for tests/browser.rs: the prerequisites check, small static web sites that serve the
//! test page and the real ackee-tracker, and the Node driver (drive.mjs) that runs Debian's
//! Chromium with playwright-core, with its processes and files cleaned up even on failure.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_yaml::Value;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// tests/browser/
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn tracker_js() -> PathBuf {
    dir().join("node_modules/ackee-tracker/dist/ackee-tracker.min.js")
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Fails (never skips) with what to install when a tool the browser tests need is missing.
pub fn require_tools(nss_tools: bool) {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} is missing: sudo apt-get install -y chromium libnss3-tools"
        ));
    }
    if nss_tools && !on_path("certutil") {
        missing.push(
            "certutil is missing (to trust the test CA): sudo apt-get install -y chromium libnss3-tools"
                .to_owned(),
        );
    }
    if !on_path("node") {
        missing.push("node is missing: install Node.js 20 or later".to_owned());
    }
    for module in ["playwright-core", "ackee-tracker"] {
        if !dir().join("node_modules").join(module).exists() {
            missing.push(format!(
                "tests/browser/node_modules/{module} is missing: npm ci --prefix tests/browser"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the browser test cannot run; install what it needs:\n  {}",
        missing.join("\n  ")
    );
}

/// A static web site on 127.0.0.1 with an ephemeral port: `/` is the test page,
/// `/ackee-tracker.min.js` the tracker from node_modules. Dropping it stops it.
pub struct Site {
    pub addr: SocketAddr,
    running: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Site {
    pub fn start() -> Site {
        let page = fs::read(dir().join("page.html")).expect("read tests/browser/page.html");
        let embed = fs::read(dir().join("embed.html")).expect("read tests/browser/embed.html");
        let tracker = fs::read(tracker_js())
            .expect("read ackee-tracker.min.js (npm ci --prefix tests/browser)");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test site");
        let addr = listener.local_addr().unwrap();
        let running = Arc::new(AtomicBool::new(true));
        let files = Arc::new((page, tracker, embed));
        let run = running.clone();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if !run.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let files = files.clone();
                thread::spawn(move || serve_file(stream, &files.0, &files.1, &files.2));
            }
        });
        Site {
            addr,
            running,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_file(stream: TcpStream, page: &[u8], tracker: &[u8], embed: &[u8]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let target = line.split(' ').nth(1).unwrap_or("/");
    // As Chromium's proxy (`--proxy-server`), the site gets absolute-form targets
    // (`http://blog.test/?...`): serve the same page whatever the host.
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let embedded;
    let (status, content_type, body): (&str, &str, &[u8]) = match path {
        "/" => ("200 OK", "text/html; charset=utf-8", page),
        "/embed.html" => {
            embedded = render_embed(embed, query);
            ("200 OK", "text/html; charset=utf-8", &embedded[..])
        }
        "/ackee-tracker.min.js" => ("200 OK", "text/javascript; charset=utf-8", tracker),
        _ => ("404 Not Found", "text/plain", b"Not Found\n"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(body);
    let _ = writer.flush();
}

/// The embedding page with the tracker's server and domain id from `query`
/// (`server=...&domainId=...`).
fn render_embed(template: &[u8], query: &str) -> Vec<u8> {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v))
            .unwrap_or_default()
    };
    let attribute = |v: String| {
        v.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    String::from_utf8_lossy(template)
        .replace("SERVER", &attribute(param("server")))
        .replace("DOMAIN_ID", &attribute(param("domainId")))
        .into_bytes()
}

/// Undoes [`encode`].
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A visit of the page that embeds the tracker the way Ackee's documentation shows, from
/// `server` itself (`<script async src="SERVER/tracker.js" data-ackee-server=...>`): a page
/// view, recorded with the domain id numbered `n`.
pub fn plan_embedded(name: &str, n: u8, site_origin: &str, server: &str) -> VisitPlan {
    let domain_id = format!("d0000000-0000-4000-8000-{n:012}");
    VisitPlan {
        name: name.to_owned(),
        url: format!(
            "{site_origin}/embed.html?server={}&domainId={domain_id}",
            encode(server)
        ),
        domain_id,
        event_id: String::new(),
        user_agent: Some(BROWSER_UA.to_owned()),
        clock_ms: None,
    }
}

/// The user agent of a desktop Chrome, which test visits use unless they ask for Chromium's own
/// (headless: `HeadlessChrome/...`, which the gateway ignores as a bot by default).
pub const BROWSER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36";

/// One page visit for the driver.
pub struct VisitPlan {
    pub name: String,
    pub url: String,
    /// The ids the page passes to `record` and `action`, unique per visit so that what Ackee
    /// received can be told apart by visit.
    pub domain_id: String,
    pub event_id: String,
    /// The page's user agent; `None`: Chromium's own.
    pub user_agent: Option<String>,
    /// Run the page on a fake clock, advanced this far once it is done.
    pub clock_ms: Option<u64>,
}

impl VisitPlan {
    /// With Chromium's own user agent, `HeadlessChrome/...`.
    pub fn headless(mut self) -> VisitPlan {
        self.user_agent = None;
        self
    }

    /// With the record kept open (an updateRecord every 15 s) on a fake clock advanced by
    /// `ms` once the page is done.
    pub fn stay_for(mut self, ms: u64) -> VisitPlan {
        self.url.push_str("&stay=1");
        self.clock_ms = Some(ms);
        self
    }
}

/// A visit of the test page on `site_origin` (`http://HOST:PORT`) that tracks to `server`,
/// with the tracker's `ignoreOwnVisits` left at its default (`None`) or set. `n` numbers the
/// visit's domain and event ids.
pub fn plan(
    name: &str,
    n: u8,
    site_origin: &str,
    server: &str,
    ignore_own_visits: Option<bool>,
) -> VisitPlan {
    let domain_id = format!("d0000000-0000-4000-8000-{n:012}");
    let event_id = format!("e0000000-0000-4000-8000-{n:012}");
    let mut url = format!(
        "{site_origin}/?server={}&domainId={domain_id}&eventId={event_id}",
        encode(server)
    );
    if let Some(v) = ignore_own_visits {
        url.push_str(&format!("&ignoreOwnVisits={v}"));
    }
    VisitPlan {
        name: name.to_owned(),
        url,
        domain_id,
        event_id,
        user_agent: Some(BROWSER_UA.to_owned()),
        clock_ms: None,
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One request as Chromium's DevTools Network domain reported it.
#[derive(Clone, Debug)]
pub struct NetRequest {
    pub kind: String,
    pub method: String,
    pub url: String,
    pub status: Option<u64>,
    pub protocol: Option<String>,
    pub failed: Option<String>,
    pub cors_error: Option<String>,
    /// Answered from the browser's cache (memory or disk), without a request to the server.
    pub from_cache: bool,
    /// The answer's `Content-Encoding`, if any.
    pub content_encoding: Option<String>,
}

/// One XMLHttpRequest of the tracker, as the page saw it.
#[derive(Clone, Debug)]
pub struct Xhr {
    pub op: String,
    pub with_credentials: bool,
    pub outcome: String,
    pub status: u64,
}

/// What happened on one page visit.
#[derive(Clone, Debug)]
pub struct Visit {
    pub name: String,
    pub record_id: Option<String>,
    pub action_id: Option<String>,
    /// `navigator.userAgent` in the page.
    pub user_agent: String,
    /// An exception from the page's own script around the tracker calls.
    pub thrown: Option<String>,
    pub xhrs: Vec<Xhr>,
    /// (type, text)
    pub console: Vec<(String, String)>,
    /// Uncaught exceptions.
    pub page_errors: Vec<String>,
    /// "METHOD URL: error", as Playwright reported failed requests.
    pub failed_requests: Vec<String>,
    pub network: Vec<NetRequest>,
}

impl Visit {
    /// The requests to the gateway's `/api` with this method.
    pub fn api(&self, method: &str) -> Vec<&NetRequest> {
        self.network
            .iter()
            .filter(|r| r.method == method && url_path(&r.url) == "/api")
            .collect()
    }

    /// The CORS preflights Chromium sent to the gateway.
    pub fn preflights(&self) -> Vec<&NetRequest> {
        self.api("OPTIONS")
    }

    /// Console errors in which Chromium reports a CORS failure.
    pub fn cors_console_errors(&self) -> Vec<&str> {
        self.console
            .iter()
            .filter(|(t, text)| t == "error" && text.contains("CORS"))
            .map(|(_, text)| text.as_str())
            .collect()
    }

    /// Everything, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "visit {:?} as {:?}: record id {:?}, action id {:?}, page script threw {:?}\n",
            self.name, self.user_agent, self.record_id, self.action_id, self.thrown
        );
        s.push_str("  tracker XHRs (op, withCredentials, outcome, status):\n");
        for x in &self.xhrs {
            s.push_str(&format!(
                "    {} {} {} {}\n",
                x.op, x.with_credentials, x.outcome, x.status
            ));
        }
        s.push_str("  network (DevTools):\n");
        for r in &self.network {
            s.push_str(&format!(
                "    {} {} {} status {:?} protocol {:?} failed {:?} cors {:?}\n",
                r.kind, r.method, r.url, r.status, r.protocol, r.failed, r.cors_error
            ));
        }
        s.push_str("  console:\n");
        for (t, text) in &self.console {
            s.push_str(&format!("    [{t}] {text}\n"));
        }
        s.push_str(&format!("  uncaught exceptions: {:?}\n", self.page_errors));
        s.push_str(&format!("  failed requests: {:?}\n", self.failed_requests));
        s
    }
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn parse_visit(v: &Value) -> Visit {
    let probe = &v["probe"];
    let seq = |v: &Value| v.as_sequence().cloned().unwrap_or_default();
    Visit {
        name: s(&v["name"]).unwrap_or_default(),
        record_id: s(&probe["recordId"]),
        action_id: s(&probe["actionId"]),
        user_agent: s(&probe["userAgent"]).unwrap_or_default(),
        thrown: s(&probe["thrown"]),
        xhrs: seq(&probe["xhrs"])
            .iter()
            .map(|x| Xhr {
                op: s(&x["op"]).unwrap_or_default(),
                with_credentials: x["withCredentials"].as_bool().unwrap_or(false),
                outcome: s(&x["outcome"]).unwrap_or_default(),
                status: x["status"].as_u64().unwrap_or(0),
            })
            .collect(),
        console: seq(&v["console"])
            .iter()
            .map(|m| {
                (
                    s(&m["type"]).unwrap_or_default(),
                    s(&m["text"]).unwrap_or_default(),
                )
            })
            .collect(),
        page_errors: seq(&v["pageErrors"]).iter().filter_map(s).collect(),
        failed_requests: seq(&v["failedRequests"])
            .iter()
            .map(|r| {
                format!(
                    "{} {}: {}",
                    s(&r["method"]).unwrap_or_default(),
                    s(&r["url"]).unwrap_or_default(),
                    s(&r["error"]).unwrap_or_default()
                )
            })
            .collect(),
        network: seq(&v["network"])
            .iter()
            .filter(|r| r["url"].is_string())
            .map(|r| NetRequest {
                kind: s(&r["type"]).unwrap_or_default(),
                method: s(&r["method"]).unwrap_or_default(),
                url: s(&r["url"]).unwrap_or_default(),
                status: r["status"].as_u64(),
                protocol: s(&r["protocol"]),
                failed: s(&r["failed"]),
                cors_error: s(&r["corsError"]),
                from_cache: r["fromCache"].as_bool().unwrap_or(false),
                content_encoding: r["responseHeaders"]
                    .as_mapping()
                    .and_then(|h| {
                        h.iter().find(|(k, _)| {
                            k.as_str()
                                .is_some_and(|k| k.eq_ignore_ascii_case("content-encoding"))
                        })
                    })
                    .and_then(|(_, v)| s(v)),
            })
            .collect(),
    }
}

/// Chromium's processes (the browser, its helpers, its crash handlers), found by this run's
/// directory on their command line.
fn chromium_pids(work: &Path) -> Vec<i32> {
    let needle = work.to_string_lossy().into_owned();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The Node driver and the Chromium it starts. Dropping it ends both (the driver's process
/// group, then any Chromium process still using this run's directory) and removes the files.
struct Driver {
    child: Child,
    /// Holds Chromium's profile and HOME; removed last, after the processes are gone.
    work: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        if matches!(self.child.try_wait(), Ok(None)) {
            // Playwright's SIGTERM handler closes the browser; then no mercy.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            if !wait_until(Duration::from_secs(5), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
        let _ = self.child.wait();
        // Playwright starts Chromium in a process group of its own; its crash handlers
        // detach from it.
        for pid in chromium_pids(self.work.path()) {
            unsafe {
                let group = libc::getpgid(pid);
                if group == pid {
                    libc::kill(-group, libc::SIGKILL);
                }
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if !wait_until(Duration::from_secs(10), || {
            chromium_pids(self.work.path()).is_empty()
        }) {
            eprintln!(
                "warning: Chromium processes still running: {:?}",
                chromium_pids(self.work.path())
            );
        }
    }
}

/// Launches Chromium once, runs the visits in order, and returns what each one saw. `step`
/// names the test step in messages; `prepare_home` runs before Chromium starts, with the empty
/// HOME directory it will get (to add the test CA to $HOME/.pki/nssdb).
pub fn run_browser(
    step: &str,
    prepare_home: Option<&dyn Fn(&Path)>,
    visits: &[VisitPlan],
) -> Vec<Visit> {
    run_browser_with(step, prepare_home, visits, &[])
}

/// [`run_browser`] with more Chromium flags, such as `--proxy-server`.
pub fn run_browser_with(
    step: &str,
    prepare_home: Option<&dyn Fn(&Path)>,
    visits: &[VisitPlan],
    chromium_args: &[&str],
) -> Vec<Visit> {
    let work = tempfile::Builder::new()
        .prefix("ackee-gateway-browser-")
        .tempdir()
        .expect("temp dir");
    let home = work.path().join("home");
    let profile = work.path().join("profile");
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&profile).unwrap();
    if let Some(prepare) = prepare_home {
        prepare(&home);
    }
    let result = work.path().join("result.json");
    let config = work.path().join("config.json");
    let timeout = Duration::from_secs(60);
    write_driver_config(&config, chromium_args, &profile, &result, timeout, visits);
    let stderr_path = work.path().join("driver.stderr");
    let mut cmd = Command::new("node");
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.arg(dir().join("drive.mjs"))
        .arg(&config)
        .current_dir(dir())
        .env("HOME", &home)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{step}: could not start node: {e}"));
    let mut driver = Driver { child, work };
    let limit = timeout + Duration::from_secs(30);
    let exited = wait_until(limit, || matches!(driver.child.try_wait(), Ok(Some(_))));
    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        exited,
        "{step}: the browser driver did not finish within {limit:?}\n{stderr}"
    );
    let status = driver.child.wait().unwrap();
    let text = fs::read_to_string(&result).unwrap_or_else(|_| {
        panic!("{step}: the browser driver exited with {status} and wrote no result:\n{stderr}")
    });
    drop(driver);
    parse_result(step, &text, &stderr)
}

/// Writes the driver's JSON config: Chromium, its flags, the profile, where the result goes,
/// the time limit, and the visits.
fn write_driver_config(
    config: &Path,
    chromium_args: &[&str],
    profile: &Path,
    result: &Path,
    timeout: Duration,
    visits: &[VisitPlan],
) {
    let visits_json: Vec<String> = visits
        .iter()
        .map(|v| {
            let mut fields = vec![
                format!("\"name\":{}", json_string(&v.name)),
                format!("\"url\":{}", json_string(&v.url)),
            ];
            if let Some(ua) = &v.user_agent {
                fields.push(format!("\"userAgent\":{}", json_string(ua)));
            }
            if let Some(ms) = v.clock_ms {
                fields.push(format!("\"clockMs\":{ms}"));
            }
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    let args: Vec<String> = chromium_args.iter().map(|a| json_string(a)).collect();
    fs::write(
        config,
        format!(
            "{{\"chromium\":{},\"args\":[{}],\"userDataDir\":{},\"result\":{},\"timeoutMs\":{},\"visits\":[{}]}}",
            json_string(CHROMIUM),
            args.join(","),
            json_string(&profile.to_string_lossy()),
            json_string(&result.to_string_lossy()),
            timeout.as_millis(),
            visits_json.join(",")
        ),
    )
    .unwrap();
}

/// The visits in the driver's result, or a panic that says what the driver reported.
fn parse_result(step: &str, text: &str, stderr: &str) -> Vec<Visit> {
    let value: Value = serde_yaml::from_str(text)
        .unwrap_or_else(|e| panic!("{step}: unreadable driver result ({e}):\n{text}"));
    if let Some(error) = value["error"].as_str() {
        panic!("{step}: the browser run failed: {error}\n{stderr}");
    }
    value["visits"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{step}: no visits in the driver result:\n{text}"))
        .iter()
        .map(parse_visit)
        .collect()
}
