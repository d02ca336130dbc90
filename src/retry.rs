//! Whether a failed attempt at Ackee is tried again, and where. No pingora here: the proxy
//! layer describes the failure, this module decides, and the proxy carries the decision out.
//!
//! - A failed **connect** sent nothing, so any request may go to a replica it has not tried.
//! - A failure **after sending** is retried only for an idempotent method (never `POST` or
//!   `PATCH`: the visit may have been recorded), only when the whole body can be sent again,
//!   and only when the connection was a reused (pooled) one: Node may close a keep-alive
//!   connection just as the gateway reuses it, which says nothing about the replica's health.
//!   Such a request goes to a replica it has not tried yet, or, when there is none (a single
//!   Ackee), to the same replica on a new connection.

/// Why a retry happened, for the `reason` label of `ackee_gateway_upstream_retries_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The connection could not be made.
    ConnectError,
    /// A reused connection failed after the request was sent (closed by Ackee).
    ReusedConnection,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 2] = [Reason::ConnectError, Reason::ReusedConnection];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConnectError => "connect_error",
            Reason::ReusedConnection => "reused_connection",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try a replica this request has not tried yet.
    Another(Reason),
    /// Try the same replica again, on a new connection (never a pooled one).
    SameOnNewConnection(Reason),
    /// Give up: the client gets the error.
    GiveUp,
}

/// A failure after the request was (or may have been) sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendFailure {
    /// Whether the error itself may be retried (pingora's verdict, for a reused connection).
    pub retryable: bool,
    /// Whether the connection came from the pool.
    pub reused: bool,
    /// Whether the method is idempotent (`GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`, ...).
    pub idempotent: bool,
    /// Whether the whole request body is still at hand to be sent again.
    pub body_replayable: bool,
    /// Whether a healthy replica this request has not tried is left.
    pub another_left: bool,
}

/// After a failed connect: another replica if one is left.
pub fn after_connect_failure(another_left: bool) -> Next {
    if another_left {
        Next::Another(Reason::ConnectError)
    } else {
        Next::GiveUp
    }
}

/// After a failure on an established connection.
pub fn after_send_failure(f: SendFailure) -> Next {
    if !(f.retryable && f.reused && f.idempotent && f.body_replayable) {
        return Next::GiveUp;
    }
    if f.another_left {
        Next::Another(Reason::ReusedConnection)
    } else {
        Next::SameOnNewConnection(Reason::ReusedConnection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_connect_moves_on_while_replicas_are_left() {
        assert_eq!(
            after_connect_failure(true),
            Next::Another(Reason::ConnectError)
        );
        assert_eq!(after_connect_failure(false), Next::GiveUp);
    }

    #[test]
    fn failures_after_sending() {
        use Next::*;
        use Reason::ReusedConnection as R;
        // (retryable, reused, idempotent, body_replayable, another_left) -> next
        let cases = [
            // A stale pooled connection under an idempotent request: retried.
            ((true, true, true, true, false), SameOnNewConnection(R)),
            ((true, true, true, true, true), Another(R)),
            // POST and PATCH are never sent twice.
            ((true, true, false, true, false), GiveUp),
            ((true, true, false, true, true), GiveUp),
            // A fresh connection that failed: the replica's own failure, not retried.
            ((true, false, true, true, true), GiveUp),
            ((true, false, true, true, false), GiveUp),
            // A body that can no longer be replayed.
            ((true, true, true, false, false), GiveUp),
            // An error pingora says must not be retried (a TLS error, a timeout).
            ((false, true, true, true, true), GiveUp),
        ];
        for ((retryable, reused, idempotent, body_replayable, another_left), want) in cases {
            let f = SendFailure {
                retryable,
                reused,
                idempotent,
                body_replayable,
                another_left,
            };
            assert_eq!(after_send_failure(f), want, "{f:?}");
        }
    }

    #[test]
    fn labels_are_fixed() {
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["connect_error", "reused_connection"]);
    }
}
