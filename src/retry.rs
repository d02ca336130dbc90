//! Whether a failed attempt at Ackee is tried again, and where. No pingora here: the proxy
//! layer describes the failure, this module decides, and the proxy carries the decision out.
//! The replicas themselves, and how the gateway talks to them, are [`crate::replicas`].
//!
//! - A failed **connect** sent nothing, so any request may go to a replica it has not tried.
//! - A failure **after sending** is retried only for an idempotent method (never `POST` or
//!   `PATCH`: the visit may have been recorded), only when the whole body can be sent again,
//!   and only when the connection was a reused (pooled) one: Node may close a keep-alive
//!   connection just as the gateway reuses it, which says nothing about the replica's health.
//!   Such a request goes to a replica it has not tried yet, or, when there is none (a single
//!   Ackee), to the same replica on a new connection.
//!
//! [`Attempts`] holds one request's side of this: the replicas it tried, the one it is trying,
//! the one a failure chose for the next attempt, and the client key the balancer hashes. The
//! balancer itself is passed in as a function, so the whole sequence is unit-tested here.

use crate::replicas::MAX_REPLICAS;

/// The replicas a request has tried, by index: one bit each, as many as [`MAX_REPLICAS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tried(u64);

const _: () = assert!(MAX_REPLICAS <= u64::BITS as usize);

impl Tried {
    /// Whether replica `i` was tried. Indexes past [`MAX_REPLICAS`] are never remembered.
    pub fn contains(self, i: usize) -> bool {
        i < MAX_REPLICAS && self.0 & (1 << i) != 0
    }

    fn insert(&mut self, i: usize) {
        if i < MAX_REPLICAS {
            self.0 |= 1 << i;
        }
    }
}

/// The client address as bytes the balancer hashes (consistent hashing): up to 16 bytes.
pub type ClientKey = ([u8; 16], usize);

/// Where an attempt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The replica, by index.
    pub replica: usize,
    /// Whether it must use a new connection rather than a pooled one.
    pub new_connection: bool,
}

/// One request's attempts at Ackee.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    key: Option<ClientKey>,
    tried: Tried,
    current: Option<usize>,
    next: Option<usize>,
    new_connection: bool,
}

impl Attempts {
    /// The client key, computed by `key` on first use only.
    pub fn key_or(&mut self, key: impl FnOnce() -> ClientKey) -> ClientKey {
        *self.key.get_or_insert_with(key)
    }

    fn key(&self) -> &[u8] {
        match &self.key {
            Some((bytes, len)) => &bytes[..*len],
            None => &[],
        }
    }

    /// The replica of the current (or last) attempt.
    pub fn replica(&self) -> Option<usize> {
        self.current
    }

    /// Starts an attempt: at the replica a failure chose, or else at the one `select` picks
    /// among those not tried (given the client key). `None` when no replica is left.
    pub fn start(&mut self, select: impl FnOnce(&[u8], Tried) -> Option<usize>) -> Option<Attempt> {
        let replica = match self.next.take() {
            Some(i) => i,
            None => select(self.key(), self.tried)?,
        };
        self.tried.insert(replica);
        self.current = Some(replica);
        Some(Attempt {
            replica,
            new_connection: std::mem::take(&mut self.new_connection),
        })
    }

    /// After a failed connect: chooses the next replica with `select` and decides.
    pub fn connect_failed(&mut self, select: impl FnOnce(&[u8], Tried) -> Option<usize>) -> Next {
        self.next = select(self.key(), self.tried);
        let next = after_connect_failure(self.next.is_some());
        self.follow(next)
    }

    /// After a failure on an established connection (`another_left` is filled in here):
    /// chooses the next replica with `select` when a retry is possible, and decides.
    pub fn send_failed(
        &mut self,
        mut failure: SendFailure,
        select: impl FnOnce(&[u8], Tried) -> Option<usize>,
    ) -> Next {
        failure.another_left = false;
        if after_send_failure(failure) != Next::GiveUp {
            self.next = select(self.key(), self.tried);
            failure.another_left = self.next.is_some();
        }
        self.follow(after_send_failure(failure))
    }

    /// Carries out a decision for the current attempt.
    fn follow(&mut self, next: Next) -> Next {
        match (next, self.current) {
            (Next::Another(_), Some(_)) if self.next.is_some() => next,
            (Next::SameOnNewConnection(_), Some(i)) => {
                self.next = Some(i);
                self.new_connection = true;
                next
            }
            _ => {
                self.next = None;
                Next::GiveUp
            }
        }
    }
}

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

impl Next {
    /// Why the request is tried again, or `None` when it is not.
    pub fn reason(self) -> Option<Reason> {
        match self {
            Next::Another(r) | Next::SameOnNewConnection(r) => Some(r),
            Next::GiveUp => None,
        }
    }
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

    /// A balancer over `n` replicas, all healthy, picking the lowest index not tried.
    fn lowest(n: usize) -> impl Fn(&[u8], Tried) -> Option<usize> {
        move |_, tried| (0..n).find(|i| !tried.contains(*i))
    }

    fn stale(idempotent: bool) -> SendFailure {
        SendFailure {
            retryable: true,
            reused: true,
            idempotent,
            body_replayable: true,
            another_left: false,
        }
    }

    #[test]
    fn attempts_walk_through_the_replicas() {
        use Next::*;
        use Reason::{ConnectError as C, ReusedConnection as R};
        enum Step {
            Start(Option<(usize, bool)>),
            ConnectFailed(Next),
            SendFailed(bool, Next),
        }
        use Step::*;
        // (replicas, steps): each step's expected result.
        let cases: Vec<(usize, Vec<Step>)> = vec![
            // Connect failures move through every replica once, then give up.
            (
                3,
                vec![
                    Start(Some((0, false))),
                    ConnectFailed(Another(C)),
                    Start(Some((1, false))),
                    ConnectFailed(Another(C)),
                    Start(Some((2, false))),
                    ConnectFailed(GiveUp),
                    Start(None),
                ],
            ),
            // A stale pooled connection with one replica: the same one, on a new connection,
            // and the new connection is asked for once only.
            (
                1,
                vec![
                    Start(Some((0, false))),
                    SendFailed(true, SameOnNewConnection(R)),
                    Start(Some((0, true))),
                    ConnectFailed(GiveUp),
                ],
            ),
            // ... and with two, the other one.
            (
                2,
                vec![
                    Start(Some((0, false))),
                    SendFailed(true, Another(R)),
                    Start(Some((1, false))),
                ],
            ),
            // A POST is never sent twice.
            (
                2,
                vec![
                    Start(Some((0, false))),
                    SendFailed(false, GiveUp),
                    Start(Some((1, false))),
                ],
            ),
            // No replica at all.
            (0, vec![Start(None)]),
        ];
        for (n, steps) in cases {
            let mut a = Attempts::default();
            for (k, step) in steps.into_iter().enumerate() {
                match step {
                    Start(want) => {
                        let got = a.start(lowest(n)).map(|s| (s.replica, s.new_connection));
                        assert_eq!(got, want, "{n} replicas, step {k}");
                        if let Some((i, _)) = want {
                            assert_eq!(a.replica(), Some(i));
                        }
                    }
                    ConnectFailed(want) => {
                        assert_eq!(a.connect_failed(lowest(n)), want, "{n}, {k}")
                    }
                    SendFailed(idem, want) => {
                        assert_eq!(a.send_failed(stale(idem), lowest(n)), want, "{n}, {k}")
                    }
                }
            }
        }
    }

    #[test]
    fn nothing_is_retried_before_an_attempt_started() {
        let mut a = Attempts::default();
        assert_eq!(a.send_failed(stale(true), lowest(2)), Next::GiveUp);
        assert_eq!(a.connect_failed(lowest(2)), Next::GiveUp);
        assert_eq!(a.start(lowest(2)).map(|s| s.replica), Some(0));
    }

    #[test]
    fn the_client_key_is_computed_once_and_handed_to_the_balancer() {
        let mut a = Attempts::default();
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(a.key_or(|| (key, 4)), (key, 4));
        assert_eq!(a.key_or(|| unreachable!()), (key, 4));
        let seen = a.start(|k, _| {
            assert_eq!(k, &[192, 0, 2, 1]);
            Some(0)
        });
        assert!(seen.is_some());
        // Past the width of the mask, replicas are simply not remembered.
        let mut t = Tried::default();
        t.insert(MAX_REPLICAS);
        assert!(!t.contains(MAX_REPLICAS));
        t.insert(3);
        assert!(t.contains(3) && !t.contains(2));
    }

    #[test]
    fn labels_are_fixed() {
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["connect_error", "reused_connection"]);
    }
}
