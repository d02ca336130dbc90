//! A raw HTTP/1.1 client over one TCP connection, so tests control every byte: duplicate
//! headers, keep-alive, malformed requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The values of every header called `name` (any case) in a list of lowercased pairs.
pub fn headers_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Reads header fields up to the blank line, names lowercased; `None` at EOF or on a line
/// without a colon.
pub fn read_fields(r: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(headers);
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
}

/// How a message's body is delimited.
pub enum Framing {
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: no body for a request, the rest of the connection for a response.
    Unframed,
}

/// The framing the headers declare; `None` for an unreadable `Content-Length`.
pub fn framing(headers: &[(String, String)]) -> Option<Framing> {
    let field = |name| headers_named(headers, name).into_iter().next();
    if let Some(len) = field("content-length") {
        return len.parse().ok().map(Framing::Length);
    }
    if field("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        return Some(Framing::Chunked);
    }
    Some(Framing::Unframed)
}

/// Reads a body with a length or in chunks; an unframed body is empty here.
pub fn read_body(r: &mut impl BufRead, framing: Framing) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    match framing {
        Framing::Unframed => {}
        Framing::Length(len) => {
            body.resize(len, 0);
            r.read_exact(&mut body).ok()?;
        }
        Framing::Chunked => loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        },
    }
    Some(body)
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        headers_named(&self.headers, name).into_iter().next()
    }

    /// Every header with this name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        headers_named(&self.headers, name)
    }

    /// Header names that start with `access-control-`.
    pub fn cors_header_names(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.starts_with("access-control-"))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection, over TCP or TLS.
pub struct Conn {
    reader: BufReader<Box<dyn ReadWrite>>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        // A safety net against hangs, not a synchronisation device.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn::over(Box::new(stream))
    }

    /// Connects, returning the error instead of panicking.
    pub fn try_open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn::over(Box::new(stream)))
    }

    /// Sends a request (`Host` and `Content-Length` added unless given) and reads the response;
    /// `Err` if the connection failed before a complete response arrived.
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str("Host: gateway.test\r\n");
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let w = self.reader.get_mut();
        w.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
        w.flush().map_err(|e| format!("flush: {e}"))?;
        self.try_read_response(method == "HEAD")
            .ok_or_else(|| "no response".to_owned())
    }

    /// A connection over an established stream, such as a TLS session.
    pub fn over(stream: Box<dyn ReadWrite>) -> Conn {
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// A keep-alive connection to `to` whose source address is `from` (any 127.0.0.0/8
    /// address), so one test can be several clients without trusting a proxy.
    pub fn from_address(from: &str, to: SocketAddr) -> Conn {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stream = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
            socket.connect(to).await.unwrap()
        });
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        // A safety net against hangs, not a synchronisation device.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn::over(Box::new(stream))
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let w = self.reader.get_mut();
        w.write_all(bytes).expect("write request");
        w.flush().expect("flush request");
    }

    /// Sends a request and reads the response. `Host` is added unless given.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Reads one response.
    pub fn read_response(&mut self, head_only: bool) -> Response {
        self.try_read_response(head_only).expect("a response")
    }

    /// Reads one response, or `None` if the connection closed first.
    pub fn try_read_response(&mut self, head_only: bool) -> Option<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let headers = read_fields(&mut self.reader)?;
        let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else {
            match framing(&headers)? {
                // Neither Content-Length nor chunked: the body runs to the end of the connection.
                Framing::Unframed => {
                    let mut body = Vec::new();
                    self.reader.read_to_end(&mut body).ok()?;
                    body
                }
                framed => read_body(&mut self.reader, framed)?,
            }
        };
        Some(Response {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (reads EOF).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    Conn::open(addr).request(method, path, headers, body)
}

/// A preflight as a browser sends it for the tracker's POST.
pub fn preflight(addr: SocketAddr, origin: &str) -> Response {
    request(
        addr,
        "OPTIONS",
        "/api",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
}

/// Reads and writes through any stream, for [`Conn::over`].
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}
