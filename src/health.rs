//! Replica health from active checks: a small state machine per replica, read lock-free on the
//! request path. No pingora here; the prober in [`crate::upstream`] feeds it results.
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

#[cfg(test)]
mod tests {
    use super::*;

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
