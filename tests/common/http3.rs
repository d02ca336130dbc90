//! HTTP/3 for the tests: the aioquic client (`tests/http3/client.py`), run with the Python of
//! the virtual environment the README's test command creates, and the UDP side of a gateway.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::process::eventually;

/// The aioquic version the test command installs; the client's behaviour is pinned with it.
pub const AIOQUIC: &str = "1.7.2";

/// The virtual environment's Python: `ACKEE_H3_PYTHON`, or `target/h3-venv/bin/python`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("ACKEE_H3_PYTHON") {
        return PathBuf::from(p);
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/h3-venv/bin/python"
    ))
}

/// Fails with what to run when aioquic is not installed.
pub fn require_aioquic() {
    let py = python();
    let ok = Command::new(&py)
        .args(["-c", "import aioquic; print(aioquic.__version__)"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == AIOQUIC);
    assert!(
        ok,
        "the HTTP/3 tests need aioquic {AIOQUIC} in {}: run the README's test command, or \
         python3 -m venv target/h3-venv && target/h3-venv/bin/pip install aioquic=={AIOQUIC}",
        py.display()
    );
}

/// Runs one job of the client (see its docstring) and returns its JSON result.
pub fn run(job: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http3/client.py");
    let out = Command::new(python())
        .arg(script)
        .arg(job.to_string())
        .output()
        .expect("run the aioquic client");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "the aioquic client printed no JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Where and how to reach a gateway's HTTP/3 listener.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub server_name: String,
    pub ca: PathBuf,
}

impl Target {
    /// A job for this target: `fields` are added to host, port, server name and CA.
    pub fn job(&self, fields: Value) -> Value {
        let mut job = json!({
            "host": self.addr.ip().to_string(),
            "port": self.addr.port(),
            "server_name": self.server_name,
            "ca": self.ca.display().to_string(),
        });
        if let (Some(j), Some(f)) = (job.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                j.insert(k.clone(), v.clone());
            }
        }
        job
    }

    /// The requests, one after another on one connection.
    pub fn requests(&self, requests: &[Req]) -> Value {
        let reqs: Vec<Value> = requests.iter().map(Req::json).collect();
        run(self.job(json!({"mode": "requests", "requests": reqs})))
    }

    /// One request on a connection of its own.
    pub fn request(&self, req: Req) -> Answer {
        let result = self.requests(&[req]);
        Answer::first(&result)
    }
}

/// One request for the client.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Req {
        self.body = body.to_owned();
        self
    }

    pub fn json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "headers": self.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "body": self.body,
        })
    }
}

/// A response as the client saw it.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub reset: Option<u64>,
    pub raw: Value,
}

impl Answer {
    /// The first response of a `requests` result; panics with the result if there is none.
    pub fn first(result: &Value) -> Answer {
        let r = result["responses"]
            .get(0)
            .unwrap_or_else(|| panic!("no response: {result}"));
        Answer::from(r)
    }

    pub fn all(result: &Value) -> Vec<Answer> {
        result["responses"]
            .as_array()
            .unwrap_or_else(|| panic!("no responses: {result}"))
            .iter()
            .map(Answer::from)
            .collect()
    }

    fn from(r: &Value) -> Answer {
        Answer {
            status: r["status"].as_u64().map(|s| s as u16),
            headers: r["headers"]
                .as_array()
                .map(|h| {
                    h.iter()
                        .map(|p| {
                            (
                                p[0].as_str().unwrap_or_default().to_owned(),
                                p[1].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            body: r["body"].as_str().unwrap_or_default().to_owned(),
            reset: r["reset"].as_u64(),
            raw: r.clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The UDP ports a process has sockets bound on, read from /proc.
pub fn udp_ports(pid: u32) -> HashSet<u16> {
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
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || !inodes.contains(cols[9]) {
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

/// Waits until process `pid` has its UDP socket on `port`.
pub fn wait_udp(pid: u32, port: u16) {
    eventually(
        Duration::from_secs(30),
        "the HTTP/3 listener's UDP socket",
        || udp_ports(pid).contains(&port).then_some(()),
    );
}
