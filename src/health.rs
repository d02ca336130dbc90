//! Replica health from active checks: a small state machine per replica, read lock-free on the
//! request path. No pingora here; the prober in [`crate::balancer`] feeds it results. What a
//! check does ([`HealthCheckSettings`]) lives here too, with the check that its path is a request
//! target the prober can always send.
//!
//! - A replica starts down and gets no traffic before its first passing check.
//! - An up replica goes down after `unhealthy_after` consecutive failures.
//! - A down replica that has been up before comes back after `healthy_after` consecutive
//!   passes.
//! - A replica that refuses a connection is down at once, as if it had failed `unhealthy_after`
//!   checks: a closed port is not a slow replica.
//! - When every replica is down, each gets traffic anyway ([`routable`], Envoy's panic mode):
//!   health state is a few seconds old, and a lone Ackee that listens again must not be
//!   refused visitors until its checks catch up. The client gets 503 only when the connect
//!   itself fails.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How many consecutive results flip a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures that take an up replica down.
    pub unhealthy_after: u32,
    /// Consecutive passes that bring a down replica back (after its first pass).
    pub healthy_after: u32,
}

#[derive(Debug, Default)]
struct Streak {
    ever_passed: bool,
    passes: u32,
    failures: u32,
}

/// One replica's health.
#[derive(Debug)]
pub struct ReplicaHealth {
    healthy: AtomicBool,
    streak: Mutex<Streak>,
}

impl ReplicaHealth {
    /// A replica that must pass a check before it gets traffic.
    pub fn unchecked() -> ReplicaHealth {
        ReplicaHealth {
            healthy: AtomicBool::new(false),
            streak: Mutex::new(Streak::default()),
        }
    }

    /// A replica that is always up, for when health checks are off.
    pub fn always_up() -> ReplicaHealth {
        ReplicaHealth {
            healthy: AtomicBool::new(true),
            streak: Mutex::new(Streak {
                ever_passed: true,
                ..Streak::default()
            }),
        }
    }

    /// Whether the replica may get traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records a check result. Returns the new health when it changed.
    pub fn record(&self, passed: bool, t: Thresholds) -> Option<bool> {
        let mut s = match self.streak.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let was = self.healthy.load(Ordering::Acquire);
        if passed {
            s.passes = s.passes.saturating_add(1);
            s.failures = 0;
        } else {
            s.failures = s.failures.saturating_add(1);
            s.passes = 0;
        }
        let now = if passed && !s.ever_passed {
            s.ever_passed = true;
            true
        } else if was {
            s.failures < t.unhealthy_after.max(1)
        } else {
            s.ever_passed && s.passes >= t.healthy_after.max(1)
        };
        self.healthy.store(now, Ordering::Release);
        (now != was).then_some(now)
    }

    /// Records a refused connection: down at once, and back only after `healthy_after` passes.
    /// Returns `Some(false)` when this took the replica down.
    pub fn refused(&self, t: Thresholds) -> Option<bool> {
        let mut s = match self.streak.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        s.passes = 0;
        s.failures = s.failures.max(t.unhealthy_after);
        let was = self.healthy.swap(false, Ordering::AcqRel);
        was.then_some(false)
    }
}

/// Whether a replica may be chosen: a healthy one always; an unhealthy one only while no replica
/// at all is healthy (panic mode).
pub fn routable(healthy: bool, any_healthy: bool) -> bool {
    healthy || !any_healthy
}

/// What an active health check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthProbe {
    /// `GET path`, passing on 200.
    Http {
        /// The path, such as `/.well-known/apollo/server-health`.
        path: String,
    },
    /// A TCP connect.
    Tcp,
    /// No checks: every replica is always up.
    Off,
}

/// Active health checks.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheckSettings {
    /// The probe.
    pub probe: HealthProbe,
    /// Time between checks of a replica.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failures that take a replica down.
    pub unhealthy_after: u32,
    /// Consecutive passes that bring it back.
    pub healthy_after: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        HealthCheckSettings {
            probe: HealthProbe::Http {
                path: "/.well-known/apollo/server-health".to_owned(),
            },
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
}

/// The longest health-check path accepted, in bytes.
pub const MAX_TARGET_BYTES: usize = 2048;

/// Whether a byte may appear as is in an origin-form request target (RFC 9112 3.2.1: an
/// absolute path of RFC 3986 `pchar`s and `/`, then optionally `?` and a query).
fn is_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

/// Checks a health-check path as an HTTP request target, so the checker can always send it.
/// The error says what was found and what to write; for characters that must be
/// percent-encoded, it writes the encoded path.
pub fn check_request_target(path: &str) -> Result<(), String> {
    let shown = || {
        let mut s: String = path
            .chars()
            .take(60)
            .collect::<String>()
            .escape_debug()
            .to_string();
        if path.chars().count() > 60 {
            s.push_str("...");
        }
        s
    };
    if path.len() > MAX_TARGET_BYTES {
        return Err(format!(
            "found a path of {} bytes (\"{}\"); write a path of at most {MAX_TARGET_BYTES} bytes, such as \"/.well-known/apollo/server-health\"",
            path.len(),
            shown()
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "found \"{}\"; write a path that starts with /, such as \"/.well-known/apollo/server-health\"",
            shown()
        ));
    }
    let bytes = path.as_bytes();
    let mut bad = false;
    let mut encoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape_ok = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if is_target_byte(b) || escape_ok {
            encoded.push(char::from(b));
        } else {
            bad = true;
            encoded.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    if bad {
        return Err(format!(
            "found \"{}\", which is not a valid HTTP request target (spaces, control characters, non-ASCII letters and characters such as < > \" # must be percent-encoded); write \"{encoded}\"",
            shown()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_paths_are_checked_as_request_targets() {
        // path -> None if valid, or the fix the message must quote.
        let long = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
        let cases: [(&str, Option<&str>); 10] = [
            ("/.well-known/apollo/server-health", None),
            ("/health?probe=1&x=%20", None),
            ("/a:b@c;d=e,f!$'()*+~", None),
            ("/health<x>", Some("write \"/health%3Cx%3E\"")),
            ("/gesundheit-ü", Some("write \"/gesundheit-%C3%BC\"")),
            ("/he\u{1}alth", Some("write \"/he%01alth\"")),
            ("/a b", Some("write \"/a%20b\"")),
            ("/100%", Some("write \"/100%25\"")),
            ("/x#frag", Some("write \"/x%23frag\"")),
            ("health", Some("write a path that starts with /")),
        ];
        for (path, want) in cases {
            match (check_request_target(path), want) {
                (Ok(()), None) => {}
                (Err(e), Some(fix)) => assert!(e.contains(fix), "{path:?}: {e}"),
                (got, want) => panic!("{path:?}: got {got:?}, want {want:?}"),
            }
        }
        let e = check_request_target(&long).unwrap_err();
        assert!(e.contains("write a path of at most 2048 bytes"), "{e}");
        assert!(e.len() < 300, "the message quotes only the start: {e}");
    }

    const T: Thresholds = Thresholds {
        unhealthy_after: 3,
        healthy_after: 2,
    };

    fn run(h: &ReplicaHealth, results: &str) -> String {
        results
            .chars()
            .map(|c| {
                h.record(c == '+', T);
                if h.is_healthy() { 'U' } else { 'd' }
            })
            .collect()
    }

    #[test]
    fn a_new_replica_is_down_until_its_first_pass() {
        let h = ReplicaHealth::unchecked();
        assert!(!h.is_healthy());
        assert_eq!(run(&h, "---+"), "dddU");
    }

    #[test]
    fn it_takes_n_failures_to_go_down_and_m_passes_to_come_back() {
        let h = ReplicaHealth::unchecked();
        assert_eq!(run(&h, "+--+---+-++"), "UUUUUUddddU");
    }

    #[test]
    fn changes_are_reported_once() {
        let h = ReplicaHealth::unchecked();
        assert_eq!(h.record(true, T), Some(true));
        assert_eq!(h.record(true, T), None);
        assert_eq!(h.record(false, T), None);
        assert_eq!(h.record(false, T), None);
        assert_eq!(h.record(false, T), Some(false));
        assert_eq!(h.record(true, T), None);
        assert_eq!(h.record(true, T), Some(true));
    }

    #[test]
    fn a_refused_connection_takes_a_replica_down_at_once() {
        let h = ReplicaHealth::unchecked();
        assert_eq!(run(&h, "+"), "U");
        assert_eq!(h.refused(T), Some(false));
        assert!(!h.is_healthy());
        assert_eq!(h.refused(T), None, "reported once");
        // Back after healthy_after passes, not at the first one.
        assert_eq!(run(&h, "+-++"), "dddU");
    }

    #[test]
    fn every_replica_gets_traffic_when_none_is_healthy() {
        // (healthy, any_healthy) -> routable
        for (healthy, any, want) in [
            (true, true, true),
            (false, true, false),
            (false, false, true),
        ] {
            assert_eq!(routable(healthy, any), want, "{healthy} {any}");
        }
    }

    #[test]
    fn always_up_replicas_start_healthy() {
        assert!(ReplicaHealth::always_up().is_healthy());
    }
}
