//! The QUIC side of the `h3` crate, on quinn: h3's transport traits implemented over a
//! `quinn::Connection`, as the `h3-quinn` crate does, with three changes the gateway needs.
//!
//! - **Every inbound stream has a byte budget.** h3 reads a frame other than DATA whole before
//!   it decodes it, and its reading returns flow-control credit to the client, so a HEADERS
//!   frame (or an unknown frame) that declares gigabytes was buffered for as long as the client
//!   kept sending. A request stream may carry a request head and body within the `limits`
//!   (plus framing); a unidirectional stream (control, QPACK) a fixed amount. A stream over its
//!   budget is stopped (`H3_EXCESSIVE_LOAD`), reported to h3 as terminated and counted
//!   (`stream_too_large`).
//! - **Reads never park the stream inside a future.** h3-quinn moves the `quinn::RecvStream`
//!   into a boxed read future while a read is pending, and `stop_sending` then unwraps `None`
//!   and panics. Here each poll makes quinn's (cancel-safe) `read_chunk` afresh.
//! - **A receive side dropped unread is stopped with `H3_NO_ERROR`**, not with quinn's
//!   default code 0, which is no HTTP/3 error code (curl reports such a stream as reset by
//!   the server, hyperium/h3 issue 321). **A send side dropped before anything was written
//!   on it** (a request whose head never came whole) is reset with `H3_REQUEST_INCOMPLETE`,
//!   where quinn would end it with a FIN, an empty answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures::stream::{self, Stream, StreamExt};
use h3::error::Code;
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use quinn::VarInt;

use crate::metrics::Metrics;
use crate::quic::{Refusal, code};

type Accepted<T> = Pin<Box<dyn Stream<Item = Result<T, quinn::ConnectionError>> + Send + Sync>>;

/// The byte budgets of a connection's inbound streams.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budgets {
    /// A request stream: its head, its body and their framing.
    pub(crate) request: u64,
    /// A unidirectional stream: the control stream's SETTINGS and the frames a connection
    /// sends over its life (GOAWAY, PRIORITY_UPDATE), or a QPACK stream.
    pub(crate) unidirectional: u64,
}

/// A quinn connection as h3 sees it.
pub(crate) struct Connection {
    conn: quinn::Connection,
    budgets: Budgets,
    metrics: Arc<Metrics>,
    incoming_bi: Accepted<(quinn::SendStream, quinn::RecvStream)>,
    incoming_uni: Accepted<quinn::RecvStream>,
    opener: OpenStreams,
}

impl Connection {
    /// Wraps `conn`; its inbound streams get `budgets`.
    pub(crate) fn new(conn: quinn::Connection, budgets: Budgets, metrics: Arc<Metrics>) -> Self {
        Connection {
            incoming_bi: Box::pin(stream::unfold(conn.clone(), |c| async {
                Some((c.accept_bi().await, c))
            })),
            incoming_uni: Box::pin(stream::unfold(conn.clone(), |c| async {
                Some((c.accept_uni().await, c))
            })),
            opener: OpenStreams::new(conn.clone()),
            conn,
            budgets,
            metrics,
        }
    }

    fn recv(
        &self,
        stream: quinn::RecvStream,
        budget: u64,
    ) -> Result<RecvStream, ConnectionErrorIncoming> {
        Ok(RecvStream {
            id: stream_id(stream.id())?,
            stream,
            left: budget,
            finished: false,
            metrics: Some(self.metrics.clone()),
        })
    }
}

/// The h3 view of quinn's error for a closed connection.
fn connection_error(e: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match e {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn stream_connection_error(e: quinn::ConnectionError) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming {
        connection_error: connection_error(e),
    }
}

fn varint(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

impl<B: Buf> quic::Connection<B> for Connection {
    type RecvStream = RecvStream;
    type OpenStreams = OpenStreams;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        match ready!(self.incoming_uni.poll_next_unpin(cx)) {
            Some(Ok(recv)) => Poll::Ready(self.recv(recv, self.budgets.unidirectional)),
            Some(Err(e)) => Poll::Ready(Err(connection_error(e))),
            None => Poll::Ready(Err(ConnectionErrorIncoming::InternalError(
                "the stream of accepted streams ended".to_owned(),
            ))),
        }
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        match ready!(self.incoming_bi.poll_next_unpin(cx)) {
            Some(Ok((send, recv))) => Poll::Ready(Ok(BidiStream {
                send: SendStream::new(send)?,
                recv: self.recv(recv, self.budgets.request)?,
            })),
            Some(Err(e)) => Poll::Ready(Err(connection_error(e))),
            None => Poll::Ready(Err(ConnectionErrorIncoming::InternalError(
                "the stream of accepted streams ended".to_owned(),
            ))),
        }
    }

    fn opener(&self) -> Self::OpenStreams {
        OpenStreams::new(self.conn.clone())
    }
}

impl<B: Buf> quic::OpenStreams<B> for Connection {
    type SendStream = SendStream<B>;
    type BidiStream = BidiStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_bidi(&mut self.opener, cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        quic::OpenStreams::<B>::poll_open_send(&mut self.opener, cx)
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

type Opening<T> =
    Option<Pin<Box<dyn Future<Output = Result<T, quinn::ConnectionError>> + Send + Sync>>>;

/// Opens the server's own streams (its control and QPACK streams).
pub(crate) struct OpenStreams {
    conn: quinn::Connection,
    opening_bi: Opening<(quinn::SendStream, quinn::RecvStream)>,
    opening_uni: Opening<quinn::SendStream>,
}

impl OpenStreams {
    fn new(conn: quinn::Connection) -> Self {
        OpenStreams {
            conn,
            opening_bi: None,
            opening_uni: None,
        }
    }
}

impl<B: Buf> quic::OpenStreams<B> for OpenStreams {
    type SendStream = SendStream<B>;
    type BidiStream = BidiStream<B>;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        let conn = self.conn.clone();
        let opening = self
            .opening_bi
            .get_or_insert_with(|| Box::pin(async move { conn.open_bi().await }));
        let result = ready!(opening.as_mut().poll(cx));
        self.opening_bi = None;
        let (send, recv) = result.map_err(stream_connection_error)?;
        let opened = |e| StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: e,
        };
        Poll::Ready(Ok(BidiStream {
            send: SendStream::new(send).map_err(opened)?,
            recv: RecvStream {
                id: stream_id(recv.id()).map_err(opened)?,
                stream: recv,
                left: u64::MAX,
                finished: false,
                metrics: None,
            },
        }))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        let conn = self.conn.clone();
        let opening = self
            .opening_uni
            .get_or_insert_with(|| Box::pin(async move { conn.open_uni().await }));
        let result = ready!(opening.as_mut().poll(cx));
        self.opening_uni = None;
        let send = SendStream::new(result.map_err(stream_connection_error)?);
        Poll::Ready(
            send.map_err(|e| StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: e,
            }),
        )
    }

    fn close(&mut self, code: Code, reason: &[u8]) {
        self.conn.close(varint(code.value()), reason);
    }
}

impl Clone for OpenStreams {
    fn clone(&self) -> Self {
        OpenStreams::new(self.conn.clone())
    }
}

/// A request stream: both halves.
pub(crate) struct BidiStream<B: Buf> {
    send: SendStream<B>,
    recv: RecvStream,
}

impl<B: Buf> quic::BidiStream<B> for BidiStream<B> {
    type SendStream = SendStream<B>;
    type RecvStream = RecvStream;

    fn split(self) -> (Self::SendStream, Self::RecvStream) {
        (self.send, self.recv)
    }
}

impl<B: Buf> quic::RecvStream for BidiStream<B> {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl<B: Buf> quic::SendStream<B> for BidiStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

/// An inbound stream with a byte budget.
pub(crate) struct RecvStream {
    id: StreamId,
    stream: quinn::RecvStream,
    /// Bytes the client may still send on it.
    left: u64,
    /// The end was read, or the stream was stopped: nothing to stop on drop.
    finished: bool,
    /// Where to count a stream over its budget (`None` for the server's own streams).
    metrics: Option<Arc<Metrics>>,
}

/// The budget ran out: more bytes than the stream may carry.
#[derive(Debug)]
struct OverBudget;

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stream sent more bytes than a request may have")
    }
}

impl std::error::Error for OverBudget {}

/// h3's ID of a quinn stream. Both are QUIC varints, so it never fails; the error is passed on
/// rather than unwrapped.
fn stream_id(id: quinn::StreamId) -> Result<StreamId, ConnectionErrorIncoming> {
    let n: u64 = id.into();
    StreamId::try_from(n)
        .map_err(|e| ConnectionErrorIncoming::InternalError(format!("stream ID {n}: {e}")))
}

impl quic::RecvStream for RecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        if self.finished {
            return Poll::Ready(Ok(None));
        }
        // read_chunk borrows the stream and is cancel-safe, so a pending read leaves the
        // stream in place (h3-quinn moves it into a boxed future).
        let read = self.stream.read_chunk(usize::MAX, true);
        let chunk = ready!(std::pin::pin!(read).poll(cx));
        match chunk {
            Ok(Some(chunk)) => {
                let len = chunk.bytes.len() as u64;
                if len > self.left {
                    if let Some(m) = &self.metrics {
                        m.quic_refusal(Refusal::StreamTooLarge);
                    }
                    self.stop_sending(code::H3_EXCESSIVE_LOAD);
                    return Poll::Ready(Err(StreamErrorIncoming::Unknown(Box::new(OverBudget))));
                }
                self.left -= len;
                Poll::Ready(Ok(Some(chunk.bytes)))
            }
            Ok(None) => {
                self.finished = true;
                Poll::Ready(Ok(None))
            }
            Err(quinn::ReadError::Reset(code)) => {
                self.finished = true;
                Poll::Ready(Err(StreamErrorIncoming::StreamTerminated {
                    error_code: code.into_inner(),
                }))
            }
            Err(quinn::ReadError::ConnectionLost(e)) => {
                self.finished = true;
                Poll::Ready(Err(stream_connection_error(e)))
            }
            Err(e) => {
                self.finished = true;
                Poll::Ready(Err(StreamErrorIncoming::Unknown(Box::new(e))))
            }
        }
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.finished = true;
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        self.id
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if !self.finished {
            // Quinn would stop it with code 0, which HTTP/3 does not define.
            let _ = self.stream.stop(varint(code::H3_NO_ERROR));
        }
    }
}

/// An outbound stream, as in h3-quinn.
pub(crate) struct SendStream<B: Buf> {
    id: StreamId,
    stream: quinn::SendStream,
    writing: Option<WriteBuf<B>>,
    /// Something was written: dropped unfinished, quinn ends it with a FIN (h3's own 431).
    written: bool,
    /// Finished or reset.
    done: bool,
}

impl<B: Buf> SendStream<B> {
    fn new(stream: quinn::SendStream) -> Result<Self, ConnectionErrorIncoming> {
        Ok(SendStream {
            id: stream_id(stream.id())?,
            stream,
            writing: None,
            written: false,
            done: false,
        })
    }
}

impl<B: Buf> Drop for SendStream<B> {
    fn drop(&mut self) {
        if !self.written && !self.done {
            let _ = self.stream.reset(varint(code::H3_REQUEST_INCOMPLETE));
        }
    }
}

fn write_error(e: quinn::WriteError) -> StreamErrorIncoming {
    match e {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(e) => stream_connection_error(e),
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

impl<B: Buf> quic::SendStream<B> for SendStream<B> {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(data) = self.writing.as_mut() {
            while data.has_remaining() {
                let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data.chunk()))
                    .map_err(write_error)?;
                data.advance(written);
            }
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<B>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data called while the stream was not ready".to_owned(),
                ),
            });
        }
        self.writing = Some(data.into());
        self.written = true;
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.done = true;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.done = true;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        self.id
    }
}
