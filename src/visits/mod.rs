//! Visits worth counting: which tracker writes are answered at the edge, with Ackee's own answer
//! for a visit it ignores, instead of reaching Ackee. No pingora here.
//!
//! Ackee counts what reaches it. ackee-tracker drops only user agents that match
//! `/bot|crawler|spider|crawling/i`, so headless browsers, Lighthouse and monitoring tools are
//! counted as visitors, and Ackee's answer to "don't count my office" is a proxy in front of it.
//! The rules, each from `visits` in the config, evaluated in this order (the first that holds is
//! the [`Reason`]):
//!
//! 1. `ignore_networks`: the client address (resolved through `trusted_proxies`) is in one of
//!    the networks, such as the owner's office or a monitoring host;
//! 2. `honor_gpc`: the browser sends `Sec-GPC: 1` (Global Privacy Control);
//! 3. `honor_dnt`: the browser sends `DNT: 1`;
//! 4. `ignore_bots` (on by default): the `User-Agent` is a bot's by isbot's list ([`bots`]).
//!
//! A tracker write from such a visitor gets the answer Ackee itself gives when its
//! `ignoreOwnVisits` cookie is set: `200` and the fixed id `88888888-8888-8888-8888-888888888888`
//! ([`graphql`]), on which ackee-tracker stops quietly ("Ackee ignores you…") and sends no
//! updates. An update of that fixed id can only come from an ignored visit and is answered too.
//! Only `POST /api` with a JSON body is looked at, and only a body whose every operation is a
//! tracker write the gateway can answer as Ackee would; anything else goes to Ackee unchanged.
//!
//! - [`jsregex`]: isbot's JavaScript patterns in the `regex` crate's syntax, lookarounds included.
//! - [`bots`]: the user-agent matcher, compiled once.
//! - [`graphql`]: the tracker writes in a body, and Ackee's answer.
//! - This file: the settings, the rules and the decision.

pub mod bots;
pub mod graphql;
pub mod jsregex;

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::forwarded::Cidr;
pub use bots::BotMatcher;
pub use graphql::FIXED_ID;

/// `visits` as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitSettings {
    /// `visits.ignore_bots`: bots, crawlers, headless browsers and monitoring tools.
    pub ignore_bots: bool,
    /// `visits.ignore_networks`: client addresses never counted.
    pub ignore_networks: Vec<Cidr>,
    /// `visits.honor_gpc`: `Sec-GPC: 1`.
    pub honor_gpc: bool,
    /// `visits.honor_dnt`: `DNT: 1`.
    pub honor_dnt: bool,
}

impl Default for VisitSettings {
    fn default() -> Self {
        VisitSettings {
            ignore_bots: true,
            ignore_networks: Vec::new(),
            honor_gpc: false,
            honor_dnt: false,
        }
    }
}

/// Why a tracker write was answered at the edge. A fixed set, safe for metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The client is in `ignore_networks`.
    Network,
    /// `Sec-GPC: 1` with `honor_gpc`.
    Gpc,
    /// `DNT: 1` with `honor_dnt`.
    Dnt,
    /// A bot's user agent, with `ignore_bots`.
    Bot,
    /// An update of the fixed id, from a visitor no rule matches: the visit was ignored earlier
    /// (by Ackee's own cookie, or by a rule since changed).
    IgnoredId,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 5] = [
        Reason::Network,
        Reason::Gpc,
        Reason::Dnt,
        Reason::Bot,
        Reason::IgnoredId,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Network => "network",
            Reason::Gpc => "gpc",
            Reason::Dnt => "dnt",
            Reason::Bot => "bot",
            Reason::IgnoredId => "ignored_id",
        }
    }
}

/// What the rules look at in one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Visitor<'a> {
    /// The `User-Agent`, empty if none.
    pub user_agent: &'a [u8],
    /// The client address through `trusted_proxies`; `None` when not needed or unknown.
    pub client: Option<IpAddr>,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
    /// `DNT: 1`.
    pub dnt: bool,
}

/// `Sec-GPC`.
static SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");
/// `DNT`.
static DNT: HeaderName = HeaderName::from_static("dnt");

/// Whether a header says `1`, as `Sec-GPC` and `DNT` do when they are on.
fn says_one(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

impl<'a> Visitor<'a> {
    /// The visitor of a request with these headers, from `client`: every header the rules
    /// can read.
    pub fn of(headers: &'a HeaderMap, client: Option<IpAddr>) -> Visitor<'a> {
        Visitor {
            user_agent: headers
                .get(header::USER_AGENT)
                .map_or(b"", HeaderValue::as_bytes),
            client,
            gpc: says_one(headers, &SEC_GPC),
            dnt: says_one(headers, &DNT),
        }
    }
}

/// What to do with a tracker write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to Ackee unchanged.
    Forward,
    /// Answer `200` with `body`, Ackee's answer for an ignored visit.
    Ignore {
        /// Why.
        reason: Reason,
        /// The GraphQL answer.
        body: Bytes,
    },
}

/// The rules, compiled once at start-up.
#[derive(Debug)]
pub struct Visits {
    bots: Option<BotMatcher>,
    networks: Vec<Cidr>,
    gpc: bool,
    dnt: bool,
    /// The searcher for [`FIXED_ID`], built once.
    fixed_id: memchr::memmem::Finder<'static>,
}

impl Visits {
    /// The rules of `settings`; the bot matcher is compiled here, once.
    pub fn new(settings: &VisitSettings) -> Result<Visits, String> {
        let bots = if settings.ignore_bots {
            Some(BotMatcher::isbot()?)
        } else {
            None
        };
        Ok(Visits {
            bots,
            networks: settings.ignore_networks.clone(),
            gpc: settings.honor_gpc,
            dnt: settings.honor_dnt,
            fixed_id: memchr::memmem::Finder::new(FIXED_ID.as_bytes()),
        })
    }

    /// No rule at all: every request goes to Ackee untouched.
    pub fn off() -> Visits {
        Visits {
            bots: None,
            networks: Vec::new(),
            gpc: false,
            dnt: false,
            fixed_id: memchr::memmem::Finder::new(FIXED_ID.as_bytes()),
        }
    }

    /// Whether any rule is on; if none is, no body is looked at.
    pub fn is_on(&self) -> bool {
        self.bots.is_some() || !self.networks.is_empty() || self.gpc || self.dnt
    }

    /// The visitor of a request, reading only the headers the rules that are on look at.
    pub fn visitor<'a>(&self, headers: &'a HeaderMap, client: Option<IpAddr>) -> Visitor<'a> {
        let user_agent = match self.bots {
            Some(_) => headers
                .get(header::USER_AGENT)
                .map_or(&b""[..], HeaderValue::as_bytes),
            None => b"",
        };
        Visitor {
            user_agent,
            client,
            gpc: self.gpc && says_one(headers, &SEC_GPC),
            dnt: self.dnt && says_one(headers, &DNT),
        }
    }

    /// Whether the rules need the client's address (so it is worked out only then).
    pub fn needs_client(&self) -> bool {
        !self.networks.is_empty()
    }

    /// Whether a request is one the rules look at: `POST /api` (Ackee's GraphQL endpoint, as
    /// Ackee routes it) with a JSON body, while a rule is on.
    pub fn applies(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        self.is_on()
            && *method == Method::POST
            && path == "/api"
            && headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| is_json(v.as_bytes()))
    }

    /// The first rule that holds, and what matched: the network, or the bot pattern (for
    /// `explain`; the pattern is found by compiling each in turn, which the request path never
    /// does).
    pub fn rule_why(&self, v: &Visitor<'_>) -> Option<(Reason, String)> {
        if let Some(ip) = v.client {
            if let Some(net) = self.networks.iter().find(|n| n.contains(ip)) {
                return Some((Reason::Network, net.to_string()));
            }
        }
        if self.gpc && v.gpc {
            return Some((Reason::Gpc, "Sec-GPC: 1".to_owned()));
        }
        if self.dnt && v.dnt {
            return Some((Reason::Dnt, "DNT: 1".to_owned()));
        }
        let bots = self.bots.as_ref()?;
        bots.is_bot(v.user_agent).then(|| {
            let pattern = bots.first_pattern(v.user_agent).unwrap_or("?");
            (Reason::Bot, pattern.to_owned())
        })
    }

    /// The first rule that holds for `v`, in the order of the module's doc: no allocation, at
    /// most one pass of the bot matcher.
    pub fn rule(&self, v: &Visitor<'_>) -> Option<Reason> {
        if v.client
            .is_some_and(|ip| self.networks.iter().any(|n| n.contains(ip)))
        {
            Some(Reason::Network)
        } else if self.gpc && v.gpc {
            Some(Reason::Gpc)
        } else if self.dnt && v.dnt {
            Some(Reason::Dnt)
        } else if self.bots.as_ref().is_some_and(|b| b.is_bot(v.user_agent)) {
            Some(Reason::Bot)
        } else {
            None
        }
    }

    /// The verdict on a tracker write from `v` with this (whole) body. A visitor no rule
    /// matches costs one pass of the bot matcher over the user agent and one search of the body
    /// for the fixed id; the body is parsed only when one of them holds.
    pub fn decide(&self, v: &Visitor<'_>, body: &[u8]) -> Verdict {
        let mut scan = FixedIdScan::default();
        scan.feed(self, body);
        self.decide_scanned(v, &scan, || Some(body))
    }

    /// [`Visits::decide`] for a body read in chunks: `scan` has seen every chunk, and `body`
    /// gives the whole body, asked for only when it must be parsed (a rule holds, or the fixed
    /// id is in it), so a counted visit's body is never copied.
    pub fn decide_scanned<B: AsRef<[u8]>>(
        &self,
        v: &Visitor<'_>,
        scan: &FixedIdScan,
        body: impl FnOnce() -> Option<B>,
    ) -> Verdict {
        let rule = self.rule(v);
        if rule.is_none() && !scan.seen {
            return Verdict::Forward;
        }
        let Some(body) = body() else {
            return Verdict::Forward;
        };
        let answer = graphql::read(body.as_ref()).and_then(|w| w.answer(rule.is_some()));
        match answer {
            Some(answer) => Verdict::Ignore {
                reason: rule.unwrap_or(Reason::IgnoredId),
                body: Bytes::from(answer),
            },
            None => Verdict::Forward,
        }
    }
}

/// Whether a body read in chunks contains [`FIXED_ID`], wherever the chunks split it; keeps the
/// end of the previous chunk on the stack, allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedIdScan {
    /// The last bytes seen, fewer than the id's length.
    tail: [u8; FIXED_ID.len() - 1],
    tail_len: usize,
    seen: bool,
}

impl Default for FixedIdScan {
    fn default() -> Self {
        FixedIdScan {
            tail: [0; FIXED_ID.len() - 1],
            tail_len: 0,
            seen: false,
        }
    }
}

impl FixedIdScan {
    /// Feeds the next chunk of the body.
    pub fn feed(&mut self, visits: &Visits, chunk: &[u8]) {
        if self.seen || chunk.is_empty() {
            return;
        }
        let keep = FIXED_ID.len() - 1;
        // An id that starts in the kept tail and ends in this chunk.
        let mut seam = [0u8; 2 * (FIXED_ID.len() - 1)];
        let head = &chunk[..chunk.len().min(keep)];
        seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        seam[self.tail_len..self.tail_len + head.len()].copy_from_slice(head);
        let seam = &seam[..self.tail_len + head.len()];
        if visits.fixed_id.find(seam).is_some() || visits.fixed_id.find(chunk).is_some() {
            self.seen = true;
            return;
        }
        // The new tail: the last `keep` bytes of what was seen.
        let from_seam = seam.len().min(keep);
        let tail_src = &seam[seam.len() - from_seam..];
        if chunk.len() >= keep {
            self.tail.copy_from_slice(&chunk[chunk.len() - keep..]);
            self.tail_len = keep;
        } else {
            self.tail[..tail_src.len()].copy_from_slice(tail_src);
            self.tail_len = tail_src.len();
        }
    }

    /// Whether the id was seen.
    pub fn seen(&self) -> bool {
        self.seen
    }
}

/// Whether a `Content-Type` is JSON as Apollo Server reads a body: `application/json`, any
/// parameters, any case.
fn is_json(content_type: &[u8]) -> bool {
    let essence = content_type.split(|&b| b == b';').next().unwrap_or(b"");
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/json")
}

#[cfg(test)]
mod tests {
    use super::graphql::tests::tracker_body;
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36";
    const DOMAIN: &str = "d0000000-0000-4000-8000-000000000001";
    const RECORD: &str = "00000000-0000-4000-8000-000000000001";

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    fn all_rules() -> Visits {
        Visits::new(&VisitSettings {
            ignore_bots: true,
            ignore_networks: vec![cidr("192.0.2.0/24"), cidr("2001:db8::/32")],
            honor_gpc: true,
            honor_dnt: true,
        })
        .unwrap()
    }

    fn visitor(ua: &'static str, client: &str, gpc: bool, dnt: bool) -> Visitor<'static> {
        Visitor {
            user_agent: ua.as_bytes(),
            client: client.parse().ok(),
            gpc,
            dnt,
        }
    }

    #[test]
    fn the_first_rule_that_holds_is_the_reason() {
        let v = all_rules();
        let chrome_only = Visits::new(&VisitSettings::default()).unwrap();
        // (rules, visitor, reason)
        let cases: &[(&Visits, Visitor<'_>, Option<Reason>)] = &[
            (&v, visitor(CHROME, "198.51.100.7", false, false), None),
            (
                &v,
                visitor(CHROME, "192.0.2.9", false, false),
                Some(Reason::Network),
            ),
            (
                &v,
                visitor(CHROME, "::ffff:192.0.2.9", false, false),
                Some(Reason::Network),
            ),
            (
                &v,
                visitor(CHROME, "2001:db8:1::9", false, false),
                Some(Reason::Network),
            ),
            (&v, visitor(CHROME, "2001:db9::9", false, false), None),
            (
                &v,
                visitor(HEADLESS, "192.0.2.9", true, true),
                Some(Reason::Network),
            ),
            (
                &v,
                visitor(HEADLESS, "198.51.100.7", true, true),
                Some(Reason::Gpc),
            ),
            (
                &v,
                visitor(HEADLESS, "198.51.100.7", false, true),
                Some(Reason::Dnt),
            ),
            (
                &v,
                visitor(HEADLESS, "198.51.100.7", false, false),
                Some(Reason::Bot),
            ),
            (&v, visitor(HEADLESS, "", false, false), Some(Reason::Bot)),
            (&v, visitor("", "198.51.100.7", false, false), None),
            (&chrome_only, visitor(CHROME, "192.0.2.9", true, true), None),
            (
                &chrome_only,
                visitor(HEADLESS, "192.0.2.9", true, true),
                Some(Reason::Bot),
            ),
            (
                &Visits::off(),
                visitor(HEADLESS, "192.0.2.9", true, true),
                None,
            ),
        ];
        for (i, (rules, vis, want)) in cases.iter().enumerate() {
            assert_eq!(rules.rule(vis), *want, "case {i}");
            assert_eq!(rules.rule_why(vis).map(|(r, _)| r), *want, "case {i}");
        }
        let (_, why) = v
            .rule_why(&visitor(CHROME, "192.0.2.9", false, false))
            .unwrap();
        assert_eq!(why, "192.0.2.0/24");
        let (_, why) = v.rule_why(&visitor(HEADLESS, "", false, false)).unwrap();
        assert_eq!(why, "headless");
        assert!(!Visits::off().is_on());
        assert!(chrome_only.is_on() && !chrome_only.needs_client() && v.needs_client());
    }

    #[test]
    fn the_decision_for_each_tracker_write() {
        let v = all_rules();
        let chrome = visitor(CHROME, "198.51.100.7", false, false);
        let bot = visitor(HEADLESS, "198.51.100.7", false, false);
        let office = visitor(CHROME, "192.0.2.1", false, false);
        let create = tracker_body("createRecord", DOMAIN);
        let update_fixed = tracker_body("updateRecord", FIXED_ID);
        let update_real = tracker_body("updateRecord", RECORD);
        // (visitor, body, reason of the answer at the edge; None: forwarded)
        let cases: &[(&Visitor<'_>, &str, Option<Reason>)] = &[
            (&chrome, &create, None),
            (&bot, &create, Some(Reason::Bot)),
            (&office, &create, Some(Reason::Network)),
            (&chrome, &update_fixed, Some(Reason::IgnoredId)),
            (&bot, &update_fixed, Some(Reason::Bot)),
            (&chrome, &update_real, None),
            (&bot, &update_real, None),
            (&bot, "not json", None),
            (&bot, r#"{"query":"{ domains { id title } }"}"#, None),
        ];
        for (i, (vis, body, want)) in cases.iter().enumerate() {
            let got = match v.decide(vis, body.as_bytes()) {
                Verdict::Forward => None,
                Verdict::Ignore { reason, body } => {
                    assert!(body.ends_with(b"}\n"), "{body:?}");
                    Some(reason)
                }
            };
            assert_eq!(got, *want, "case {i}: {body}");
        }
    }

    #[test]
    fn the_fixed_id_is_found_wherever_the_chunks_split_it() {
        let v = Visits::off();
        let body = tracker_body("updateRecord", FIXED_ID);
        let other = tracker_body("updateRecord", RECORD);
        let almost = format!("{}7", &FIXED_ID[..FIXED_ID.len() - 1]);
        for (text, want) in [
            (body.as_str(), true),
            (other.as_str(), false),
            (almost.as_str(), false),
        ] {
            let b = text.as_bytes();
            // Every split into two chunks, and into three around the id.
            for i in 0..=b.len() {
                let mut scan = FixedIdScan::default();
                scan.feed(&v, &b[..i]);
                scan.feed(&v, &b[i..]);
                assert_eq!(scan.seen(), want, "{text} split at {i}");
            }
            for size in 1..=FIXED_ID.len() + 1 {
                let mut scan = FixedIdScan::default();
                for chunk in b.chunks(size) {
                    scan.feed(&v, chunk);
                }
                assert_eq!(scan.seen(), want, "{text} in chunks of {size}");
            }
        }
    }

    #[test]
    fn only_json_posts_to_api_are_looked_at() {
        let v = Visits::new(&VisitSettings::default()).unwrap();
        let json = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            h
        };
        let tracker = json("application/json;charset=UTF-8");
        let cases: &[(Method, &str, HeaderMap, bool)] = &[
            (Method::POST, "/api", tracker.clone(), true),
            (Method::POST, "/api", json("Application/JSON"), true),
            (
                Method::POST,
                "/api",
                json(" application/json ; charset=utf-8"),
                true,
            ),
            (Method::POST, "/api", json("text/plain"), false),
            (Method::POST, "/api", json("application/jsonx"), false),
            (Method::POST, "/api", json("application/graphql"), false),
            (Method::POST, "/api", HeaderMap::new(), false),
            (Method::POST, "/api/", tracker.clone(), false),
            (Method::POST, "/API", tracker.clone(), false),
            (Method::GET, "/api", tracker.clone(), false),
            (
                Method::PATCH,
                "/domains/d/records/r",
                tracker.clone(),
                false,
            ),
        ];
        for (method, path, headers, want) in cases {
            assert_eq!(
                v.applies(method, path, headers),
                *want,
                "{method} {path} {headers:?}"
            );
        }
        assert!(!Visits::off().applies(&Method::POST, "/api", &tracker));
    }

    #[test]
    fn the_visitor_is_read_from_the_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::USER_AGENT, HeaderValue::from_static(CHROME));
        h.insert("sec-gpc", HeaderValue::from_static(" 1 "));
        h.insert("dnt", HeaderValue::from_static("0"));
        let v = Visitor::of(&h, None);
        assert_eq!(v.user_agent, CHROME.as_bytes());
        assert!(v.gpc && !v.dnt);
        let empty = HeaderMap::new();
        assert_eq!(Visitor::of(&empty, None), Visitor::default());
        // The request path reads only what the rules that are on need.
        let bots_only = Visits::new(&VisitSettings::default()).unwrap();
        let v = bots_only.visitor(&h, None);
        assert_eq!(v.user_agent, CHROME.as_bytes());
        assert!(!v.gpc && !v.dnt);
        assert_eq!(Visits::off().visitor(&h, None), Visitor::default());
        let mut dnt = h.clone();
        dnt.insert("dnt", HeaderValue::from_static("1"));
        let signals = Visits::new(&VisitSettings {
            ignore_bots: false,
            ignore_networks: Vec::new(),
            honor_gpc: true,
            honor_dnt: true,
        })
        .unwrap();
        let v = signals.visitor(&dnt, None);
        assert_eq!(v.user_agent, b"");
        assert!(v.gpc && v.dnt);
    }
}
