//! The process's bound on open client connections, from its limit on file descriptors
//! (`RLIMIT_NOFILE`), so that the process never runs out of them: the arithmetic (pure), and
//! reading (and raising) the limit at start-up.
//!
//! Every client connection is a descriptor, and while a request is with Ackee it needs a
//! second one, its upstream connection (from the pool, or a new one). The process also needs
//! descriptors of its own: its listeners, the event queues and wake-ups of its runtimes (about
//! 40 with the default threads, about 100 with 8 threads and `work_stealing: false`), health
//! checks, metrics scrapes, log files. The usual rule of thumb keeps connection limits below
//! half the descriptors, "to account for upstream connections" (Envoy's documentation), as if
//! every client connection had a request at Ackee at once. A tracker's connections are idle
//! nearly all the time (a request every 15 s, answered in milliseconds), so the requests at
//! Ackee at any moment are a small share of the connections open: 10,000 requests a second
//! answered in 3 ms are 30 at once. The bound keeps a quarter of the descriptors for them and
//! 64 more for the process: `nofile - nofile / 4 - 64` client connections, 49,088 under the
//! shipped unit (`LimitNOFILE=65536`), whose 16,448 kept back are more requests than any Ackee
//! has in progress at once. Connections over the bound are accepted and closed at once, while
//! the descriptors that the open ones need to reach Ackee, and the metrics endpoint, stay
//! free. If requests at Ackee ever outgrow the quarter, their connects fail (502) and so do
//! accepts, which is counted and logged (`crate::logging`), as before the bound.

/// Descriptors kept back for the process itself, besides the quarter for connections to Ackee.
pub const PROCESS_RESERVE: u64 = 64;
/// The largest bound, whatever the limit (`LimitNOFILE=infinity`): a million idle connections
/// would already hold gigabytes.
pub const MAX_BOUND: u64 = 1 << 20;

/// The process's bound on client connections and how it was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// `RLIMIT_NOFILE`'s soft limit the bound was computed from.
    pub nofile: u64,
    /// Descriptors kept back for connections to Ackee and for the process itself.
    pub reserve: u64,
    /// Client connections the process holds at most.
    pub connections: u32,
}

/// The bound for a soft limit of `nofile` descriptors. At least 1: a limit too low for any
/// connection is still a limit, and the first refusal says so in the log.
pub fn bound_for(nofile: u64) -> Bound {
    let reserve = nofile / 4 + PROCESS_RESERVE;
    let connections = nofile.saturating_sub(reserve).clamp(1, MAX_BOUND);
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
    fn a_quarter_and_64_are_kept_back() {
        let cases: &[(u64, u64, u32)] = &[
            // nofile, reserve, connections
            (1, 64, 1),
            (64, 80, 1),
            (128, 96, 32),
            (256, 128, 128),
            (1024, 320, 704),
            (20_000, 5064, 14_936),
            // The shipped systemd unit's LimitNOFILE.
            (65_536, 16_448, 49_088),
            (524_288, 131_136, 393_152),
            (1 << 30, (1 << 28) + 64, 1 << 20),
            (u64::MAX, u64::MAX / 4 + 64, 1 << 20),
        ];
        for (nofile, reserve, connections) in cases {
            let b = bound_for(*nofile);
            assert_eq!(
                (b.reserve, b.connections),
                (*reserve, *connections),
                "{nofile}"
            );
            // The client connections and the reserve fit in the limit.
            if *nofile >= 128 {
                assert!(u64::from(b.connections) + b.reserve <= *nofile, "{nofile}");
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
