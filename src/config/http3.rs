//! `listeners[].http3`: `true`, or a mapping of HTTP/3's settings, on a TLS listener only. The
//! validated type is [`crate::quic::Http3Settings`].

use serde_yaml::Value;

use super::section::{Problems, Section};
use super::values::seconds;
use crate::quic::Http3Settings;

const EXAMPLE: &str = "true, or a mapping such as {alt_svc_max_age_seconds: 86400}";

/// Reads `http3` on the listener `e`. `None` when it is absent, `false`, or wrong.
pub(super) fn http3(r: &mut Problems, e: &Section<'_>, has_tls: bool) -> Option<Http3Settings> {
    let (key, value) = e.get("http3")?;
    let settings = match value {
        Value::Bool(false) => return None,
        Value::Bool(true) => Http3Settings::default(),
        Value::Mapping(_) => {
            let section = Section::open(r, &key, value, EXAMPLE)?;
            settings(r, section)
        }
        other => return r.wrong_type(&key, other, EXAMPLE),
    };
    if !has_tls {
        let message = "is set on a plain-HTTP listener; HTTP/3 always runs over TLS: set it on the listener with a tls section";
        return r.fail(&key, message);
    }
    Some(settings)
}

/// The keys of an `http3` mapping, each with its default.
fn settings(r: &mut Problems, s: Section<'_>) -> Http3Settings {
    let mut h = Http3Settings::default();
    let whole =
        |r: &mut Problems, key: &'static str, range: std::ops::RangeInclusive<u64>, write: &str| {
            let k = s.whole(r, key, write)?;
            r.within(&k, range, write)
        };
    let write = "a number of seconds from 1 to 31536000, such as 86400";
    if let Some(n) = whole(r, "alt_svc_max_age_seconds", 1..=31_536_000, write) {
        h.alt_svc_max_age = n as u32;
    }
    let write = "a number of streams from 1 to 1000, such as 100";
    if let Some(n) = whole(r, "max_concurrent_streams", 1..=1000, write) {
        h.max_concurrent_streams = n as u32;
    }
    let write = "a number of handshakes from 1 to 100000, such as 1024";
    if let Some(n) = whole(r, "max_handshakes", 1..=100_000, write) {
        h.max_handshakes = n as usize;
    }
    let write = "a number of handshakes from 0 (always) to 100000, such as 64";
    if let Some(n) = whole(r, "retry_above_handshakes", 0..=100_000, write) {
        h.retry_above = n as usize;
    }
    let idle = s.duration(r, "idle_timeout_seconds", h.idle_timeout);
    h.idle_timeout = seconds(r, idle, h.idle_timeout, 600.0);
    s.finish(r);
    h
}
