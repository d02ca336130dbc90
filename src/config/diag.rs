//! Config problems: where each one is (file or environment variable, key path), what was found,
//! what to write instead, and how the whole list is printed.

use std::fmt;

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The gateway starts anyway; the message is printed.
    Warning,
    /// The gateway refuses to start and exits with code 2.
    Error,
}

/// Where a value, and so a problem, came from: the config file or an environment variable.
/// Not to be confused with CORS origins ([`crate::origin`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The config file, as named on the command line.
    File(String),
    /// An environment variable, such as `ACKEE_ALLOW_ORIGIN`.
    Env(&'static str),
}

/// One problem, ready to print as `error: FILE: KEY: MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File or environment variable.
    pub source: Source,
    /// The key path, such as `cors.allowed_origins[2]`. Empty for the document itself.
    pub key: String,
    /// What was found and what to write instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let place = match &self.source {
            Source::File(path) => path.clone(),
            Source::Env(var) => format!("environment variable {var}"),
        };
        if self.key.is_empty() {
            write!(f, "{level}: {place}: {}", self.message)
        } else {
            write!(f, "{level}: {place}: {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one run, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Built only by `Problems`, which decides the order.
    pub(super) items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// How many errors were recorded.
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|diagnostic| diagnostic.severity == Severity::Error)
            .count()
    }

    /// All problems, errors and warnings, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.items {
            writeln!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// The closest candidate to a misspelt key, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    candidates
        .iter()
        .map(|candidate| (edit_distance(&found, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The Levenshtein distance between two strings, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
