//! An in-process fake Ackee 3.4.2 on 127.0.0.1 with an ephemeral port.
//!
//! It answers like Ackee: GraphQL mutations on `POST /api` (createRecord, updateRecord,
//! createAction, updateAction), `OPTIONS` with 204, the Apollo health check, and Ackee's static
//! files (`/tracker.js`, `/`, `/index.html`, `/index.js`, `/index.css`, `/favicon.ico`) with
//! Ackee's content types and no cache headers; a test can replace any of them.
//! It records every request it sees, and it can also send Ackee's own CORS headers (as Ackee
//! does when `ACKEE_ALLOW_ORIGIN` is set, with Ackee's substring matching), so tests prove the
//! gateway strips them. It can be stopped and started again on the same port.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::client::{framing, headers_named, read_body, read_fields};

/// Ackee's health-check path, which the gateway probes.
pub const HEALTH_PATH: &str = "/.well-known/apollo/server-health";

/// Ackee 3.4.2's static files as this fake serves them by default: the path, Ackee's content
/// type, and a body (the tracker a 20 kB script that compresses like the real one).
pub fn ackee_file(path: &str) -> Option<(&'static str, Vec<u8>)> {
    let js = "text/javascript; charset=utf-8";
    Some(match path {
        "/tracker.js" => (js, tracker_stand_in()),
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            b"<!DOCTYPE html><html><head><title>Ackee</title><link rel=\"stylesheet\" href=\"index.css\"></head><body><div id=\"main\"></div><script>window.env = {\"customTracker\":null}</script><script src=\"index.js\"></script></body></html>".to_vec(),
        ),
        "/index.js" => (js, (0..4000).flat_map(|i| format!("function f{i}(a){{return a.map(x=>x*{i})}}\n").into_bytes()).collect()),
        "/index.css" => ("text/css; charset=utf-8", (0..500).flat_map(|i| format!(".c{i}{{margin:{i}px;padding:0}}\n").into_bytes()).collect()),
        // Bytes that do not compress, like an icon's.
        "/favicon.ico" => ("image/vnd.microsoft.icon", {
            let mut x: u32 = 0x9e37_79b9;
            (0..1150).map(|_| { x ^= x << 13; x ^= x >> 17; x ^= x << 5; (x >> 24) as u8 }).collect()
        }),
        _ => return None,
    })
}

/// The stand-in tracker: `/* ackee-tracker stand-in */` and 20 kB of script.
pub fn tracker_stand_in() -> Vec<u8> {
    let mut t = b"/* ackee-tracker stand-in */\n".to_vec();
    for i in 0..400 {
        t.extend_from_slice(format!("var s{i}=navigator.userAgent.length+{i};\n").as_bytes());
    }
    t
}

/// Whether a request is the gateway's own fetch of a static file.
fn is_static_fetch(s: &Seen) -> bool {
    s.method == "GET"
        && ackee_file(&s.path).is_some()
        && s.header("user-agent")
            .is_some_and(|ua| ua.starts_with("ackee-gateway/"))
}

/// One request as Ackee saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which TCP connection (counted from 1) carried it.
    pub connection: u64,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        headers_named(&self.headers, name).into_iter().next()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        headers_named(&self.headers, name)
    }

    /// The GraphQL operation in a tracker mutation, if any.
    pub fn mutation(&self) -> Option<&'static str> {
        let body = String::from_utf8_lossy(&self.body);
        [
            "createRecord",
            "updateRecord",
            "createAction",
            "updateAction",
        ]
        .into_iter()
        .find(|m| body.contains(m))
    }
}

/// How the fake behaves; can be changed while it runs.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Emulate `ACKEE_ALLOW_ORIGIN`: send Ackee's CORS headers on every response.
    pub ackee_allow_origin: Option<String>,
    /// A `Vary` header to send, as a framework behind Ackee might.
    pub vary: Option<String>,
    /// Wait this long before answering `POST /api` (to provoke read timeouts).
    pub delay: Option<Duration>,
    /// Status of the health check (default 200).
    pub health_status: Option<u16>,
    /// Answer every request with this status instead (the body says so).
    pub status: Option<u16>,
    /// Close the connection without answering on every Nth request (health checks not
    /// counted), as Node does when its keep-alive timeout fires just as a request arrives.
    pub close_every: Option<u64>,
    /// Send only this many bytes of each answer's body (its Content-Length says more), then
    /// close the connection: an Ackee that dies mid-answer.
    pub truncate_body: Option<usize>,
    /// The titles of the domains in Ackee's dashboard, answered to `{ domains { id title } }`.
    pub domains: Vec<String>,
    /// Replaces a static file: path to (status, content type, body), answered to `GET`.
    pub files: std::collections::BTreeMap<String, (u16, String, Vec<u8>)>,
    /// The permanent token the `domains` query needs (`Authorization: Bearer TOKEN`). Any
    /// other token, or none, gets Ackee's `Token invalid` GraphQL error with status 200.
    pub token: Option<String>,
}

struct State {
    seen: Mutex<Vec<Seen>>,
    behaviour: Mutex<Behaviour>,
    connections: AtomicU64,
    heads: AtomicU64,
    ids: AtomicU64,
    requests: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
    running: AtomicBool,
    name: String,
}

/// The fake server. Dropping it stops it.
pub struct FakeAckee {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<thread::JoinHandle<()>>,
}

impl FakeAckee {
    /// Starts on an ephemeral loopback port.
    pub fn start() -> FakeAckee {
        Self::start_named("ackee")
    }

    /// Starts with a name that appears in its answers (`X-Replica`), to tell replicas apart.
    pub fn start_named(name: &str) -> FakeAckee {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Ackee");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour::default()),
            connections: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
            running: AtomicBool::new(true),
            name: name.to_owned(),
        });
        let accept_thread = Some(spawn_accept(listener, state.clone()));
        FakeAckee {
            addr,
            state,
            accept_thread,
        }
    }

    /// Changes the behaviour for the following requests.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// Every request seen so far, except the gateway's health checks.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path != HEALTH_PATH && !is_static_fetch(s))
            .cloned()
            .collect()
    }

    /// How many requests were seen, except the gateway's health checks.
    pub fn count(&self) -> usize {
        self.seen().len()
    }

    /// The gateway's own fetches of Ackee's static files (its `User-Agent` says
    /// `ackee-gateway`), which [`FakeAckee::seen`] leaves out like health checks.
    pub fn static_fetches(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| is_static_fetch(s))
            .cloned()
            .collect()
    }

    /// How many health checks were seen.
    pub fn health_checks(&self) -> usize {
        self.count_path(HEALTH_PATH)
    }

    /// How many requests to a path were seen.
    pub fn count_path(&self, path: &str) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    /// How many TCP connections were accepted.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many request heads arrived, health checks included, whether or not their body
    /// arrived too.
    pub fn heads(&self) -> u64 {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every open connection, as a crashed Ackee would.
    pub fn stop(&mut self) {
        if !self.state.running.swap(false, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for s in self.state.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Starts again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("fake Ackee could not bind {} again: {e}", self.addr),
            }
        };
        self.state.running.store(true, Ordering::SeqCst);
        self.accept_thread = Some(spawn_accept(listener, self.state.clone()));
    }
}

impl Drop for FakeAckee {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_accept(listener: TcpListener, state: Arc<State>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for stream in listener.incoming() {
            if !state.running.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let n = state.connections.fetch_add(1, Ordering::SeqCst) + 1;
            if let Ok(clone) = stream.try_clone() {
                state.open.lock().unwrap().push(clone);
            }
            let st = state.clone();
            thread::spawn(move || serve(stream, st, n));
        }
    })
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>, heads: &AtomicU64) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let headers = read_fields(reader)?;
    heads.fetch_add(1, Ordering::SeqCst);
    let body = read_body(reader, framing(&headers)?)?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn serve(stream: TcpStream, state: Arc<State>, connection: u64) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader, &state.heads) {
        state.seen.lock().unwrap().push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            connection,
        });
        let behaviour = state.behaviour.lock().unwrap().clone();
        if req.path != HEALTH_PATH {
            let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
            if behaviour.close_every.is_some_and(|every| n % every == 0) {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
        if req.method == "POST" && req.path.starts_with("/api") {
            if let Some(d) = behaviour.delay {
                thread::sleep(d);
            }
        }
        let (status, content_type, body) = answer(&req, &behaviour, &state);
        let origin = req
            .headers
            .iter()
            .find(|(k, _)| k == "origin")
            .map(|(_, v)| v.as_str());
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nX-Replica: {}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n",
            reason(status),
            body.len(),
            state.name,
        );
        if let Some(allowed) = &behaviour.ackee_allow_origin {
            // Ackee's own CORS code: a substring test that returns the configured entry.
            let list: Vec<&str> = allowed.split(',').collect();
            let matched = match origin {
                _ if allowed == "*" => Some("*".to_owned()),
                Some(o) => list.iter().find(|e| e.contains(o)).map(|e| e.to_string()),
                None => list.first().map(|e| e.to_string()),
            };
            if let Some(m) = matched {
                head.push_str(&format!("Access-Control-Allow-Origin: {m}\r\n"));
            }
            head.push_str("Access-Control-Allow-Methods: GET, POST, PATCH, OPTIONS\r\n");
            head.push_str(
                "Access-Control-Allow-Headers: Content-Type, Authorization, Time-Zone\r\n",
            );
            head.push_str("Access-Control-Allow-Credentials: true\r\n");
            head.push_str("Access-Control-Max-Age: 3600\r\n");
        }
        if let Some(v) = &behaviour.vary {
            head.push_str(&format!("Vary: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if req.method != "HEAD" {
            let sent = behaviour
                .truncate_body
                .map_or(body.len(), |n| n.min(body.len()));
            out.extend_from_slice(&body[..sent]);
        }
        if behaviour.truncate_body.is_some() && req.path != HEALTH_PATH {
            let _ = writer.write_all(&out);
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
        if writer.write_all(&out).is_err() {
            return;
        }
        if !state.running.load(Ordering::SeqCst) {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn answer(req: &Request, b: &Behaviour, state: &State) -> (u16, &'static str, Vec<u8>) {
    if let Some(status) = b.status {
        return (
            status,
            "text/plain",
            format!("forced status {status}\n").into_bytes(),
        );
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("OPTIONS", _) => (204, "text/plain", Vec::new()),
        ("GET", "/.well-known/apollo/server-health") => {
            let status = b.health_status.unwrap_or(200);
            let body = if status == 200 {
                r#"{"status":"pass"}"#
            } else {
                r#"{"status":"fail"}"#
            };
            (status, "application/health+json", body.as_bytes().to_vec())
        }
        ("GET", path) if b.files.contains_key(path) => {
            let (status, content_type, body) = b.files[path].clone();
            (status, leak(content_type), body)
        }
        ("GET", path) if ackee_file(path).is_some() => {
            let (content_type, body) = ackee_file(path).unwrap_or_default();
            (200, content_type, body)
        }
        ("POST", p) if p.starts_with("/api") => {
            let body = String::from_utf8_lossy(&req.body);
            let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
            let id = format!("00000000-0000-4000-8000-{id:012}");
            let data = if body.contains("domains") && !body.contains("mutation") {
                domains_answer(req, b)
            } else if body.contains("createRecord") {
                format!(r#"{{"data":{{"createRecord":{{"payload":{{"id":"{id}"}}}}}}}}"#)
            } else if body.contains("updateRecord") {
                r#"{"data":{"updateRecord":{"success":true}}}"#.to_owned()
            } else if body.contains("createAction") {
                format!(r#"{{"data":{{"createAction":{{"payload":{{"id":"{id}"}}}}}}}}"#)
            } else if body.contains("updateAction") {
                r#"{"data":{"updateAction":{"success":true}}}"#.to_owned()
            } else {
                r#"{"errors":[{"message":"Unknown operation"}]}"#.to_owned()
            };
            (200, "application/json; charset=utf-8", data.into_bytes())
        }
        _ => (404, "text/plain", b"Not Found\n".to_vec()),
    }
}

/// A content type a test chose, for the life of the test binary.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Ackee 3.4.2's answer to `{ domains { id title } }`: the list with a valid permanent token,
/// its GraphQL error (with status 200) without one.
fn domains_answer(req: &Request, b: &Behaviour) -> String {
    let auth = req
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str());
    let valid = b
        .token
        .as_ref()
        .is_some_and(|t| auth == Some(format!("Bearer {t}").as_str()));
    if !valid {
        let message = if auth.is_some() {
            "Token invalid"
        } else {
            "Token missing"
        };
        return format!(
            r#"{{"errors":[{{"message":"{message}","locations":[{{"line":1,"column":3}}],"path":["domains"],"extensions":{{"code":"INTERNAL_SERVER_ERROR"}}}}],"data":null}}"#
        );
    }
    let items: Vec<String> = b
        .domains
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                r#"{{"id":"d0000000-0000-4000-9000-{i:012}","title":"{}"}}"#,
                t.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    format!(r#"{{"data":{{"domains":[{}]}}}}"#, items.join(","))
}

/// Builds the JSON body the tracker sends for a mutation.
pub fn mutation_body(name: &str) -> String {
    format!(
        r#"{{"query":"mutation {name}($domainId: ID!, $input: CreateRecordInput!) {{ {name}(domainId: $domainId, input: $input) {{ payload {{ id }} }} }}","variables":{{"domainId":"d0000000-0000-4000-8000-000000000001","input":{{"siteLocation":"https://example.com/"}}}}}}"#
    )
}
