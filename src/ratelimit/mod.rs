//! Per-client rate limits: tracker writes, and login attempts (`createToken`), each counted per
//! client address over a one-minute sliding window, in memory that is fixed at start-up
//! whatever the number of clients.
//!
//! - [`request`]: which rule a request falls under (method, path, the `createToken` calls in its
//!   body); pure.
//! - [`window`]: the decision and its `Retry-After`; pure.
//! - This file: the counters, one pingora-limits [`Rate`] per rule. pingora-limits is a
//!   standalone crate (a count-min sketch on atomics, with `ahash`), not the proxy framework.
//!
//! A count-min sketch never under-counts: a client is never admitted more often than its
//! limit because of it. It can over-count when many addresses land on the same counters: N
//! requests from other addresses in the same minute put about N / slots on each counter, and a
//! client's estimate is the lowest of its `HASHES` counters. The login rule, whose traffic an
//! attacker chooses and whose limit is small, gets `LOGIN_SLOTS` counters per row: with
//! 100,000 other addresses guessing in the same minute, a new client usually keeps all 5 of its
//! attempts and rarely loses more than one (each of its counters holds about 1.5 others'
//! guesses, and the lowest of four is taken). The tracker rule gets `TRACKER_SLOTS`: 100,000
//! other addresses in a minute cost a new client a few of its 300 requests. The hashes are keyed at random at start-up, so nobody can choose
//! addresses that collide with someone else's.

pub mod request;
pub mod window;

use std::net::IpAddr;

use http::HeaderValue;
use pingora_limits::rate::Rate;

pub(crate) use request::write_kind;
pub use request::{LoginScan, Write};
pub use window::{Counts, RetryAfter, Verdict};
pub(crate) use window::{WINDOW, decide};

/// Rows of each count-min sketch.
pub(crate) const HASHES: usize = 4;
/// Counters per row for the tracker rule.
pub(crate) const TRACKER_SLOTS: usize = 16_384;
/// Counters per row for the login rule.
pub(crate) const LOGIN_SLOTS: usize = 65_536;

/// The largest `requests_per_minute` accepted.
pub(crate) const MAX_PER_MINUTE: u32 = 1_000_000;

/// Which limit a request is counted against. Its label is one of a fixed set, safe for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Tracker writes: `POST /api`, and `POST`/`PATCH` under `/domains/`.
    Tracker,
    /// Dashboard logins: `createToken` calls in a `POST /api` body.
    Login,
}

impl Rule {
    /// Every rule, in label order.
    pub(crate) const ALL: [Rule; 2] = [Rule::Tracker, Rule::Login];

    /// The metric label value, also the config key.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rule::Tracker => "tracker",
            Rule::Login => "login",
        }
    }

    /// The short text body of the 429 answer.
    pub(crate) fn body(self) -> &'static [u8] {
        match self {
            Rule::Tracker => b"Too Many Requests: this address sends too many\n",
            Rule::Login => b"Too Many Requests: too many login attempts from this address\n",
        }
    }
}

/// The limits as configured: requests per minute per client, `None` when off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// `rate_limits.tracker.requests_per_minute`.
    pub tracker: Option<u32>,
    /// `rate_limits.login.requests_per_minute`.
    pub login: Option<u32>,
}

impl RateLimits {
    /// The default login limit: a person mistypes a password a few times, a script thousands.
    pub(crate) const LOGIN: u32 = 5;
}

/// The tracker limit is off by default: no per-address number holds for every site. An open
/// tab sends 5 tracker writes a minute (a `createRecord`, then an `updateRecord` every 15 s,
/// measured with the real tracker in tests/browser.rs), and one IPv4 address may carry hundreds
/// or thousands of people (carrier-grade NAT, offices, campuses), so any limit that stops a
/// replay also drops real visitors somewhere (README, "Rate limits").
impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            tracker: None,
            login: Some(Self::LOGIN),
        }
    }
}

/// The key a client is counted under: an IPv4 address, or the /64 network of an IPv6 address
/// (one host usually has a whole /64 to choose addresses from).
pub(crate) fn client_key(ip: IpAddr) -> u128 {
    match crate::forwarded::canonical(ip) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6) & !u128::from(u64::MAX),
    }
}

/// One rule's limit and counters.
struct Counter {
    limit: u32,
    #[cfg(test)]
    slots: usize,
    rate: Rate,
}

impl Counter {
    fn new(limit: u32, slots: usize) -> Counter {
        Counter {
            limit,
            #[cfg(test)]
            slots,
            rate: Rate::new_with_estimator_config(WINDOW, HASHES, slots),
        }
    }

    /// Two windows of `HASHES` × `slots` atomic counters.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        2 * HASHES * self.slots * std::mem::size_of::<std::sync::atomic::AtomicIsize>()
    }

    fn check(&self, key: u128, cost: u32) -> Verdict {
        let counts = self.rate.rate_with(&key, |c| Counts {
            previous: c.prev_samples,
            current: c.curr_samples,
            elapsed: c.current_interval_fraction,
        });
        let verdict = decide(self.limit, cost, counts, WINDOW);
        if verdict == Verdict::Admit {
            self.rate
                .observe(&key, isize::try_from(cost).unwrap_or(isize::MAX));
        }
        verdict
    }
}

/// Every rule's counters, built once at start-up and shared by all listeners.
pub struct RateLimiter {
    tracker: Option<Counter>,
    login: Option<Counter>,
    retry_after: RetryAfter,
}

/// A refusal: the rule, and the `Retry-After` value to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused<'a> {
    /// The rule the request broke.
    pub rule: Rule,
    /// `Retry-After`, in seconds.
    pub retry_after: &'a HeaderValue,
}

impl RateLimiter {
    /// Counters for the configured limits.
    pub(crate) fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            tracker: limits.tracker.map(|l| Counter::new(l, TRACKER_SLOTS)),
            login: limits.login.map(|l| Counter::new(l, LOGIN_SLOTS)),
            retry_after: RetryAfter::default(),
        }
    }

    /// Whether a request's body must be scanned for `createToken`.
    pub(crate) fn scans_body(&self, write: Option<Write>) -> bool {
        self.login.is_some() && write == Some(Write::Api)
    }

    /// The rule a request is counted against, and its cost: `logins` (the `createToken` calls
    /// in its body) under the login limit, else 1 under the tracker limit; `None` if neither
    /// applies or the rule is off.
    pub(crate) fn rule(&self, write: Option<Write>, logins: u32) -> Option<(Rule, u32)> {
        match write? {
            Write::Api if logins > 0 && self.login.is_some() => Some((Rule::Login, logins)),
            _ if self.tracker.is_some() => Some((Rule::Tracker, 1)),
            _ => None,
        }
    }

    /// Counts a request of `cost` from `client` against `rule`, or refuses it.
    pub(crate) fn check(&self, rule: Rule, client: IpAddr, cost: u32) -> Result<(), Refused<'_>> {
        let counter = match rule {
            Rule::Tracker => &self.tracker,
            Rule::Login => &self.login,
        };
        let Some(counter) = counter else {
            return Ok(());
        };
        match counter.check(client_key(client), cost) {
            Verdict::Admit => Ok(()),
            Verdict::Refuse { retry_after } => Err(Refused {
                rule,
                retry_after: self.retry_after.get(retry_after),
            }),
        }
    }

    /// The bytes of counters held, fixed at construction: two windows of `HASHES` rows of
    /// atomic counters per rule that is on (1 MiB for the tracker rule, 4 MiB for login).
    #[cfg(test)]
    fn counter_bytes(&self) -> usize {
        [&self.tracker, &self.login]
            .into_iter()
            .flatten()
            .map(Counter::bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// How many requests in a row a client gets through.
    fn admitted(l: &RateLimiter, rule: Rule, client: IpAddr, tries: u32) -> u32 {
        (0..tries)
            .filter(|_| l.check(rule, client, 1).is_ok())
            .count() as u32
    }

    #[test]
    fn keys_are_addresses_and_ipv6_slash_64s() {
        let cases: &[(&str, &str, bool)] = &[
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("192.0.2.1", "::ffff:192.0.2.1", true),
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::ffff:192.0.2.1", "::", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(client_key(ip(a)) == client_key(ip(b)), *same, "{a} vs {b}");
        }
    }

    #[test]
    fn a_burst_is_limited_for_its_client_only() {
        let l = RateLimiter::new(RateLimits {
            tracker: Some(10),
            login: Some(2),
        });
        assert_eq!(admitted(&l, Rule::Tracker, ip("198.51.100.1"), 25), 10);
        let refused = l.check(Rule::Tracker, ip("198.51.100.1"), 1).unwrap_err();
        assert_eq!(refused.rule, Rule::Tracker);
        let secs: u32 = refused.retry_after.to_str().unwrap().parse().unwrap();
        assert!((1..=120).contains(&secs), "{secs}");
        assert_eq!(admitted(&l, Rule::Tracker, ip("198.51.100.2"), 25), 10);
        // Logins are counted apart from tracker writes.
        assert_eq!(admitted(&l, Rule::Login, ip("198.51.100.1"), 5), 2);
        // One IPv6 /64 is one client.
        assert_eq!(admitted(&l, Rule::Tracker, ip("2001:db8::1"), 6), 6);
        assert_eq!(admitted(&l, Rule::Tracker, ip("2001:db8::2"), 6), 4);
        assert_eq!(admitted(&l, Rule::Tracker, ip("2001:db8:0:1::1"), 6), 6);
    }

    /// Both rules on, at the limits the README's examples use.
    fn both() -> RateLimits {
        RateLimits {
            tracker: Some(300),
            login: Some(5),
        }
    }

    #[test]
    fn by_default_only_logins_are_limited() {
        let l = RateLimiter::new(RateLimits::default());
        assert_eq!(l.rule(Some(Write::Api), 0), None);
        assert_eq!(l.rule(Some(Write::Legacy), 0), None);
        assert_eq!(l.rule(Some(Write::Api), 1), Some((Rule::Login, 1)));
        assert_eq!(l.counter_bytes(), 4 << 20, "the login rule's counters only");
    }

    #[test]
    fn rules_follow_the_request_and_what_is_on() {
        let both = RateLimiter::new(both());
        let tracker_only = RateLimiter::new(RateLimits {
            tracker: Some(300),
            login: None,
        });
        let login_only = RateLimiter::new(RateLimits {
            tracker: None,
            login: Some(5),
        });
        let api = Some(Write::Api);
        let legacy = Some(Write::Legacy);
        type Case<'a> = (&'a RateLimiter, Option<Write>, u32, Option<(Rule, u32)>);
        let cases: &[Case<'_>] = &[
            (&both, api, 0, Some((Rule::Tracker, 1))),
            (&both, api, 1, Some((Rule::Login, 1))),
            (&both, api, 3, Some((Rule::Login, 3))),
            (&both, legacy, 0, Some((Rule::Tracker, 1))),
            (&both, None, 0, None),
            (&tracker_only, api, 2, Some((Rule::Tracker, 1))),
            (&login_only, api, 0, None),
            (&login_only, api, 1, Some((Rule::Login, 1))),
            (&login_only, legacy, 0, None),
        ];
        for (i, (l, write, logins, want)) in cases.iter().enumerate() {
            assert_eq!(l.rule(*write, *logins), *want, "case {i}");
        }
        assert!(both.scans_body(api));
        assert!(!both.scans_body(legacy));
        assert!(!tracker_only.scans_body(api));
        let off = RateLimiter::new(RateLimits {
            tracker: None,
            login: None,
        });
        assert_eq!(off.counter_bytes(), 0);
        assert!(off.check(Rule::Tracker, ip("192.0.2.1"), 1).is_ok());
    }

    #[test]
    fn several_logins_in_one_request_count_as_several() {
        let l = RateLimiter::new(both());
        let c = ip("203.0.113.5");
        assert!(l.check(Rule::Login, c, 3).is_ok());
        assert!(l.check(Rule::Login, c, 3).is_err(), "3 + 3 > 5");
        assert!(l.check(Rule::Login, c, 2).is_ok());
        assert!(l.check(Rule::Login, c, 1).is_err());
        assert!(l.check(Rule::Login, ip("203.0.113.6"), 6).is_err());
    }

    #[test]
    fn memory_is_fixed_and_limits_hold_after_100_000_addresses() {
        let l = RateLimiter::new(both());
        let before = l.counter_bytes();
        assert_eq!(before, 5 << 20, "5 MiB, whatever the traffic");
        for i in 0..100_000u32 {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            assert!(l.check(Rule::Tracker, a, 1).is_ok(), "{a} is new");
        }
        for i in 0..100_000u128 {
            let a = IpAddr::V6((0x2001_0db8_u128 << 96 | i << 64).into());
            assert!(l.check(Rule::Login, a, 1).is_ok(), "{a} is new");
        }
        assert_eq!(l.counter_bytes(), before);
        // A new client still gets nearly its whole budget: the sketch over-counts a little.
        // Each counter holds Poisson-many other keys (mean 6.1 for the tracker, 1.5 for
        // login) and the lowest of 4 is taken; the bounds below fail about once in 10^5 runs.
        let fresh = admitted(&l, Rule::Tracker, ip("192.0.2.200"), 400);
        assert!((285..=300).contains(&fresh), "{fresh}");
        let fresh = admitted(&l, Rule::Login, ip("192.0.2.200"), 10);
        assert!((2..=5).contains(&fresh), "{fresh}");
        // And a burst is still cut at the limit.
        assert_eq!(admitted(&l, Rule::Tracker, ip("192.0.2.200"), 10), 0);
    }
}
