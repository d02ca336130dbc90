//! One allow-list entry: normalised at load, or refused with a message that says what to write.
//!
//! Normalising means what a browser does when it serialises an origin: the scheme and host in
//! lowercase, the default port left out, an IDN host in punycode, an IP address in its canonical
//! form. Anything a browser never puts in an origin (a path, a query, a fragment, userinfo, a
//! trailing dot) is an error, because an entry that can never match is a silent outage.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::Scheme;

/// A normalised allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `*`: any origin, and therefore no credentials.
    Any,
    /// One exact origin in its normalised form, such as `https://stats.example.com`.
    Exact(String),
    /// A subdomain pattern such as `https://*.example.com`.
    Pattern(Pattern),
}

/// A subdomain pattern: `scheme://*.parent[:port]`.
///
/// It matches any origin with the same scheme and port whose host ends in `.parent`, at any depth
/// of subdomain, and never `parent` itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern {
    /// The scheme an origin must have.
    pub scheme: Scheme,
    /// The parent domain, normalised, without the leading `*.`.
    pub parent: String,
    /// The port, or `None` for the scheme's default port.
    pub port: Option<u16>,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://*.{}", self.scheme.as_str(), self.parent)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Any => f.write_str("*"),
            Entry::Exact(origin) => f.write_str(origin),
            Entry::Pattern(pattern) => pattern.fmt(f),
        }
    }
}

/// Why an entry was refused, and what to write instead.
///
/// Its `Display` reads `"<found>" <problem>; <fix>`, for example
/// `"https://stats.example.com/" has a path; write "https://stats.example.com"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryError {
    /// The entry as written, trimmed.
    pub found: String,
    /// What is wrong with it, as a phrase that follows the entry.
    pub problem: String,
    /// What to do instead.
    pub fix: String,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" {}; {}", self.found, self.problem, self.fix)
    }
}

impl std::error::Error for EntryError {}

const EXAMPLE: &str = "write an origin such as \"https://example.com\"";

fn refuse(found: &str, problem: impl Into<String>, fix: impl Into<String>) -> EntryError {
    EntryError {
        found: found.to_owned(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// A problem that still lets us compute the corrected entry, so the fix can quote it.
#[derive(Clone, Copy)]
enum Fixable {
    NoScheme,
    Userinfo,
    Path,
    Query,
    Fragment,
    TrailingDot,
}

impl Fixable {
    fn phrase(self) -> &'static str {
        match self {
            Fixable::NoScheme => "has no scheme",
            Fixable::Userinfo => "has userinfo",
            Fixable::Path => "has a path",
            Fixable::Query => "has a query",
            Fixable::Fragment => "has a fragment",
            Fixable::TrailingDot => "has a trailing dot",
        }
    }
}

/// Normalises one allow-list entry. Surrounding spaces are trimmed first.
///
/// ```
/// use ackee_gateway::origin::{parse_entry, Entry};
/// assert_eq!(
///     parse_entry("HTTPS://Stats.Example.com:443").unwrap(),
///     Entry::Exact("https://stats.example.com".into())
/// );
/// let err = parse_entry("https://stats.example.com/").unwrap_err();
/// assert_eq!(err.to_string(), r#""https://stats.example.com/" has a path; write "https://stats.example.com""#);
/// ```
pub fn parse_entry(raw: &str) -> Result<Entry, EntryError> {
    let found = raw.trim();
    if let Some(answer) = special(found) {
        return answer;
    }

    let mut first_problem: Option<Fixable> = None;
    let mut note = |p: Fixable| {
        if first_problem.is_none() {
            first_problem = Some(p);
        }
    };

    let (scheme, rest) = match split_scheme(found)? {
        Some(split) => split,
        None => {
            note(Fixable::NoScheme);
            (Scheme::Https, found)
        }
    };

    // Authority, then whatever follows it.
    let (authority, problems) = split_authority(rest);
    problems.into_iter().flatten().for_each(&mut note);

    let (host, port_text) = split_host_port(found, authority)?;
    let port = parse_port(found, port_text, scheme)?;

    // Wildcard.
    let (is_pattern, host) = match host.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, host),
    };
    if host.contains('*') {
        return Err(refuse(
            found,
            "has \"*\" inside its host",
            "only a whole first label may be \"*\", as in \"https://*.example.com\"",
        ));
    }
    let host = match host.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => {
            note(Fixable::TrailingDot);
            stripped
        }
        _ => host,
    };
    if host.is_empty() {
        return Err(refuse(found, "has no host", EXAMPLE));
    }

    let host = normalise_host(found, host)?;

    if is_pattern {
        check_pattern_parent(found, &host)?;
    }

    let normalised = spell(scheme, is_pattern, &host, port);

    if let Some(problem) = first_problem {
        return Err(refuse(
            found,
            problem.phrase(),
            format!("write \"{normalised}\""),
        ));
    }

    if is_pattern {
        Ok(Entry::Pattern(Pattern {
            scheme,
            parent: host,
            port,
        }))
    } else {
        Ok(Entry::Exact(normalised))
    }
}

/// The answer for an empty entry, `*` and `null`, which are no origins to parse.
fn special(found: &str) -> Option<Result<Entry, EntryError>> {
    if found.is_empty() {
        return Some(Err(refuse(found, "is empty", EXAMPLE)));
    }
    if found == "*" {
        return Some(Ok(Entry::Any));
    }
    if found.eq_ignore_ascii_case("null") {
        return Some(Err(refuse(
            found,
            "is what sandboxed frames, file: pages and redirects send, and it never identifies a site",
            "remove it",
        )));
    }
    None
}

/// The authority (without userinfo), and the fixable problems around it, in the order they
/// are reported: userinfo, then a path, query or fragment after it.
fn split_authority(rest: &str) -> (&str, [Option<Fixable>; 2]) {
    let tail_at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (mut authority, tail) = rest.split_at(tail_at);
    let mut userinfo = None;
    if let Some(at) = authority.rfind('@') {
        userinfo = Some(Fixable::Userinfo);
        authority = &authority[at + 1..];
    }
    let after = match tail.as_bytes().first() {
        Some(b'/') => Some(Fixable::Path),
        Some(b'?') => Some(Fixable::Query),
        Some(b'#') => Some(Fixable::Fragment),
        _ => None,
    };
    (authority, [userinfo, after])
}

/// The normalised spelling of an origin or pattern.
fn spell(scheme: Scheme, is_pattern: bool, host: &str, port: Option<u16>) -> String {
    let mut s = format!("{}://", scheme.as_str());
    if is_pattern {
        s.push_str("*.");
    }
    s.push_str(host);
    if let Some(p) = port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    s
}

/// The scheme and what follows `://`, or `None` when there is no `://`.
fn split_scheme(found: &str) -> Result<Option<(Scheme, &str)>, EntryError> {
    let Some(i) = found.find("://") else {
        return Ok(None);
    };
    let name = &found[..i];
    let Some(scheme) = Scheme::named(name) else {
        return Err(refuse(
            found,
            format!("has the scheme \"{name}\""),
            "write an origin that starts with https:// or http://",
        ));
    };
    Ok(Some((scheme, &found[i + 3..])))
}

/// The host (an IPv6 address keeps its brackets) and the port as written, if any.
fn split_host_port<'a>(
    found: &str,
    authority: &'a str,
) -> Result<(&'a str, Option<&'a str>), EntryError> {
    if let Some(inner) = authority.strip_prefix('[') {
        match inner.find(']') {
            Some(close) => {
                let after = &inner[close + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => {
                        return Err(refuse(
                            found,
                            format!("has \"{after}\" after its IPv6 address"),
                            "write the port as \"[address]:port\"",
                        ));
                    }
                };
                Ok((&authority[..close + 2], port))
            }
            None => Err(refuse(
                found,
                "has an IPv6 address without its closing \"]\"",
                EXAMPLE,
            )),
        }
    } else {
        match authority.rfind(':') {
            Some(colon) => Ok((&authority[..colon], Some(&authority[colon + 1..]))),
            None => Ok((authority, None)),
        }
    }
}

/// The port, `None` when absent or the scheme's default.
fn parse_port(found: &str, text: Option<&str>, scheme: Scheme) -> Result<Option<u16>, EntryError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => {
            let parsed = if text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<u32>().ok().filter(|p| (1..=65535).contains(p))
            } else {
                None
            };
            match parsed {
                Some(p) if p == u32::from(scheme.default_port()) => Ok(None),
                Some(p) => Ok(Some(p as u16)),
                None => Err(refuse(
                    found,
                    format!("has the port \"{text}\""),
                    "write a port from 1 to 65535",
                )),
            }
        }
    }
}

/// A pattern's parent must be a domain with a dot, not an IP address.
fn check_pattern_parent(found: &str, host: &str) -> Result<(), EntryError> {
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return Err(refuse(
            found,
            "puts \"*.\" in front of an IP address",
            "list the address itself",
        ));
    }
    if !host.contains('.') {
        return Err(refuse(
            found,
            format!("would allow every site under \".{host}\""),
            "list a domain you own, as in \"https://*.example.com\"",
        ));
    }
    Ok(())
}

/// Lowercases the host, converts IDN to punycode, canonicalises IP addresses and checks labels.
fn normalise_host(found: &str, host: &str) -> Result<String, EntryError> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(addr) => Ok(format!("[{addr}]")),
            Err(_) => Err(refuse(
                found,
                format!("has \"{inner}\", which is not an IPv6 address"),
                "write an address such as \"http://[::1]:8080\"",
            )),
        };
    }
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<Ipv4Addr>() {
            Ok(addr) => Ok(addr.to_string()),
            Err(_) => Err(refuse(
                found,
                format!("has \"{host}\", which is not an IPv4 address"),
                "write four numbers from 0 to 255, as in \"http://192.0.2.10\"",
            )),
        };
    }
    let ascii = if host.is_ascii() {
        host.to_ascii_lowercase()
    } else {
        match idna::domain_to_ascii(host) {
            Ok(ascii) => ascii,
            Err(_) => {
                return Err(refuse(
                    found,
                    format!("has \"{host}\", which is not a valid international domain name"),
                    "write its punycode form (xn--…)",
                ));
            }
        }
    };
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(refuse(
                found,
                "has an empty label (\"..\") in its host",
                "remove the extra dot",
            ));
        }
        if label.len() > 63 {
            return Err(refuse(
                found,
                "has a host label longer than 63 characters",
                "check the domain name",
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(refuse(
                found,
                format!("has the character {bad:?} in its host"),
                "write the host with letters, digits, '-' and '.' (an IDN host may be written in Unicode or punycode)",
            ));
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests;
