//! The process's bound on open client connections, from its limit on file descriptors
//! (`RLIMIT_NOFILE`), so that the process never runs out of them: the arithmetic (pure), and
//! reading (and raising) the limit at start-up.
//!
//! Every client connection is a descriptor, and while its request is with Ackee it needs a
//! second one, the upstream connection (from the pool, or a new one). The process also needs
//! descriptors of its own: its listeners, the event queues and wake-ups of its runtimes (about
//! 40 with the default threads, about 100 with 8 threads and `work_stealing: false`), health
//! checks, metrics scrapes, log files. So the bound is half of what is left after a reserve,
//! `(nofile - reserve) / 2`, with an eighth of the limit, at least 64 and at most 8,192, kept
//! back: Envoy's documentation likewise asks for connection limits below half the descriptor
//! limit "to account for upstream connections", and nginx counts a proxied request's upstream
//! connection against `worker_connections` like the client's. Connections over the bound are accepted and closed at once
//! while the descriptors that the open ones need to reach Ackee, and the metrics endpoint,
//! stay free.

/// The fewest descriptors kept back for the process itself.
pub const MIN_RESERVE: u64 = 64;
/// The most descriptors kept back: beyond this, runtimes and health checks never need more.
pub const MAX_RESERVE: u64 = 8192;
/// The largest bound, whatever the limit (`LimitNOFILE=infinity`): a million idle connections
/// would already hold gigabytes.
pub const MAX_BOUND: u64 = 1 << 20;

/// The process's bound on client connections and how it was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// `RLIMIT_NOFILE`'s soft limit the bound was computed from.
    pub nofile: u64,
    /// Descriptors kept back for the process itself.
    pub reserve: u64,
    /// Client connections the process holds at most.
    pub connections: u32,
}

/// The bound for a soft limit of `nofile` descriptors. At least 1: a limit too low for any
/// connection is still a limit, and the first refusal says so in the log.
pub fn bound_for(nofile: u64) -> Bound {
    let reserve = (nofile / 8).clamp(MIN_RESERVE, MAX_RESERVE);
    let connections = (nofile.saturating_sub(reserve) / 2).clamp(1, MAX_BOUND);
    Bound {
        nofile,
        reserve,
        // MAX_BOUND fits in a u32.
        connections: connections as u32,
    }
}

/// Raises the soft limit on descriptors to the hard limit, as systemd.exec(5) asks programs
/// that need many descriptors to do themselves (the soft limit's usual 1,024 protects old
/// programs that use `select()`), and returns the soft limit in force. Under the shipped unit
/// both limits are already `LimitNOFILE=`. A limit that cannot be read is taken as 1,024.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max && lim.rlim_max != libc::RLIM_INFINITY {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::useless_conversion)]
    u64::from(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_of_what_is_left_after_the_reserve() {
        let cases: &[(u64, u64, u32)] = &[
            // nofile, reserve, connections
            (1, 64, 1),
            (64, 64, 1),
            (128, 64, 32),
            (256, 64, 96),
            (1024, 128, 448),
            (20_000, 2500, 8750),
            // The shipped systemd unit's LimitNOFILE.
            (65_536, 8192, 28_672),
            (524_288, 8192, 258_048),
            (1 << 30, 8192, 1 << 20),
            (u64::MAX, 8192, 1 << 20),
        ];
        for (nofile, reserve, connections) in cases {
            let b = bound_for(*nofile);
            assert_eq!(
                (b.reserve, b.connections),
                (*reserve, *connections),
                "{nofile}"
            );
            // Every client connection with an upstream one, plus the reserve, fits.
            if *nofile >= 2 * MIN_RESERVE {
                assert!(
                    2 * u64::from(b.connections) + b.reserve <= *nofile,
                    "{nofile}"
                );
            }
        }
    }

    #[test]
    fn the_soft_limit_in_force_is_read() {
        let n = raise_nofile();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        #[allow(clippy::useless_conversion)]
        let cur = u64::from(lim.rlim_cur);
        assert_eq!(n, cur);
    }
}
