//! Every Prometheus metric the gateway exports, registered once at start-up.
//!
//! Label values come only from fixed sets ([`Refusal`], [`RequestKind`] (both from a
//! [`Decision`]), [`method_label`],
//! status classes, [`UpstreamErrorKind`], [`Rule`]) or from the config (replica names). Children of each
//! metric family are resolved at start-up, so counting on the request path is an atomic add.
//! The `prometheus` crate is the version pingora-prometheus re-exports.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::cors::{Decision, Refusal, RequestKind};
use crate::limits::Exceeded;
use crate::ratelimit::Rule;

/// What went wrong talking to Ackee. A fixed set, safe for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The connection was refused: nothing listens.
    ConnectRefused,
    /// The connection timed out.
    ConnectTimeout,
    /// Any other failure to connect.
    ConnectError,
    /// Ackee did not answer within the read timeout.
    ReadTimeout,
    /// Writing the request to Ackee timed out.
    WriteTimeout,
    /// Ackee closed or reset the connection mid-request.
    ConnectionClosed,
    /// Ackee sent something that is not valid HTTP.
    InvalidResponse,
    /// Anything else.
    Other,
}

impl UpstreamErrorKind {
    /// Every kind, for pre-registering series.
    pub const ALL: [UpstreamErrorKind; 8] = [
        UpstreamErrorKind::ConnectRefused,
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::ConnectError,
        UpstreamErrorKind::ReadTimeout,
        UpstreamErrorKind::WriteTimeout,
        UpstreamErrorKind::ConnectionClosed,
        UpstreamErrorKind::InvalidResponse,
        UpstreamErrorKind::Other,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::ConnectRefused => "connect_refused",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::ConnectError => "connect_error",
            UpstreamErrorKind::ReadTimeout => "read_timeout",
            UpstreamErrorKind::WriteTimeout => "write_timeout",
            UpstreamErrorKind::ConnectionClosed => "connection_closed",
            UpstreamErrorKind::InvalidResponse => "invalid_response",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// The method label: the common methods by name, anything else as `other`.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Maps a request method to its label index in [`METHODS`].
pub fn method_label(method: &http::Method) -> usize {
    METHODS[..7]
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(7)
}

/// Status classes, plus `none` when no response could be sent.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Maps a status code to its label index in [`STATUS_CLASSES`].
pub fn status_label(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100) - 1,
        _ => 5,
    }
}

/// Upstream latency buckets in seconds: Ackee answers tracker mutations in milliseconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Per-replica children, resolved once.
struct ReplicaMetrics {
    latency: Histogram,
    errors: Vec<IntCounter>,
    healthy: IntGauge,
    outcomes: Vec<IntCounter>,
    retries: Vec<IntCounter>,
}

/// Outcomes of a request sent to a replica: its status class, or how it failed.
pub const OUTCOMES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "connect_error", "error"];

/// What happened to one attempt at a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The replica answered with this status.
    Status(u16),
    /// The connection could not be made; nothing was sent.
    ConnectError,
    /// The request failed after it was sent.
    Error,
}

impl Outcome {
    fn index(self) -> usize {
        match self {
            Outcome::Status(s @ 100..=599) => usize::from(s / 100) - 1,
            Outcome::Status(_) | Outcome::Error => 6,
            Outcome::ConnectError => 5,
        }
    }
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
    /// Origins from Ackee's domain list (`cors.origins_from_ackee`).
    pub ackee_origins: AckeeOriginMetrics,
    rate_limited: [IntCounter; Rule::ALL.len()],
    /// Kept so the family is registered.
    _build_info: IntGaugeVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registry
        .register(Box::new(v.clone()))
        .expect("metric names are unique");
    v
}

impl Metrics {
    /// Registers every metric in a new registry. `replicas` and `certificates` are the
    /// configured names, whose series are created up front.
    pub fn new(replicas: &[String], certificates: &[String]) -> Metrics {
        let registry = Registry::new();

        let build_info = IntGaugeVec::new(
            Opts::new(
                "ackee_gateway_build_info",
                "Always 1; the labels say which build is running.",
            ),
            &["version"],
        )
        .expect("metric definition is valid");
        registry
            .register(Box::new(build_info.clone()))
            .expect("metric names are unique");
        let g: IntGauge = build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]);
        g.set(1);

        let preflights = counter_vec(
            &registry,
            "ackee_gateway_preflights_total",
            "CORS preflights answered at the edge, by result.",
            &["result"],
        );
        let rejections = counter_vec(
            &registry,
            "ackee_gateway_cors_rejections_total",
            "Requests whose origin, method or requested header is not allowed, by reason and request kind.",
            &["reason", "request"],
        );
        let requests = counter_vec(
            &registry,
            "ackee_gateway_requests_total",
            "Requests served, by method and status class.",
            &["method", "status"],
        );
        let limits = counter_vec(
            &registry,
            "ackee_gateway_limit_rejections_total",
            "Requests refused for size: header (431) or body (413).",
            &["limit"],
        );
        let latency = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "ackee_gateway_upstream_response_seconds",
                "Time from sending a request to Ackee until its response header arrived, by replica.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["replica"],
        )
        .expect("metric definition is valid");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric names are unique");
        let upstream_errors = counter_vec(
            &registry,
            "ackee_gateway_upstream_errors_total",
            "Failures talking to Ackee, by replica and kind.",
            &["replica", "kind"],
        );

        let handshakes = counter_vec(
            &registry,
            "ackee_gateway_tls_handshakes_total",
            "TLS handshakes on the HTTPS listeners, by result.",
            &["result"],
        );
        let reloads = counter_vec(
            &registry,
            "ackee_gateway_tls_certificate_reloads_total",
            "Certificate reloads (SIGHUP or file change), by certificate and result.",
            &["certificate", "result"],
        );
        let expiry = IntGaugeVec::new(
            Opts::new(
                "ackee_gateway_tls_certificate_expiry_timestamp_seconds",
                "When the certificate in use expires (its notAfter), as a Unix timestamp.",
            ),
            &["certificate"],
        )
        .expect("metric definition is valid");
        registry
            .register(Box::new(expiry.clone()))
            .expect("metric names are unique");
        let acme = counter_vec(
            &registry,
            "ackee_gateway_acme_challenges_total",
            "Requests for ACME HTTP-01 challenge files, by result.",
            &["result"],
        );
        for c in certificates {
            for result in ["ok", "failed"] {
                reloads.with_label_values(&[c.as_str(), result]);
            }
        }

        let mut rejection_children = Vec::new();
        for reason in Refusal::ALL {
            for kind in [RequestKind::Preflight, RequestKind::Actual] {
                rejection_children
                    .push(rejections.with_label_values(&[reason.as_str(), kind.as_str()]));
            }
        }
        let mut request_children = Vec::new();
        for m in METHODS {
            for s in STATUS_CLASSES {
                request_children.push(requests.with_label_values(&[m, s]));
            }
        }
        let healthy = IntGaugeVec::new(
            Opts::new(
                "ackee_gateway_upstream_healthy",
                "1 if the replica passes its health checks and gets traffic, else 0.",
            ),
            &["replica"],
        )
        .expect("metric definition is valid");
        registry
            .register(Box::new(healthy.clone()))
            .expect("metric names are unique");
        let outcomes = counter_vec(
            &registry,
            "ackee_gateway_upstream_requests_total",
            "Requests sent to each replica, by outcome: the status class of its answer, connect_error or error.",
            &["replica", "outcome"],
        );
        let retries = counter_vec(
            &registry,
            "ackee_gateway_upstream_retries_total",
            "Failed attempts at a replica that were tried again, by reason.",
            &["replica", "reason"],
        );
        let unavailable = IntCounter::with_opts(Opts::new(
            "ackee_gateway_upstream_unavailable_total",
            "Requests answered 503 because no replica was up.",
        ))
        .expect("metric definition is valid");
        registry
            .register(Box::new(unavailable.clone()))
            .expect("metric names are unique");
        let malformed = counter_vec(
            &registry,
            "ackee_gateway_request_rejections_total",
            "Requests refused with 400 for their framing, by reason.",
            &["reason"],
        );
        let rate_limited = counter_vec(
            &registry,
            "ackee_gateway_rate_limit_rejections_total",
            "Requests refused with 429 for their client's rate limit, by rule: tracker or login.",
            &["rule"],
        );
        let access_log_dropped = IntCounter::with_opts(Opts::new(
            "ackee_gateway_access_log_dropped_total",
            "Access-log lines dropped because the writer fell behind.",
        ))
        .expect("metric definition is valid");
        registry
            .register(Box::new(access_log_dropped.clone()))
            .expect("metric names are unique");
        let replicas = replicas
            .iter()
            .map(|name| ReplicaMetrics {
                latency: latency.with_label_values(&[name.as_str()]),
                errors: UpstreamErrorKind::ALL
                    .iter()
                    .map(|k| upstream_errors.with_label_values(&[name.as_str(), k.as_str()]))
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
            .collect();

        let ackee_origins = AckeeOriginMetrics::register(&registry);
        Metrics {
            ackee_origins,
            preflights: [
                preflights.with_label_values(&["allowed"]),
                preflights.with_label_values(&["refused"]),
            ],
            rejections: rejection_children,
            requests: request_children,
            limits: Exceeded::ALL.map(|e| limits.with_label_values(&[e.as_str()])),
            replicas,
            handshakes: [
                handshakes.with_label_values(&["ok"]),
                handshakes.with_label_values(&["failed"]),
            ],
            reloads,
            expiry,
            unavailable,
            malformed: crate::framing::Malformed::ALL
                .iter()
                .map(|m| malformed.with_label_values(&[m.as_str()]))
                .collect(),
            access_log_dropped,
            rate_limited: Rule::ALL.map(|r| rate_limited.with_label_values(&[r.as_str()])),
            acme: [
                acme.with_label_values(&["served"]),
                acme.with_label_values(&["not_found"]),
            ],
            registry,
            _build_info: build_info,
        }
    }

    /// Counts what CORS decided about a request: preflights and refusals.
    pub fn cors(&self, decision: &Decision) {
        if let Some(allowed) = decision.preflight() {
            self.preflight(allowed);
        }
        if let Some((reason, kind)) = decision.refusal() {
            self.rejection(reason, kind);
        }
    }

    /// Counts a preflight answered at the edge.
    pub fn preflight(&self, allowed: bool) {
        self.preflights[usize::from(!allowed)].inc();
    }

    /// Counts a CORS refusal.
    pub fn rejection(&self, reason: Refusal, kind: RequestKind) {
        let r = Refusal::ALL.iter().position(|x| *x == reason).unwrap_or(0);
        let k = usize::from(kind == RequestKind::Actual);
        self.rejections[r * 2 + k].inc();
    }

    /// Counts a finished request.
    pub fn request(&self, method: &http::Method, status: Option<u16>) {
        let i = method_label(method) * STATUS_CLASSES.len() + status_label(status);
        self.requests[i].inc();
    }

    /// Counts a request refused for its size.
    pub fn limit(&self, which: Exceeded) {
        if let Some(i) = Exceeded::ALL.iter().position(|e| *e == which) {
            self.limits[i].inc();
        }
    }

    /// Counts a request refused for its client's rate limit.
    pub fn rate_limited(&self, rule: Rule) {
        if let Some(i) = Rule::ALL.iter().position(|r| *r == rule) {
            self.rate_limited[i].inc();
        }
    }

    /// Records Ackee's response time for a replica (by config index).
    pub fn upstream_latency(&self, replica: usize, seconds: f64) {
        if let Some(r) = self.replicas.get(replica) {
            r.latency.observe(seconds);
        }
    }

    /// Sets a replica's health gauge.
    pub fn replica_health(&self, replica: usize, healthy: bool) {
        if let Some(r) = self.replicas.get(replica) {
            r.healthy.set(i64::from(healthy));
        }
    }

    /// Counts one attempt at a replica by its outcome.
    pub fn replica_outcome(&self, replica: usize, outcome: Outcome) {
        if let Some(r) = self.replicas.get(replica) {
            r.outcomes[outcome.index()].inc();
        }
    }

    /// Counts a failed attempt at a replica that is tried again, and why.
    pub fn retry(&self, replica: usize, reason: crate::retry::Reason) {
        let i = crate::retry::Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        if let Some(c) = self.replicas.get(replica).and_then(|r| r.retries.get(i)) {
            c.inc();
        }
    }

    /// The counter of dropped access-log lines, for the access log to increment.
    pub fn access_log_dropped(&self) -> prometheus::IntCounter {
        self.access_log_dropped.clone()
    }

    /// Counts a request refused with 400 for its framing.
    pub fn malformed(&self, why: crate::framing::Malformed) {
        let i = crate::framing::Malformed::ALL
            .iter()
            .position(|m| *m == why)
            .unwrap_or(0);
        if let Some(c) = self.malformed.get(i) {
            c.inc();
        }
    }

    /// Counts a 503 because no replica was up.
    pub fn unavailable(&self) {
        self.unavailable.inc();
    }

    /// Counts a failure talking to a replica (by config index).
    pub fn upstream_error(&self, replica: usize, kind: UpstreamErrorKind) {
        if let Some(r) = self.replicas.get(replica) {
            let k = UpstreamErrorKind::ALL
                .iter()
                .position(|x| *x == kind)
                .unwrap_or(0);
            r.errors[k].inc();
        }
    }

    /// Counts a TLS handshake.
    pub fn tls_handshake(&self, ok: bool) {
        self.handshakes[usize::from(!ok)].inc();
    }

    /// Counts a certificate reload (rare: not on the request path).
    pub fn tls_reload(&self, certificate: &str, ok: bool) {
        self.reloads
            .with_label_values(&[certificate, if ok { "ok" } else { "failed" }])
            .inc();
    }

    /// Sets a certificate's expiry (rare: not on the request path).
    pub fn tls_expiry(&self, certificate: &str, not_after: i64) {
        self.expiry.with_label_values(&[certificate]).set(not_after);
    }

    /// Counts an ACME challenge request.
    pub fn acme_challenge(&self, served: bool) {
        self.acme[usize::from(!served)].inc();
    }

    /// The registry, for serving and for further metric families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            out.clear();
        }
        out
    }
}

/// The metrics of origins from Ackee's domain list. Registered whether or not
/// `cors.origins_from_ackee` is set (all zero without it), so the export never depends on the
/// config.
pub struct AckeeOriginMetrics {
    origins: IntGauge,
    skipped: IntGauge,
    last_success: IntGauge,
    failures: [IntCounter; crate::ackee_origins::Failure::ALL.len()],
}

impl AckeeOriginMetrics {
    fn register(registry: &Registry) -> AckeeOriginMetrics {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::with_opts(Opts::new(name, help)).expect("metric definition is valid");
            registry
                .register(Box::new(g.clone()))
                .expect("metric names are unique");
            g
        };
        let failures = counter_vec(
            registry,
            "ackee_gateway_ackee_origins_refresh_failures_total",
            "Polls of Ackee's domain list that failed, by reason; the last good list stays in use.",
            &["reason"],
        );
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
            failures: crate::ackee_origins::Failure::ALL
                .map(|f| failures.with_label_values(&[f.as_str()])),
        }
    }

    /// Records a successful poll: how many origins and skipped titles it left, and when.
    pub fn success(&self, origins: usize, skipped: usize, unix_seconds: i64) {
        self.origins.set(i64::try_from(origins).unwrap_or(i64::MAX));
        self.skipped.set(i64::try_from(skipped).unwrap_or(i64::MAX));
        self.last_success.set(unix_seconds);
    }

    /// Counts a failed poll.
    pub fn failure(&self, reason: crate::ackee_origins::Failure) {
        if let Some(i) = crate::ackee_origins::Failure::ALL
            .iter()
            .position(|f| *f == reason)
        {
            self.failures[i].inc();
        }
    }
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
        m.request(&http::Method::POST, Some(201));
        m.request(&http::Method::from_bytes(b"BREW").unwrap(), Some(418));
        m.request(&http::Method::GET, None);
        m.limit(Exceeded::Body);
        m.upstream_latency(0, 0.003);
        m.upstream_error(0, UpstreamErrorKind::ConnectRefused);
        m.tls_handshake(true);
        m.tls_reload("stats", false);
        m.tls_expiry("stats", 1_800_000_000);
        m.acme_challenge(false);
        m.rate_limited(Rule::Login);
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
            "ackee_gateway_requests_total{method=\"POST\",status=\"2xx\"} 1",
            "ackee_gateway_requests_total{method=\"other\",status=\"4xx\"} 1",
            "ackee_gateway_requests_total{method=\"GET\",status=\"none\"} 1",
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
