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
    problems: &mut Problems,
    list: Option<Texts>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Vec<T> {
    let items = list.map(|list| list.value).unwrap_or_default();
    let mut parse = |item: Keyed<String>| {
        parse(&item.value).map_err(|error| problems.error(&item.key, error.to_string()))
    };
    items
        .into_iter()
        .filter_map(|item| parse(item).ok())
        .collect()
}

/// The longest duration any `*_seconds` key accepts, but `watch_interval_seconds`: an hour.
pub(super) const MAX_SECONDS: f64 = 3600.0;

/// A bounded number of seconds, or `default` when the key is absent. Out of bounds (a duration
/// of 1e20 seconds cannot even be represented) is an error, and gives `default` too.
pub(super) fn seconds(
    problems: &mut Problems,
    written: Option<Keyed<f64>>,
    default: Duration,
    max: f64,
) -> Duration {
    let Some(written) = written else {
        return default;
    };
    if !(0.001..=max).contains(&written.value) {
        let such_as = default.as_secs_f64();
        let write = format!("a number of seconds from 0.001 to {max}, such as {such_as}");
        problems.found(&written.key, written.value, write);
        return default;
    }
    Duration::from_secs_f64(written.value)
}

/// The text, or `None` after an error when it is blank; `what` says what to write instead.
pub(super) fn non_empty(
    problems: &mut Problems,
    written: Option<Keyed<String>>,
    what: &str,
) -> Option<String> {
    let written = written?;
    if written.value.trim().is_empty() {
        let message = format!("is empty; write {what}, or leave the key out");
        return problems.fail(&written.key, message);
    }
    Some(written.value)
}

/// An IP address and a fixed port to listen on, or `None` after an error that says what to
/// write.
pub(super) fn listen_address(
    problems: &mut Problems,
    address: &Keyed<String>,
) -> Option<SocketAddr> {
    match address.value.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            let fix = "a fixed port, such as \"127.0.0.1:8080\"";
            problems.found(
                &address.key,
                format!("\"{}\" with port 0", address.value),
                fix,
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.found(
                &address.key,
                format!("\"{}\"", address.value),
                LISTEN_EXAMPLE,
            );
            None
        }
    }
}
