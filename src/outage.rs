//! Quiet outages: while Ackee is down, failed requests are tallied and summarised, not logged
//! one by one. No pingora here; the proxy records failures and a background task asks for the
//! summary once a period.
//!
//! Without this, every request answered 502, 503 or 504 because Ackee is unreachable would add
//! an error line, so an outage would flood the journal at the request rate. Instead:
//!
//! - the first failure after a quiet period is logged once, with what the visitors got;
//! - then one summary line per period while failures go on, with the counts by status;
//! - a period without failures ends the episode, so the next failure is logged at once again.
//!
//! Replica state changes are logged by the health checks, and every count is in the metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the summary is written while failures go on.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// The statuses tallied, in the order they are reported.
pub const STATUSES: [u16; 3] = [502, 503, 504];

/// What a status means to the operator.
pub fn meaning(status: u16) -> &'static str {
    match status {
        502 => "Ackee not reachable",
        503 => "no Ackee replica up",
        504 => "Ackee did not answer in time",
        _ => "other",
    }
}

/// Failed requests since the last summary, counted without locks.
#[derive(Debug, Default)]
pub struct OutageTally {
    counts: [AtomicU64; 3],
    active: AtomicBool,
}

impl OutageTally {
    /// Whether a status is one this tally counts: the gateway answered for an Ackee that failed.
    pub fn counts(status: u16) -> bool {
        STATUSES.contains(&status)
    }

    /// Counts one failed request. Returns the line to log when it starts an episode.
    pub fn record(&self, status: u16) -> Option<String> {
        let i = STATUSES.iter().position(|&s| s == status)?;
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        if self.active.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(format!(
            "requests are failing: answered {status} ({}); further failures are summarised every {} s, not logged one by one",
            meaning(status),
            SUMMARY_PERIOD.as_secs()
        ))
    }

    /// Takes the counts since the last call and returns the summary line, if there were any.
    /// A period without failures ends the episode.
    pub fn summary(&self, period: Duration) -> Option<String> {
        let taken: Vec<(u16, u64)> = STATUSES
            .iter()
            .zip(&self.counts)
            .map(|(&s, c)| (s, c.swap(0, Ordering::AcqRel)))
            .collect();
        let line = summary_line(&taken, period);
        if line.is_none() {
            self.active.store(false, Ordering::Release);
        }
        line
    }
}

/// The summary of one period: `None` when nothing failed.
pub fn summary_line(counts: &[(u16, u64)], period: Duration) -> Option<String> {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} answered {s} ({})", meaning(*s)))
        .collect();
    let s = if total == 1 { "" } else { "s" };
    Some(format!(
        "{total} request{s} failed in the last {} s: {}",
        period.as_secs(),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(60);

    #[test]
    fn summaries_read_as_counts_by_status() {
        type Case<'a> = (&'a [(u16, u64)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[(502, 0), (503, 0), (504, 0)], None),
            (
                &[(502, 0), (503, 1), (504, 0)],
                Some("1 request failed in the last 60 s: 1 answered 503 (no Ackee replica up)"),
            ),
            (
                &[(502, 3), (503, 1200), (504, 0)],
                Some(
                    "1203 requests failed in the last 60 s: 3 answered 502 (Ackee not reachable), 1200 answered 503 (no Ackee replica up)",
                ),
            ),
        ];
        for (counts, want) in cases {
            assert_eq!(summary_line(counts, P).as_deref(), *want, "{counts:?}");
        }
    }

    #[test]
    fn an_episode_is_announced_once_then_summarised_then_ends() {
        let t = OutageTally::default();
        let first = t.record(503).expect("the first failure is logged");
        assert!(first.contains("answered 503"), "{first}");
        for _ in 0..999 {
            assert_eq!(t.record(503), None, "later failures are only counted");
        }
        assert_eq!(t.record(502), None);
        let s = t.summary(P).expect("a summary");
        assert!(s.starts_with("1001 requests failed"), "{s}");
        assert_eq!(t.summary(P), None, "counts were taken");
        assert!(t.record(504).is_some(), "a quiet period ended the episode");
    }

    #[test]
    fn other_statuses_are_not_tallied() {
        let t = OutageTally::default();
        for status in [200, 400, 403, 413, 500] {
            assert!(!OutageTally::counts(status));
            assert_eq!(t.record(status), None);
        }
        assert_eq!(t.summary(P), None);
    }
}
