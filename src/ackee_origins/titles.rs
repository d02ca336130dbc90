//! Turning Ackee's domain titles into origins.
//!
//! Ackee calls a site a "domain" and lets its title be any text: `example.com`, but also
//! `My blog` or an app's name. A title that is a host name becomes one origin per configured
//! scheme (`https://example.com`), and with `www` also its `www.` twin. Every other title is
//! skipped and counted. Ackee's own `ACKEE_AUTO_ORIGIN` makes the same cut (its
//! `is-valid-domain` check), but then echoes the bare title, which no browser accepts.

use crate::origin::Scheme;

/// The longest host name DNS allows, in its ASCII form.
const MAX_HOST: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// Normalises a title into the ASCII host name a browser would put in an origin, or `None` if
/// the title is not a host name.
///
/// A host name here has at least two labels (a site is never a bare `localhost`), each of
/// letters, digits and inner hyphens, and a last label that is not a number (so an IPv4
/// address is not a host name). Case is folded, one trailing dot is dropped, surrounding
/// spaces are trimmed, and an internationalised name becomes punycode, as browsers send it.
pub(crate) fn host_name(title: &str) -> Option<String> {
    let t = title.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    if t.is_empty() || t.len() > 4 * MAX_HOST {
        return None;
    }
    // Reject what idna would otherwise map or tolerate: spaces, schemes, paths, ports.
    if t.chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/:?#@[]\\%*_".contains(c))
    {
        return None;
    }
    let ascii = if t.is_ascii() {
        t.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(t).ok()?
    };
    if ascii.len() > MAX_HOST {
        return None;
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return None;
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !labels.iter().all(label_ok) {
        return None;
    }
    let tld = labels[labels.len() - 1];
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(ascii)
}

/// How titles become origins: the schemes, and whether the `www.` twin is added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TitleRules {
    /// One origin per scheme, in this order. `https` by default.
    pub schemes: Vec<Scheme>,
    /// Also allow `www.TITLE` for a title without `www.`, and `TITLE` without `www.` for one
    /// with it.
    pub www: bool,
}

impl Default for TitleRules {
    fn default() -> Self {
        TitleRules {
            schemes: vec![Scheme::Https],
            www: false,
        }
    }
}

/// The origins derived from a list of titles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived {
    /// The origins, sorted, without duplicates.
    pub origins: Vec<String>,
    /// Titles that are not host names, as Ackee has them (for the log).
    pub skipped: Vec<String>,
}

/// Derives the origins for every title.
pub(crate) fn derive<'a>(titles: impl IntoIterator<Item = &'a str>, rules: &TitleRules) -> Derived {
    let mut out = Derived::default();
    for title in titles {
        let Some(host) = host_name(title) else {
            out.skipped.push(title.to_owned());
            continue;
        };
        let twin = if !rules.www {
            None
        } else if let Some(apex) = host.strip_prefix("www.") {
            // www.example.com -> example.com, but never www.com -> com.
            apex.contains('.').then(|| apex.to_owned())
        } else {
            Some(format!("www.{host}"))
        };
        for h in std::iter::once(&host).chain(twin.as_ref()) {
            for scheme in &rules.schemes {
                out.origins.push(format!("{}://{h}", scheme.as_str()));
            }
        }
    }
    out.origins.sort_unstable();
    out.origins.dedup();
    out
}

/// The first title that gives `origin`, if any (for `explain`: "allowed because Ackee has a
/// domain titled ...").
pub(crate) fn title_giving<'a>(
    titles: impl IntoIterator<Item = &'a str>,
    rules: &TitleRules,
    origin: &str,
) -> Option<&'a str> {
    titles
        .into_iter()
        .find(|t| derive([*t], rules).origins.iter().any(|o| o == origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_that_are_host_names_are_normalised_and_the_rest_refused() {
        let cases: &[(&str, Option<&str>)] = &[
            ("example.com", Some("example.com")),
            ("Blog.Example.COM", Some("blog.example.com")),
            ("  example.com  ", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("bücher.example", Some("xn--bcher-kva.example")),
            ("a-b.c-d.example", Some("a-b.c-d.example")),
            ("123.example", Some("123.example")),
            ("com.example.app", Some("com.example.app")),
            ("My blog", None),
            ("Ackee", None),
            ("localhost", None),
            ("", None),
            ("   ", None),
            ("https://example.com", None),
            ("example.com/blog", None),
            ("example.com:8080", None),
            ("127.0.0.1", None),
            ("[::1]", None),
            ("*.example.com", None),
            ("-bad.example", None),
            ("bad-.example", None),
            ("a..example", None),
            (".example.com", None),
            ("under_score.example", None),
            ("user@example.com", None),
            ("exa mple.com", None),
            ("example.com..", None),
        ];
        for (title, want) in cases {
            assert_eq!(host_name(title).as_deref(), *want, "title {title:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(host_name(&long_label), None);
        let long_host = format!("{}example", "abcdefghi.".repeat(25));
        assert_eq!(host_name(&long_host), None);
    }

    #[test]
    fn the_title_that_gives_an_origin_is_found() {
        let www = TitleRules {
            schemes: vec![Scheme::Https],
            www: true,
        };
        let titles = ["My blog", "Example.com", "shop.example"];
        let cases = [
            ("https://example.com", Some("Example.com")),
            ("https://www.example.com", Some("Example.com")),
            ("https://shop.example", Some("shop.example")),
            ("http://shop.example", None),
            ("https://my blog", None),
        ];
        for (origin, want) in cases {
            assert_eq!(title_giving(titles, &www, origin), want, "{origin}");
        }
    }

    #[test]
    fn origins_follow_the_schemes_and_the_www_rule() {
        let both = TitleRules {
            schemes: vec![Scheme::Https, Scheme::Http],
            www: false,
        };
        let www = TitleRules {
            schemes: vec![Scheme::Https],
            www: true,
        };
        type Case<'a> = (&'a [&'a str], &'a TitleRules, &'a [&'a str], &'a [&'a str]);
        let default = TitleRules::default();
        let cases: &[Case] = &[
            (&["example.com"], &default, &["https://example.com"], &[]),
            (
                &["example.com", "My blog", "b.example"],
                &default,
                &["https://b.example", "https://example.com"],
                &["My blog"],
            ),
            (
                &["example.com"],
                &both,
                &["http://example.com", "https://example.com"],
                &[],
            ),
            (
                &["example.com"],
                &www,
                &["https://example.com", "https://www.example.com"],
                &[],
            ),
            (
                &["www.example.com"],
                &www,
                &["https://example.com", "https://www.example.com"],
                &[],
            ),
            (&["www.com"], &www, &["https://www.com"], &[]),
            (
                &["example.com", "EXAMPLE.com", "www.example.com"],
                &www,
                &["https://example.com", "https://www.example.com"],
                &[],
            ),
            (&[], &default, &[], &[]),
        ];
        for (titles, rules, origins, skipped) in cases {
            let d = derive(titles.iter().copied(), rules);
            assert_eq!(d.origins, *origins, "titles {titles:?} with {rules:?}");
            assert_eq!(d.skipped, *skipped, "titles {titles:?}");
        }
    }
}
