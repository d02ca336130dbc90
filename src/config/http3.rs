//! `listeners[].http3`: `true`, or a mapping of HTTP/3's settings, on a TLS listener only. The
//! validated type is [`crate::quic::Http3Settings`].

use serde_yaml::Value;

use super::section::{Problems, Section};
use super::values::seconds;
use crate::quic::Http3Settings;

const EXAMPLE: &str = "true, or a mapping such as {alt_svc_max_age_seconds: 86400}";

/// Reads `http3` on a listener. `None` when it is absent, `false`, or wrong.
pub(super) fn http3(
    problems: &mut Problems,
    listener: &Section<'_>,
    has_tls: bool,
) -> Option<Http3Settings> {
    let (key, value) = listener.get("http3")?;
    let settings = match value {
        Value::Bool(false) => return None,
        Value::Bool(true) => Http3Settings::default(),
        Value::Mapping(_) => {
            let section = Section::open(problems, &key, value, EXAMPLE)?;
            settings(problems, section)
        }
        other => return problems.wrong_type(&key, other, EXAMPLE),
    };
    if !has_tls {
        let message = "is set on a plain-HTTP listener; HTTP/3 always runs over TLS: set it on the listener with a tls section";
        return problems.fail(&key, message);
    }
    Some(settings)
}

/// The keys of an `http3` mapping, each with its default.
fn settings(problems: &mut Problems, http3: Section<'_>) -> Http3Settings {
    let mut out = Http3Settings::default();
    let whole = |problems: &mut Problems,
                 key: &'static str,
                 range: std::ops::RangeInclusive<u64>,
                 write: &str| {
        let number = http3.whole(problems, key, write)?;
        problems.within(&number, range, write)
    };
    let write = "a number of seconds from 1 to 31536000, such as 86400";
    if let Some(number) = whole(problems, "alt_svc_max_age_seconds", 1..=31_536_000, write) {
        out.alt_svc_max_age = number as u32;
    }
    let write = "a number of streams from 1 to 1000, such as 100";
    if let Some(number) = whole(problems, "max_concurrent_streams", 1..=1000, write) {
        out.max_concurrent_streams = number as u32;
    }
    let write = "a number of handshakes from 1 to 100000, such as 1024";
    if let Some(number) = whole(problems, "max_handshakes", 1..=100_000, write) {
        out.max_handshakes = number as usize;
    }
    let write = "a number of handshakes from 0 (always) to 100000, such as 64";
    if let Some(number) = whole(problems, "retry_above_handshakes", 0..=100_000, write) {
        out.retry_above = number as usize;
    }
    let idle = http3.duration(problems, "idle_timeout_seconds", out.idle_timeout);
    out.idle_timeout = seconds(problems, idle, out.idle_timeout, 600.0);
    http3.finish(problems);
    out
}
