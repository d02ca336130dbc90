//! Origins: how allow-list entries are normalised at load, and how a request's `Origin` is matched.
//!
//! This module never imports pingora. It is pure string work, unit-tested with tables and
//! benchmarked in `benches/origin_match.rs`.
//!
//! - [`entry`] turns one configured entry (`"https://Stats.Example.com:443"`) into its
//!   normalised form (`"https://stats.example.com"`) or into an [`EntryError`] that says what
//!   to write instead.
//! - [`set`] compiles the entries into an [`OriginSet`]: one hash set of exact origins and one
//!   hash map of subdomain patterns keyed by their parent domain, so that a lookup costs the
//!   same with 1 or 10,000 entries.
//! - [`live`] holds the set in use, swapped atomically when origins from Ackee change.

pub mod entry;
pub mod live;
pub mod set;

pub use entry::{Entry, EntryError, Pattern, parse_entry};
pub use live::LiveOrigins;
pub use set::{OriginMatch, OriginSet};

/// The two schemes an allow-list entry may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`, default port 80.
    Http,
    /// `https://`, default port 443.
    Https,
}

impl Scheme {
    /// The scheme's name, without `://`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The scheme of this name, in any case.
    pub(crate) fn named(name: &str) -> Option<Scheme> {
        let schemes = [Scheme::Https, Scheme::Http];
        schemes
            .into_iter()
            .find(|s| name.eq_ignore_ascii_case(s.as_str()))
    }

    /// The port a browser leaves out of the origin for this scheme.
    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}
