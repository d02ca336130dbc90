//! The checks that several sections make on single values read by [`super::section`]: each
//! item of a list parsed, a bounded number of seconds, text that is not blank, an address to
//! listen on. The sections and the top level ([`super::validate`]) share them; they name no key.

use std::net::SocketAddr;
use std::time::Duration;

use super::section::{Keyed, Problems, Texts};

/// What to write for an address to listen on.
pub(super) const LISTEN_EXAMPLE: &str =
    "an IP address and port, such as \"127.0.0.1:8080\" or \"[::]:443\"";

/// Each item of a list that `parse` accepts; the others are errors with its message.
pub(super) fn each<T, E: ToString>(
    r: &mut Problems,
    list: Option<Texts>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Vec<T> {
    let items = list.map(|l| l.value).unwrap_or_default();
    let mut parse = |k: Keyed<String>| parse(&k.value).map_err(|e| r.error(&k.key, e.to_string()));
    items.into_iter().filter_map(|k| parse(k).ok()).collect()
}

/// The longest duration any `*_seconds` key accepts, but `watch_interval_seconds`: an hour.
pub(super) const MAX_SECONDS: f64 = 3600.0;

/// A bounded number of seconds, or `default` when the key is absent. Out of bounds (a duration
/// of 1e20 seconds cannot even be represented) is an error, and gives `default` too.
pub(super) fn seconds(
    r: &mut Problems,
    v: Option<Keyed<f64>>,
    default: Duration,
    max: f64,
) -> Duration {
    let Some(k) = v else {
        return default;
    };
    if !(0.001..=max).contains(&k.value) {
        let such_as = default.as_secs_f64();
        let write = format!("a number of seconds from 0.001 to {max}, such as {such_as}");
        r.found(&k.key, k.value, write);
        return default;
    }
    Duration::from_secs_f64(k.value)
}

/// The text, or `None` after an error when it is blank; `what` says what to write instead.
pub(super) fn non_empty(r: &mut Problems, v: Option<Keyed<String>>, what: &str) -> Option<String> {
    let v = v?;
    if v.value.trim().is_empty() {
        let message = format!("is empty; write {what}, or leave the key out");
        return r.fail(&v.key, message);
    }
    Some(v.value)
}

/// An IP address and a fixed port to listen on, or `None` after an error that says what to
/// write.
pub(super) fn listen_address(r: &mut Problems, a: &Keyed<String>) -> Option<SocketAddr> {
    match a.value.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            let fix = "a fixed port, such as \"127.0.0.1:8080\"";
            r.found(&a.key, format!("\"{}\" with port 0", a.value), fix);
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            r.found(&a.key, format!("\"{}\"", a.value), LISTEN_EXAMPLE);
            None
        }
    }
}
