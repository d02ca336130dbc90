//! The online half of `explain`: one HTTP/1.1 request over a fresh connection, plain or TLS
//! (rustls with ring, roots from `--cacert` or the system bundle), with bounded timeouts. Only
//! the status and header fields are read; the connection is then dropped.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::browser::Answer;

/// Debian's bundle of the system's trusted roots (package ca-certificates).
pub(crate) const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where to send the requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Whether to speak TLS.
    pub https: bool,
    /// The host name or address, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The path and query, at least `/`.
    pub path: String,
}

impl Target {
    /// The `Host` header value.
    pub(crate) fn authority(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Parses `http[s]://host[:port][/path]`.
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "--url \"{url}\" must start with https:// or http://, as in https://stats.example.com/api"
        ));
    };
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(at);
    let path = if path.is_empty() { "/" } else { path };
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("--url \"{url}\" has an IPv6 address without \"]\""))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("--url \"{url}\" has the port \"{p}\"; write 1 to 65535"))?,
        None if https => 443,
        None => 80,
    };
    if host.is_empty() {
        return Err(format!("--url \"{url}\" has no host"));
    }
    Ok(Target {
        https,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// A TLS client config trusting the roots in `cacert`, or the system's.
pub(crate) fn tls_config(cacert: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let file = cacert.unwrap_or(SYSTEM_ROOTS);
    let pem = std::fs::read(file).map_err(|e| {
        format!("cannot read the CA certificates in {file} ({e}); pass --cacert FILE, or install ca-certificates")
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("{file} holds no PEM certificate"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends one request and reads the answer's head.
pub(crate) fn exchange(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, String> {
    let addrs: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut last = format!("{} has no address", target.host);
    let mut connected = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                connected = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {addr}: {e}"),
        }
    }
    let tcp = connected.ok_or(last)?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ackee-gateway-explain/{}\r\nAccept: */*\r\nConnection: close\r\n",
        target.path,
        target.authority(),
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PATCH" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);

    let mut stream: Box<dyn ReadWrite> = match (target.https, tls) {
        (true, Some(config)) => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("{}: {e}", target.host))?;
            let conn = rustls::ClientConnection::new(config.clone(), name)
                .map_err(|e| format!("TLS: {e}"))?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        (true, None) => return Err("internal error: https without a TLS config".to_owned()),
        (false, _) => Box::new(tcp),
    };
    stream
        .write_all(&request)
        .and_then(|_| stream.flush())
        .map_err(|e| format!("cannot send the {method}: {e}"))?;
    read_head(BufReader::new(stream)).map_err(|e| format!("no answer to the {method}: {e}"))
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads a status line and header fields, at most 64 KB of them.
fn read_head(mut r: impl Read) -> Result<Answer, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("the header is larger than 64 KB".to_owned());
        }
        let n = r.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the end of the header".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    parse_head(&String::from_utf8_lossy(&buf[..end]))
}

/// Parses `HTTP/1.1 204 No Content\r\nName: value\r\n...`.
pub(crate) fn parse_head(text: &str) -> Result<Answer, String> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| format!("not an HTTP answer: \"{status_line}\""))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Answer { status, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        type Parts<'a> = (bool, &'a str, u16, &'a str, &'a str);
        let cases: &[(&str, Option<Parts>)] = &[
            (
                "https://stats.example.com/api",
                Some((true, "stats.example.com", 443, "/api", "stats.example.com")),
            ),
            (
                "http://127.0.0.1:8080",
                Some((false, "127.0.0.1", 8080, "/", "127.0.0.1:8080")),
            ),
            (
                "http://[::1]:3000/api?x=1",
                Some((false, "::1", 3000, "/api?x=1", "[::1]:3000")),
            ),
            ("stats.example.com/api", None),
            ("https://:443/api", None),
            ("http://host:99999/", None),
        ];
        for (url, want) in cases {
            let got = parse_url(url).ok().map(|t| {
                let a = t.authority();
                (t.https, t.host, t.port, t.path, a)
            });
            let want =
                want.map(|(s, h, p, path, a)| (s, h.to_owned(), p, path.to_owned(), a.to_owned()));
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn heads_keep_every_field_in_order() {
        let a = parse_head(
            "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: https://a.test\r\naccess-control-allow-origin: *\r\nVary: Origin",
        )
        .unwrap();
        assert_eq!(a.status, 204);
        assert_eq!(
            a.all("Access-Control-Allow-Origin"),
            ["https://a.test", "*"]
        );
        assert!(parse_head("SSH-2.0-OpenSSH").is_err());
    }
}
