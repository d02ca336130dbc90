//! Every Prometheus metric the gateway exports, registered once at start-up.
//!
//! Label values come only from fixed sets ([`Refusal`], `RequestKind` (both from a
//! `Decision`), `method_label`, [`Protocol`],
//! status classes, `UpstreamErrorKind`, `AbandonedAt`, [`Rule`], [`QuicRefusal`], [`Reason`]) or
//! from the config (replica names). Children of each
//! metric family are resolved at start-up, so counting on the request path is an atomic add.
//! The `prometheus` crate is the version pingora-prometheus re-exports.

mod ackee_origins;
mod acme;
mod assets;
mod connections;
mod labels;

use prometheus::{
    Encoder, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};

pub(crate) use ackee_origins::AckeeOriginMetrics;
pub(crate) use acme::AcmeMetrics;
pub(crate) use assets::AssetMetrics;
pub(crate) use connections::ConnectionMetrics;
pub use labels::Protocol;
pub(crate) use labels::{
    AbandonedAt, LATENCY_BUCKETS, METHODS, OUTCOMES, Outcome, STATUS_CLASSES, UpstreamErrorKind,
    request_index,
};
#[cfg(test)]
pub(crate) use labels::{method_label, status_label};

use crate::cors::{Decision, Refusal, RequestKind};
use crate::limits::Exceeded;
use crate::quic::Refusal as QuicRefusal;
use crate::ratelimit::Rule;
use crate::visits::Reason;

/// Per-replica children, resolved once.
struct ReplicaMetrics {
    latency: Histogram,
    errors: Vec<IntCounter>,
    healthy: IntGauge,
    outcomes: Vec<IntCounter>,
    retries: Vec<IntCounter>,
}

/// All metrics, with their children resolved.
pub struct Metrics {
    registry: Registry,
    preflights: [IntCounter; 2],
    rejections: Vec<IntCounter>,
    requests: Vec<IntCounter>,
    limits: [IntCounter; Exceeded::ALL.len()],
    replicas: Vec<ReplicaMetrics>,
    handshakes: [IntCounter; 2],
    reloads: IntCounterVec,
    expiry: IntGaugeVec,
    acme: [IntCounter; 2],
    unavailable: IntCounter,
    malformed: Vec<IntCounter>,
    access_log_dropped: IntCounter,
    abandoned: [IntCounter; AbandonedAt::ALL.len()],
    /// Origins from Ackee's domain list (`cors.origins_from_ackee`).
    pub(crate) ackee_origins: AckeeOriginMetrics,
    /// Certificates the gateway obtains itself (ACME).
    pub(crate) acme_orders: AcmeMetrics,
    rate_limited: [IntCounter; Rule::ALL.len()],
    /// Ackee's static files served from the edge (`assets`).
    pub(crate) assets: AssetMetrics,
    quic_handshakes: [IntCounter; 2],
    quic_refusals: [IntCounter; QuicRefusal::ALL.len()],
    quic_connections: IntGauge,
    visits_ignored: [IntCounter; Reason::ALL.len()],
    /// Client connections: refused, closed for idling, open.
    pub(crate) connections: ConnectionMetrics,
    /// Kept so the family is registered.
    _build_info: IntGaugeVec,
}

/// Metric definitions are constants: building one cannot fail, and names are unique.
const DEFINED: &str = "metric definitions are valid and their names unique";

/// Registers an `IntCounterVec`.
macro_rules! counter_vec {
    ($registry:expr, $name:expr, $help:expr, $labels:expr) => {
        prometheus::register_int_counter_vec_with_registry!($name, $help, $labels, $registry)
            .expect(DEFINED)
    };
}

/// Registers an `IntGaugeVec`.
macro_rules! gauge_vec {
    ($registry:expr, $name:expr, $help:expr, $labels:expr) => {
        prometheus::register_int_gauge_vec_with_registry!($name, $help, $labels, $registry)
            .expect(DEFINED)
    };
}

/// One child per label value, resolved up front.
fn children<const N: usize>(family: &IntCounterVec, values: [&str; N]) -> [IntCounter; N] {
    values.map(|v| family.with_label_values(&[v]))
}

impl Metrics {
    /// Registers every metric in a new registry. `replicas` and `certificates` are the
    /// configured names, whose series are created up front.
    pub(crate) fn new(replicas: &[String], certificates: &[String]) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let build_info = gauge_vec!(
            r,
            "ackee_gateway_build_info",
            "Always 1; the labels say which build is running.",
            &["version"]
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let preflights = counter_vec!(
            r,
            "ackee_gateway_preflights_total",
            "CORS preflights answered at the edge, by result.",
            &["result"]
        );
        let limits = counter_vec!(
            r,
            "ackee_gateway_limit_rejections_total",
            "Requests refused for a limit (size, time), and connections refused or closed for one, by limit.",
            &["limit"]
        );
        let acme = counter_vec!(
            r,
            "ackee_gateway_acme_challenges_total",
            "Requests for ACME HTTP-01 challenge files, by result.",
            &["result"]
        );
        let malformed = counter_vec!(
            r,
            "ackee_gateway_request_rejections_total",
            "Requests refused with 400 for their framing, by reason.",
            &["reason"]
        );
        let rate_limited = counter_vec!(
            r,
            "ackee_gateway_rate_limit_rejections_total",
            "Requests refused with 429 for their client's rate limit, by rule: tracker or login.",
            &["rule"]
        );
        let visits_ignored = counter_vec!(
            r,
            "ackee_gateway_visits_ignored_total",
            "Tracker writes answered at the edge with Ackee's answer for an ignored visit, by reason.",
            &["reason"]
        );
        let abandoned = counter_vec!(
            r,
            "ackee_gateway_requests_abandoned_total",
            "Requests their client left unfinished (closed its connection or reset its stream), by stage: head, body or answer.",
            &["stage"]
        );
        let (handshakes, reloads, expiry) = tls_metrics(r, certificates);
        let quic_handshakes = counter_vec!(
            r,
            "ackee_gateway_quic_handshakes_total",
            "QUIC handshakes on the HTTP/3 listeners, by result.",
            &["result"]
        );
        let quic_refusals = counter_vec!(
            r,
            "ackee_gateway_quic_refusals_total",
            "QUIC connections and HTTP/3 requests refused or cut off, by reason.",
            &["reason"]
        );
        Metrics {
            preflights: children(&preflights, ["allowed", "refused"]),
            rejections: rejection_metrics(r),
            requests: request_metrics(r),
            limits: children(&limits, Exceeded::ALL.map(Exceeded::as_str)),
            replicas: replica_metrics(r, replicas),
            handshakes,
            reloads,
            expiry,
            acme: children(&acme, ["served", "not_found"]),
            unavailable: prometheus::register_int_counter_with_registry!(
                "ackee_gateway_upstream_unavailable_total",
                "Requests answered 503 because no replica was up.",
                r
            )
            .expect(DEFINED),
            malformed: crate::framing::Malformed::ALL
                .iter()
                .map(|m| malformed.with_label_values(&[m.as_str()]))
                .collect(),
            access_log_dropped: prometheus::register_int_counter_with_registry!(
                "ackee_gateway_access_log_dropped_total",
                "Access-log lines dropped because the writer fell behind.",
                r
            )
            .expect(DEFINED),
            abandoned: children(&abandoned, AbandonedAt::ALL.map(AbandonedAt::as_str)),
            ackee_origins: AckeeOriginMetrics::register(r),
            acme_orders: AcmeMetrics::register(r),
            rate_limited: children(&rate_limited, Rule::ALL.map(Rule::as_str)),
            assets: AssetMetrics::register(r),
            quic_handshakes: children(&quic_handshakes, ["ok", "failed"]),
            quic_refusals: children(&quic_refusals, QuicRefusal::ALL.map(QuicRefusal::as_str)),
            quic_connections: prometheus::register_int_gauge_with_registry!(
                "ackee_gateway_quic_connections",
                "QUIC connections open on the HTTP/3 listeners.",
                r
            )
            .expect(DEFINED),
            visits_ignored: children(&visits_ignored, Reason::ALL.map(Reason::as_str)),
            connections: ConnectionMetrics::register(r, &limits),
            _build_info: build_info,
            registry,
        }
    }

    /// Counts what CORS decided about a request: preflights and refusals.
    pub(crate) fn cors(&self, decision: &Decision) {
        if let Some(allowed) = decision.preflight() {
            self.preflight(allowed);
        }
        if let Some((reason, kind)) = decision.refusal() {
            self.rejection(reason, kind);
        }
    }

    /// Counts a preflight answered at the edge.
    pub(crate) fn preflight(&self, allowed: bool) {
        self.preflights[usize::from(!allowed)].inc();
    }

    /// Counts a CORS refusal.
    pub(crate) fn rejection(&self, reason: Refusal, kind: RequestKind) {
        let r = Refusal::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        let k = usize::from(kind == RequestKind::Actual);
        self.rejections[r * 2 + k].inc();
    }

    /// Counts a finished request.
    pub(crate) fn request(&self, protocol: Protocol, method: &http::Method, status: Option<u16>) {
        if let Some(c) = self.requests.get(request_index(protocol, method, status)) {
            c.inc();
        }
    }

    /// Counts a request its client left unfinished.
    pub(crate) fn abandoned(&self, stage: AbandonedAt) {
        self.abandoned[stage as usize].inc();
    }

    /// Counts a QUIC handshake.
    pub(crate) fn quic_handshake(&self, ok: bool) {
        self.quic_handshakes[usize::from(!ok)].inc();
    }

    /// Counts a QUIC connection or HTTP/3 request refused or cut off.
    pub(crate) fn quic_refusal(&self, why: QuicRefusal) {
        if let Some(i) = QuicRefusal::ALL.iter().position(|r| *r == why) {
            self.quic_refusals[i].inc();
        }
    }

    /// Counts a QUIC connection opened (`+1`) or closed (`-1`).
    pub(crate) fn quic_connections(&self, delta: i64) {
        self.quic_connections.add(delta);
    }

    /// Counts a request refused for its size.
    pub(crate) fn limit(&self, which: Exceeded) {
        if let Some(i) = Exceeded::ALL.iter().position(|e| *e == which) {
            self.limits[i].inc();
        }
    }

    /// Counts a request refused for its client's rate limit.
    pub(crate) fn rate_limited(&self, rule: Rule) {
        if let Some(i) = Rule::ALL.iter().position(|r| *r == rule) {
            self.rate_limited[i].inc();
        }
    }

    /// Counts a tracker write answered at the edge as an ignored visit.
    pub(crate) fn visit_ignored(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.visits_ignored[i].inc();
        }
    }

    /// Records Ackee's response time for a replica (by config index).
    pub(crate) fn upstream_latency(&self, replica: usize, seconds: f64) {
        if let Some(r) = self.replicas.get(replica) {
            r.latency.observe(seconds);
        }
    }

    /// Sets a replica's health gauge.
    pub(crate) fn replica_health(&self, replica: usize, healthy: bool) {
        if let Some(r) = self.replicas.get(replica) {
            r.healthy.set(i64::from(healthy));
        }
    }

    /// Counts one attempt at a replica by its outcome.
    pub(crate) fn replica_outcome(&self, replica: usize, outcome: Outcome) {
        if let Some(r) = self.replicas.get(replica) {
            r.outcomes[outcome.index()].inc();
        }
    }

    /// Counts a failed attempt at a replica that is tried again, and why.
    pub(crate) fn retry(&self, replica: usize, reason: crate::retry::Reason) {
        let i = crate::retry::Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.replicas.get(replica).and_then(|r| r.retries.get(i)) {
            c.inc();
        }
    }

    /// The counter of dropped access-log lines, for the access log to increment.
    pub(crate) fn access_log_dropped(&self) -> prometheus::IntCounter {
        self.access_log_dropped.clone()
    }

    /// Counts a request refused with 400 for its framing.
    pub(crate) fn malformed(&self, why: crate::framing::Malformed) {
        let i = crate::framing::Malformed::ALL
            .iter()
            .position(|m| *m == why)
            .unwrap_or(0);
        if let Some(c) = self.malformed.get(i) {
            c.inc();
        }
    }

    /// Counts a 503 because no replica was up.
    pub(crate) fn unavailable(&self) {
        self.unavailable.inc();
    }

    /// Counts a failure talking to a replica (by config index).
    pub(crate) fn upstream_error(&self, replica: usize, kind: UpstreamErrorKind) {
        if let Some(r) = self.replicas.get(replica) {
            let k = UpstreamErrorKind::ALL
                .iter()
                .position(|x| *x == kind)
                .unwrap_or(0);
            r.errors[k].inc();
        }
    }

    /// Counts a TLS handshake.
    pub(crate) fn tls_handshake(&self, ok: bool) {
        self.handshakes[usize::from(!ok)].inc();
    }

    /// Counts a certificate reload (rare: not on the request path).
    pub(crate) fn tls_reload(&self, certificate: &str, ok: bool) {
        self.reloads
            .with_label_values(&[certificate, if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Sets a certificate's expiry (rare: not on the request path).
    pub(crate) fn tls_expiry(&self, certificate: &str, not_after: i64) {
        self.expiry.with_label_values(&[certificate]).set(not_after);
    }

    /// Counts an ACME challenge request.
    pub(crate) fn acme_challenge(&self, served: bool) {
        self.acme[usize::from(!served)].inc();
    }

    /// Every metric in Prometheus text format.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        self.assets.update_age();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// `ackee_gateway_cors_rejections_total`, by reason and request kind.
fn rejection_metrics(r: &Registry) -> Vec<IntCounter> {
    let rejections = counter_vec!(
        r,
        "ackee_gateway_cors_rejections_total",
        "Requests whose origin, method or requested header is not allowed, by reason and request kind.",
        &["reason", "request"]
    );
    let mut children = Vec::new();
    for reason in Refusal::ALL {
        for kind in [RequestKind::Preflight, RequestKind::Actual] {
            children.push(rejections.with_label_values(&[reason.as_str(), kind.as_str()]));
        }
    }
    children
}

/// `ackee_gateway_requests_total`, by protocol, method and status class, in the order of
/// [`request_index`].
fn request_metrics(r: &Registry) -> Vec<IntCounter> {
    let requests = counter_vec!(
        r,
        "ackee_gateway_requests_total",
        "Requests served, by protocol (http1, http2, http3), method and status class.",
        &["protocol", "method", "status"]
    );
    let mut children = Vec::new();
    for p in Protocol::ALL {
        for m in METHODS {
            for s in STATUS_CLASSES {
                children.push(requests.with_label_values(&[p.as_str(), m, s]));
            }
        }
    }
    children
}

/// The TLS handshake counters, and the reload and expiry families with every configured
/// certificate's reload series created up front.
fn tls_metrics(
    r: &Registry,
    certificates: &[String],
) -> ([IntCounter; 2], IntCounterVec, IntGaugeVec) {
    let handshakes = counter_vec!(
        r,
        "ackee_gateway_tls_handshakes_total",
        "TLS handshakes on the HTTPS listeners, by result.",
        &["result"]
    );
    let reloads = counter_vec!(
        r,
        "ackee_gateway_tls_certificate_reloads_total",
        "Certificate reloads (SIGHUP or file change), by certificate and result.",
        &["certificate", "result"]
    );
    let expiry = gauge_vec!(
        r,
        "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
        "When the certificate in use expires (its notAfter), as a Unix timestamp.",
        &["certificate"]
    );
    for c in certificates {
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[c.as_str(), result]);
        }
    }
    (children(&handshakes, ["ok", "failed"]), reloads, expiry)
}

/// Every per-replica family, with each replica's children resolved.
fn replica_metrics(r: &Registry, replicas: &[String]) -> Vec<ReplicaMetrics> {
    let latency = prometheus::register_histogram_vec_with_registry!(
        "ackee_gateway_upstream_response_seconds",
        "Time from sending a request to Ackee until its response header arrived, by replica.",
        &["replica"],
        LATENCY_BUCKETS.to_vec(),
        r
    )
    .expect(DEFINED);
    let errors = counter_vec!(
        r,
        "ackee_gateway_upstream_errors_total",
        "Failures talking to Ackee, by replica and kind.",
        &["replica", "kind"]
    );
    let healthy = gauge_vec!(
        r,
        "ackee_gateway_upstream_healthy",
        "1 if the replica passes its health checks and gets traffic, else 0.",
        &["replica"]
    );
    let outcomes = counter_vec!(
        r,
        "ackee_gateway_upstream_requests_total",
        "Requests sent to each replica, by outcome: the status class of its answer, connect_error or error.",
        &["replica", "outcome"]
    );
    let retries = counter_vec!(
        r,
        "ackee_gateway_upstream_retries_total",
        "Failed attempts at a replica that were tried again, by reason.",
        &["replica", "reason"]
    );
    replicas
        .iter()
        .map(|name| ReplicaMetrics {
            latency: latency.with_label_values(&[name.as_str()]),
            errors: UpstreamErrorKind::ALL
                .iter()
                .map(|k| errors.with_label_values(&[name.as_str(), k.as_str()]))
                .collect(),
            healthy: healthy.with_label_values(&[name.as_str()]),
            outcomes: OUTCOMES
                .iter()
                .map(|o| outcomes.with_label_values(&[name.as_str(), o]))
                .collect(),
            retries: crate::retry::Reason::ALL
                .iter()
                .map(|r| retries.with_label_values(&[name.as_str(), r.as_str()]))
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_the_right_labels() {
        let m = Metrics::new(&["ackee-1".to_owned()], &["stats".to_owned()]);
        m.preflight(true);
        m.preflight(false);
        m.preflight(false);
        m.rejection(Refusal::Header, RequestKind::Preflight);
        m.rejection(Refusal::Origin, RequestKind::Actual);
        m.request(Protocol::Http1, &http::Method::POST, Some(201));
        m.request(
            Protocol::Http2,
            &http::Method::from_bytes(b"BREW").unwrap(),
            Some(418),
        );
        m.request(Protocol::Http3, &http::Method::GET, None);
        m.request(Protocol::Http3, &http::Method::OPTIONS, Some(204));
        m.quic_handshake(true);
        m.quic_refusal(QuicRefusal::Qpack);
        m.limit(Exceeded::Body);
        m.upstream_latency(0, 0.003);
        m.upstream_error(0, UpstreamErrorKind::ConnectRefused);
        m.tls_handshake(true);
        m.tls_reload("stats", false);
        m.tls_expiry("stats", 1_800_000_000);
        m.acme_challenge(false);
        m.rate_limited(Rule::Login);
        m.visit_ignored(Reason::Bot);
        m.visit_ignored(Reason::Bot);
        m.visit_ignored(Reason::IgnoredId);
        let text = String::from_utf8(m.render()).unwrap();
        for line in [
            &format!(
                "ackee_gateway_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "ackee_gateway_preflights_total{result=\"allowed\"} 1",
            "ackee_gateway_preflights_total{result=\"refused\"} 2",
            "ackee_gateway_cors_rejections_total{reason=\"header\",request=\"preflight\"} 1",
            "ackee_gateway_cors_rejections_total{reason=\"origin\",request=\"actual\"} 1",
            "ackee_gateway_cors_rejections_total{reason=\"origin\",request=\"preflight\"} 0",
            "ackee_gateway_requests_total{method=\"POST\",protocol=\"http1\",status=\"2xx\"} 1",
            "ackee_gateway_requests_total{method=\"other\",protocol=\"http2\",status=\"4xx\"} 1",
            "ackee_gateway_requests_total{method=\"GET\",protocol=\"http3\",status=\"none\"} 1",
            "ackee_gateway_requests_total{method=\"OPTIONS\",protocol=\"http3\",status=\"2xx\"} 1",
            "ackee_gateway_requests_total{method=\"OPTIONS\",protocol=\"http1\",status=\"2xx\"} 0",
            "ackee_gateway_quic_handshakes_total{result=\"ok\"} 1",
            "ackee_gateway_quic_refusals_total{reason=\"qpack\"} 1",
            "ackee_gateway_quic_refusals_total{reason=\"retry\"} 0",
            "ackee_gateway_quic_connections 0",
            "ackee_gateway_limit_rejections_total{limit=\"body\"} 1",
            "ackee_gateway_upstream_response_seconds_count{replica=\"ackee-1\"} 1",
            "ackee_gateway_upstream_errors_total{kind=\"connect_refused\",replica=\"ackee-1\"} 1",
            "ackee_gateway_tls_handshakes_total{result=\"ok\"} 1",
            "ackee_gateway_tls_certificate_reloads_total{certificate=\"stats\",result=\"failed\"} 1",
            "ackee_gateway_tls_certificate_reloads_total{certificate=\"stats\",result=\"ok\"} 0",
            "ackee_gateway_tls_certificate_expiry_timestamp_seconds{certificate=\"stats\"} 1800000000",
            "ackee_gateway_acme_challenges_total{result=\"not_found\"} 1",
            "ackee_gateway_rate_limit_rejections_total{rule=\"login\"} 1",
            "ackee_gateway_rate_limit_rejections_total{rule=\"tracker\"} 0",
            "ackee_gateway_visits_ignored_total{reason=\"bot\"} 2",
            "ackee_gateway_visits_ignored_total{reason=\"ignored_id\"} 1",
            "ackee_gateway_visits_ignored_total{reason=\"network\"} 0",
            "ackee_gateway_visits_ignored_total{reason=\"gpc\"} 0",
            "ackee_gateway_visits_ignored_total{reason=\"dnt\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn labels_are_bounded_whatever_the_client_sends() {
        assert_eq!(
            METHODS[method_label(&http::Method::from_bytes(b"XYZZY").unwrap())],
            "other"
        );
        assert_eq!(STATUS_CLASSES[status_label(Some(999))], "none");
        assert_eq!(STATUS_CLASSES[status_label(Some(204))], "2xx");
    }
}
