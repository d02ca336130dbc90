//! The poller's HTTP/1.1 client: one `POST /api` to each replica in turn, over a plain
//! `std::net::TcpStream`, every step bounded by the timeout. Replicas are plain HTTP on a
//! private network, so there is no TLS, no pooling and no redirect to follow; the request asks
//! for `Connection: close` and the answer is read whole (at most `MAX_ANSWER` bytes).
//!
//! It blocks: the gateway runs it on tokio's blocking pool, `explain` calls it directly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::answer::{self, Domain, Failed, Failure, QUERY_BODY};

/// The largest answer read: about 50,000 domains.
pub(crate) const MAX_ANSWER: usize = 4 << 20;

/// One Ackee replica to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Its name, for the log.
    pub name: String,
    /// The address to connect to.
    pub address: SocketAddr,
    /// The `Host` header: the address as written in the config.
    pub host: String,
}

/// Asks each replica in order until one answers with a domain list or refuses the token.
/// A replica that cannot be reached, or answers something else, passes the question on.
pub(crate) fn fetch(
    targets: &[Target],
    token: &str,
    timeout: Duration,
) -> Result<Vec<Domain>, Failed> {
    let mut problems: Vec<String> = Vec::new();
    let mut bad_answer: Option<Failed> = None;
    for target in targets {
        match exchange(target, token, timeout) {
            Err(e) => problems.push(format!("replica \"{}\": {e}", target.name)),
            Ok((status, body)) => match answer::parse(status, &body) {
                Ok(domains) => return Ok(domains),
                Err(f) if f.reason == Failure::TokenRefused => {
                    return Err(Failed::new(
                        f.reason,
                        format!("replica \"{}\": {}", target.name, f.detail),
                    ));
                }
                Err(f) => {
                    problems.push(format!("replica \"{}\": {}", target.name, f.detail));
                    bad_answer.get_or_insert(f);
                }
            },
        }
    }
    let reason = bad_answer.map_or(Failure::Unreachable, |f| f.reason);
    Err(Failed::new(reason, problems.join("; ")))
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Sends the query to one replica and returns the status and the body.
pub(crate) fn exchange(
    target: &Target,
    token: &str,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target.address, timeout)?;
    stream.set_nodelay(true)?;
    let request = format!(
        "POST /api HTTP/1.1\r\nHost: {}\r\nUser-Agent: ackee-gateway/{}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{QUERY_BODY}",
        target.host,
        env!("CARGO_PKG_VERSION"),
        QUERY_BODY.len(),
    );
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| timed_out("the answer"))?;
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out("the answer"));
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_ANSWER {
            return Err(std::io::Error::other(format!(
                "the answer is larger than {MAX_ANSWER} bytes"
            )));
        }
        if let Some(done) = complete(&buf) {
            return done;
        }
    }
    complete(&buf)
        .unwrap_or_else(|| {
            Err(std::io::Error::other(
                "the connection closed before the answer ended",
            ))
        })
        .or_else(|e| match parse_head(&buf) {
            // No length and no chunking: the body runs to the close.
            Some(head) if !head.chunked && head.length.is_none() => {
                Ok((head.status, buf[head.body_at..].to_vec()))
            }
            _ => Err(e),
        })
}

struct Head {
    status: u16,
    body_at: usize,
    length: Option<usize>,
    chunked: bool,
}

fn parse_head(buf: &[u8]) -> Option<Head> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Some(Head {
        status,
        body_at: end + 4,
        length,
        chunked,
    })
}

/// The status and body if `buf` holds a whole answer, `None` if more is needed.
fn complete(buf: &[u8]) -> Option<std::io::Result<(u16, Vec<u8>)>> {
    let head = match parse_head(buf) {
        Some(h) => h,
        None if buf.windows(4).any(|w| w == b"\r\n\r\n") => {
            return Some(Err(std::io::Error::other("the answer is not HTTP/1.x")));
        }
        None => return None,
    };
    let body = &buf[head.body_at..];
    if head.chunked {
        return dechunk(body).map(|b| Ok((head.status, b)));
    }
    match head.length {
        Some(n) if body.len() >= n => Some(Ok((head.status, body[..n].to_vec()))),
        _ => None,
    }
}

/// Decodes a whole chunked body, or `None` if it has not ended yet.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if body.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_only_when_their_framing_says_so() {
        type Case<'a> = (&'a [u8], Option<Result<(u16, &'a [u8]), ()>>);
        let cases: &[Case] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", Some(Ok((200, b"{}")))),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}", None),
            (b"HTTP/1.1 200 OK\r\nContent-Le", None),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
                Some(Ok((200, b"{}abc"))),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
                None,
            ),
            (b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n", Some(Ok((401, b"")))),
            (b"SSH-2.0-OpenSSH\r\n\r\n", Some(Err(()))),
        ];
        for (buf, want) in cases {
            let got = complete(buf).map(|r| r.map_err(|_| ()));
            let want = want.map(|r| r.map(|(s, b)| (s, b.to_vec())));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn an_unreachable_replica_passes_the_question_on_and_is_named() {
        // A port nothing listens on: bind one, note it, close it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target {
            name: "gone".into(),
            address: addr,
            host: addr.to_string(),
        };
        let err = fetch(&[target], "t", Duration::from_secs(2)).unwrap_err();
        assert_eq!(err.reason, Failure::Unreachable);
        assert!(
            err.detail.starts_with("replica \"gone\": "),
            "{}",
            err.detail
        );
    }
}
