//! What the log says when the gateway starts, hands over in a reload and stops: the few lines an
//! operator reads in `journalctl -u ackee-gateway`, built from the config. Pingora's own
//! bookkeeping of the same moments is logged at debug level ([`crate::logging`]).
//!
//! A start says the version, the listeners, the replicas and the allowed origins, then
//! `serving on every listener` once it does; a config's warnings and problems are its own lines,
//! before these. A stop or a hand-over says which signal asked for it and what happens next, then
//! `stopped`.

use crate::config::{Config, Listener, ServerSettings};

/// How many allowed origins a start names before it only counts the rest.
const ORIGINS_NAMED: usize = 5;

/// Pingora's fixed hand-over window: after sending its sockets, the old process goes on
/// accepting for this long before its grace period begins.
pub(crate) const HAND_OVER_SECONDS: u64 = 5;

/// The lines a start logs, before it serves: the version, the listeners, the replicas and the
/// allowed origins. `upgrade` when the process takes over from a running gateway.
pub(crate) fn starting(config: &Config, upgrade: bool) -> Vec<String> {
    let mut lines = vec![format!(
        "ackee-gateway {} starting{}",
        env!("CARGO_PKG_VERSION"),
        if upgrade {
            ", taking over the sockets of the running gateway"
        } else {
            ""
        }
    )];
    let listeners: Vec<String> = config.listeners.iter().map(listener).collect();
    let metrics = match &config.metrics {
        Some(m) => format!("metrics on {}", m.address),
        None => "no metrics listener".to_owned(),
    };
    lines.push(format!("listeners: {}; {metrics}", listeners.join(", ")));
    let replicas: Vec<String> = config
        .upstream
        .replicas
        .iter()
        .map(|r| {
            if r.name == r.written {
                r.written.clone()
            } else {
                format!("{} ({})", r.name, r.written)
            }
        })
        .collect();
    lines.push(format!("replicas: {}", replicas.join(", ")));
    lines.push(origins(config));
    lines
}

/// One listener: its name, address and what it speaks.
fn listener(l: &Listener) -> String {
    let mut what = vec![if l.tls.is_some() { "https" } else { "http" }];
    if l.http3.is_some() {
        what.push("http3");
    }
    let redirect;
    if let Some(port) = l.redirect_to_https {
        redirect = format!("redirects to https on port {port}");
        what.push(&redirect);
    }
    let address = l.address.to_string();
    if l.name == address {
        format!("{address} ({})", what.join(", "))
    } else {
        format!("{} on {address} ({})", l.name, what.join(", "))
    }
}

/// The allowed origins: the first few by name, how many more, and where they come from.
fn origins(config: &Config) -> String {
    let entries = config.cors.origins.entries();
    let mut named: Vec<String> = entries
        .iter()
        .take(ORIGINS_NAMED)
        .map(ToString::to_string)
        .collect();
    if entries.len() > ORIGINS_NAMED {
        named.push(format!("and {} more", entries.len() - ORIGINS_NAMED));
    }
    let mut line = if named.is_empty() {
        "allowed origins: none in the config".to_owned()
    } else {
        format!("allowed origins: {}", named.join(", "))
    };
    if config.origins_from_env {
        line.push_str(" (from ACKEE_ALLOW_ORIGIN)");
    }
    if config.cors.from_ackee.is_some() {
        line.push_str("; and those of Ackee's domain list");
    }
    line
}

/// The line a ready process logs: it serves on every listener.
pub(crate) fn serving(pid: u32) -> String {
    format!("serving on every listener (PID {pid})")
}

/// What a signal asked the gateway to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGTERM: stop accepting, let requests in flight finish, exit.
    Graceful,
    /// SIGQUIT: hand the listening sockets to a new process (a reload), then as `Graceful`.
    HandOver,
    /// SIGINT: exit now.
    Now,
}

/// The line logged when a signal asks the gateway to stop or hand over.
pub(crate) fn stopping(stop: Stop, server: &ServerSettings) -> String {
    let grace = server.grace_period_seconds;
    let runtimes = server.graceful_shutdown_timeout_seconds;
    match stop {
        Stop::Graceful => format!(
            "stopping (SIGTERM): no new connections; requests in flight get {grace} s, then \
             {runtimes} s to end"
        ),
        Stop::HandOver => format!(
            "handing over (SIGQUIT): the listening sockets go to the new process; this one \
             accepts for {HAND_OVER_SECONDS} s more, then requests in flight get {grace} s and \
             {runtimes} s to end"
        ),
        Stop::Now => "stopping now (SIGINT)".to_owned(),
    }
}

/// The last line of a process that stopped as it was asked to, `seconds` after the signal.
pub(crate) fn stopped(seconds: f64) -> String {
    format!("stopped, {seconds:.1} s after the signal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{OriginSet, parse_entry};

    fn config(yaml: &str) -> Config {
        crate::config::parse("gateway.yaml", yaml, None)
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config
    }

    const BASE: &str = "listeners:\n  - name: public\n    address: \"127.0.0.1:8080\"\nmetrics:\n  address: \"127.0.0.1:9464\"\nupstream:\n  replicas:\n    - name: ackee-0\n      address: \"127.0.0.1:3000\"\n    - address: \"127.0.0.1:3001\"\ncors:\n  allowed_origins: [\"https://example.com\", \"https://*.example.org\"]\n";

    #[test]
    fn a_start_names_version_listeners_replicas_and_origins() {
        let lines = starting(&config(BASE), false);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            lines,
            [
                format!("ackee-gateway {version} starting"),
                "listeners: public on 127.0.0.1:8080 (http); metrics on 127.0.0.1:9464".to_owned(),
                "replicas: ackee-0 (127.0.0.1:3000), 127.0.0.1:3001".to_owned(),
                "allowed origins: https://example.com, https://*.example.org".to_owned(),
            ]
        );
        let upgrade = starting(&config(BASE), true);
        assert!(upgrade[0].ends_with("taking over the sockets of the running gateway"));
    }

    #[test]
    fn many_origins_are_counted_past_the_first_few() {
        let mut c = config(BASE);
        let entries = (0..8).map(|i| parse_entry(&format!("https://s{i}.example.com")).unwrap());
        c.cors.origins = OriginSet::new(entries);
        c.origins_from_env = true;
        assert_eq!(
            origins(&c),
            "allowed origins: https://s0.example.com, https://s1.example.com, \
             https://s2.example.com, https://s3.example.com, https://s4.example.com, and 3 \
             more (from ACKEE_ALLOW_ORIGIN)"
        );
        c.cors.origins = OriginSet::new([parse_entry("*").unwrap()]);
        c.origins_from_env = false;
        assert_eq!(origins(&c), "allowed origins: *");
    }

    #[test]
    fn each_stop_says_what_happens_next() {
        let server = ServerSettings {
            grace_period_seconds: 3,
            graceful_shutdown_timeout_seconds: 2,
            ..ServerSettings::default()
        };
        let cases = [
            (
                Stop::Graceful,
                "stopping (SIGTERM): no new connections; requests in flight get 3 s, then 2 s to end",
            ),
            (
                Stop::HandOver,
                "handing over (SIGQUIT): the listening sockets go to the new process; this one \
                 accepts for 5 s more, then requests in flight get 3 s and 2 s to end",
            ),
            (Stop::Now, "stopping now (SIGINT)"),
        ];
        for (stop, want) in cases {
            assert_eq!(stopping(stop, &server), want);
        }
        assert_eq!(stopped(5.04), "stopped, 5.0 s after the signal");
        assert_eq!(serving(42), "serving on every listener (PID 42)");
    }
}
