//! Connections nobody can pile up: how many a client may hold open at once
//! (`limits.max_connections_per_client`), how many the whole process holds (a bound below its
//! descriptor limit), and refusals in the log once per episode. Pure: the pingora layer
//! (`server/connections.rs`) asks at accept, before any TLS work, and tells when a connection
//! closes.
//!
//! - [`table`]: the open connections per client and in all, in memory fixed at start-up, and
//!   the decision for a new one.
//! - [`bound`]: the process's bound, from `RLIMIT_NOFILE`.
//! - [`episode`]: refusals announced once, then summarised.
//!
//! A client is keyed as the rate limits key it, by its address: an IPv4 address, or the /64
//! of an IPv6 one. Unlike the rate limits, which look through trusted proxies at the address
//! they forward, a connection belongs to its peer; a peer in `trusted_proxies` is exempt from
//! the per-client limit, since all its visitors share its connections.

pub mod bound;
pub mod episode;
pub mod table;

use std::net::IpAddr;

use crate::forwarded::TrustedProxies;

pub use bound::{Bound, bound_for};
pub use episode::RefusalTally;
pub use table::{Refusal, Table};

/// The default `limits.max_connections_per_client`. A browser opens at most 6 HTTP/1.1
/// connections to a host and one HTTP/2 connection to an origin (two when it mixes requests
/// with and without credentials); behind a carrier-grade NAT that gives each subscriber a
/// block of 512 of an address's 64,512 ports, one address carries about 126 subscribers:
/// 126 × 6 = 756 connections if every one of them had the site open at once over HTTP/1.1.
/// 1,024 admits that, and keeps one address to a small share of the process's bound (49,088
/// under the shipped unit).
pub const DEFAULT_PER_CLIENT: u32 = 1024;

/// The largest `limits.max_connections_per_client` accepted.
pub const MAX_PER_CLIENT: u32 = 1_000_000;

/// The key a peer's connections are counted under for the per-client limit, or `None` for a
/// peer in `trusted_proxies`, which is exempt.
pub fn client_key(peer: IpAddr, trusted: &TrustedProxies) -> Option<u128> {
    (!trusted.trusts(peer)).then(|| crate::ratelimit::client_key(peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarded::Cidr;

    #[test]
    fn peers_are_keyed_like_the_rate_limits_and_trusted_proxies_are_exempt() {
        let trusted = TrustedProxies::new(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8:ffff::/48").unwrap(),
        ]);
        let key = |s: &str| client_key(s.parse().unwrap(), &trusted);
        let cases: &[(&str, &str, bool)] = &[
            // a, b, same key
            ("192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("192.0.2.1", "::ffff:192.0.2.1", true),
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("127.0.0.1", "127.0.0.2", false),
        ];
        for (a, b, same) in cases {
            assert!(key(a).is_some() && key(b).is_some(), "{a}, {b}");
            assert_eq!(key(a) == key(b), *same, "{a} vs {b}");
        }
        for exempt in ["10.1.2.3", "::ffff:10.9.9.9", "2001:db8:ffff:1::1"] {
            assert_eq!(key(exempt), None, "{exempt}");
        }
    }
}
