//! The refresh state machine: what each poll's result does to the allowed origins, the log
//! and the counts.
//!
//! - A good answer derives the origins from the titles. If they differ from the list in use,
//!   the static list and the new origins are compiled into a new [`OriginSet`] to swap in.
//! - A failed poll keeps the last good list (or, before the first success, the static list
//!   alone) and is counted by reason.
//! - The log gets one line per state change (working, failing for a reason, working again),
//!   plus one line when the origins from Ackee or the skipped titles change; a poll that
//!   changes nothing logs nothing, however often it runs.

use log::Level;

use super::answer::{Domain, Failed, Failure};
use super::titles::{Derived, TitleRules, derive};
use crate::origin::{Entry, OriginSet};

/// Where the refresh stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No poll has finished yet.
    Starting,
    /// The last poll succeeded.
    Working,
    /// The last poll failed for this reason.
    Failing(Failure),
}

/// What one poll's result calls for.
#[derive(Debug, Default)]
pub struct Step {
    /// The new compiled allow list to swap in, when it changed.
    pub set: Option<OriginSet>,
    /// Log lines, with their level.
    pub log: Vec<(Level, String)>,
    /// The failure to count, if the poll failed.
    pub failure: Option<Failure>,
    /// Whether the poll succeeded (the time of the last success moves).
    pub success: bool,
}

/// The refresh's memory: the static entries, the rules, the last good list.
#[derive(Debug)]
pub struct Refresh {
    static_entries: Vec<Entry>,
    rules: TitleRules,
    last_good: Option<Derived>,
    state: State,
}

/// Compiles the static entries together with the origins from Ackee.
pub(crate) fn merge(static_entries: &[Entry], from_ackee: &[String]) -> OriginSet {
    OriginSet::new(
        static_entries
            .iter()
            .cloned()
            .chain(from_ackee.iter().map(|o| Entry::Exact(o.clone()))),
    )
}

fn quoted(list: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s: Vec<String> = list
        .iter()
        .take(SHOWN)
        .map(|t| format!("\"{t}\""))
        .collect();
    if list.len() > SHOWN {
        s.push(format!("and {} more", list.len() - SHOWN));
    }
    s.join(", ")
}

impl Refresh {
    /// A refresh that starts from the static entries alone.
    pub(crate) fn new(static_entries: Vec<Entry>, rules: TitleRules) -> Refresh {
        Refresh {
            static_entries,
            rules,
            last_good: None,
            state: State::Starting,
        }
    }

    /// Where the refresh stands.
    #[cfg(test)]
    fn state(&self) -> State {
        self.state
    }

    /// The origins from Ackee in use (empty before the first success).
    pub(crate) fn origins(&self) -> &[String] {
        self.last_good.as_ref().map_or(&[], |d| &d.origins)
    }

    /// The titles of the last good list that are not host names.
    pub(crate) fn skipped(&self) -> &[String] {
        self.last_good.as_ref().map_or(&[], |d| &d.skipped)
    }

    /// Takes one poll's result.
    pub(crate) fn on_result(&mut self, result: Result<Vec<Domain>, Failed>) -> Step {
        let mut step = Step::default();
        match result {
            Ok(domains) => {
                step.success = true;
                let derived = derive(domains.iter().map(|d| d.title.as_str()), &self.rules);
                let previous = self.last_good.take();
                let old_origins = previous.as_ref().map(|d| d.origins.as_slice());
                let old_skipped = previous.as_ref().map_or(&[][..], |d| d.skipped.as_slice());
                if old_origins != Some(derived.origins.as_slice()) {
                    step.set = Some(merge(&self.static_entries, &derived.origins));
                }
                match self.state {
                    State::Working => {}
                    State::Starting => step.log.push((
                        Level::Info,
                        format!(
                            "origins from Ackee: {} domain(s) give {} origin(s)",
                            domains.len(),
                            derived.origins.len()
                        ),
                    )),
                    State::Failing(_) => step.log.push((
                        Level::Info,
                        format!(
                            "origins from Ackee: the domain list can be read again; {} domain(s) give {} origin(s)",
                            domains.len(),
                            derived.origins.len()
                        ),
                    )),
                }
                if let Some(old) = old_origins {
                    log_changes(old, &derived.origins, &mut step.log);
                }
                if derived.skipped != old_skipped && !derived.skipped.is_empty() {
                    step.log.push((
                        Level::Info,
                        format!(
                            "origins from Ackee: {} title(s) are not host names and give no origin: {}",
                            derived.skipped.len(),
                            quoted(&derived.skipped)
                        ),
                    ));
                }
                self.last_good = Some(derived);
                self.state = State::Working;
            }
            Err(failed) => {
                step.failure = Some(failed.reason);
                if self.state != State::Failing(failed.reason) {
                    let kept = match &self.last_good {
                        Some(d) => format!(
                            "keeping the last good list of {} origin(s) from Ackee",
                            d.origins.len()
                        ),
                        None => "until a refresh succeeds only the static list applies".to_owned(),
                    };
                    step.log.push((
                        Level::Warn,
                        format!(
                            "origins from Ackee: cannot refresh ({}): {}; {kept}; logged again only when this changes",
                            failed.reason.as_str().replace('_', " "),
                            failed.detail
                        ),
                    ));
                }
                self.state = State::Failing(failed.reason);
            }
        }
        step
    }
}

/// Logs the origins a successful poll added and removed; both lists are sorted.
fn log_changes(old: &[String], new: &[String], log: &mut Vec<(Level, String)>) {
    let added: Vec<String> = new
        .iter()
        .filter(|o| old.binary_search(o).is_err())
        .cloned()
        .collect();
    let removed: Vec<String> = old
        .iter()
        .filter(|o| new.binary_search(o).is_err())
        .cloned()
        .collect();
    if !added.is_empty() {
        log.push((
            Level::Info,
            format!("origins from Ackee: now allowed: {}", quoted(&added)),
        ));
    }
    if !removed.is_empty() {
        log.push((
            Level::Info,
            format!(
                "origins from Ackee: no longer allowed: {}",
                quoted(&removed)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    fn domains(titles: &[&str]) -> Result<Vec<Domain>, Failed> {
        Ok(titles
            .iter()
            .enumerate()
            .map(|(i, t)| Domain {
                id: format!("id{i}"),
                title: t.to_string(),
            })
            .collect())
    }

    fn failed(reason: Failure) -> Result<Vec<Domain>, Failed> {
        Err(Failed::new(reason, "detail"))
    }

    /// What a step shows, in short: swapped-in origins (sorted entries), log levels, failure.
    fn summary(step: &Step) -> (Option<Vec<String>>, Vec<Level>, Option<Failure>, bool) {
        (
            step.set
                .as_ref()
                .map(|s| s.entries().iter().map(|e| e.to_string()).collect()),
            step.log.iter().map(|(l, _)| *l).collect(),
            step.failure,
            step.success,
        )
    }

    /// Feeds one poll result to `r` and checks the step: the origins swapped in (if any), the
    /// log levels, and the failure; success and the state follow from the failure.
    fn poll(
        r: &mut Refresh,
        result: Result<Vec<Domain>, Failed>,
        set: Option<&[&str]>,
        log: &[Level],
        failure: Option<Failure>,
    ) {
        let step = r.on_result(result);
        let want_set = set.map(|s| s.iter().map(|o| o.to_string()).collect());
        let want = (want_set, log.to_vec(), failure, failure.is_none());
        assert_eq!(summary(&step), want, "{:?}", step.log);
        assert_eq!(r.state(), failure.map_or(State::Working, State::Failing));
    }

    #[test]
    fn each_poll_swaps_only_on_change_and_logs_only_state_changes() {
        use Failure::*;
        use Level::*;
        let statics = vec![parse_entry("https://static.example").unwrap()];
        let r = &mut Refresh::new(statics, TitleRules::default());
        let (a, b, s) = (
            "https://a.example",
            "https://b.example",
            "https://static.example",
        );
        // Ackee down at start: the static list stays, one warning; still down: not logged.
        poll(r, failed(Unreachable), None, &[Warn], Some(Unreachable));
        poll(r, failed(Unreachable), None, &[], Some(Unreachable));
        // Up: the first list, merged with the static one; the skipped title is logged.
        poll(
            r,
            domains(&["a.example", "My blog"]),
            Some(&[a, s]),
            &[Info, Info],
            None,
        );
        // The same list: nothing to swap, nothing to log.
        poll(r, domains(&["a.example", "My blog"]), None, &[], None);
        // A domain added: swapped, the addition logged.
        let abs = &["a.example", "b.example", "My blog"];
        poll(r, domains(abs), Some(&[a, b, s]), &[Info], None);
        // The token is refused: the last good list stays, one warning, then silence.
        poll(r, failed(TokenRefused), None, &[Warn], Some(TokenRefused));
        poll(r, failed(TokenRefused), None, &[], Some(TokenRefused));
        // Another reason is another state: logged once more.
        poll(r, failed(Unreachable), None, &[Warn], Some(Unreachable));
        // Back, with a domain removed: working again, and the removal logged.
        poll(
            r,
            domains(&["b.example", "My blog"]),
            Some(&[b, s]),
            &[Info, Info],
            None,
        );
        // Back again with the same list after a failure: nothing to swap.
        poll(r, failed(BadAnswer), None, &[Warn], Some(BadAnswer));
        poll(r, domains(&["b.example", "My blog"]), None, &[Info], None);
        // Every domain deleted in Ackee: only the static list is left.
        poll(r, domains(&[]), Some(&[s]), &[Info], None);
    }

    #[test]
    fn the_log_lines_say_what_changed_and_what_is_kept() {
        let mut r = Refresh::new(Vec::new(), TitleRules::default());
        let first = r.on_result(failed(Failure::Unreachable));
        assert_eq!(
            first.log[0].1,
            "origins from Ackee: cannot refresh (unreachable): detail; until a refresh succeeds only the static list applies; logged again only when this changes"
        );
        r.on_result(domains(&["a.example"]));
        let added = r.on_result(domains(&["a.example", "b.example"]));
        assert_eq!(
            added.log[0].1,
            "origins from Ackee: now allowed: \"https://b.example\""
        );
        let refused = r.on_result(failed(Failure::TokenRefused));
        assert_eq!(
            refused.log[0].1,
            "origins from Ackee: cannot refresh (token refused): detail; keeping the last good list of 2 origin(s) from Ackee; logged again only when this changes"
        );
        assert_eq!(r.origins(), ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn merging_keeps_static_entries_and_collapses_duplicates() {
        let statics = vec![
            parse_entry("https://a.example").unwrap(),
            parse_entry("https://*.a.example").unwrap(),
        ];
        let set = merge(
            &statics,
            &[
                "https://a.example".to_owned(),
                "https://b.example".to_owned(),
            ],
        );
        let entries: Vec<String> = set.entries().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            entries,
            [
                "https://a.example",
                "https://b.example",
                "https://*.a.example"
            ]
        );
    }
}
