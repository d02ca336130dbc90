//! Refused connections in the log: once when refusals start, then one summary a period while
//! they go on, never one line per connection (a flood of connections would otherwise flood the
//! journal). A period without refusals ends the episode, so the next refusal is announced at
//! once again. Pure: the listeners record, a background task asks for the summary.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::bound::Bound;
use super::table::Refusal;

/// How often the summary is written while refusals go on.
pub const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Refused connections since the last summary, counted without locks.
#[derive(Debug, Default)]
pub struct RefusalTally {
    counts: [AtomicU64; Refusal::ALL.len()],
    active: AtomicBool,
}

impl RefusalTally {
    /// Counts one refused connection. True when it starts an episode: the caller logs
    /// [`first_line`] then.
    pub fn record(&self, refusal: Refusal) -> bool {
        self.counts[index(refusal)].fetch_add(1, Ordering::Relaxed);
        !self.active.swap(true, Ordering::AcqRel)
    }

    /// Takes the counts since the last call and returns the summary line, if there were any.
    /// A period without refusals ends the episode.
    pub fn summary(
        &self,
        period: Duration,
        per_client: Option<u32>,
        bound: &Bound,
    ) -> Option<String> {
        let taken = Refusal::ALL.map(|r| (r, self.counts[index(r)].swap(0, Ordering::AcqRel)));
        let line = summary_line(&taken, period, per_client, bound);
        if line.is_none() {
            self.active.store(false, Ordering::Release);
        }
        line
    }
}

fn index(refusal: Refusal) -> usize {
    Refusal::ALL.iter().position(|r| *r == refusal).unwrap_or(0)
}

/// What a refusal means, for the log.
fn meaning(refusal: Refusal, per_client: Option<u32>, bound: &Bound) -> String {
    match refusal {
        Refusal::PerClient => format!(
            "over limits.max_connections_per_client ({})",
            per_client.unwrap_or(0)
        ),
        Refusal::Process => format!(
            "over the process's {} connections (RLIMIT_NOFILE {})",
            bound.connections, bound.nofile
        ),
        Refusal::Descriptors => "with no file descriptor left to accept them".to_owned(),
    }
}

/// The line that announces an episode: what was refused, from whom when it is one client's
/// limit, and that established connections are still served.
pub fn first_line(
    refusal: Refusal,
    client: Option<IpAddr>,
    per_client: Option<u32>,
    bound: &Bound,
) -> String {
    let what = match (refusal, client) {
        (Refusal::PerClient, Some(ip)) => format!(
            "new connections from {ip} are refused: it holds limits.max_connections_per_client ({})",
            per_client.unwrap_or(0)
        ),
        (Refusal::Process, _) | (Refusal::PerClient, None) => format!(
            "new connections are refused: {} are open, the most this process takes with RLIMIT_NOFILE at {} (the rest is kept for connections to Ackee and the metrics)",
            bound.connections, bound.nofile
        ),
        (Refusal::Descriptors, _) => "new connections wait: the process has no file descriptor left to accept them (Too many open files); raise LimitNOFILE".to_owned(),
    };
    format!(
        "{what}; established connections are still served; further refusals are summarised every {} s, not logged one by one",
        SUMMARY_PERIOD.as_secs()
    )
}

/// The summary of one period: `None` when nothing was refused.
pub fn summary_line(
    counts: &[(Refusal, u64)],
    period: Duration,
    per_client: Option<u32>,
    bound: &Bound,
) -> Option<String> {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{n} {}", meaning(*r, per_client, bound)))
        .collect();
    let s = if total == 1 { "" } else { "s" };
    Some(format!(
        "{total} connection{s} refused in the last {} s: {}",
        period.as_secs(),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::bound::bound_for;

    const P: Duration = Duration::from_secs(60);

    #[test]
    fn summaries_read_as_counts_by_reason() {
        let b = bound_for(1024);
        use Refusal::*;
        type Case<'a> = (&'a [(Refusal, u64)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[(PerClient, 0), (Process, 0), (Descriptors, 0)], None),
            (
                &[(PerClient, 1), (Process, 0), (Descriptors, 0)],
                Some(
                    "1 connection refused in the last 60 s: 1 over limits.max_connections_per_client (8)",
                ),
            ),
            (
                &[(PerClient, 2), (Process, 900), (Descriptors, 3)],
                Some(
                    "905 connections refused in the last 60 s: 2 over limits.max_connections_per_client (8), 900 over the process's 704 connections (RLIMIT_NOFILE 1024), 3 with no file descriptor left to accept them",
                ),
            ),
        ];
        for (counts, want) in cases {
            assert_eq!(
                summary_line(counts, P, Some(8), &b).as_deref(),
                *want,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn first_lines_say_who_and_why() {
        let b = bound_for(128);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let cases: &[(Refusal, Option<IpAddr>, &str)] = &[
            (
                Refusal::PerClient,
                Some(ip),
                "new connections from 192.0.2.7 are refused: it holds limits.max_connections_per_client (3); established",
            ),
            (
                Refusal::Process,
                None,
                "new connections are refused: 32 are open, the most this process takes with RLIMIT_NOFILE at 128 (the rest",
            ),
            (
                Refusal::Descriptors,
                None,
                "new connections wait: the process has no file descriptor left",
            ),
        ];
        for (r, client, want) in cases {
            let line = first_line(*r, *client, Some(3), &b);
            assert!(line.starts_with(want), "{line}");
            assert!(line.contains("summarised every 60 s"), "{line}");
        }
    }

    #[test]
    fn an_episode_is_announced_once_then_summarised_then_ends() {
        let b = bound_for(1024);
        let t = RefusalTally::default();
        assert!(t.record(Refusal::Process), "the first refusal is announced");
        for _ in 0..999 {
            assert!(!t.record(Refusal::Process), "later ones are only counted");
        }
        assert!(!t.record(Refusal::PerClient), "whatever their reason");
        let s = t.summary(P, Some(8), &b).expect("a summary");
        assert!(s.starts_with("1001 connections refused"), "{s}");
        assert_eq!(t.summary(P, Some(8), &b), None, "counts were taken");
        assert!(
            t.record(Refusal::Descriptors),
            "a quiet period ended the episode"
        );
    }
}
