//! Choosing a variant from `Accept-Encoding` (RFC 9110, section 12.5.3), in one pass over the
//! header and without allocating.
//!
//! - Each listed coding has a weight (`q`, 0 to 1, three decimals); `q=0` excludes it.
//! - `*` gives its weight to every coding the header does not list by name.
//! - `identity` is acceptable unless excluded (`identity;q=0`, or `*;q=0` without an entry
//!   for `identity`); when it is not listed it is the least preferred choice, so `gzip`
//!   alone means gzip.
//! - The highest weight wins, and a tie goes to the smaller variant.
//! - When nothing listed is available, the answer is `identity` anyway: the RFC's advice for
//!   an origin server, and what every browser reads.
//! - No header (or an empty one) means `identity`. A malformed entry is skipped, not fatal.

use super::Encoding;

/// A coding's weight in thousandths (`q=0.5` is 500), or `None` when the header does not
/// name it.
type Weight = Option<u16>;

/// The weights the header gives, by [`Encoding::index`], and to `*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Weights {
    named: [Weight; Encoding::ALL.len()],
    star: Weight,
}

/// Parses `q=...` in thousandths: `1`, `1.0`, `0.5`, `0.125`; anything else is `None`.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        let digit = frac.get(i).map_or(0, |d| u16::from(d - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// One entry, `coding` or `coding;q=0.5` (parameters other than `q` are ignored): the coding
/// and its weight, or `None` if the entry is malformed.
fn entry(item: &[u8]) -> Option<(&[u8], u16)> {
    let mut parts = item.split(|&b| b == b';');
    let coding = parts.next()?.trim_ascii();
    if coding.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let param = param.trim_ascii();
        let Some(eq) = param.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (param[..eq].trim_ascii(), param[eq + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"q") {
            q = parse_q(value)?;
        }
    }
    Some((coding, q))
}

fn weights<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Weights {
    let mut w = Weights::default();
    for value in values {
        for item in value.split(|&b| b == b',') {
            let Some((coding, q)) = entry(item) else {
                continue;
            };
            if coding == b"*" {
                w.star = Some(q);
            } else if let Some(e) = Encoding::named(coding) {
                w.named[e.index()] = Some(q);
            }
        }
    }
    w
}

impl Weights {
    /// The weight of `e`, with `identity` acceptable (barely) unless excluded.
    fn of(&self, e: Encoding) -> u16 {
        match (self.named[e.index()], self.star, e) {
            (Some(q), _, _) => q,
            (None, Some(q), _) => q,
            // Acceptable, but after anything the client asked for.
            (None, None, Encoding::Identity) => 1,
            (None, None, _) => 0,
        }
    }
}

/// The index in `available` (each an encoding and its size) of the variant to send for a
/// request whose `Accept-Encoding` values are `values`. `available` holds `identity`; when
/// nothing acceptable is available, the `identity` variant is chosen.
pub fn choose<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    available: impl IntoIterator<Item = (Encoding, usize)>,
) -> Option<usize> {
    let w = weights(values);
    let mut best: Option<(usize, u16, usize)> = None;
    let mut identity = None;
    for (i, (e, size)) in available.into_iter().enumerate() {
        if e == Encoding::Identity {
            identity = Some(i);
        }
        let q = w.of(e);
        if q == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, best_q, best_size)) => q > best_q || (q == best_q && size < best_size),
        };
        if better {
            best = Some((i, q, size));
        }
    }
    best.map(|(i, _, _)| i).or(identity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip, Identity, Zstd};

    /// Sizes like tracker.js's: identity 20,650, br 7,000, gzip 8,100, zstd 7,600.
    const ALL: [(Encoding, usize); 4] = [
        (Identity, 20_650),
        (Brotli, 7_000),
        (Gzip, 8_100),
        (Zstd, 7_600),
    ];

    fn pick(values: &[&str], available: &[(Encoding, usize)]) -> Encoding {
        let i = choose(
            values.iter().map(|v| v.as_bytes()),
            available.iter().copied(),
        )
        .expect("identity is always available");
        available[i].0
    }

    #[test]
    fn accept_encoding_picks_the_variant_a_careful_server_would() {
        let cases: &[(&[&str], Encoding)] = &[
            // What browsers send.
            (&["gzip, deflate, br, zstd"], Brotli),
            (&["gzip, deflate, br"], Brotli),
            (&["gzip, deflate"], Gzip),
            // No header, an empty one, or only unknown codings: identity.
            (&[], Identity),
            (&[""], Identity),
            (&["deflate, compress"], Identity),
            // q-values decide, ties go to the smaller variant.
            (&["gzip;q=1.0, br;q=0.5"], Gzip),
            (&["br;q=0.5, gzip;q=0.5"], Brotli),
            (&["zstd;q=0.9, gzip;q=0.8, br;q=0.7"], Zstd),
            (&["gzip; q=0.001"], Gzip),
            // q=0 excludes.
            (&["br;q=0, gzip"], Gzip),
            (&["gzip;q=0"], Identity),
            (&["gzip;q=0.000"], Identity),
            // identity: listed or not, and excluded.
            (&["identity"], Identity),
            (&["gzip;q=0.5, identity"], Identity),
            (&["identity;q=0, gzip"], Gzip),
            // identity excluded and nothing else acceptable: identity anyway.
            (&["identity;q=0"], Identity),
            (&["*;q=0"], Identity),
            // `*` covers codings not named.
            (&["*"], Brotli),
            (&["gzip, *;q=0"], Gzip),
            (&["br;q=0, *"], Zstd),
            (&["*;q=0.5, identity"], Identity),
            (&["*;q=0.1, identity;q=0.5"], Identity),
            // Names are case-insensitive; x-gzip is gzip; several header lines add up.
            (&["GZIP"], Gzip),
            (&["x-gzip"], Gzip),
            (&["gzip;q=0.5", "br"], Brotli),
            // Malformed entries are skipped, the rest still counts.
            (&["br;q=2, gzip"], Gzip),
            (&["br;q=abc, gzip;q=0.5"], Gzip),
            (&["br;q=0.1234, gzip"], Gzip),
            (&[",,; ,gzip"], Gzip),
            (&["br;level=5"], Brotli),
        ];
        for (values, want) in cases {
            assert_eq!(pick(values, &ALL), *want, "Accept-Encoding: {values:?}");
        }
    }

    #[test]
    fn only_available_variants_are_chosen() {
        // A favicon whose compressed forms were not smaller: identity only.
        let only = [(Identity, 52_799)];
        assert_eq!(pick(&["gzip, br"], &only), Identity);
        let no_br = [(Identity, 100), (Gzip, 60)];
        assert_eq!(pick(&["br"], &no_br), Identity);
        assert_eq!(pick(&["br, gzip;q=0.1"], &no_br), Gzip);
    }

    #[test]
    fn q_values_parse_to_thousandths() {
        let cases: &[(&str, Option<u16>)] = &[
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.125", Some(125)),
            ("0.1250", None),
            (".5", None),
            ("2", None),
            ("-1", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_q(text.as_bytes()), *want, "q={text}");
        }
    }
}
