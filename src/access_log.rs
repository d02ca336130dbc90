//! The optional access log: one line per request, as text or JSON, written by a background
//! thread so the request path never waits on a pipe or a disk.
//!
//! A line holds the time, the client address, the method, the path (without the query string,
//! which can carry visitor data), the status, the CORS decision, the replica that answered and
//! the duration. If the writer falls behind by more than `QUEUE` lines, lines are dropped and
//! counted rather than slowing visitors down.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer before new ones are dropped.
pub(crate) const QUEUE: usize = 8192;

/// The access log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `time client method path status cors=… replica=… duration_ms=…`
    Text,
    /// One JSON object per line.
    Json,
}

/// The access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Text or JSON lines.
    pub format: Format,
    /// Standard output or a file.
    pub target: Target,
}

/// One request, ready to be written.
#[derive(Clone, Debug)]
pub(crate) struct Entry<'a> {
    /// When the request finished.
    pub(crate) time: SystemTime,
    /// The peer address.
    pub(crate) client: Option<IpAddr>,
    /// The request method, as sent.
    pub(crate) method: &'a str,
    /// The request path, without the query.
    pub(crate) path: &'a str,
    /// The status sent, if any.
    pub(crate) status: Option<u16>,
    /// The CORS decision's label ([`crate::cors::Decision::as_str`]).
    pub(crate) cors: &'static str,
    /// The replica that answered, if any.
    pub(crate) replica: Option<&'a str>,
    /// How long the request took.
    pub(crate) duration: Duration,
}

/// Formats `time` as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let t = time::OffsetDateTime::from(time.max(UNIX_EPOCH));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Text fields are client-controlled: spaces and control characters are escaped so a line
/// stays one line with a fixed number of fields.
fn text_field(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    for c in s.chars() {
        if c.is_ascii_graphic() && c != '%' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// Formats one line, newline included.
pub(crate) fn format_line(format: Format, e: &Entry<'_>) -> String {
    let mut out = String::with_capacity(192);
    let time = rfc3339(e.time);
    let client = e.client.map(|c| c.to_string());
    let ms = e.duration.as_secs_f64() * 1000.0;
    match format {
        Format::Text => {
            out.push_str(&time);
            out.push(' ');
            out.push_str(client.as_deref().unwrap_or("-"));
            out.push(' ');
            text_field(&mut out, e.method);
            out.push(' ');
            text_field(&mut out, e.path);
            out.push(' ');
            match e.status {
                Some(s) => {
                    let _ = write!(out, "{s}");
                }
                None => out.push('-'),
            }
            let _ = write!(out, " cors={} replica=", e.cors);
            text_field(&mut out, e.replica.unwrap_or(""));
            let _ = writeln!(out, " duration_ms={ms:.3}");
        }
        Format::Json => {
            out.push_str("{\"time\":\"");
            out.push_str(&time);
            out.push_str("\",\"client\":");
            match &client {
                Some(c) => json_string(&mut out, c),
                None => out.push_str("null"),
            }
            out.push_str(",\"method\":");
            json_string(&mut out, e.method);
            out.push_str(",\"path\":");
            json_string(&mut out, e.path);
            out.push_str(",\"status\":");
            match e.status {
                Some(s) => {
                    let _ = write!(out, "{s}");
                }
                None => out.push_str("null"),
            }
            let _ = write!(out, ",\"cors\":\"{}\",\"replica\":", e.cors);
            match e.replica {
                Some(r) => json_string(&mut out, r),
                None => out.push_str("null"),
            }
            let _ = writeln!(out, ",\"duration_ms\":{ms:.3}}}");
        }
    }
    out
}

/// Where lines go: standard output (journald keeps it) or an append-only file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, opened for appending.
    File(std::path::PathBuf),
}

impl Target {
    /// The file `written` in the config, whose directory must exist; or what is wrong with it.
    pub(crate) fn file(written: &str) -> Result<Target, String> {
        let path = std::path::PathBuf::from(written.trim());
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if written.trim().is_empty() || !dir.unwrap_or(std::path::Path::new(".")).is_dir() {
            return Err(format!(
                "found \"{written}\", whose directory does not exist; create it, or leave path out to log to standard output (journald)"
            ));
        }
        Ok(Target::File(path))
    }
}

/// The access log: a format, a target, and a writer thread started on first use (after any
/// daemonising fork).
pub(crate) struct AccessLog {
    format: Format,
    target: Target,
    sender: OnceLock<Option<SyncSender<String>>>,
    dropped: prometheus::IntCounter,
}

impl AccessLog {
    /// An access log that has not started its writer yet. Dropped lines (the writer fell
    /// behind, or could not start) are counted in `dropped`.
    pub(crate) fn new(
        format: Format,
        target: Target,
        dropped: prometheus::IntCounter,
    ) -> AccessLog {
        AccessLog {
            format,
            target,
            sender: OnceLock::new(),
            dropped,
        }
    }

    fn drop_line(&self) {
        self.dropped.inc();
    }

    fn start(&self) -> Option<SyncSender<String>> {
        let mut out: Box<dyn std::io::Write + Send> = match &self.target {
            Target::Stdout => Box::new(std::io::stdout()),
            Target::File(path) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => Box::new(f),
                Err(e) => {
                    log::error!(
                        "access log {} cannot be opened ({e}); access lines are dropped",
                        path.display()
                    );
                    return None;
                }
            },
        };
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Write what is waiting, then flush, so lines appear promptly.
                    let mut next = Some(first);
                    while let Some(line) = next {
                        if out.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                        next = rx.try_recv().ok();
                    }
                    let _ = out.flush();
                }
            });
        match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                log::error!("access log writer cannot start ({e}); access lines are dropped");
                None
            }
        }
    }

    /// Queues one request's line. Never blocks.
    pub(crate) fn log(&self, entry: &Entry<'_>) {
        let Some(tx) = self.sender.get_or_init(|| self.start()) else {
            self.drop_line();
            return;
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            tx.try_send(format_line(self.format, entry))
        {
            self.drop_line();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a str, path: &'a str) -> Entry<'a> {
        Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_767_225_600_123),
            client: Some("203.0.113.9".parse().unwrap()),
            method,
            path,
            status: Some(204),
            cors: "preflight_allowed",
            replica: None,
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn text_lines_have_fixed_fields_even_with_hostile_input() {
        assert_eq!(
            format_line(Format::Text, &entry("OPTIONS", "/api")),
            "2026-01-01T00:00:00.123Z 203.0.113.9 OPTIONS /api 204 cors=preflight_allowed replica=- duration_ms=1.500\n"
        );
        let mut e = entry("GET", "/a b\n\"x\"");
        e.replica = Some("ackee 1");
        e.status = None;
        e.cors = "refused";
        e.client = None;
        assert_eq!(
            format_line(Format::Text, &e),
            "2026-01-01T00:00:00.123Z - GET /a%20b%0A\"x\" - cors=refused replica=ackee%201 duration_ms=1.500\n"
        );
    }

    #[test]
    fn json_lines_are_escaped_json_objects() {
        let mut e = entry("POST", "/api\"\\\u{1}");
        e.replica = Some("ackee-1");
        e.status = Some(200);
        e.cors = "allowed";
        assert_eq!(
            format_line(Format::Json, &e),
            "{\"time\":\"2026-01-01T00:00:00.123Z\",\"client\":\"203.0.113.9\",\"method\":\"POST\",\"path\":\"/api\\\"\\\\\\u0001\",\"status\":200,\"cors\":\"allowed\",\"replica\":\"ackee-1\",\"duration_ms\":1.500}\n"
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&format_line(Format::Json, &e)).unwrap();
        assert_eq!(v["path"].as_str(), Some("/api\"\\\u{1}"));
    }
}
