//! Which rate-limit rule a request falls under: tracker writes by method and path, and the
//! dashboard login (`createToken`) recognised in the buffered body. No allocation, no pingora.
//!
//! The tracker writes are `POST /api` (ackee-tracker 4 and later, and every GraphQL request of
//! the dashboard) and the pre-4.0 tracker's `POST /domains/:id/records` and
//! `PATCH /domains/:id/records/:id`. Paths are compared without ASCII case and with or without
//! a trailing slash, so a spelling that Ackee's router might still accept is not a way around
//! the limit.
//!
//! A login attempt is a `POST /api` whose body calls the `createToken` mutation. GraphQL lets
//! one request carry several calls (aliases, `a: createToken(…) b: createToken(…)`, or a batch,
//! a JSON array of operations), and JSON lets a client write any letter as `\u0063`, so the
//! body is scanned as the JSON decoder would read it, and every call counts as one attempt.

use http::Method;

/// A request that writes to Ackee without a token: what the tracker rule counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// `POST /api`: GraphQL, where `createToken` may also be.
    Api,
    /// `POST` or `PATCH` under `/domains/`: the tracker before 4.0.
    Legacy,
}

/// Whether `path` is `prefix` itself or lies below it, without ASCII case.
fn at_or_below(path: &str, prefix: &str) -> bool {
    let p = path.as_bytes();
    let n = prefix.len();
    p.len() >= n && p[..n].eq_ignore_ascii_case(prefix.as_bytes()) && (p.len() == n || p[n] == b'/')
}

/// The kind of tracker write a request is, from its method and path (without the query).
pub(crate) fn write_kind(method: &Method, path: &str) -> Option<Write> {
    if *method == Method::POST && at_or_below(path, "/api") {
        Some(Write::Api)
    } else if (*method == Method::POST || *method == Method::PATCH)
        && at_or_below(path, "/domains")
        && path.len() > "/domains/".len()
    {
        Some(Write::Legacy)
    } else {
        None
    }
}

const NAME: &[u8] = b"createToken";

/// Where the JSON decoder is inside an escape sequence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    /// Not in an escape.
    #[default]
    None,
    /// After a backslash.
    Backslash,
    /// After `\u` and this many hex digits, with their value so far.
    Unicode(u8, u32),
}

/// Where the GraphQL matcher is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// This many bytes of the name matched.
    Name(u8),
    /// After the whole name: `(` must follow.
    AfterName,
    /// After `(`: a field's argument follows, or `$` if this was an operation's name.
    AfterParen,
    /// In a `#` comment, returning to `AfterName` (false) or `AfterParen` (true).
    Comment(bool),
}

impl Default for Stage {
    fn default() -> Self {
        Stage::Name(0)
    }
}

/// Whether `b` can move a scan that is outside an escape with nothing of the name matched.
fn is_start(b: u8) -> bool {
    b == b'\\' || b == NAME[0]
}

/// GraphQL's ignored characters between tokens: white space, line ends and commas.
fn ignored(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',')
}

/// Counts calls of the `createToken` mutation field in a request body fed in chunks, read as a
/// JSON decoder would read it (`\uXXXX` and the one-letter escapes decoded). Chunk boundaries
/// may fall anywhere.
///
/// A call is the name followed by `(` and an argument: `createToken(input: …)`, also after an
/// alias or in a batch. The name elsewhere is not a guess and is not counted: as
/// `"operationName":"createToken"`, or as an operation's name before its variable definitions
/// (`mutation createToken($input: …)`), which is how Ackee's dashboard sends its login.
/// `createToken` needs its `input` argument, so a call without `(` is refused by Ackee
/// without a password being checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginScan {
    stage: Stage,
    escape: Escape,
    count: u32,
}

impl LoginScan {
    /// Feeds the next chunk of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some((&b, after)) = rest.split_first() {
            // Outside an escape, with nothing of the name matched, only a backslash or the
            // name's first letter changes anything: skip to the next of them. A tracker
            // write's 650 bytes are then a few jumps, not 650 turns of the state machine.
            if self.escape == Escape::None && self.stage == Stage::Name(0) && !is_start(b) {
                match memchr::memchr2(b'\\', NAME[0], after) {
                    Some(i) => rest = &after[i..],
                    None => return,
                }
                continue;
            }
            rest = after;
            match self.escape {
                Escape::None if b == b'\\' => self.escape = Escape::Backslash,
                Escape::None => self.decoded(b),
                Escape::Backslash if b == b'u' => self.escape = Escape::Unicode(0, 0),
                Escape::Backslash => {
                    self.escape = Escape::None;
                    self.decoded(match b {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        other => other,
                    });
                }
                Escape::Unicode(n, value) => match char::from(b).to_digit(16) {
                    Some(d) if n < 3 => self.escape = Escape::Unicode(n + 1, value * 16 + d),
                    Some(d) => {
                        self.escape = Escape::None;
                        let c = value * 16 + d;
                        // Only ASCII matters to the matcher; anything else breaks a match.
                        self.decoded(u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(0xff));
                    }
                    None => {
                        // Not valid JSON; Ackee refuses it. Read on from this byte.
                        self.escape = Escape::None;
                        self.decoded(b);
                    }
                },
            }
        }
    }

    /// One decoded byte.
    fn decoded(&mut self, b: u8) {
        self.stage = match self.stage {
            Stage::Name(m) => Self::name(m, b),
            Stage::AfterName if ignored(b) => Stage::AfterName,
            Stage::AfterName if b == b'#' => Stage::Comment(false),
            Stage::AfterName if b == b'(' => Stage::AfterParen,
            Stage::AfterName => Self::name(0, b),
            Stage::AfterParen if ignored(b) => Stage::AfterParen,
            Stage::AfterParen if b == b'#' => Stage::Comment(true),
            Stage::AfterParen => {
                if b != b'$' {
                    self.count = self.count.saturating_add(1);
                }
                Self::name(0, b)
            }
            Stage::Comment(paren) if b == b'\n' || b == b'\r' => {
                if paren {
                    Stage::AfterParen
                } else {
                    Stage::AfterName
                }
            }
            Stage::Comment(paren) => Stage::Comment(paren),
        };
    }

    /// The next stage of matching the name, `m` bytes of it matched so far.
    fn name(m: u8, b: u8) -> Stage {
        let i = usize::from(m);
        if NAME[i] == b {
            if i + 1 == NAME.len() {
                Stage::AfterName
            } else {
                Stage::Name(m + 1)
            }
        } else {
            // The name's first letter occurs nowhere else in it, so a failed match can only
            // restart at this byte.
            Stage::Name(u8::from(b == NAME[0]))
        }
    }

    /// How many `createToken` calls were in what was fed.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_writes_are_recognised_by_method_and_path() {
        let cases: &[(Method, &str, Option<Write>)] = &[
            (Method::POST, "/api", Some(Write::Api)),
            (Method::POST, "/api/", Some(Write::Api)),
            (Method::POST, "/API", Some(Write::Api)),
            (Method::POST, "/api/graphql", Some(Write::Api)),
            (Method::POST, "/apix", None),
            (Method::POST, "/", None),
            (Method::GET, "/api", None),
            (Method::OPTIONS, "/api", None),
            (Method::PATCH, "/api", None),
            (Method::POST, "/domains/d1/records", Some(Write::Legacy)),
            (Method::PATCH, "/domains/d1/records/r1", Some(Write::Legacy)),
            (Method::PATCH, "/Domains/d1/records/r1", Some(Write::Legacy)),
            (Method::GET, "/domains/d1/views", None),
            (Method::POST, "/domains", None),
            (Method::POST, "/domains/", None),
            (Method::POST, "/domainsx/1", None),
            (Method::PUT, "/domains/d1", None),
            (Method::GET, "/tracker.js", None),
        ];
        for (method, path, want) in cases {
            assert_eq!(write_kind(method, path), *want, "{method} {path}");
        }
    }

    fn scan(chunks: &[&[u8]]) -> u32 {
        let mut s = LoginScan::default();
        for c in chunks {
            s.feed(c);
        }
        s.count()
    }

    #[test]
    fn create_token_is_counted_however_it_is_written() {
        let dashboard = br#"{"operationName":"createToken","variables":{"input":{"username":"a","password":"b"}},"query":"mutation createToken($input: CreateTokenInput!) {\n  createToken(input: $input) {\n    payload {\n      id\n    }\n  }\n}\n"}"#;
        let cases: &[(&[u8], u32, &str)] = &[
            (dashboard, 1, "the dashboard's own login: one call, named three times"),
            (
                br#"{"query":"mutation { createToken(input: {username: \"a\", password: \"b\"}) { payload { id } } }"}"#,
                1,
                "inline arguments",
            ),
            (
                br#"{"query":"mutation { a: createToken(input: $i) { payload { id } } b: createToken(input: $i) { payload { id } } c: createToken(input: $i) { payload { id } } }"}"#,
                3,
                "aliases: three guesses in one request",
            ),
            (
                br#"[{"query":"mutation { createToken(input: $i) { payload { id } } }"},{"query":"mutation { createToken(input: $j) { payload { id } } }"}]"#,
                2,
                "a batch of two operations",
            ),
            (
                br#"{"query":"mutation { \u0063reate\u0054oken(input: $i) { payload { id } } }"}"#,
                1,
                "JSON unicode escapes",
            ),
            (
                br#"{"query":"mutation { create\u0054OKEN(input: $i) { id } }"}"#,
                0,
                "GraphQL names are case-sensitive",
            ),
            (
                br#"{"query":"mutation { createPermanentToken(input: $i) { payload { id } } }"}"#,
                0,
                "a permanent token needs a token already",
            ),
            (
                br#"{"query":"mutation createRecord($domainId: ID!, $input: CreateRecordInput!) { createRecord(domainId: $domainId, input: $input) { payload { id } } }"}"#,
                0,
                "the tracker",
            ),
            (br#"ccreateToken(i:1)createToken(i:2)"#, 2, "a restart inside a match"),
            (br#"createToke\u006e(input: $i)"#, 1, "the last letter escaped"),
            (br#"createToken\u0028input: $i)"#, 1, "the parenthesis escaped"),
            (
                br#"{"query":"mutation {\n createToken # why not\n , ( # here\n input: $i) { id } }"}"#,
                1,
                "comments, commas and line ends between the tokens",
            ),
            (br#"create\\u0054oken(input: $i)"#, 0, "an escaped backslash is not an escape"),
            (br#"create\u00zToken(input: $i)"#, 0, "a broken escape"),
            (
                br#"xyz cc\u0063reateToken(i:1) c\\createToken(i:2) \"c\" createToken(i:3)"#,
                3,
                "first letters and escapes between the stretches skipped",
            ),
            (br#"createToken"#, 0, "the name alone is no call"),
            (br#"createToken { id }"#, 0, "no arguments: Ackee refuses it unchecked"),
            (br#"createTokens(input: $i)"#, 0, "another name"),
            (b"", 0, "no body"),
        ];
        for (body, want, what) in cases {
            assert_eq!(scan(&[body]), *want, "{what}");
            // Every split into two chunks gives the same count.
            for i in 0..=body.len() {
                assert_eq!(
                    scan(&[&body[..i], &body[i..]]),
                    *want,
                    "{what}, split at {i}"
                );
            }
        }
    }

    #[test]
    fn one_byte_chunks_count_like_a_whole_body() {
        let body = br#"{"query":"mutation { x: \u0063reateToken(input: $i) { id } y: createToken\n(input: $i) { id } }"}"#;
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(&chunks), 2);
    }
}
