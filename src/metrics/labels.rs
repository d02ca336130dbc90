//! The fixed label sets of the gateway's metrics: whatever a client sends, a label value comes
//! from one of these.

/// What went wrong talking to Ackee. A fixed set, safe for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpstreamErrorKind {
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
    pub(crate) const ALL: [UpstreamErrorKind; 8] = [
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
    pub(crate) fn as_str(self) -> &'static str {
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

/// Where a client left a request it had begun: closed or reset its connection (or its stream)
/// before the answer was complete. A fixed set, for the `stage` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AbandonedAt {
    /// While the gateway read the request head (a head in part, then the close).
    Head,
    /// While the gateway read the request body.
    Body,
    /// After the request was read: while Ackee answered, or while the answer was written.
    Answer,
}

impl AbandonedAt {
    /// Every stage, in label order.
    pub(crate) const ALL: [AbandonedAt; 3] =
        [AbandonedAt::Head, AbandonedAt::Body, AbandonedAt::Answer];

    /// The metric label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AbandonedAt::Head => "head",
            AbandonedAt::Body => "body",
            AbandonedAt::Answer => "answer",
        }
    }
}

/// The protocol a request arrived over. A fixed set, for the `protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or HTTP/1.1, plain or over TLS.
    Http1,
    /// HTTP/2 over TLS.
    Http2,
    /// HTTP/3 over QUIC.
    Http3,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 3] = [Protocol::Http1, Protocol::Http2, Protocol::Http3];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Http3 => "http3",
        }
    }

    fn index(self) -> usize {
        match self {
            Protocol::Http1 => 0,
            Protocol::Http2 => 1,
            Protocol::Http3 => 2,
        }
    }
}

/// The index of a request's series in `ackee_gateway_requests_total`'s children, built in
/// this order: protocol, then method, then status class.
pub(crate) fn request_index(
    protocol: Protocol,
    method: &http::Method,
    status: Option<u16>,
) -> usize {
    (protocol.index() * METHODS.len() + method_label(method)) * STATUS_CLASSES.len()
        + status_label(status)
}

/// The method label: the common methods by name, anything else as `other`.
pub(crate) const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Maps a request method to its label index in [`METHODS`].
pub(crate) fn method_label(method: &http::Method) -> usize {
    METHODS[..7]
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(7)
}

/// Status classes, plus `none` when no response could be sent.
pub(crate) const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Maps a status code to its label index in [`STATUS_CLASSES`].
pub(crate) fn status_label(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100) - 1,
        _ => 5,
    }
}

/// Upstream latency buckets in seconds: Ackee answers tracker mutations in milliseconds.
pub(crate) const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Outcomes of a request sent to a replica: its status class, or how it failed.
pub(crate) const OUTCOMES: [&str; 7] =
    ["1xx", "2xx", "3xx", "4xx", "5xx", "connect_error", "error"];

/// What happened to one attempt at a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The replica answered with this status.
    Status(u16),
    /// The connection could not be made; nothing was sent.
    ConnectError,
    /// The request failed after it was sent.
    Error,
}

impl Outcome {
    pub(super) fn index(self) -> usize {
        match self {
            Outcome::Status(s @ 100..=599) => usize::from(s / 100) - 1,
            Outcome::Status(_) | Outcome::Error => 6,
            Outcome::ConnectError => 5,
        }
    }
}
