//! The metrics of certificates the gateway obtains itself (`listeners[].tls.acme`). Their
//! expiry is the TLS expiry gauge, shared with the static certificates, so one alert covers
//! both.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::DEFINED;

/// Orders and the next renewal, by managed certificate (names from the config).
pub(crate) struct AcmeMetrics {
    orders: IntCounterVec,
    next_renewal: IntGaugeVec,
}

impl AcmeMetrics {
    pub(super) fn register(r: &Registry) -> AcmeMetrics {
        AcmeMetrics {
            orders: prometheus::register_int_counter_vec_with_registry!(
                "ackee_gateway_acme_orders_total",
                "ACME orders of managed certificates, by certificate and result: issued or failed (the old certificate stays).",
                &["certificate", "result"],
                r
            )
            .expect(DEFINED),
            next_renewal: prometheus::register_int_gauge_vec_with_registry!(
                "ackee_gateway_acme_next_order_timestamp_seconds",
                "When the next ACME order of a managed certificate is due (renewal or retry), as a Unix timestamp.",
                &["certificate"],
                r
            )
            .expect(DEFINED),
        }
    }

    /// Creates the series of a managed certificate, so they are exported from the start.
    pub(crate) fn certificate(&self, name: &str) {
        for result in ["issued", "failed"] {
            self.orders.with_label_values(&[name, result]);
        }
        self.next_renewal.with_label_values(&[name]);
    }

    /// Counts an order.
    pub(crate) fn order(&self, name: &str, issued: bool) {
        let result = if issued { "issued" } else { "failed" };
        self.orders.with_label_values(&[name, result]).inc();
    }

    /// Sets when the next order is due.
    pub(crate) fn next_order(&self, name: &str, at: i64) {
        self.next_renewal.with_label_values(&[name]).set(at);
    }
}
