//! The limit decision over a sliding window, and its `Retry-After`. Pure arithmetic: no clock,
//! no pingora, so every case is a row in a table.
//!
//! pingora-limits counts admitted requests per key in fixed windows of `WINDOW`. The estimate
//! of a client's requests in the last minute is Cloudflare's sliding-window one: the previous
//! window's count, weighted by the part of it still inside the last minute, plus the current
//! window's count. A request is admitted when the estimate plus its cost stays within the
//! limit. Refused requests are not counted (as with nginx's `limit_req`), so a client that
//! waits as long as `Retry-After` says is admitted again.

use std::time::Duration;

use http::HeaderValue;

/// The window the limits are counted over: `requests_per_minute` means per minute.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// The longest `Retry-After`, in seconds: the rest of this window and all of the next.
pub(crate) const MAX_RETRY_AFTER: u32 = 2 * WINDOW.as_secs() as u32;

/// One client's counts as pingora-limits reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    /// Requests admitted in the previous window.
    pub previous: isize,
    /// Requests admitted so far in the current window.
    pub current: isize,
    /// How far into the current window we are, from 0 to 1.
    pub elapsed: f64,
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: count it and let it through.
    Admit,
    /// Over the limit: refuse it with `Retry-After` seconds, from 1 to `MAX_RETRY_AFTER`.
    Refuse {
        /// Seconds until a request of the same cost would be admitted.
        retry_after: u32,
    },
}

/// Decides whether a request of `cost` (1, or the number of login attempts it carries) from a
/// client with these counts stays within `limit` requests a window.
pub(crate) fn decide(limit: u32, cost: u32, counts: Counts, window: Duration) -> Verdict {
    let previous = counts.previous.max(0) as f64;
    let current = counts.current.max(0) as f64;
    let elapsed = counts.elapsed.clamp(0.0, 1.0);
    let (limit, cost) = (f64::from(limit), f64::from(cost));
    // Float tolerance, so that the moment Retry-After names is admitted.
    const EPSILON: f64 = 1e-9;
    if previous * (1.0 - elapsed) + current + cost <= limit + EPSILON {
        return Verdict::Admit;
    }
    // The estimate must fall to `room` before a request of this cost fits.
    let room = limit - cost;
    let windows = if cost > limit {
        // Never admitted; waiting a window is as good an answer as any.
        1.0
    } else if current <= room {
        // The previous window's share must shrink: wait within this window.
        let until = 1.0 - (room - current) / previous;
        until - elapsed
    } else {
        // This window alone is over: wait for the next one, and into it until this window's
        // share has shrunk enough.
        (1.0 - elapsed) + (1.0 - room / current)
    };
    let seconds = (windows * window.as_secs_f64() - 1e-6).ceil();
    Verdict::Refuse {
        retry_after: (seconds as u32).clamp(1, MAX_RETRY_AFTER),
    }
}

/// Every `Retry-After` value a refusal can carry, built once.
#[derive(Debug)]
pub struct RetryAfter(Vec<HeaderValue>);

impl Default for RetryAfter {
    fn default() -> Self {
        RetryAfter((0..=MAX_RETRY_AFTER).map(HeaderValue::from).collect())
    }
}

impl RetryAfter {
    /// The header value for `seconds`, clamped to 1 to `MAX_RETRY_AFTER`.
    pub(crate) fn get(&self, seconds: u32) -> &HeaderValue {
        let i = seconds.clamp(1, MAX_RETRY_AFTER) as usize;
        &self.0[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(previous: isize, current: isize, elapsed: f64) -> Counts {
        Counts {
            previous,
            current,
            elapsed,
        }
    }

    const ADMIT: Verdict = Verdict::Admit;

    fn refuse(retry_after: u32) -> Verdict {
        Verdict::Refuse { retry_after }
    }

    /// Each case: the limit, the cost of the request, the counts, the verdict, and why.
    fn decides(cases: &[(u32, u32, Counts, Verdict, &str)]) {
        for (limit, cost, counts, want, why) in cases {
            let got = decide(*limit, *cost, *counts, WINDOW);
            assert_eq!(got, *want, "{why}: {counts:?}");
        }
    }

    #[test]
    fn requests_within_the_limit_pass_and_the_next_waits_as_long_as_it_must() {
        decides(&[
            (5, 1, at(0, 0, 0.0), ADMIT, "a new client"),
            (5, 1, at(0, 4, 0.5), ADMIT, "the 5th request"),
            (
                5,
                1,
                at(0, 5, 0.25),
                refuse(57),
                "the 6th: the rest of this window (45 s), then 12 s into the next, when 5 × 0.8 + 1 ≤ 5",
            ),
            (5, 1, at(4, 1, 0.5), ADMIT, "2 + 1 + 1 ≤ 5"),
            (
                5,
                1,
                at(4, 2, 0.5),
                ADMIT,
                "2 + 2 + 1 = 5, exactly the limit",
            ),
            (
                5,
                1,
                at(4, 3, 0.5),
                refuse(15),
                "2 + 3 + 1 > 5: wait until the 4 weigh 1, at 0.75",
            ),
        ]);
    }

    #[test]
    fn the_last_windows_requests_weigh_less_as_this_window_goes_on() {
        decides(&[
            (
                5,
                1,
                at(5, 0, 0.1),
                refuse(6),
                "last window's 5 still weigh 4.5: wait until they weigh 4, at 0.2 of this window",
            ),
            (5, 1, at(5, 0, 0.8), ADMIT, "last window's 5 weigh 1 now"),
            (
                300,
                1,
                at(600, 0, 0.0),
                refuse(31),
                "a flood last window: until 600 weigh 299",
            ),
        ]);
    }

    #[test]
    fn a_request_that_costs_several_counts_them_all() {
        decides(&[
            (
                5,
                3,
                at(0, 2, 0.0),
                ADMIT,
                "three guesses in one request, within the limit",
            ),
            (
                5,
                3,
                at(0, 3, 0.0),
                refuse(80),
                "three guesses that do not fit: this window, then 20 s, when 3 × 2/3 + 3 ≤ 5",
            ),
            (
                5,
                6,
                at(0, 0, 0.0),
                refuse(60),
                "more guesses in one request than the limit",
            ),
        ]);
    }

    #[test]
    fn edges_wait_at_least_a_second_and_overflowed_counts_are_nothing() {
        decides(&[
            (
                1,
                1,
                at(0, 1, 0.0),
                refuse(120),
                "a limit of 1: this window and all of the next",
            ),
            (1, 1, at(1, 0, 0.999), refuse(1), "never less than a second"),
            (
                5,
                1,
                at(-3, isize::MIN, 0.5),
                ADMIT,
                "overflowed counters count as nothing",
            ),
        ]);
    }

    #[test]
    fn a_client_that_waits_retry_after_is_admitted() {
        // Simulate the estimate at the moment Retry-After points to, for a grid of states.
        for limit in [1u32, 2, 5, 120, 300] {
            for cost in 1..=limit.min(4) {
                for current in 0..=limit as isize {
                    for previous in [0, 1, limit as isize / 2, limit as isize] {
                        for tenth in 0..10 {
                            let elapsed = f64::from(tenth) / 10.0;
                            let counts = at(previous, current, elapsed);
                            let Verdict::Refuse { retry_after } =
                                decide(limit, cost, counts, WINDOW)
                            else {
                                continue;
                            };
                            let later = elapsed + f64::from(retry_after) / 60.0;
                            let then = if later < 1.0 {
                                at(previous, current, later)
                            } else if later < 2.0 {
                                at(current, 0, later - 1.0)
                            } else {
                                at(0, 0, later - 2.0)
                            };
                            assert_eq!(
                                decide(limit, cost, then, WINDOW),
                                Verdict::Admit,
                                "limit {limit}, cost {cost}, {counts:?}: Retry-After {retry_after} is too short"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn retry_after_values_are_built_once_and_clamped() {
        let r = RetryAfter::default();
        assert_eq!(r.get(0), "1");
        assert_eq!(r.get(37), "37");
        assert_eq!(r.get(MAX_RETRY_AFTER), "120");
        assert_eq!(r.get(u32::MAX), "120");
    }
}
