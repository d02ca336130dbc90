//! The metrics of origins from Ackee's domain list (`cors.origins_from_ackee`).

use prometheus::{IntCounter, IntGauge, Registry};

use super::{DEFINED, children};

/// The metrics of origins from Ackee's domain list. Registered whether or not
/// `cors.origins_from_ackee` is set (all zero without it), so the export never depends on the
/// config.
pub(crate) struct AckeeOriginMetrics {
    origins: IntGauge,
    skipped: IntGauge,
    last_success: IntGauge,
    failures: [IntCounter; crate::ackee_origins::Failure::ALL.len()],
}

impl AckeeOriginMetrics {
    pub(super) fn register(r: &Registry) -> AckeeOriginMetrics {
        let gauge = |name: &str, help: &str| {
            prometheus::register_int_gauge_with_registry!(name, help, r).expect(DEFINED)
        };
        let failures = prometheus::register_int_counter_vec_with_registry!(
            "ackee_gateway_ackee_origins_refresh_failures_total",
            "Polls of Ackee's domain list that failed, by reason; the last good list stays in use.",
            &["reason"],
            r
        )
        .expect(DEFINED);
        AckeeOriginMetrics {
            origins: gauge(
                "ackee_gateway_ackee_origins",
                "Allowed origins that come from Ackee's domain list now.",
            ),
            skipped: gauge(
                "ackee_gateway_ackee_domains_skipped",
                "Ackee domains whose title is not a host name, so they give no origin.",
            ),
            last_success: gauge(
                "ackee_gateway_ackee_origins_last_success_timestamp_seconds",
                "When Ackee's domain list was last read, as a Unix timestamp; 0 before the first time.",
            ),
            failures: children(
                &failures,
                crate::ackee_origins::Failure::ALL.map(|f| f.as_str()),
            ),
        }
    }

    /// Records a successful poll: how many origins and skipped titles it left, and when.
    pub(crate) fn success(&self, origins: usize, skipped: usize, unix_seconds: i64) {
        self.origins.set(i64::try_from(origins).unwrap_or(i64::MAX));
        self.skipped.set(i64::try_from(skipped).unwrap_or(i64::MAX));
        self.last_success.set(unix_seconds);
    }

    /// Counts a failed poll.
    pub(crate) fn failure(&self, reason: crate::ackee_origins::Failure) {
        if let Some(i) = crate::ackee_origins::Failure::ALL
            .iter()
            .position(|f| *f == reason)
        {
            self.failures[i].inc();
        }
    }
}
