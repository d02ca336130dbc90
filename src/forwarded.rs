//! Who the visitor is: trusted-proxy CIDRs and the client-IP headers Ackee's `request-ip` believes.
//!
//! Ackee records the visitor's address through the `request-ip` package, which trusts
//! `X-Client-IP` before anything else, then `X-Forwarded-For`, `CF-Connecting-IP` and a long
//! list of others. A visitor who sends one of those headers chooses the address Ackee records.
//! The gateway therefore removes them from requests whose peer is not a trusted proxy, replaces
//! `X-Forwarded-For` with the peer address, and sets `X-Real-IP` and `X-Forwarded-Proto`.
//! From a trusted proxy, the headers pass and the peer is appended to `X-Forwarded-For`.
//! [`edits`] decides all of that for one request; the proxy only carries the [`Edits`] out.

use std::fmt;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};

/// The client-IP headers that `request-ip` trusts and that a visitor could forge, other than
/// `X-Forwarded-For` and `X-Real-IP`, which the gateway sets itself.
static SPOOFABLE: [HeaderName; 8] = [
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("fastly-client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-forwarded"),
    HeaderName::from_static("forwarded-for"),
    HeaderName::from_static("forwarded"),
];

/// `X-Forwarded-For`.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Real-IP`.
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Forwarded-Proto`.
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What happens to one header of a request on its way to Ackee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Every line of the header is removed.
    Remove,
    /// The header is set to this value, in place of every line it had.
    Set(HeaderValue),
}

/// The edits that make one request's client-IP headers safe to hand to Ackee, made in this
/// order: the [`SPOOFABLE`] headers removed (from a peer that is not a trusted proxy), then
/// `X-Forwarded-For`, `X-Real-IP` and `X-Forwarded-Proto`, each set, removed or left alone.
/// A value of fixed size: nothing is allocated for it but the header values it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Edits {
    /// Whether every [`SPOOFABLE`] header is removed.
    pub(crate) remove_spoofable: bool,
    /// `X-Forwarded-For`, if it changes.
    pub(crate) forwarded_for: Option<Edit>,
    /// `X-Real-IP`, if it changes.
    pub(crate) real_ip: Option<Edit>,
    /// `X-Forwarded-Proto`, if it is set.
    pub(crate) proto: Option<HeaderValue>,
}

impl Edits {
    /// Makes every edit, in order, with `edit` (given the header's name and what happens to
    /// it); stops at the first error.
    pub(crate) fn apply<E>(
        self,
        mut edit: impl FnMut(&'static HeaderName, Edit) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.remove_spoofable {
            for name in &SPOOFABLE {
                edit(name, Edit::Remove)?;
            }
        }
        let set = [
            (&X_FORWARDED_FOR, self.forwarded_for),
            (&X_REAL_IP, self.real_ip),
            (&X_FORWARDED_PROTO, self.proto.map(Edit::Set)),
        ];
        for (name, change) in set {
            if let Some(change) = change {
                edit(name, change)?;
            }
        }
        Ok(())
    }
}

/// The edits to a request's client-IP headers before it goes to Ackee. `peer` is the address
/// that connected (none for a peer that is not an IP socket), `headers` the request's headers
/// as the client sent them, `proto` the listener's scheme as a header value.
///
/// From a peer that is not a trusted proxy: every header Ackee's `request-ip` believes is
/// replaced: the spoofable ones removed, `X-Forwarded-For` and `X-Real-IP` set to the peer (or
/// removed when there is none), `X-Forwarded-Proto` set to `proto`. From a trusted proxy: the
/// peer is appended to `X-Forwarded-For`, and `X-Real-IP` and `X-Forwarded-Proto` are set only
/// when the proxy did not send them.
pub(crate) fn edits(
    peer: Option<IpAddr>,
    trusted: &TrustedProxies,
    headers: &HeaderMap,
    proto: &HeaderValue,
) -> Edits {
    let trusted = peer.is_some_and(|ip| trusted.trusts(ip));
    let sent = |name: &HeaderName| trusted && headers.contains_key(name);
    let (forwarded_for, real_ip) = match peer {
        Some(ip) => {
            let ip = IpText::of(ip);
            let sent_for = headers.get_all(&X_FORWARDED_FOR).iter();
            let forwarded_for = Edit::Set(forwarded_for(sent_for, &ip, trusted));
            let real_ip = (!sent(&X_REAL_IP)).then(|| Edit::Set(real_ip(&ip)));
            (Some(forwarded_for), real_ip)
        }
        None => (Some(Edit::Remove), Some(Edit::Remove)),
    };
    Edits {
        remove_spoofable: !trusted,
        forwarded_for,
        real_ip,
        proto: (!sent(&X_FORWARDED_PROTO)).then(|| proto.clone()),
    }
}

/// An IP network in CIDR notation, such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR could not be parsed, phrased to follow the quoted input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX`, or a bare address as a single host.
    ///
    /// Host bits must be zero (`10.0.0.1/8` is refused, because it usually hides a typo).
    pub(crate) fn parse(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.parse().map_err(|_| {
            CidrError(format!(
                "\"{text}\" is not an IP address or network; write one such as \"10.0.0.0/8\", \"192.0.2.7\" or \"2001:db8::/32\""
            ))
        })?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(CidrError(format!(
                        "\"{text}\" has the prefix length \"{p}\"; write a number from 0 to {max}"
                    )));
                }
            },
        };
        let cidr = Cidr { network, prefix };
        let masked = cidr.mask(network);
        if masked != network {
            return Err(CidrError(format!(
                "\"{text}\" has host bits set; write \"{masked}/{prefix}\", or \"{network}\" for that one host"
            )));
        }
        Ok(cidr)
    }

    fn mask(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    /// Whether an address lies in this network. IPv4-mapped IPv6 addresses count as IPv4.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                self.mask(ip) == self.network
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `::ffff:192.0.2.1` becomes `192.0.2.1`, so dual-stack sockets compare like IPv4 ones.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The networks whose client-IP headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// A list of trusted networks; empty trusts nobody.
    pub(crate) fn new(cidrs: Vec<Cidr>) -> Self {
        TrustedProxies(cidrs)
    }

    /// Whether a peer address is a trusted proxy.
    pub(crate) fn trusts(&self, peer: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(peer))
    }
}

/// The `X-Forwarded-For` to send to Ackee.
///
/// From a trusted proxy, the peer is appended to what the proxy sent (several header lines are
/// joined). From anyone else, whatever the client sent is dropped and the value is the peer alone,
/// so Ackee records the address that really connected whichever end of the list it reads.
fn forwarded_for<'a>(
    existing: impl Iterator<Item = &'a HeaderValue>,
    peer: &IpText,
    trusted: bool,
) -> HeaderValue {
    if !trusted {
        // The common case: the peer alone, with one allocation (the value's own).
        return peer.value();
    }
    let mut out = String::with_capacity(64);
    for value in existing {
        if let Ok(text) = value.to_str() {
            let text = text.trim().trim_matches(',').trim();
            if !text.is_empty() {
                out.push_str(text);
                out.push_str(", ");
            }
        }
    }
    out.push_str(peer.as_str());
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An address written out on the stack, in its canonical form: an IPv6 address is at most 45
/// characters, so writing it needs no allocation. Written once per request, for both
/// `X-Forwarded-For` and `X-Real-IP`.
struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    /// `ip` in its canonical form. IPv4, the common case, is written digit by digit: the
    /// formatting machinery cost more than the rest of the header work.
    fn of(ip: IpAddr) -> IpText {
        let mut text = IpText {
            buf: [0; 48],
            len: 0,
        };
        match canonical(ip) {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    text.push_decimal(octet);
                }
            }
            // Cannot fail: the longest address fits.
            v6 => drop(fmt::Write::write_fmt(&mut text, format_args!("{v6}"))),
        }
        text
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_decimal(&mut self, n: u8) {
        if n >= 100 {
            self.push(b'0' + n / 100);
        }
        if n >= 10 {
            self.push(b'0' + n / 10 % 10);
        }
        self.push(b'0' + n % 10);
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("unknown")
    }

    fn value(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.buf[..self.len])
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The visitor's address: the peer's, or, from a trusted proxy, the one it reports in
/// `X-Real-IP` or first in `X-Forwarded-For`. Used for consistent hashing.
pub(crate) fn client_ip(peer: IpAddr, trusted: bool, headers: &http::HeaderMap) -> IpAddr {
    if trusted {
        let reported = headers
            .get(&X_REAL_IP)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<IpAddr>().ok())
            .or_else(|| {
                headers
                    .get(&X_FORWARDED_FOR)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.split(',').next())
                    .and_then(|s| s.trim().parse::<IpAddr>().ok())
            });
        if let Some(ip) = reported {
            return canonical(ip);
        }
    }
    canonical(peer)
}

/// The client a rate limit counts: the peer, or, from a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy (nginx's `real_ip_recursive`).
///
/// Not the leftmost entry, nor `X-Real-IP`, as [`client_ip`] reads them: a proxy appends the
/// address it saw to whatever the client sent, so the left end is the client's to choose, and
/// a client that could choose its address would get a fresh limit with every request. When every
/// entry is a trusted proxy, the leftmost is the client; an entry that is not an address stops
/// the walk at the last trusted hop. Nothing is allocated.
pub(crate) fn limit_client(
    peer: IpAddr,
    trusted: &TrustedProxies,
    headers: &http::HeaderMap,
) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted.trusts(client) {
        return client;
    }
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for entry in text.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                return client;
            };
            client = canonical(ip);
            if !trusted.trusts(client) {
                return client;
            }
        }
    }
    client
}

/// The bytes of an address, for hashing, without allocating.
pub(crate) fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

/// The peer address as a header value, for `X-Real-IP`.
fn real_ip(peer: &IpText) -> HeaderValue {
    peer.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_whole_up_to_the_longest_ipv6() {
        for ip in [
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::1",
            "255.255.255.255",
            "::1",
        ] {
            let peer = IpText::of(ip.parse().unwrap());
            assert_eq!(real_ip(&peer), ip);
            assert_eq!(forwarded_for([].iter(), &peer, false), ip);
        }
        let mapped = IpText::of("::ffff:203.0.113.255".parse().unwrap());
        assert_eq!(real_ip(&mapped), "203.0.113.255");
    }

    #[test]
    fn ipv4_is_written_as_std_writes_it() {
        let octets = [0, 1, 9, 10, 42, 99, 100, 101, 199, 200, 250, 255];
        for a in octets {
            for b in octets {
                let ip = std::net::Ipv4Addr::new(a, b, 255 - a, 9);
                assert_eq!(IpText::of(IpAddr::V4(ip)).as_str(), ip.to_string());
            }
        }
    }

    #[test]
    fn forwarded_for_appends_only_behind_trusted_proxies() {
        let sent = [
            HeaderValue::from_static("6.6.6.6, 10.0.0.1"),
            HeaderValue::from_static("10.0.0.2"),
        ];
        let peer = IpText::of("192.0.2.9".parse().unwrap());
        assert_eq!(
            forwarded_for(sent.iter(), &peer, true),
            "6.6.6.6, 10.0.0.1, 10.0.0.2, 192.0.2.9"
        );
        assert_eq!(forwarded_for(sent.iter(), &peer, false), "192.0.2.9");
        assert_eq!(forwarded_for([].iter(), &peer, true), "192.0.2.9");
        let mapped = IpText::of("::ffff:192.0.2.9".parse().unwrap());
        assert_eq!(forwarded_for([].iter(), &mapped, false), "192.0.2.9");
        assert_eq!(real_ip(&mapped), "192.0.2.9");
    }

    /// Every header `request-ip` reads to find the visitor's address, in the order it trusts
    /// them (Ackee 3.4.2).
    const REQUEST_IP: [&str; 10] = [
        "x-client-ip",
        "x-forwarded-for",
        "cf-connecting-ip",
        "fastly-client-ip",
        "true-client-ip",
        "x-real-ip",
        "x-cluster-client-ip",
        "x-forwarded",
        "forwarded-for",
        "forwarded",
    ];

    #[test]
    fn the_gateway_decides_every_header_request_ip_reads() {
        let mut decided: Vec<&str> = SPOOFABLE.iter().map(HeaderName::as_str).collect();
        decided.extend([X_FORWARDED_FOR.as_str(), X_REAL_IP.as_str()]);
        decided.sort_unstable();
        let mut read = REQUEST_IP;
        read.sort_unstable();
        assert_eq!(decided, read);
    }

    /// Header lines, as (name, value).
    type Lines<'a> = Vec<(&'a str, &'a str)>;

    /// The headers Ackee gets: `sent` after the edits for `peer`, sorted, each line a pair. The
    /// edits are made on an `http::HeaderMap` the way the proxy makes them on pingora's request.
    fn rewritten(peer: Option<&str>, sent: &[(&str, &str)]) -> Vec<(String, String)> {
        let trusted = TrustedProxies::new(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ]);
        let mut headers = HeaderMap::new();
        for (name, value) in sent {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        let peer = peer.map(|p| p.parse::<IpAddr>().unwrap());
        let https = HeaderValue::from_static("https");
        let changes = edits(peer, &trusted, &headers, &https);
        let applied = changes.apply(|name, edit| {
            match edit {
                Edit::Remove => drop(headers.remove(name)),
                Edit::Set(value) => drop(headers.insert(name, value)),
            }
            Ok::<(), ()>(())
        });
        assert_eq!(applied, Ok(()));
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn client_ip_headers_are_kept_only_from_trusted_proxies() {
        // Every header request-ip reads, forged, and the scheme.
        let mut forged: Lines = REQUEST_IP.iter().map(|n| (*n, "6.6.6.6")).collect();
        forged.push(("x-forwarded-proto", "http"));
        forged.push(("x-forwarded-for", "7.7.7.7"));
        forged.push(("user-agent", "curl"));
        let forged = &forged;
        let from_trusted_proxy: &Lines = &vec![
            ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ];
        let bare: &Lines = &vec![("user-agent", "curl")];
        let what_the_peer_is = |ip: &'static str| {
            vec![
                ("user-agent", "curl"),
                ("x-forwarded-for", ip),
                ("x-forwarded-proto", "https"),
                ("x-real-ip", ip),
            ]
        };
        let mut kept: Lines = forged
            .iter()
            .filter(|(n, _)| *n != "x-forwarded-for")
            .copied()
            .collect();
        kept.push(("x-forwarded-for", "6.6.6.6, 7.7.7.7, 10.0.0.2"));
        // (peer, headers sent, headers Ackee gets)
        let cases: Vec<(Option<&str>, &Lines, Lines)> = vec![
            // Not a trusted proxy: nothing it sent about the client survives.
            (Some("192.0.2.1"), forged, what_the_peer_is("192.0.2.1")),
            (Some("2001:db9::1"), forged, what_the_peer_is("2001:db9::1")),
            (
                Some("::ffff:192.0.2.1"),
                forged,
                what_the_peer_is("192.0.2.1"),
            ),
            (Some("192.0.2.1"), bare, what_the_peer_is("192.0.2.1")),
            // A trusted proxy: what it says passes, and it joins X-Forwarded-For.
            (Some("10.0.0.2"), forged, kept),
            (
                Some("2001:db8::5"),
                from_trusted_proxy,
                vec![
                    ("x-forwarded-for", "203.0.113.9, 10.0.0.1, 2001:db8::5"),
                    ("x-forwarded-proto", "https"),
                    ("x-real-ip", "203.0.113.9"),
                ],
            ),
            // ... and what it leaves out, the gateway fills in.
            (Some("10.0.0.2"), bare, what_the_peer_is("10.0.0.2")),
            (Some("::ffff:10.0.0.2"), bare, what_the_peer_is("10.0.0.2")),
            // No IP peer at all: no address is claimed for the client.
            (
                None,
                forged,
                vec![("user-agent", "curl"), ("x-forwarded-proto", "https")],
            ),
        ];
        for (peer, sent, want) in cases {
            let mut want: Vec<(String, String)> = want
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            want.sort();
            assert_eq!(rewritten(peer, sent), want, "{peer:?} sent {sent:?}");
        }
    }

    #[test]
    fn edits_are_made_in_order_and_stop_at_an_error() {
        let peer = Some("192.0.2.1".parse().unwrap());
        let https = HeaderValue::from_static("https");
        let changes = edits(peer, &TrustedProxies::default(), &HeaderMap::new(), &https);
        let mut made = Vec::new();
        let stopped = changes.clone().apply(|name, edit| {
            made.push((name.as_str(), edit));
            if name == X_REAL_IP {
                Err("full")
            } else {
                Ok(())
            }
        });
        assert_eq!(stopped, Err("full"));
        let names: Vec<&str> = made.iter().map(|(n, _)| *n).collect();
        let mut want: Vec<&str> = SPOOFABLE.iter().map(HeaderName::as_str).collect();
        want.extend(["x-forwarded-for", "x-real-ip"]);
        assert_eq!(names, want);
        let peer_value = HeaderValue::from_static("192.0.2.1");
        assert_eq!(made[9].1, Edit::Set(peer_value));
    }

    #[test]
    fn cidrs_parse_and_contain_the_right_addresses() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("2001:db8::/32", "2001:db8:1::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::1", "::1", true),
            ("::/0", "2001:db8::1", true),
        ];
        for (cidr, ip, want) in cases {
            let c = Cidr::parse(cidr).unwrap();
            assert_eq!(
                c.contains(ip.parse().unwrap()),
                *want,
                "{cidr} contains {ip}"
            );
        }
    }

    #[test]
    fn bad_cidrs_say_what_to_write() {
        let cases: &[(&str, &str)] = &[
            (
                "10.0.0.1/8",
                r#""10.0.0.1/8" has host bits set; write "10.0.0.0/8", or "10.0.0.1" for that one host"#,
            ),
            (
                "10.0.0.0/33",
                r#""10.0.0.0/33" has the prefix length "33"; write a number from 0 to 32"#,
            ),
            (
                "::/129",
                r#""::/129" has the prefix length "129"; write a number from 0 to 128"#,
            ),
            (
                "localhost",
                r#""localhost" is not an IP address or network; write one such as "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32""#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Cidr::parse(input).unwrap_err().to_string(), *want);
        }
    }

    #[test]
    fn the_client_address_comes_from_headers_only_behind_a_trusted_proxy() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.1"),
        );
        assert_eq!(client_ip(peer, false, &h), peer);
        assert_eq!(
            client_ip(peer, true, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        h.insert("x-real-ip", HeaderValue::from_static("198.51.100.4"));
        assert_eq!(
            client_ip(peer, true, &h),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        h.insert("x-real-ip", HeaderValue::from_static("not an ip"));
        assert_eq!(
            client_ip(peer, true, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let (b, n) = ip_bytes("192.0.2.1".parse().unwrap());
        assert_eq!(&b[..n], &[192, 0, 2, 1]);
    }

    #[test]
    fn the_limited_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::new(vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap(),
        ]);
        // (peer, X-Forwarded-For lines, client)
        let cases: &[(&str, &[&str], &str)] = &[
            ("192.0.2.1", &["203.0.113.9"], "192.0.2.1"),
            ("10.0.0.2", &["203.0.113.9"], "203.0.113.9"),
            ("10.0.0.2", &["6.6.6.6, 203.0.113.9"], "203.0.113.9"),
            (
                "10.0.0.2",
                &["6.6.6.6, 203.0.113.9, 10.0.0.1"],
                "203.0.113.9",
            ),
            (
                "10.0.0.2",
                &["6.6.6.6", "203.0.113.9, 10.0.0.1"],
                "203.0.113.9",
            ),
            ("10.0.0.2", &["10.0.0.7, 10.0.0.1"], "10.0.0.7"),
            ("10.0.0.2", &["6.6.6.6, garbage, 10.0.0.1"], "10.0.0.1"),
            ("10.0.0.2", &[], "10.0.0.2"),
            ("10.0.0.2", &[" , "], "10.0.0.2"),
            ("::ffff:10.0.0.2", &["::ffff:203.0.113.9"], "203.0.113.9"),
            ("2001:db8::5", &["2001:db9::1"], "2001:db9::1"),
        ];
        for (peer, lines, want) in cases {
            let mut h = http::HeaderMap::new();
            for l in *lines {
                h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
            }
            h.insert("x-real-ip", HeaderValue::from_static("198.51.100.77"));
            assert_eq!(
                limit_client(peer.parse().unwrap(), &t, &h),
                want.parse::<IpAddr>().unwrap(),
                "{peer} {lines:?}"
            );
        }
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        assert!(!TrustedProxies::default().trusts("127.0.0.1".parse().unwrap()));
        let t = TrustedProxies::new(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(t.trusts("127.0.0.1".parse().unwrap()));
        assert!(!t.trusts("192.0.2.1".parse().unwrap()));
    }
}
