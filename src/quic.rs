//! HTTP/3's rules that need no QUIC stack: a listener's HTTP/3 settings, the `Alt-Svc` value
//! its TCP answers carry, whether a new QUIC connection is accepted, asked to prove its address
//! (stateless retry) or refused, which HTTP/3 error codes mean a client broke the protocol, and
//! the budget of streams a client may reset before it is cut off. No pingora, no quinn: the
//! `h3` module (pingora layer) acts on these decisions.

use std::time::Duration;

/// A listener's HTTP/3 settings (`listeners[].http3`). Off unless the listener asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http3Settings {
    /// `ma=` of the `Alt-Svc` header on the listener's TCP answers: how long a browser may
    /// remember that HTTP/3 is offered.
    pub alt_svc_max_age: u32,
    /// Request streams a client may have open at once on one connection.
    pub max_concurrent_streams: u32,
    /// A connection with no packet for this long is closed.
    pub idle_timeout: Duration,
    /// Handshakes in progress at once on the listener; a new connection beyond them is refused.
    pub max_handshakes: usize,
    /// Handshakes in progress at or above which a new client must first prove its address
    /// (QUIC's stateless retry, one round trip more); 0 asks it of every client.
    pub retry_above: usize,
}

impl Default for Http3Settings {
    fn default() -> Self {
        Http3Settings {
            alt_svc_max_age: 86_400,
            max_concurrent_streams: 100,
            idle_timeout: Duration::from_secs(30),
            max_handshakes: 1024,
            retry_above: 64,
        }
    }
}

impl Http3Settings {
    /// The `Alt-Svc` value that TCP answers on the listener's `port` carry: HTTP/3 on the same
    /// port, for `alt_svc_max_age` seconds.
    pub fn alt_svc(&self, port: u16) -> String {
        format!("h3=\":{port}\"; ma={}", self.alt_svc_max_age)
    }
}

/// What happens to a new QUIC connection (its first Initial packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Start the handshake.
    Accept,
    /// Ask the client to prove its address first (a Retry packet with a token): under a flood
    /// of new connections from spoofed addresses nothing is kept and little is sent.
    Retry,
    /// Refuse the connection (CONNECTION_CLOSE with CONNECTION_REFUSED): too many handshakes.
    Refuse,
}

impl Http3Settings {
    /// Decides a new connection, with `in_flight` handshakes in progress and whether the client
    /// already proved its address (a Retry token, or a token from an earlier connection).
    pub fn admit(&self, in_flight: usize, validated: bool) -> Admission {
        if in_flight >= self.max_handshakes {
            Admission::Refuse
        } else if !validated && in_flight >= self.retry_above {
            Admission::Retry
        } else {
            Admission::Accept
        }
    }
}

/// Why a QUIC connection or an HTTP/3 stream was refused or cut off. A fixed set, for the
/// `reason` label of `ackee_gateway_quic_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A new connection refused: `max_handshakes` were in progress.
    Handshakes,
    /// A new connection asked to prove its address (stateless retry) before its handshake.
    Retry,
    /// The handshake failed: bad TLS, no common cipher or ALPN, a timeout.
    HandshakeFailed,
    /// Frames the protocol does not allow where they came (HTTP/2 frames, a second SETTINGS,
    /// DATA before HEADERS, a frame too large), or a stream the protocol does not allow.
    Malformed,
    /// A header block that cannot be decoded: a reference to a QPACK dynamic table, which the
    /// gateway does not offer (its capacity is 0), or a broken encoding.
    Qpack,
    /// A request head that h3 would not decode: larger than twice `limits.max_header_bytes`
    /// (answered 431; a head up to that size is checked and answered by the gateway itself,
    /// as over HTTP/1.1).
    HeaderTooLarge,
    /// A stream that sent more bytes than a request head and body may have (a HEADERS frame
    /// that never ends, say): stopped with `H3_EXCESSIVE_LOAD`.
    StreamTooLarge,
    /// A connection whose client reset too many requests before their answer (rapid reset).
    StreamResets,
    /// A request stream that ended or was reset before its head was complete, or whose head
    /// did not arrive within `limits.header_timeout_seconds`.
    IncompleteHead,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 9] = [
        Refusal::Handshakes,
        Refusal::Retry,
        Refusal::HandshakeFailed,
        Refusal::Malformed,
        Refusal::Qpack,
        Refusal::HeaderTooLarge,
        Refusal::StreamTooLarge,
        Refusal::StreamResets,
        Refusal::IncompleteHead,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Handshakes => "handshakes",
            Refusal::Retry => "retry",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::Malformed => "malformed",
            Refusal::Qpack => "qpack",
            Refusal::HeaderTooLarge => "header_too_large",
            Refusal::StreamTooLarge => "stream_too_large",
            Refusal::StreamResets => "stream_resets",
            Refusal::IncompleteHead => "incomplete_head",
        }
    }
}

/// HTTP/3 error codes (RFC 9114 section 8.1, RFC 9204 section 6).
pub mod code {
    /// No error: a graceful close.
    pub const H3_NO_ERROR: u64 = 0x100;
    /// A general protocol error.
    pub const H3_GENERAL_PROTOCOL_ERROR: u64 = 0x101;
    /// An internal error: the gateway gave up on a response.
    pub const H3_INTERNAL_ERROR: u64 = 0x102;
    /// A stream the protocol does not allow (a second control stream, say).
    pub const H3_STREAM_CREATION_ERROR: u64 = 0x103;
    /// A critical stream was closed.
    pub const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
    /// A frame not allowed where it came.
    pub const H3_FRAME_UNEXPECTED: u64 = 0x105;
    /// A frame that breaks its layout, or is too large.
    pub const H3_FRAME_ERROR: u64 = 0x106;
    /// The peer generates excessive load.
    pub const H3_EXCESSIVE_LOAD: u64 = 0x107;
    /// A stream or push ID used wrongly.
    pub const H3_ID_ERROR: u64 = 0x108;
    /// A bad SETTINGS frame.
    pub const H3_SETTINGS_ERROR: u64 = 0x109;
    /// No SETTINGS frame at the start of the control stream.
    pub const H3_MISSING_SETTINGS: u64 = 0x10a;
    /// The request was rejected before any processing.
    pub const H3_REQUEST_REJECTED: u64 = 0x10b;
    /// The request or its response was cancelled.
    pub const H3_REQUEST_CANCELLED: u64 = 0x10c;
    /// The request stream ended before the request was complete.
    pub const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
    /// A malformed message.
    pub const H3_MESSAGE_ERROR: u64 = 0x10e;
    /// A header block that cannot be decompressed.
    pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
    /// An instruction on the QPACK encoder stream that cannot be followed.
    pub const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
    /// An instruction on the QPACK decoder stream that cannot be followed.
    pub const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;
}

/// Which refusal an HTTP/3 error code that the gateway closed a connection with stands for:
/// the client broke the protocol. `None` for codes that are no client's fault (no error, an
/// internal error, a rejected request), and for `H3_EXCESSIVE_LOAD`, which only the gateway's
/// own rapid-reset rule sends and counts where it decides.
pub fn protocol_violation(error_code: u64) -> Option<Refusal> {
    use code::*;
    match error_code {
        QPACK_DECOMPRESSION_FAILED | QPACK_ENCODER_STREAM_ERROR | QPACK_DECODER_STREAM_ERROR => {
            Some(Refusal::Qpack)
        }
        H3_GENERAL_PROTOCOL_ERROR
        | H3_STREAM_CREATION_ERROR
        | H3_CLOSED_CRITICAL_STREAM
        | H3_FRAME_UNEXPECTED
        | H3_FRAME_ERROR
        | H3_ID_ERROR
        | H3_SETTINGS_ERROR
        | H3_MISSING_SETTINGS
        | H3_MESSAGE_ERROR => Some(Refusal::Malformed),
        _ => None,
    }
}

/// How many requests a client may reset before their answer, per connection, before the
/// connection is closed with `H3_EXCESSIVE_LOAD`. A browser cancels a request now and then (a
/// page closed mid-load); HTTP/2's rapid-reset attack (CVE-2023-44487) opens and cancels
/// thousands, each one costing the server a request's work.
///
/// The budget refills: every answered request earns back one reset, so a long-lived
/// connection of a real visitor never runs out, and one that cancels nearly everything does
/// within `limit` streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetBudget {
    left: u32,
    limit: u32,
}

impl ResetBudget {
    /// A budget of `limit` resets.
    pub const fn new(limit: u32) -> ResetBudget {
        ResetBudget { left: limit, limit }
    }

    /// A request was answered: one reset earned back, up to the limit.
    pub fn answered(&mut self) {
        self.left = (self.left + 1).min(self.limit);
    }

    /// A request was reset by the client before its answer. Returns false once the budget is
    /// spent: the connection must be closed.
    pub fn reset(&mut self) -> bool {
        self.left = self.left.saturating_sub(1);
        self.left > 0
    }
}

impl Default for ResetBudget {
    fn default() -> Self {
        ResetBudget::new(50)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_svc_names_the_same_port_and_the_max_age() {
        let s = Http3Settings {
            alt_svc_max_age: 3600,
            ..Http3Settings::default()
        };
        assert_eq!(s.alt_svc(443), "h3=\":443\"; ma=3600");
        assert_eq!(
            Http3Settings::default().alt_svc(8443),
            "h3=\":8443\"; ma=86400"
        );
    }

    #[test]
    fn admission_table() {
        let s = Http3Settings {
            max_handshakes: 10,
            retry_above: 4,
            ..Http3Settings::default()
        };
        for (in_flight, validated, want) in [
            (0, false, Admission::Accept),
            (3, false, Admission::Accept),
            (4, false, Admission::Retry),
            (4, true, Admission::Accept),
            (9, false, Admission::Retry),
            (9, true, Admission::Accept),
            (10, true, Admission::Refuse),
            (10, false, Admission::Refuse),
            (500, true, Admission::Refuse),
        ] {
            assert_eq!(
                s.admit(in_flight, validated),
                want,
                "{in_flight} {validated}"
            );
        }
        let always = Http3Settings {
            retry_above: 0,
            ..s
        };
        assert_eq!(always.admit(0, false), Admission::Retry);
        assert_eq!(always.admit(0, true), Admission::Accept);
    }

    #[test]
    fn only_a_clients_protocol_errors_are_violations() {
        for (code, want) in [
            (code::H3_NO_ERROR, None),
            (code::H3_INTERNAL_ERROR, None),
            (code::H3_REQUEST_REJECTED, None),
            (code::H3_REQUEST_CANCELLED, None),
            (code::H3_FRAME_UNEXPECTED, Some(Refusal::Malformed)),
            (code::H3_FRAME_ERROR, Some(Refusal::Malformed)),
            (code::H3_MISSING_SETTINGS, Some(Refusal::Malformed)),
            (code::H3_STREAM_CREATION_ERROR, Some(Refusal::Malformed)),
            (code::QPACK_DECOMPRESSION_FAILED, Some(Refusal::Qpack)),
            (code::QPACK_ENCODER_STREAM_ERROR, Some(Refusal::Qpack)),
            (code::H3_EXCESSIVE_LOAD, None),
            (0, None),
            (0x1f * 7 + 0x21, None),
        ] {
            assert_eq!(protocol_violation(code), want, "{code:#x}");
        }
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }

    #[test]
    fn the_reset_budget_runs_out_for_a_rapid_reset_and_never_for_a_visitor() {
        let mut attacker = ResetBudget::new(5);
        let allowed = (0..100).take_while(|_| attacker.reset()).count();
        assert_eq!(allowed, 4, "the fifth reset closes the connection");

        let mut visitor = ResetBudget::new(5);
        for _ in 0..10_000 {
            for _ in 0..9 {
                visitor.answered();
            }
            assert!(visitor.reset(), "one cancel in ten never runs out");
        }
        // Answers never raise it above the limit.
        let mut b = ResetBudget::new(2);
        for _ in 0..10 {
            b.answered();
        }
        assert!(b.reset());
        assert!(!b.reset());
    }
}
