//! Which configured entry (or which `Access-Control-Allow-Origin` value) an origin came nearest
//! to, and in what way it differs: the scheme, the port, `www.`, a pattern that leaves out the
//! apex, a trailing slash or path, letter case, or a few characters.

use crate::config::diag::edit_distance;
use crate::origin::{Entry, Pattern, Scheme};

/// An origin taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The host, as written.
    pub host: String,
    /// The port, `None` for the scheme's default.
    pub port: Option<u16>,
    /// Whatever follows the authority (a path, a trailing slash), if anything.
    pub tail: String,
}

/// Takes apart `scheme://host[:port][tail]`; `None` for anything else.
pub(crate) fn parts(text: &str) -> Option<Parts> {
    let (scheme, rest) = if let Some(r) = strip_prefix_ci(text, "https://") {
        (Scheme::Https, r)
    } else if let Some(r) = strip_prefix_ci(text, "http://") {
        (Scheme::Http, r)
    } else {
        return None;
    };
    let at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(at);
    let (host, port_text) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => (&authority[..=i], authority[i + 1..].strip_prefix(':')),
            None => (authority, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        Some(p) => {
            let port: u16 = p.parse().ok()?;
            (port != scheme.default_port()).then_some(port)
        }
        None => None,
    };
    Some(Parts {
        scheme,
        host: host.to_owned(),
        port,
        tail: tail.to_owned(),
    })
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    (text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &text[prefix.len()..])
}

/// How a candidate differs from the origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Same host and port, the other scheme (http against https).
    Scheme,
    /// Same scheme and host, another port.
    Port,
    /// Same host, another scheme and another port.
    SchemeAndPort,
    /// One has `www.` in front of the other's host.
    Www,
    /// A subdomain pattern whose parent is the origin's own host: it never covers the apex.
    ApexNotCovered,
    /// The same origin with a path or a trailing slash after it.
    Tail,
    /// The same origin in other letter case.
    Case,
    /// This many characters differ.
    Characters(usize),
}

/// The nearest candidate and how it differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nearest {
    /// The candidate, as configured or as sent.
    pub candidate: String,
    /// How it differs from the origin.
    pub difference: Difference,
}

impl Nearest {
    /// The difference as a phrase about the candidate and the origin.
    pub(crate) fn describe(&self, origin: &str) -> String {
        let c = &self.candidate;
        match &self.difference {
            Difference::Scheme => format!(
                "\"{c}\" has the other scheme: http and https are different origins, and the page's is \"{origin}\""
            ),
            Difference::Port => format!(
                "\"{c}\" has another port: the port is part of the origin, and the page's is \"{origin}\""
            ),
            Difference::SchemeAndPort => {
                format!("\"{c}\" has another scheme and port than the page's origin \"{origin}\"")
            }
            Difference::Www => format!(
                "\"{c}\" and \"{origin}\" differ by \"www.\": browsers treat www and the apex as different origins"
            ),
            Difference::ApexNotCovered => {
                format!("\"{c}\" covers subdomains only, never \"{origin}\" itself")
            }
            Difference::Tail => format!(
                "\"{c}\" has a path or a trailing slash, and an origin never has one: browsers compare \"{origin}\" byte for byte"
            ),
            Difference::Case => format!(
                "\"{c}\" differs from \"{origin}\" in letter case: browsers send the origin in lowercase and compare byte for byte"
            ),
            Difference::Characters(n) => {
                let s = if *n == 1 { "" } else { "s" };
                format!("\"{c}\" differs from \"{origin}\" in {n} character{s}")
            }
        }
    }
}

fn www_pair(a: &str, b: &str) -> bool {
    a.strip_prefix("www.") == Some(b) || b.strip_prefix("www.") == Some(a)
}

/// How one candidate (an entry as text) differs from a well-formed origin, if it is close.
pub(crate) fn compare(origin: &str, candidate: &str) -> Option<Difference> {
    if candidate == origin {
        return None;
    }
    let o = parts(origin)?;
    if candidate.eq_ignore_ascii_case(origin) {
        return Some(Difference::Case);
    }
    if let Some(c) = parts(candidate) {
        if let Some(parent) = c.host.strip_prefix("*.") {
            if parent.eq_ignore_ascii_case(&o.host) {
                return Some(Difference::ApexNotCovered);
            }
        }
        let same_host = c.host.eq_ignore_ascii_case(&o.host);
        if same_host && c.scheme == o.scheme && c.port == o.port && !c.tail.is_empty() {
            return Some(Difference::Tail);
        }
        if same_host && c.tail.is_empty() {
            match (c.scheme == o.scheme, c.port == o.port) {
                (false, true) => return Some(Difference::Scheme),
                (true, false) => return Some(Difference::Port),
                (false, false) => return Some(Difference::SchemeAndPort),
                (true, true) => return Some(Difference::Case),
            }
        }
        if www_pair(&c.host.to_ascii_lowercase(), &o.host) {
            return Some(Difference::Www);
        }
    }
    let d = edit_distance(origin, candidate);
    (d <= 3.max(origin.len() / 5)).then_some(Difference::Characters(d))
}

/// Whether a pattern covers a host at any depth (the same rule as the allow list's).
fn covers(p: &Pattern, o: &Parts) -> bool {
    o.host.ends_with(&format!(".{}", p.parent))
}

/// The configured entry the origin came nearest to, if any is close.
pub(crate) fn nearest_entry(origin: &str, entries: &[Entry]) -> Option<Nearest> {
    let o = parts(origin)?;
    let mut best: Option<(usize, Nearest)> = None;
    for entry in entries {
        let text = entry.to_string();
        let difference = match entry {
            Entry::Any => continue,
            // A pattern that covers the host but with another scheme or port.
            Entry::Pattern(p) if covers(p, &o) => match (p.scheme == o.scheme, p.port == o.port) {
                (false, true) => Difference::Scheme,
                (true, false) => Difference::Port,
                (false, false) => Difference::SchemeAndPort,
                (true, true) => continue,
            },
            _ => match compare(origin, &text) {
                Some(d) => d,
                None => continue,
            },
        };
        let rank = match difference {
            Difference::ApexNotCovered
            | Difference::Scheme
            | Difference::Port
            | Difference::Tail
            | Difference::Case => 0,
            Difference::Www | Difference::SchemeAndPort => 1,
            Difference::Characters(n) => 1 + n,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Nearest {
                    candidate: text,
                    difference,
                },
            ));
        }
    }
    best.map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::parse_entry;

    #[test]
    fn candidates_are_compared_by_what_makes_an_origin() {
        let o = "https://blog.example.com";
        let cases: &[(&str, Option<Difference>)] = &[
            ("https://blog.example.com", None),
            ("http://blog.example.com", Some(Difference::Scheme)),
            ("https://blog.example.com:8443", Some(Difference::Port)),
            (
                "http://blog.example.com:8080",
                Some(Difference::SchemeAndPort),
            ),
            ("https://www.blog.example.com", Some(Difference::Www)),
            (
                "https://*.blog.example.com",
                Some(Difference::ApexNotCovered),
            ),
            ("https://blog.example.com/", Some(Difference::Tail)),
            ("https://blog.example.com/api", Some(Difference::Tail)),
            ("https://Blog.Example.com", Some(Difference::Case)),
            ("https://blog.exmaple.com", Some(Difference::Characters(2))),
            ("https://shop.other.net", None),
        ];
        for (candidate, want) in cases {
            assert_eq!(compare(o, candidate), *want, "{candidate}");
        }
        assert_eq!(
            compare("https://www.example.com", "https://example.com"),
            Some(Difference::Www)
        );
    }

    #[test]
    fn the_nearest_entry_is_the_most_telling_difference() {
        let entries = |list: &[&str]| -> Vec<Entry> {
            list.iter().map(|e| parse_entry(e).unwrap()).collect()
        };
        type Case<'a> = (&'a str, &'a [&'a str], Option<(&'a str, Difference)>);
        let cases: &[Case] = &[
            (
                "https://example.com",
                &["https://shop.test", "https://*.example.com"],
                Some(("https://*.example.com", Difference::ApexNotCovered)),
            ),
            (
                "https://www.example.com",
                &["https://example.com", "https://example.org"],
                Some(("https://example.com", Difference::Www)),
            ),
            (
                "http://blog.example.com",
                &["https://blog.example.com"],
                Some(("https://blog.example.com", Difference::Scheme)),
            ),
            (
                "https://a.example.com:8443",
                &["https://*.example.com"],
                Some(("https://*.example.com", Difference::Port)),
            ),
            ("https://unrelated.net", &["https://example.com"], None),
            ("https://example.com", &["*"], None),
        ];
        for (origin, list, want) in cases {
            let got = nearest_entry(origin, &entries(list));
            let got = got.map(|n| (n.candidate, n.difference));
            let want = want.clone().map(|(c, d)| (c.to_owned(), d));
            assert_eq!(got, want, "{origin} against {list:?}");
        }
    }
}
