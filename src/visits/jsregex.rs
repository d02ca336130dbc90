//! isbot's patterns are JavaScript regular expressions; this translates the subset they use into
//! the `regex` crate's syntax, for a haystack of bytes matched without Unicode (`(?i-u)`, as
//! [`super::bots`] compiles them), so that `\w`, `\d`, `\s` and `\b` keep JavaScript's ASCII
//! meaning.
//!
//! The `regex` crate has no lookaround, and six of isbot's patterns use a negative one
//! (`(?<!cam)scan`, `java(?!;)`). A negative lookaround over a list of words is itself a regular
//! language, so it is rewritten as the expression it is equivalent to: `java(?!;)` becomes
//! `java(?:$|[^;])`, and `(?<!cam)scan` becomes `(?:^|[^m]|(?:^|[^a]|(?:^|[^c])a)m)scan`, built
//! from a trie of the words (reversed, for a lookbehind). Matching stays one pass of one
//! automaton. The rewrite consumes the characters it looks at, so it is exact only where
//! nothing else in the pattern consumes them: a lookbehind must open a top-level alternative
//! and a lookahead close one, as in every isbot pattern. Anything else (positive lookarounds,
//! back-references, a lookaround elsewhere, non-ASCII) is refused with the reason, so a new
//! isbot list that needs more fails the unit tests instead of matching something else.

use std::collections::BTreeMap;
use std::fmt;

/// Why a pattern cannot be translated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Untranslatable {
    /// The JavaScript pattern.
    pub pattern: String,
    /// The byte offset of the problem in it.
    pub at: usize,
    /// What is not supported there.
    pub why: &'static str,
}

impl fmt::Display for Untranslatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the pattern {:?} cannot be translated at byte {}: {}",
            self.pattern, self.at, self.why
        )
    }
}

/// The most words a lookaround may stand for (after expanding its groups).
const MAX_WORDS: usize = 64;

/// Translates one JavaScript pattern (written for the `i` flag) into `regex` syntax.
pub fn translate(pattern: &str) -> Result<String, Untranslatable> {
    let mut p = Parser {
        pattern,
        src: pattern.as_bytes(),
        pos: 0,
    };
    if let Some(at) = pattern.bytes().position(|b| !b.is_ascii()) {
        return Err(p.fail_at(at, "only ASCII patterns are supported"));
    }
    let out = p.disjunction(true)?;
    if p.pos < p.src.len() {
        return Err(p.fail("an unbalanced )"));
    }
    Ok(out)
}

/// One term of an alternative.
enum Term {
    /// Translated text.
    Plain(String),
    /// `(?!w1|w2|…)`: not followed by any of the words (lowercase).
    NotFollowedBy(Vec<Vec<u8>>),
    /// `(?<!w1|w2|…)`: not preceded by any of the words (lowercase).
    NotPrecededBy(Vec<Vec<u8>>),
}

struct Parser<'a> {
    pattern: &'a str,
    src: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn fail_at(&self, at: usize, why: &'static str) -> Untranslatable {
        Untranslatable {
            pattern: self.pattern.to_owned(),
            at,
            why,
        }
    }

    fn fail(&self, why: &'static str) -> Untranslatable {
        self.fail_at(self.pos, why)
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let found = self.src[self.pos..].starts_with(s.as_bytes());
        if found {
            self.pos += s.len();
        }
        found
    }

    fn expect_close(&mut self) -> Result<(), Untranslatable> {
        if self.eat(")") {
            Ok(())
        } else {
            Err(self.fail("a group is not closed"))
        }
    }

    /// Alternatives separated by `|`, up to `)` or the end. `top`: the pattern's own
    /// alternatives, where lookarounds may open or close one.
    fn disjunction(&mut self, top: bool) -> Result<String, Untranslatable> {
        let mut out = self.alternative(top)?;
        while self.eat("|") {
            out.push('|');
            out.push_str(&self.alternative(top)?);
        }
        Ok(out)
    }

    fn alternative(&mut self, top: bool) -> Result<String, Untranslatable> {
        let start = self.pos;
        let mut terms = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            terms.push(self.term()?);
        }
        let last = terms.len().saturating_sub(1);
        let mut out = String::new();
        for (i, term) in terms.into_iter().enumerate() {
            match term {
                Term::Plain(t) => out.push_str(&t),
                Term::NotPrecededBy(words) if top && i == 0 => {
                    out.push_str(&not_preceded_by(&Trie::of(
                        words.iter().map(|w| w.iter().rev()),
                    )));
                }
                Term::NotFollowedBy(words) if top && i == last => {
                    out.push_str(&not_followed_by(&Trie::of(words.iter().map(|w| w.iter()))));
                }
                Term::NotPrecededBy(_) | Term::NotFollowedBy(_) => {
                    return Err(self.fail_at(
                        start,
                        "a lookbehind must open, and a lookahead close, one of the pattern's own alternatives",
                    ));
                }
            }
        }
        Ok(out)
    }

    fn term(&mut self) -> Result<Term, Untranslatable> {
        let at = self.pos;
        let atom = match self.peek() {
            Some(b'^') => {
                self.pos += 1;
                return Ok(Term::Plain("^".to_owned()));
            }
            Some(b'$') => {
                self.pos += 1;
                return Ok(Term::Plain("$".to_owned()));
            }
            Some(b'(') => {
                if self.eat("(?!") || self.eat("(?<!") {
                    let behind = self.src[at + 2] == b'<';
                    let words = self.words()?;
                    self.expect_close()?;
                    if words.iter().any(Vec::is_empty) {
                        return Err(self.fail_at(
                            at,
                            "a lookaround with an empty word never lets the pattern match",
                        ));
                    }
                    return Ok(if behind {
                        Term::NotPrecededBy(words)
                    } else {
                        Term::NotFollowedBy(words)
                    });
                }
                if self.eat("(?=") || self.eat("(?<=") {
                    return Err(self.fail_at(at, "positive lookarounds are not supported"));
                }
                if self.eat("(?<") {
                    return Err(self.fail_at(at, "named groups are not supported"));
                }
                if !self.eat("(?:") {
                    if self.src.get(at + 1) == Some(&b'?') {
                        return Err(self.fail_at(at, "this kind of group is not supported"));
                    }
                    // A capturing group: nothing reads what it captured.
                    self.pos += 1;
                }
                let inner = self.disjunction(false)?;
                self.expect_close()?;
                format!("(?:{inner})")
            }
            Some(b'[') => self.class()?,
            Some(b'\\') => match self.escape(false)? {
                Escaped::Char(c) => literal(c),
                Escaped::Class(s) => s.to_owned(),
                Escaped::Assertion(s) => return Ok(Term::Plain(s.to_owned())),
            },
            Some(b'.') => {
                self.pos += 1;
                ".".to_owned()
            }
            Some(b'*' | b'+' | b'?') => {
                return Err(self.fail("a quantifier with nothing to repeat"));
            }
            Some(c) => {
                self.pos += 1;
                literal(c)
            }
            None => return Err(self.fail("the pattern ends too early")),
        };
        let quantifier = self.quantifier();
        Ok(Term::Plain(atom + quantifier))
    }

    /// `*`, `+`, `?`, `{n}`, `{n,}` or `{n,m}`, each optionally lazy; or nothing. A `{` that does
    /// not start a quantifier is a literal, as in JavaScript.
    fn quantifier(&mut self) -> &str {
        let start = self.pos;
        match self.peek() {
            Some(b'*' | b'+' | b'?') => self.pos += 1,
            Some(b'{') => {
                let rest = &self.src[self.pos..];
                let Some(end) = rest.iter().position(|&b| b == b'}') else {
                    return "";
                };
                let inside = &rest[1..end];
                let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
                let valid = match inside.iter().position(|&b| b == b',') {
                    None => digits(inside),
                    Some(comma) => {
                        let (lo, hi) = (&inside[..comma], &inside[comma + 1..]);
                        digits(lo) && (hi.is_empty() || digits(hi))
                    }
                };
                if !valid {
                    return "";
                }
                self.pos += end + 1;
            }
            _ => return "",
        }
        if self.peek() == Some(b'?') {
            self.pos += 1;
        }
        &self.pattern[start..self.pos]
    }

    /// A backslash escape, outside a class (`in_class` false) or inside one.
    fn escape(&mut self, in_class: bool) -> Result<Escaped, Untranslatable> {
        let at = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(self.fail_at(at, "a backslash ends the pattern"));
        };
        self.pos += 1;
        Ok(match c {
            // Under (?-u) these are ASCII, as in JavaScript (but \s, which JavaScript also
            // lets match Unicode spaces; a User-Agent is ASCII).
            b'd' => Escaped::Class("\\d"),
            b'D' => Escaped::Class("\\D"),
            b'w' => Escaped::Class("\\w"),
            b'W' => Escaped::Class("\\W"),
            b's' => Escaped::Class("\\s"),
            b'S' => Escaped::Class("\\S"),
            b'b' if !in_class => Escaped::Assertion("\\b"),
            b'B' if !in_class => Escaped::Assertion("\\B"),
            b't' => Escaped::Char(b'\t'),
            b'n' => Escaped::Char(b'\n'),
            b'r' => Escaped::Char(b'\r'),
            b'f' => Escaped::Char(0x0c),
            b'v' => Escaped::Char(0x0b),
            c if c.is_ascii_punctuation() || c == b' ' => Escaped::Char(c),
            _ => return Err(self.fail_at(at, "this escape is not supported")),
        })
    }

    /// A character class, `[...]` or `[^...]`, written with every character as `\xHH`.
    fn class(&mut self) -> Result<String, Untranslatable> {
        let at = self.pos;
        self.pos += 1;
        let mut out = String::from("[");
        if self.eat("^") {
            out.push('^');
        }
        // The previous item, if it was a single character that may start a range.
        let mut previous: Option<u8> = None;
        let mut items = 0;
        loop {
            let Some(b) = self.peek() else {
                return Err(self.fail_at(at, "a class is not closed"));
            };
            if b == b']' {
                self.pos += 1;
                break;
            }
            let escaped = b == b'\\';
            let item = if escaped {
                self.escape(true)?
            } else {
                self.pos += 1;
                Escaped::Char(b)
            };
            match item {
                // An unescaped `-` between two characters; `\-` is always a literal.
                Escaped::Char(b'-')
                    if !escaped && previous.is_some() && self.peek().is_some_and(|n| n != b']') =>
                {
                    // A range, unless what follows is a class escape (then `-` is a literal).
                    let low = previous.take().unwrap_or(b'-');
                    let save = self.pos;
                    let high = match self.peek() {
                        Some(b'\\') => self.escape(true)?,
                        Some(n) => {
                            self.pos += 1;
                            Escaped::Char(n)
                        }
                        None => unreachable!("checked above"),
                    };
                    match high {
                        Escaped::Char(high) if high >= low => {
                            // The low end was already written; make it a range.
                            out.push_str(&format!("-\\x{high:02X}"));
                        }
                        Escaped::Char(_) => {
                            return Err(self.fail_at(save, "a class range is out of order"));
                        }
                        Escaped::Class(s) => {
                            out.push_str("\\x2D");
                            out.push_str(s);
                        }
                        Escaped::Assertion(_) => unreachable!("no assertions in a class"),
                    }
                }
                Escaped::Char(c) => {
                    out.push_str(&format!("\\x{c:02X}"));
                    previous = Some(c);
                }
                Escaped::Class(s) => {
                    out.push_str(s);
                    previous = None;
                }
                Escaped::Assertion(_) => unreachable!("no assertions in a class"),
            }
            items += 1;
        }
        if items == 0 {
            return Err(self.fail_at(at, "an empty class"));
        }
        out.push(']');
        Ok(out)
    }

    /// The words a lookaround stands for: alternatives of literal characters, with groups
    /// (`(?:wv|app)`) expanded. Lowercase, since the patterns are matched without case.
    fn words(&mut self) -> Result<Vec<Vec<u8>>, Untranslatable> {
        let mut all = self.word_sequence()?;
        while self.eat("|") {
            all.extend(self.word_sequence()?);
        }
        if all.len() > MAX_WORDS {
            return Err(self.fail("a lookaround stands for too many words"));
        }
        Ok(all)
    }

    fn word_sequence(&mut self) -> Result<Vec<Vec<u8>>, Untranslatable> {
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        loop {
            let next: Vec<Vec<u8>> = match self.peek() {
                None | Some(b'|' | b')') => return Ok(words),
                Some(b'(') => {
                    let at = self.pos;
                    if !self.eat("(?:") {
                        self.pos += 1;
                        if self.peek() == Some(b'?') {
                            return Err(self
                                .fail_at(at, "only plain groups of words may be in a lookaround"));
                        }
                    }
                    let inner = self.words()?;
                    self.expect_close()?;
                    inner
                }
                Some(b'\\') => match self.escape(false)? {
                    Escaped::Char(c) => vec![vec![c.to_ascii_lowercase()]],
                    _ => return Err(self.fail("only literal characters may be in a lookaround")),
                },
                Some(b'[' | b'.' | b'*' | b'+' | b'?' | b'{' | b'^' | b'$') => {
                    return Err(self.fail("only literal characters may be in a lookaround"));
                }
                Some(c) => {
                    self.pos += 1;
                    vec![vec![c.to_ascii_lowercase()]]
                }
            };
            let mut product = Vec::with_capacity(words.len() * next.len());
            for w in &words {
                for n in &next {
                    let mut joined = w.clone();
                    joined.extend_from_slice(n);
                    product.push(joined);
                }
            }
            if product.len() > MAX_WORDS {
                return Err(self.fail("a lookaround stands for too many words"));
            }
            words = product;
        }
    }
}

/// What a backslash escape stands for.
enum Escaped {
    /// One character.
    Char(u8),
    /// A class such as `\d`, written as is.
    Class(&'static str),
    /// `\b` or `\B`.
    Assertion(&'static str),
}

/// One literal character: letters and digits as they are, anything else as `\xHH`.
fn literal(c: u8) -> String {
    if c.is_ascii_alphanumeric() {
        char::from(c).to_string()
    } else {
        format!("\\x{c:02X}")
    }
}

/// A trie of words; a node where a word ends is `end`.
#[derive(Default)]
struct Trie {
    end: bool,
    next: BTreeMap<u8, Trie>,
}

impl Trie {
    fn of<'a>(words: impl Iterator<Item = impl Iterator<Item = &'a u8>>) -> Trie {
        let mut root = Trie::default();
        for word in words {
            let mut node = &mut root;
            for &c in word {
                node = node.next.entry(c).or_default();
            }
            node.end = true;
        }
        root
    }

    /// `[^…]` of the characters that continue a word here.
    fn other_than(&self) -> String {
        let mut s = String::from("[^");
        for c in self.next.keys() {
            s.push_str(&format!("\\x{c:02X}"));
        }
        s.push(']');
        s
    }
}

/// What may follow, for the text after it to start with none of the words: the end, a
/// character that starts none of them, or one that does and then what may follow that.
fn not_followed_by(node: &Trie) -> String {
    let mut parts = vec!["$".to_owned(), node.other_than()];
    for (&c, child) in &node.next {
        if !child.end {
            parts.push(format!("{}{}", literal(c), not_followed_by(child)));
        }
    }
    format!("(?:{})", parts.join("|"))
}

/// What may precede, for the text before it to end with none of the words; `node` is a trie
/// of the reversed words: the start, a character that ends none of them, or one that does,
/// preceded by what may precede that.
fn not_preceded_by(node: &Trie) -> String {
    let mut parts = vec!["^".to_owned(), node.other_than()];
    for (&c, child) in &node.next {
        if !child.end {
            parts.push(format!("{}{}", not_preceded_by(child), literal(c)));
        }
    }
    format!("(?:{})", parts.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(js: &str) -> regex::bytes::Regex {
        let rust = translate(js).unwrap_or_else(|e| panic!("{e}"));
        regex::bytes::Regex::new(&format!("(?i-u){rust}"))
            .unwrap_or_else(|e| panic!("{js} -> {rust}: {e}"))
    }

    #[test]
    fn lookarounds_become_the_expressions_they_stand_for() {
        assert_eq!(translate("java(?!;)").unwrap(), "java(?:$|[^\\x3B])");
        assert_eq!(
            translate("(?<!cam)scan").unwrap(),
            "(?:^|[^\\x6D]|(?:^|[^\\x61]|(?:^|[^\\x63])a)m)scan"
        );
        // (haystack, matches) for each of isbot's patterns with a lookaround.
        let cases: &[(&str, &[(&str, bool)])] = &[
            (
                "(?<!cam)scan",
                &[
                    ("scan", true),
                    ("xscan", true),
                    ("mscan", true),
                    ("amscan", true),
                    ("camscan", false),
                    ("CAMSCAN", false),
                    ("camscan scan", true),
                    ("xcamscan", false),
                    ("bamscan", true),
                ],
            ),
            (
                "java(?!;)",
                &[
                    ("java", true),
                    ("java;", false),
                    ("Java/1.8", true),
                    ("JAVA;x", false),
                ],
            ),
            (
                "(?:^|[^g])news(?!sapphire)",
                &[
                    ("news", true),
                    ("gnews", false),
                    ("newssapphire", false),
                    ("newssapphir", true),
                    ("a newssapp", true),
                    ("NewsSapphire/1", false),
                ],
            ),
            (
                "(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
                &[
                    ("google", true),
                    ("Googlebot", true),
                    ("googlewv", false),
                    ("googleapp", false),
                    ("GoogleApp", false),
                    ("google pixel", false),
                    ("google pix", true),
                    ("google/google", false),
                    ("x channel/google", false),
                    ("xchannel/google", true),
                    ("google/googlex", false),
                    ("Mozilla/5.0 (compatible; Google-Read-Aloud)", true),
                    ("googleap", true),
                ],
            ),
            (
                "(?<! cu)bots?(?:\\b|_)",
                &[
                    ("bot", true),
                    ("robots", true),
                    ("a cubot", false),
                    ("acubot", true),
                    ("Cubot phone; bot_", true),
                    ("bottle", false),
                    ("bot_x", true),
                ],
            ),
            (
                "(?<!lib)http",
                &[
                    ("http", true),
                    ("libhttp", false),
                    ("LibHttp", false),
                    ("ibhttp", true),
                ],
            ),
        ];
        for (js, haystacks) in cases {
            let re = matcher(js);
            for (h, want) in *haystacks {
                assert_eq!(re.is_match(h.as_bytes()), *want, "{js} on {h:?}");
            }
        }
    }

    #[test]
    fn classes_escapes_and_quantifiers_keep_their_javascript_meaning() {
        let cases: &[(&str, &str, bool)] = &[
            // `-` next to a class escape is a literal (JavaScript's Annex B).
            ("^[\\w\\d-.]+$", "a-b.c", true),
            ("^[\\w\\d-.]+$", "a/b", false),
            ("^[_-]$", "-", true),
            ("^[.\\-(]+$", "-.(", true),
            ("^[.\\-(]+$", "/", false),
            ("^[a-c]$", "B", true),
            ("^[a-c]$", "d", false),
            ("^[^ ]{50,}$", &"x".repeat(50), true),
            ("^[^ ]{50,}$", &"x".repeat(49), false),
            ("\\.com\\b", "example.com/", true),
            ("\\.com\\b", "example.community", false),
            ("\\|", "a|b", true),
            ("\\(\\)", "f()", true),
            ("^\\d+\\b", "123 abc", true),
            ("(\\d)", "7", true),
            ("ptst[ /]\\d", "PTST/9", true),
            ("a{x}", "a{x}", true),
            ("^\\w+/\\d\\.\\d\\s\\([\\w@]+\\)$", "Name/1.0 (me@x)", true),
            // \w and \b are ASCII, as in JavaScript: é is not a word character.
            ("^\\w+$", "caf\u{e9}", false),
            ("\\bcaf", "\u{e9}caf", true),
        ];
        for (js, h, want) in cases {
            assert_eq!(matcher(js).is_match(h.as_bytes()), *want, "{js} on {h:?}");
        }
    }

    #[test]
    fn what_cannot_be_translated_is_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("a(?=b)", "positive lookarounds"),
            ("a(?<!b)c", "a lookbehind must open"),
            ("(?!b)a", "a lookahead close"),
            ("(?:a(?!b))c", "a lookahead close"),
            ("a(?![bc])", "only literal characters"),
            ("\\1", "escape is not supported"),
            ("(?<n>a)", "named groups"),
            ("caf\u{e9}", "only ASCII"),
            ("a)", "unbalanced"),
            ("(a", "not closed"),
            ("[a", "not closed"),
            ("[z-a]", "out of order"),
            ("*a", "nothing to repeat"),
            ("a(?!)", "empty word"),
        ];
        for (js, why) in cases {
            let e = translate(js).expect_err(js);
            assert!(e.to_string().contains(why), "{js}: {e}");
        }
    }
}
