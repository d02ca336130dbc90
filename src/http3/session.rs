//! One HTTP/3 request as a pingora server session: pingora's `custom::server::Session` over an
//! h3 request stream, so that `HttpProxy::process_new_http` runs it through every phase of the
//! gateway's `ProxyHttp`, exactly as it runs an HTTP/1.1 or HTTP/2 request.
//!
//! What HTTP/3 changes is only the framing, mirroring pingora's HTTP/2 session: the request
//! head arrives decoded (`:authority` becomes `Host`, which Ackee needs over HTTP/1.1), an
//! informational (1xx) answer is not sent, connection-specific headers are removed from the
//! answer, the end of the answer is the stream's FIN. An answer the gateway gives up on
//! mid-way is reset (`H3_INTERNAL_ERROR`), so the client cannot take it for a whole one; a
//! request body left unread when the answer is complete is stopped with `H3_NO_ERROR`.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures::Stream;
use h3::error::Code;
use h3::server::RequestStream;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora_core::protocols::Digest;
use pingora_core::protocols::http::HttpTask;
use pingora_core::protocols::http::body_buffer::FixedBuffer;
use pingora_core::protocols::http::custom::CustomMessageWrite;
use pingora_core::protocols::http::custom::server::Session as CustomSession;
use pingora_core::protocols::http::date::get_cached_date;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::{Error, ErrorType, OrErr, Result};

use super::transport::BidiStream;
use crate::metrics::Metrics;
use crate::quic::{Refusal, ResetBudget, code};

/// An h3 request stream over the gateway's quinn transport.
pub(crate) type Stream3 = RequestStream<BidiStream<Bytes>, Bytes>;

/// The largest request body pingora's retry buffer keeps: the gateway reads at most this much
/// (`limits.max_body_bytes`) before it picks a replica, and sends it from the buffer.
const RETRY_BUFFER: usize = crate::limits::MAX_BUFFERED_BODY as usize;

/// The error type of HTTP/3 stream failures.
const H3_ERROR: ErrorType = ErrorType::Custom("H3Error");

/// What the requests of one connection share: its quinn handle (to notice the client going
/// away, and to close the connection), and the resets its client may still make.
pub(crate) struct ConnectionShared {
    pub(crate) conn: quinn::Connection,
    pub(crate) resets: Mutex<ResetBudget>,
    pub(crate) metrics: Arc<Metrics>,
}

impl ConnectionShared {
    /// A request was reset by the client before its answer was complete (or before its head
    /// was). When the
    /// connection's budget is spent, the connection is closed with `H3_EXCESSIVE_LOAD` and
    /// counted: every other connection goes on.
    pub(crate) fn reset(&self) {
        let spent = self.resets.lock().is_ok_and(|mut b| !b.reset());
        if spent {
            self.metrics.quic_refusal(Refusal::StreamResets);
            self.conn.close(
                quinn::VarInt::from_u32(code::H3_EXCESSIVE_LOAD as u32),
                b"too many requests reset",
            );
        }
    }

    fn answered(&self) {
        if let Ok(mut b) = self.resets.lock() {
            b.answered();
        }
    }
}

/// One HTTP/3 request and its answer.
pub(crate) struct H3Session {
    request: RequestHeader,
    stream: Stream3,
    shared: Arc<ConnectionShared>,
    client: SocketAddr,
    server: SocketAddr,
    response: Option<ResponseHeader>,
    /// The answer's FIN was sent, or the stream was reset.
    ended: bool,
    /// The request's FIN was read (or reading was stopped).
    body_done: bool,
    /// A chunk of body read ahead by [`CustomSession::is_body_empty`].
    pending: Option<Bytes>,
    body_read: usize,
    body_sent: usize,
    retry_buffer: Option<FixedBuffer>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
    /// The client reset this request before its answer: counted once.
    reset_counted: bool,
}

/// Connection-specific headers, which HTTP/3 forbids (RFC 9114 section 4.2).
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

impl H3Session {
    /// A session for a request whose head h3 decoded. `:authority` is copied to `Host` when
    /// the request has none, as pingora does for HTTP/2.
    pub(crate) fn new(
        head: http::request::Parts,
        stream: Stream3,
        shared: Arc<ConnectionShared>,
        client: std::net::SocketAddr,
        server: std::net::SocketAddr,
    ) -> Result<H3Session> {
        let mut request: RequestHeader = head.into();
        if !request.headers.contains_key(header::HOST) {
            if let Some(authority) = request.uri.authority() {
                let host = HeaderValue::from_str(authority.as_str())
                    .or_err(ErrorType::InvalidHTTPHeader, "invalid :authority")?;
                request.insert_header(header::HOST, host)?;
            }
        }
        Ok(H3Session {
            request,
            stream,
            shared,
            client: SocketAddr::Inet(client),
            server: SocketAddr::Inet(server),
            response: None,
            ended: false,
            body_done: false,
            pending: None,
            body_read: 0,
            body_sent: 0,
            retry_buffer: None,
            read_timeout: None,
            write_timeout: None,
            drain_timeout: None,
            reset_counted: false,
        })
    }

    /// Notes an error from the stream, as a downstream error: a client reset before the answer
    /// is complete spends the connection's budget, and closes the connection when it is spent
    /// (rapid reset). `writing`: whether the error came from writing the answer.
    fn stream_error(
        &mut self,
        e: h3::error::StreamError,
        writing: bool,
        context: &'static str,
    ) -> Box<Error> {
        use h3::error::StreamError;
        let etype = match e {
            StreamError::RemoteTerminate { .. } => {
                if !self.ended && !self.reset_counted {
                    self.reset_counted = true;
                    self.shared.reset();
                }
                ErrorType::ConnectionClosed
            }
            StreamError::ConnectionError { .. } => ErrorType::ConnectionClosed,
            _ if writing => ErrorType::WriteError,
            _ => ErrorType::ReadError,
        };
        Error::explain(etype, format!("{context}: {e}")).into_down()
    }

    /// One chunk of the request body, or `None` at its end.
    async fn read_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(chunk) = self.pending.take() {
            return Ok(Some(chunk));
        }
        if self.body_done {
            return Ok(None);
        }
        let read = self.stream.recv_data();
        let data = match self.read_timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| Error::explain(ErrorType::ReadTimedout, "reading the body"))?,
            None => read.await,
        };
        match data {
            Ok(Some(mut buf)) => Ok(Some(buf.copy_to_bytes(buf.remaining()))),
            Ok(None) => {
                self.body_done = true;
                Ok(None)
            }
            Err(e) => {
                self.body_done = true;
                Err(self.stream_error(e, false, "reading the request body"))
            }
        }
    }

    /// Polls the body once, without waiting: what [`CustomSession::is_body_empty`] needs to
    /// tell a request whose FIN came with its head (a GET) from one with a body.
    fn peek_body(&mut self) {
        if self.pending.is_some() || self.body_done {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_recv_data(&mut cx) {
            Poll::Ready(Ok(Some(mut buf))) => {
                self.pending = Some(buf.copy_to_bytes(buf.remaining()));
            }
            Poll::Ready(Ok(None)) => self.body_done = true,
            // The error comes again on the next read, which reports it.
            Poll::Ready(Err(_)) | Poll::Pending => {}
        }
    }

    async fn send_header(&mut self, mut header: Box<ResponseHeader>) -> Result<()> {
        if self.ended || self.response.is_some() {
            return Ok(());
        }
        if header.status.is_informational() {
            // HTTP/3 has them, but h3 sends one answer head per stream; pingora's HTTP/2
            // session skips them too. The gateway answers Expect itself.
            return Ok(());
        }
        header.insert_header(header::DATE, get_cached_date())?;
        for name in &CONNECTION_SPECIFIC {
            header.remove_header(name);
        }
        let answer = http::Response::from_parts(header.as_owned_parts(), ());
        let sent = self.stream.send_response(answer).await;
        self.response = Some(*header);
        if let Err(e) = sent {
            let e = self.stream_error(e, true, "writing the answer head");
            self.ended = true;
            return Err(e);
        }
        Ok(())
    }

    async fn send_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        if self.response.is_none() {
            return Error::e_explain(H3_ERROR, "answer body before its head");
        }
        let len = data.len();
        if len > 0 {
            let send = self.stream.send_data(data);
            let sent = match self.write_timeout {
                Some(t) => tokio::time::timeout(t, send)
                    .await
                    .map_err(|_| Error::explain(ErrorType::WriteTimedout, "writing the body"))?,
                None => send.await,
            };
            if let Err(e) = sent {
                let e = self.stream_error(e, true, "writing the answer body");
                self.ended = true;
                return Err(e);
            }
            self.body_sent += len;
        }
        if end {
            self.end().await?;
        }
        Ok(())
    }

    /// Ends the answer with the stream's FIN. A request body still unread is not needed any
    /// more: reading it is stopped with `H3_NO_ERROR` (RFC 9114 section 4.1).
    async fn end(&mut self) -> Result<()> {
        if self.ended || self.response.is_none() {
            return Ok(());
        }
        self.ended = true;
        self.peek_body();
        if !self.body_done && self.pending.is_none() {
            self.body_done = true;
            self.stream.stop_sending(Code::H3_NO_ERROR);
        }
        let finished = self.stream.finish().await;
        self.shared.answered();
        finished.map_err(|e| self.stream_error(e, true, "ending the answer"))
    }

    /// Gives the answer up: the stream is reset, so that the client does not take what it
    /// got for a whole answer.
    fn reset(&mut self, code: Code) {
        if !self.ended {
            self.ended = true;
            self.stream.stop_stream(code);
        }
        if !self.body_done {
            self.body_done = true;
            self.stream.stop_sending(Code::H3_REQUEST_CANCELLED);
        }
    }
}

impl Drop for H3Session {
    fn drop(&mut self) {
        // Pingora drops a session it failed to finish (a broken upstream answer): reset the
        // stream rather than let quinn end it with a FIN on drop.
        self.reset(Code::H3_INTERNAL_ERROR);
    }
}

#[async_trait]
impl CustomSession for H3Session {
    fn req_header(&self) -> &RequestHeader {
        &self.request
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }

    async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        let chunk = self.read_chunk().await?;
        if let Some(data) = chunk.as_ref() {
            self.body_read += data.len();
            if let Some(buffer) = self.retry_buffer.as_mut() {
                buffer.write_to_buffer(data);
            }
        }
        Ok(chunk)
    }

    async fn drain_request_body(&mut self) -> Result<()> {
        let limit = self.drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        match limit {
            Some(t) => tokio::time::timeout(t, drain)
                .await
                .map_err(|_| Error::explain(ErrorType::ReadTimedout, "draining the body"))?,
            None => drain.await,
        }
    }

    async fn write_response_header(&mut self, resp: Box<ResponseHeader>, end: bool) -> Result<()> {
        self.send_header(resp).await?;
        if end { self.end().await } else { Ok(()) }
    }

    async fn write_response_header_ref(&mut self, resp: &ResponseHeader, end: bool) -> Result<()> {
        self.write_response_header(Box::new(resp.clone()), end)
            .await
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        self.send_body(data, end).await
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        if self.ended || self.response.is_none() {
            return Ok(());
        }
        if let Err(e) = self.stream.send_trailers(trailers).await {
            let e = self.stream_error(e, true, "writing the trailers");
            self.ended = true;
            return Err(e);
        }
        self.end().await
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut end_stream = false;
        for task in tasks {
            end_stream = match task {
                HttpTask::Header(header, end) => {
                    self.send_header(header).await?;
                    end
                }
                HttpTask::Body(data, end) => {
                    if let Some(d) = data.filter(|d| !d.is_empty()) {
                        self.send_body(d, false).await?;
                    }
                    end
                }
                HttpTask::UpgradedBody(..) => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "an upgraded body on an HTTP/3 session",
                    );
                }
                HttpTask::Trailer(Some(trailers)) => {
                    self.write_trailers(*trailers).await?;
                    true
                }
                HttpTask::Trailer(None) | HttpTask::Done => true,
                HttpTask::Failed(e) => return Err(e),
            } || end_stream;
        }
        if end_stream {
            self.end().await?;
        }
        Ok(end_stream)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.drain_timeout = timeout;
    }

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.drain_timeout
    }

    fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {} (HTTP/3)",
            self.request.method,
            self.request
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str()),
            self.request.uri.host().unwrap_or_default(),
        )
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_ref()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        self.reset(Code::H3_INTERNAL_ERROR);
    }

    async fn abandon(&mut self, _ctx: &str) {
        self.reset(Code::H3_INTERNAL_ERROR);
    }

    fn is_body_done(&mut self) -> bool {
        self.peek_body();
        self.body_done && self.pending.is_none()
    }

    async fn finish(&mut self) -> Result<()> {
        self.end().await
    }

    fn is_body_empty(&mut self) -> bool {
        if self.body_read > 0 {
            return false;
        }
        let declared_empty = self
            .request
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        if declared_empty {
            return true;
        }
        self.peek_body();
        self.body_done && self.pending.is_none()
    }

    async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if no_body_expected || (self.body_done && self.pending.is_none()) {
            // Nothing more to read: wait until the client goes away (the connection closes),
            // which ends the proxying of this request.
            let why = self.shared.conn.closed().await;
            let e = Error::explain(
                ErrorType::ConnectionClosed,
                format!("the client's connection closed: {why}"),
            );
            return Err(e.into_down());
        }
        self.read_body_bytes().await
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    fn digest(&self) -> Option<&Digest> {
        None
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        Some(&self.client)
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        Some(&self.server)
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        // Only pingora's subrequests use it; the gateway makes none.
        Bytes::new()
    }

    fn enable_retry_buffering(&mut self) {
        if self.retry_buffer.is_none() {
            self.retry_buffer = Some(FixedBuffer::new(RETRY_BUFFER));
        }
    }

    fn retry_buffer_truncated(&self) -> bool {
        self.retry_buffer.as_ref().is_some_and(|b| b.is_truncated())
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry_buffer
            .as_ref()
            .filter(|b| !b.is_truncated())
            .and_then(FixedBuffer::get_buffer)
    }

    async fn finish_custom(&mut self) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>> {
        None
    }

    fn restore_custom_message_reader(
        &mut self,
        _reader: Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>,
    ) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        None
    }

    fn restore_custom_message_writer(
        &mut self,
        _writer: Box<dyn CustomMessageWrite>,
    ) -> Result<()> {
        Ok(())
    }
}
