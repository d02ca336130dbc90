//! The metrics of client connections: those refused at accept and the HTTP/2 connections
//! closed for idling (both under `ackee_gateway_limit_rejections_total`, with the requests
//! refused for a limit), and the connections open against the process's bound.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::DEFINED;
use crate::connections::Refusal;

/// The `limit` label of an HTTP/2 connection closed for idling.
pub(crate) const H2_IDLE: &str = "h2_idle";

/// The metrics of client connections, resolved once.
pub(crate) struct ConnectionMetrics {
    refused: [IntCounter; Refusal::ALL.len()],
    h2_idle: IntCounter,
    open: IntGauge,
    limit: IntGauge,
}

impl ConnectionMetrics {
    /// Registers the gauges; the counters are children of `limits`, the family of
    /// `ackee_gateway_limit_rejections_total`.
    pub(super) fn register(r: &Registry, limits: &IntCounterVec) -> ConnectionMetrics {
        let gauge = |name: &str, help: &str| {
            prometheus::register_int_gauge_with_registry!(name, help, r).expect(DEFINED)
        };
        ConnectionMetrics {
            refused: Refusal::ALL.map(|c| limits.with_label_values(&[c.as_str()])),
            h2_idle: limits.with_label_values(&[H2_IDLE]),
            open: gauge(
                "ackee_gateway_connections",
                "Client connections open on the listeners now.",
            ),
            limit: gauge(
                "ackee_gateway_connections_limit",
                "The most client connections the process holds at once, from its RLIMIT_NOFILE.",
            ),
        }
    }

    /// Counts a connection refused at accept.
    pub(crate) fn refused(&self, why: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == why) {
            self.refused[i].inc();
        }
    }

    /// Counts an HTTP/2 connection closed for idling.
    pub(crate) fn h2_idle_closed(&self) {
        self.h2_idle.inc();
    }

    /// A connection was admitted.
    pub(crate) fn opened(&self) {
        self.open.inc();
    }

    /// An admitted connection closed.
    pub(crate) fn closed(&self) {
        self.open.dec();
    }

    /// Sets the process's bound, once at start-up.
    pub(crate) fn set_limit(&self, connections: u32) {
        self.limit.set(i64::from(connections));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;

    #[test]
    fn connection_counts_land_on_the_limit_family_and_the_gauges() {
        let m = Metrics::new(&[], &[]);
        let c = &m.connections;
        c.refused(Refusal::PerClient);
        c.refused(Refusal::PerClient);
        c.refused(Refusal::Process);
        c.h2_idle_closed();
        c.opened();
        c.opened();
        c.closed();
        c.set_limit(49_088);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            "ackee_gateway_limit_rejections_total{limit=\"connections_per_client\"} 2",
            "ackee_gateway_limit_rejections_total{limit=\"connections\"} 1",
            "ackee_gateway_limit_rejections_total{limit=\"descriptors\"} 0",
            "ackee_gateway_limit_rejections_total{limit=\"h2_idle\"} 1",
            "ackee_gateway_limit_rejections_total{limit=\"header_timeout\"} 0",
            "ackee_gateway_connections 1",
            "ackee_gateway_connections_limit 49088",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
