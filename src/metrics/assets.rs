//! The metrics of Ackee's static files served from the edge (`assets`).

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus::{IntCounter, IntGauge, Registry};

use super::{DEFINED, children};
use crate::assets::refresh::Outcome;
use crate::assets::{Encoding, ROUTE_LABELS, Route};

/// The answers' statuses, as labels.
const STATUSES: [&str; 2] = ["200", "304"];

/// The metrics of the edge copy. Registered whether or not `assets` is on (all zero when it is
/// off), so the export never depends on the config.
pub(crate) struct AssetMetrics {
    /// By route label, then encoding, then status.
    responses: Vec<IntCounter>,
    bytes: [IntCounter; Encoding::ALL.len()],
    refreshes: [IntCounter; Outcome::LABELS.len()],
    age: IntGauge,
    served: IntGauge,
    interval: IntGauge,
    /// When the copy in use was last confirmed (Unix seconds), or when the gateway started.
    confirmed: AtomicI64,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl AssetMetrics {
    pub(super) fn register(r: &Registry) -> AssetMetrics {
        let gauge = |name: &str, help: &str| {
            prometheus::register_int_gauge_with_registry!(name, help, r).expect(DEFINED)
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            prometheus::register_int_counter_vec_with_registry!(name, help, labels, r)
                .expect(DEFINED)
        };
        let responses = counter_vec(
            "ackee_gateway_assets_responses_total",
            "Ackee's static files answered from the edge, by file (alias: the tracker under an alias), encoding and status.",
            &["file", "encoding", "status"],
        );
        let bytes = counter_vec(
            "ackee_gateway_assets_response_bytes_total",
            "Body bytes of Ackee's static files sent from the edge, by encoding.",
            &["encoding"],
        );
        let refreshes = counter_vec(
            "ackee_gateway_assets_refreshes_total",
            "Refreshes of the edge copy of Ackee's static files, by outcome.",
            &["outcome"],
        );
        let mut all = Vec::with_capacity(ROUTE_LABELS.len() * Encoding::ALL.len() * 2);
        for file in ROUTE_LABELS {
            for encoding in Encoding::ALL {
                for status in STATUSES {
                    all.push(responses.with_label_values(&[file, encoding.token(), status]));
                }
            }
        }
        AssetMetrics {
            responses: all,
            bytes: children(&bytes, Encoding::ALL.map(Encoding::token)),
            refreshes: children(&refreshes, Outcome::LABELS),
            age: gauge(
                "ackee_gateway_assets_age_seconds",
                "Seconds since the edge copy of Ackee's static files was last confirmed against Ackee (since start-up while there is none).",
            ),
            served: gauge(
                "ackee_gateway_assets_served",
                "1 while Ackee's static files are served from the edge, 0 while they are proxied (assets off, or no copy yet).",
            ),
            interval: gauge(
                "ackee_gateway_assets_refresh_interval_seconds",
                "assets.refresh_seconds, for the staleness alert; 0 when assets is off.",
            ),
            confirmed: AtomicI64::new(now()),
        }
    }

    /// Records `assets.refresh_seconds` (rounded up to a whole second).
    pub(crate) fn interval(&self, seconds: f64) {
        self.interval.set(seconds.ceil() as i64);
    }

    /// Counts one answer from the edge and its body bytes.
    pub(crate) fn response(
        &self,
        route: Route,
        encoding: Encoding,
        not_modified: bool,
        body: usize,
    ) {
        let i = (route.label_index() * Encoding::ALL.len() + encoding.index()) * 2
            + usize::from(not_modified);
        if let Some(c) = self.responses.get(i) {
            c.inc();
        }
        self.bytes[encoding.index()].inc_by(body as u64);
    }

    /// Counts one refresh; one that succeeded confirms the copy in use.
    pub(crate) fn refresh(&self, outcome: Outcome, copy_in_use: bool) {
        if let Some(i) = Outcome::LABELS.iter().position(|l| *l == outcome.as_str()) {
            self.refreshes[i].inc();
        }
        if !matches!(outcome, Outcome::Failed(_)) {
            self.confirmed.store(now(), Ordering::Relaxed);
        }
        self.served.set(i64::from(copy_in_use));
    }

    /// Brings the age up to date, just before a scrape.
    pub(super) fn update_age(&self) {
        let age = now() - self.confirmed.load(Ordering::Relaxed);
        self.age.set(age.max(0));
    }
}
