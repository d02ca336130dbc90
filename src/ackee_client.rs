//! A blocking HTTP/1.1 exchange with one Ackee replica: one request, the whole answer, every
//! step bounded by a timeout and the answer by a size. Replicas are plain HTTP on a private
//! network, so there is no TLS, no pooling and no redirect to follow; requests ask for
//! `Connection: close`. The background polls (origins from Ackee's domain list, the edge copy of
//! Ackee's static files) run it on tokio's blocking pool; `explain` calls it directly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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

/// A whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if there was one.
    pub content_type: Option<String>,
    /// The body, dechunked.
    pub body: Vec<u8>,
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Sends `request` (a whole HTTP/1.1 request, asking for `Connection: close`) to `target` and
/// reads the answer, all within `timeout`. An answer over `max` bytes is an error.
pub(crate) fn exchange(
    target: &Target,
    request: &[u8],
    timeout: Duration,
    max: usize,
) -> std::io::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target.address, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16384];
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
        if buf.len() > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                format!("the answer is larger than {max} bytes"),
            ));
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
            Some(head) if !head.chunked && head.length.is_none() => Ok(Answer {
                status: head.status,
                content_type: head.content_type,
                body: buf[head.body_at..].to_vec(),
            }),
            _ => Err(e),
        })
}

struct Head {
    status: u16,
    body_at: usize,
    length: Option<usize>,
    chunked: bool,
    content_type: Option<String>,
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
    let mut head = Head {
        status,
        body_at: end + 4,
        length: None,
        chunked: false,
        content_type: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value.to_owned());
        }
    }
    Some(head)
}

/// The answer if `buf` holds a whole one, `None` if more is needed.
fn complete(buf: &[u8]) -> Option<std::io::Result<Answer>> {
    let head = match parse_head(buf) {
        Some(h) => h,
        None if buf.windows(4).any(|w| w == b"\r\n\r\n") => {
            return Some(Err(std::io::Error::other("the answer is not HTTP/1.x")));
        }
        None => return None,
    };
    let body = &buf[head.body_at..];
    let answer = |body: Vec<u8>| Answer {
        status: head.status,
        content_type: head.content_type.clone(),
        body,
    };
    if head.chunked {
        return dechunk(body).map(|b| Ok(answer(b)));
    }
    match head.length {
        Some(n) if body.len() >= n => Some(Ok(answer(body[..n].to_vec()))),
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
            let got = complete(buf).map(|r| r.map(|a| (a.status, a.body)).map_err(|_| ()));
            let want = want.map(|r| r.map(|(s, b)| (s, b.to_vec())));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn the_content_type_is_kept_as_sent() {
        let buf = b"HTTP/1.1 200 OK\r\ncontent-type:  text/javascript; charset=utf-8\r\nContent-Length: 1\r\n\r\nx";
        let answer = complete(buf).unwrap().unwrap();
        assert_eq!(
            answer.content_type.as_deref(),
            Some("text/javascript; charset=utf-8")
        );
    }
}
