//! An in-process CORS server on 127.0.0.1 with an ephemeral port that misbehaves on purpose, in
//! each of the ways `explain --url` must recognise: the mistakes of nginx setups and of Ackee.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use super::client::{framing, read_body, read_fields};

/// How the server answers a preflight from `origin` and the actual request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Everything right: 204, the origin echoed, credentials, Vary.
    None,
    /// Two `Access-Control-Allow-Origin` headers (nginx's add_header plus Ackee's).
    TwoAllowOrigins,
    /// `Access-Control-Allow-Origin: *` and no credentials header.
    Wildcard,
    /// The origin echoed without `Vary: Origin` (Ackee's own answer).
    NoVary,
    /// `Access-Control-Allow-Methods: GET, POST` (no PATCH).
    MethodsWithoutPatch,
    /// `Access-Control-Allow-Headers: Authorization` (no Content-Type).
    HeadersWithoutContentType,
    /// The preflight gets 405, as from a server that does not know OPTIONS.
    PreflightNotAllowed,
    /// Everything gets a 301 to https (an nginx redirect in front of the API).
    Redirect,
}

/// The server. It runs until the test process ends.
pub struct FakeCors {
    pub addr: SocketAddr,
}

impl FakeCors {
    /// Starts a server that answers every origin this way.
    pub fn start(how: Misbehaviour) -> FakeCors {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake CORS server");
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || serve(stream, how));
            }
        });
        FakeCors { addr }
    }

    /// The URL of its API.
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }
}

fn serve(stream: TcpStream, how: Misbehaviour) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let method = line.split(' ').next().unwrap_or("").to_owned();
    let Some(headers) = read_fields(&mut reader) else {
        return;
    };
    if let Some(f) = framing(&headers) {
        let _ = read_body(&mut reader, f);
    }
    let origin = headers
        .iter()
        .find(|(k, _)| k == "origin")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let preflight = method == "OPTIONS";
    let mut status = if preflight { 204 } else { 200 };
    let mut h: Vec<(&str, String)> = Vec::new();
    let allow = |h: &mut Vec<(&str, String)>, o: &str| {
        h.push(("Access-Control-Allow-Origin", o.to_owned()));
    };
    match how {
        Misbehaviour::Redirect => {
            status = 301;
            h.push(("Location", "https://stats.example.com/api".to_owned()));
        }
        Misbehaviour::Wildcard => allow(&mut h, "*"),
        Misbehaviour::TwoAllowOrigins => {
            allow(&mut h, &origin);
            allow(&mut h, &origin);
        }
        Misbehaviour::PreflightNotAllowed if preflight => status = 405,
        _ => allow(&mut h, &origin),
    }
    let creds = !matches!(how, Misbehaviour::Wildcard | Misbehaviour::Redirect);
    if creds {
        h.push(("Access-Control-Allow-Credentials", "true".to_owned()));
    }
    if preflight && how != Misbehaviour::Redirect {
        let methods = if how == Misbehaviour::MethodsWithoutPatch {
            "GET, POST"
        } else {
            "GET, POST, PATCH, OPTIONS"
        };
        let allowed = if how == Misbehaviour::HeadersWithoutContentType {
            "Authorization"
        } else {
            "Content-Type, Authorization, Time-Zone"
        };
        h.push(("Access-Control-Allow-Methods", methods.to_owned()));
        h.push(("Access-Control-Allow-Headers", allowed.to_owned()));
    }
    if !matches!(how, Misbehaviour::NoVary | Misbehaviour::Wildcard) {
        h.push(("Vary", "Origin".to_owned()));
    }
    let body = if preflight {
        ""
    } else {
        "{\"data\":{\"__typename\":\"Query\"}}"
    };
    let mut out = format!(
        "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in h {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = writer.write_all(out.as_bytes());
}
