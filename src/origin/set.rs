//! The compiled allow list: exact origins in a hash map, subdomain patterns keyed by parent domain.
//!
//! A lookup is one hash probe for the exact case plus one probe per label of the request's host
//! for patterns, so its cost depends on the request, not on how many entries are configured.
//! Patterns match whole DNS labels: `https://*.example.com` matches `https://a.b.example.com`
//! but never `https://example.com`, `https://evilexample.com` or `https://example.com.evil.net`.

use std::collections::HashMap;

use http::HeaderValue;

use super::{Entry, Scheme};

/// How an allowed origin matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginMatch<'a> {
    /// `*` is configured: any origin is allowed, without credentials.
    Any,
    /// Listed exactly. The value is the `Access-Control-Allow-Origin` header, built at start-up.
    Listed(&'a HeaderValue),
    /// Matched a subdomain pattern. The request's own `Origin` value is echoed.
    Pattern,
}

/// The allow list, compiled once at start-up.
#[derive(Clone, Debug, Default)]
pub struct OriginSet {
    any: bool,
    exact: HashMap<Box<str>, HeaderValue>,
    patterns: HashMap<Box<str>, Vec<(Scheme, Option<u16>)>>,
}

impl OriginSet {
    /// Compiles normalised entries. Duplicates collapse.
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut set = OriginSet::default();
        for entry in entries {
            match entry {
                Entry::Any => set.any = true,
                Entry::Exact(origin) => {
                    // A normalised origin is visible ASCII, so this cannot fail; skip it if it did.
                    if let Ok(value) = HeaderValue::from_str(&origin) {
                        set.exact.insert(origin.into_boxed_str(), value);
                    }
                }
                Entry::Pattern(p) => {
                    let tails = set.patterns.entry(p.parent.into_boxed_str()).or_default();
                    if !tails.contains(&(p.scheme, p.port)) {
                        tails.push((p.scheme, p.port));
                    }
                }
            }
        }
        set
    }

    /// True when `*` is configured.
    pub(crate) fn allows_any(&self) -> bool {
        self.any
    }

    /// How many exact origins and patterns are listed.
    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.values().map(Vec::len).sum::<usize>()
    }

    /// True when nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && self.len() == 0
    }

    /// The entries, normalised: `*` first, then exact origins and patterns, each sorted.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut exact: Vec<&str> = self.exact.keys().map(|k| &**k).collect();
        exact.sort_unstable();
        let mut patterns: Vec<super::Pattern> = self
            .patterns
            .iter()
            .flat_map(|(parent, tails)| {
                tails.iter().map(|&(scheme, port)| super::Pattern {
                    scheme,
                    parent: parent.to_string(),
                    port,
                })
            })
            .collect();
        patterns.sort_by_key(|p| p.to_string());
        self.any
            .then_some(Entry::Any)
            .into_iter()
            .chain(exact.into_iter().map(|e| Entry::Exact(e.to_owned())))
            .chain(patterns.into_iter().map(Entry::Pattern))
            .collect()
    }

    /// Looks up a request's `Origin` value, exactly as the browser sent it.
    ///
    /// `null` and the empty string never match, not even with `*`.
    pub fn find(&self, origin: &str) -> Option<OriginMatch<'_>> {
        if origin.is_empty() || origin == "null" {
            return None;
        }
        if self.any {
            return Some(OriginMatch::Any);
        }
        if let Some(value) = self.exact.get(origin) {
            return Some(OriginMatch::Listed(value));
        }
        if self.patterns.is_empty() {
            return None;
        }
        let (scheme, host, port) = split_origin(origin)?;
        // Walk the parents of the host label by label: a.b.example.com -> b.example.com -> ...
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if let Some(tails) = self.patterns.get(rest) {
                if tails.iter().any(|&(s, p)| s == scheme && p == port) {
                    return Some(OriginMatch::Pattern);
                }
            }
        }
        None
    }
}

/// Splits a request origin that is in canonical form into scheme, host and non-default port.
///
/// Anything a browser would not send (uppercase, an explicit default port, an empty label, a
/// path) gives `None`, so it cannot match a pattern.
fn split_origin(origin: &str) -> Option<(Scheme, &str, Option<u16>)> {
    let (scheme, rest) = if let Some(rest) = origin.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = origin.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return None;
    };
    let (host, port) = match rest.find(':') {
        Some(colon) => {
            let text = &rest[colon + 1..];
            if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u16 = text.parse().ok()?;
            if port == 0 || port == scheme.default_port() || text.starts_with('0') {
                return None;
            }
            (&rest[..colon], Some(port))
        }
        None => (rest, None),
    };
    let valid_host = !host.is_empty()
        && !host.starts_with('.')
        && !host.ends_with('.')
        && !host.contains("..")
        && host.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    valid_host.then_some((scheme, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    fn set(entries: &[&str]) -> OriginSet {
        OriginSet::new(entries.iter().map(|e| parse_entry(e).unwrap()))
    }

    fn verdict(set: &OriginSet, origin: &str) -> &'static str {
        match set.find(origin) {
            None => "refused",
            Some(OriginMatch::Any) => "any",
            Some(OriginMatch::Listed(v)) => {
                assert_eq!(
                    v.to_str().unwrap(),
                    origin,
                    "a listed match echoes the origin"
                );
                "listed"
            }
            Some(OriginMatch::Pattern) => "pattern",
        }
    }

    #[test]
    fn exact_entries_match_only_the_same_origin_byte_for_byte() {
        let s = set(&[
            "https://example.com",
            "http://localhost:8080",
            "https://bücher.example",
        ]);
        let cases = [
            ("https://example.com", "listed"),
            ("http://localhost:8080", "listed"),
            ("https://xn--bcher-kva.example", "listed"),
            // Ackee's substring test would accept these; exact matching does not.
            ("https://example.co", "refused"),
            ("https://example.com.evil.net", "refused"),
            ("https://evilexample.com", "refused"),
            ("https://sub.example.com", "refused"),
            ("http://example.com", "refused"),
            ("https://example.com:8443", "refused"),
            ("https://example.com:443", "refused"),
            ("https://EXAMPLE.com", "refused"),
            ("https://example.com/", "refused"),
            ("http://localhost", "refused"),
            ("http://localhost:80", "refused"),
            ("null", "refused"),
            ("", "refused"),
            (" https://example.com", "refused"),
        ];
        for (origin, want) in cases {
            assert_eq!(verdict(&s, origin), want, "origin {origin:?}");
        }
    }

    #[test]
    fn subdomain_patterns_match_whole_labels_at_any_depth_and_never_the_parent() {
        let s = set(&["https://*.example.com", "http://*.dev.example.org:8080"]);
        let cases = [
            ("https://a.example.com", "pattern"),
            ("https://a.b.c.example.com", "pattern"),
            ("https://xn--bcher-kva.example.com", "pattern"),
            ("https://example.com", "refused"),
            ("https://evilexample.com", "refused"),
            ("https://a.evilexample.com", "refused"),
            ("https://example.com.evil.net", "refused"),
            ("https://a.example.com.evil.net", "refused"),
            ("https://.example.com", "refused"),
            ("https://a..example.com", "refused"),
            ("https://a.example.com.", "refused"),
            ("https://A.example.com", "refused"),
            ("http://a.example.com", "refused"),
            ("https://a.example.com:8443", "refused"),
            ("https://a.example.com:443", "refused"),
            ("https://a.example.com/", "refused"),
            ("https://a.example.com?", "refused"),
            ("https://a.exa mple.com", "refused"),
            ("http://x.dev.example.org:8080", "pattern"),
            ("http://x.dev.example.org", "refused"),
            ("http://x.dev.example.org:08080", "refused"),
            ("http://dev.example.org:8080", "refused"),
            ("null", "refused"),
            ("", "refused"),
        ];
        for (origin, want) in cases {
            assert_eq!(verdict(&s, origin), want, "origin {origin:?}");
        }
    }

    #[test]
    fn a_parent_listed_exactly_and_as_a_pattern_matches_both_ways() {
        let s = set(&["https://example.com", "https://*.example.com"]);
        assert_eq!(verdict(&s, "https://example.com"), "listed");
        assert_eq!(verdict(&s, "https://www.example.com"), "pattern");
    }

    #[test]
    fn the_wildcard_allows_any_origin_but_never_null_or_empty() {
        let s = set(&["*"]);
        assert!(s.allows_any());
        assert_eq!(verdict(&s, "https://anything.test"), "any");
        assert_eq!(verdict(&s, "null"), "refused");
        assert_eq!(verdict(&s, ""), "refused");
    }

    #[test]
    fn an_empty_set_allows_nothing() {
        let s = OriginSet::new([]);
        assert!(s.is_empty());
        assert_eq!(verdict(&s, "https://example.com"), "refused");
    }

    #[test]
    fn duplicates_collapse() {
        let s = set(&[
            "https://a.com",
            "HTTPS://A.COM:443",
            "https://*.b.com",
            "https://*.B.com",
        ]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn lookups_stay_correct_with_ten_thousand_entries() {
        let entries: Vec<String> = (0..10_000)
            .map(|i| format!("https://site{i}.example"))
            .collect();
        let s = OriginSet::new(entries.iter().map(|e| parse_entry(e).unwrap()));
        assert_eq!(verdict(&s, "https://site9999.example"), "listed");
        assert_eq!(verdict(&s, "https://site10000.example"), "refused");
    }
}
