//! The refresh state machine: what each refresh's result does to the copy in use, the log and
//! the counts.
//!
//! - Files whose fingerprint differs from the copy in use are taken: the caller compresses
//!   them and swaps the new copy in.
//! - The same fingerprint changes nothing (and costs no compression).
//! - A failed refresh keeps the last good copy (before the first one, the paths stay proxied
//!   to Ackee) and is counted by reason.
//! - The log gets one line per state change (taken, changed, failing for a reason, working
//!   again); a refresh that changes nothing logs nothing, however often it runs.

use log::Level;

use super::fetch::{Failed, Failure, Fetched};

/// What one refresh did, for the count: a fixed set, safe for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new or changed copy was taken.
    Changed,
    /// Ackee's files are those in use.
    Unchanged,
    /// Nothing was taken, for this reason.
    Failed(Failure),
}

impl Outcome {
    /// Every outcome's label, for pre-registering series.
    pub const LABELS: [&'static str; 6] = [
        "changed",
        "unchanged",
        "no_replica",
        "unreachable",
        "bad_answer",
        "too_large",
    ];

    /// Its label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Changed => "changed",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed(f) => f.as_str(),
        }
    }
}

/// What one refresh's result calls for.
#[derive(Debug)]
pub struct Step {
    /// Build a copy from what was fetched and put it in use.
    pub take: bool,
    /// Log lines, with their level. A line about a new copy ends where the caller adds its
    /// sizes.
    pub log: Vec<(Level, String)>,
    /// What to count.
    pub outcome: Outcome,
}

/// The refresh's memory: the fingerprint in use, and whether the last refresh failed.
#[derive(Debug, Default)]
pub struct Refresh {
    in_use: Option<[u8; 32]>,
    failing: Option<Failure>,
}

impl Refresh {
    /// Nothing taken yet.
    pub fn new() -> Refresh {
        Refresh::default()
    }

    /// Whether a copy is in use.
    pub fn has_copy(&self) -> bool {
        self.in_use.is_some()
    }

    /// Takes one refresh's result.
    pub fn step(&mut self, result: &Result<Fetched, Failed>) -> Step {
        let mut log = Vec::new();
        match result {
            Ok(fetched) => {
                if self.failing.take().is_some() {
                    log.push((
                        Level::Info,
                        format!(
                            "Ackee's static files: can be read again, from replica \"{}\"",
                            fetched.replica
                        ),
                    ));
                }
                let fingerprint = fetched.fingerprint();
                if self.in_use == Some(fingerprint) {
                    return Step {
                        take: false,
                        log,
                        outcome: Outcome::Unchanged,
                    };
                }
                let what = if self.in_use.is_none() {
                    "served from the edge"
                } else {
                    "changed in Ackee; the new copy is served"
                };
                log.push((
                    Level::Info,
                    format!(
                        "Ackee's static files: {what}, from replica \"{}\"",
                        fetched.replica
                    ),
                ));
                self.in_use = Some(fingerprint);
                Step {
                    take: true,
                    log,
                    outcome: Outcome::Changed,
                }
            }
            Err(failed) => {
                if self.failing != Some(failed.reason) {
                    let keeping = if self.in_use.is_some() {
                        "keeping the copy in use"
                    } else {
                        "proxying them to Ackee until a copy is taken"
                    };
                    log.push((
                        Level::Warn,
                        format!(
                            "Ackee's static files: cannot refresh ({}): {}; {keeping}; logged again only when this changes",
                            failed.reason.as_str().replace('_', " "),
                            failed.detail
                        ),
                    ));
                }
                self.failing = Some(failed.reason);
                Step {
                    take: false,
                    log,
                    outcome: Outcome::Failed(failed.reason),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fetch::Body;
    use super::*;

    fn fetched(tracker: &str) -> Result<Fetched, Failed> {
        let body = |b: &str| Body {
            content_type: "text/javascript".to_owned(),
            bytes: b.as_bytes().to_vec(),
        };
        Ok(Fetched {
            replica: "ackee-0".to_owned(),
            files: [body(tracker), body("h"), body("j"), body("c"), body("i")],
        })
    }

    fn failed(reason: Failure) -> Result<Fetched, Failed> {
        Err(Failed {
            reason,
            detail: "replica \"ackee-0\": /tracker.js: Connection refused".to_owned(),
        })
    }

    #[test]
    fn refreshes_take_changes_keep_the_last_copy_and_log_state_changes_once() {
        let mut r = Refresh::new();
        // (result, taken, outcome, log lines that start with these)
        type Case<'a> = (Result<Fetched, Failed>, bool, &'a str, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                failed(Failure::Unreachable),
                false,
                "unreachable",
                vec![
                    "Ackee's static files: cannot refresh (unreachable): replica \"ackee-0\": /tracker.js: Connection refused; proxying them to Ackee until a copy is taken;",
                ],
            ),
            (failed(Failure::Unreachable), false, "unreachable", vec![]),
            (
                fetched("v1"),
                true,
                "changed",
                vec![
                    "Ackee's static files: can be read again, from replica \"ackee-0\"",
                    "Ackee's static files: served from the edge, from replica \"ackee-0\"",
                ],
            ),
            (fetched("v1"), false, "unchanged", vec![]),
            (
                failed(Failure::BadAnswer),
                false,
                "bad_answer",
                vec![
                    "Ackee's static files: cannot refresh (bad answer): replica \"ackee-0\": /tracker.js: Connection refused; keeping the copy in use;",
                ],
            ),
            (
                failed(Failure::TooLarge),
                false,
                "too_large",
                vec!["Ackee's static files: cannot refresh (too large)"],
            ),
            (failed(Failure::TooLarge), false, "too_large", vec![]),
            (
                fetched("v1"),
                false,
                "unchanged",
                vec!["Ackee's static files: can be read again"],
            ),
            (
                fetched("v2"),
                true,
                "changed",
                vec![
                    "Ackee's static files: changed in Ackee; the new copy is served, from replica \"ackee-0\"",
                ],
            ),
            (fetched("v2"), false, "unchanged", vec![]),
        ];
        for (i, (result, take, outcome, lines)) in cases.iter().enumerate() {
            let step = r.step(result);
            assert_eq!(step.take, *take, "step {i}");
            assert_eq!(step.outcome.as_str(), *outcome, "step {i}");
            assert_eq!(step.log.len(), lines.len(), "step {i}: {:?}", step.log);
            for ((_, got), want) in step.log.iter().zip(lines) {
                assert!(got.starts_with(want), "step {i}: {got}");
            }
        }
        assert!(r.has_copy());
    }
}
