//! When a managed certificate is renewed, and how long to wait after a failed order.
//!
//! Renewal comes when two thirds of the certificate's lifetime have passed (day 60 of Let's
//! Encrypt's 90), as certbot and Caddy do. A failed order is tried again after a backoff that
//! doubles from one minute up to six hours, each wait drawn at random between half and all of
//! it, so several gateways that failed together do not come back together. When the CA says
//! the account or the names hit a rate limit, the wait is at least an hour (Let's Encrypt's
//! limits are per hour or per week). The pinned constants are Let's Encrypt's advice for
//! clients: spread retries, never hammer.

use std::time::Duration;

/// The first wait after a failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(60);

/// The longest wait between two attempts.
pub const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);

/// The shortest wait after the CA said `rateLimited`.
pub const RATE_LIMITED_RETRY: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` (Unix seconds) is due for
/// renewal: two thirds into its lifetime.
pub fn renewal_at(not_before: i64, not_after: i64) -> i64 {
    let lifetime = not_after.saturating_sub(not_before).max(0);
    not_before.saturating_add(lifetime / 3 * 2 + (lifetime % 3) * 2 / 3)
}

/// How long to wait before the next attempt after `failures` failures in a row (1 or more),
/// with `jitter` drawn uniformly from 0 to 1. `rate_limited` when the CA's last problem was
/// `rateLimited`.
pub fn backoff(failures: u32, rate_limited: bool, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = FIRST_RETRY
        .saturating_mul(1u32 << doublings)
        .min(LONGEST_RETRY);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let wait = full.mul_f64(0.5 + 0.5 * jitter);
    if rate_limited {
        wait.max(RATE_LIMITED_RETRY)
    } else {
        wait
    }
}

/// A number from 0 to 1 that differs between processes and calls, for [`backoff`]'s jitter:
/// no cryptography needed, only spread.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_two_thirds_into_the_lifetime() {
        let day = 86_400;
        let cases: &[(i64, i64, i64)] = &[
            // Let's Encrypt: 90 days, renewed on day 60.
            (0, 90 * day, 60 * day),
            (1_000, 1_000 + 90 * day, 1_000 + 60 * day),
            // Short-lived (6 days): day 4.
            (0, 6 * day, 4 * day),
            // A 30-second test certificate: after 20 s.
            (100, 130, 120),
            // Not evenly divisible: rounds down, never past two thirds.
            (0, 10, 6),
            // Nonsense (notAfter before notBefore): due at once.
            (50, 10, 50),
        ];
        for (nb, na, want) in cases {
            assert_eq!(renewal_at(*nb, *na), *want, "{nb}..{na}");
        }
    }

    #[test]
    fn the_backoff_doubles_from_a_minute_to_six_hours_with_jitter() {
        let m = 60.0;
        let cases: &[(u32, bool, f64, f64)] = &[
            (1, false, 1.0, m),
            (1, false, 0.0, m / 2.0),
            (2, false, 1.0, 2.0 * m),
            (3, false, 1.0, 4.0 * m),
            (5, false, 0.5, 16.0 * m * 0.75),
            (9, false, 1.0, 256.0 * m),
            (10, false, 1.0, 6.0 * 3600.0),
            (1000, false, 1.0, 6.0 * 3600.0),
            (1000, false, 0.0, 3.0 * 3600.0),
            // Rate limited: never sooner than an hour.
            (1, true, 0.0, 3600.0),
            (10, true, 1.0, 6.0 * 3600.0),
            // Jitter out of range is clamped.
            (1, false, 7.0, m),
            (1, false, f64::NAN, m),
        ];
        for (failures, limited, jitter, want) in cases {
            let got = backoff(*failures, *limited, *jitter).as_secs_f64();
            assert!(
                (got - want).abs() < 0.001,
                "{failures} {limited} {jitter}: {got} != {want}"
            );
        }
    }

    #[test]
    fn jitter_stays_between_0_and_1() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..=1.0).contains(&j));
        }
    }
}
