//! The `ProxyHttp` implementation. Each phase is a few lines that call into the pure modules
//! ([`crate::cors`], [`crate::limits`], [`crate::forwarded`]) and count what happened.
//!
//! | phase | does |
//! |---|---|
//! | `request_filter` | framing (`Host`, ambiguous lengths); size limits; ACME challenges and the HTTPS redirect; preflights answered at the edge; the origin decision |
//! | `request_filter` (body) | the whole body read before a replica is chosen: 413, 408 |
//! | `request_filter` (rate) | the client's rate limit, decided by [`crate::ratelimit`]: 429 |
//! | `request_body_filter` | nothing for buffered bodies (counted as they were read) |
//! | `upstream_peer` | picks a replica not yet tried for this request |
//! | `upstream_request_filter` | client-IP headers, `X-Forwarded-*` |
//! | `upstream_response_filter` | upstream latency |
//! | `response_filter` | hop-by-hop headers and Ackee's CORS headers out, the gateway's in, `Vary: Origin` merged |
//! | `fail_to_connect`, `error_while_proxy` | upstream errors counted; the retry decided by [`crate::retry`] |
//! | `fail_to_proxy` | a short 502, 504 or 4xx body, with CORS headers for allowed origins |
//! | `suppress_error_log` | a failing Ackee tallied in [`crate::outage`], not logged per request |
//! | `logging` | requests by method and status class |

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, header};
use log::{debug, warn};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use pingora::http::{RequestHeader, ResponseHeader};

use crate::access_log::{self, AccessLog};
use crate::acme::{Challenge, Webroot};
use crate::config::Limits;
use crate::cors::{CorsPolicy, Decision, OriginVerdict, names, request_host, strip, vary};
use crate::forwarded::{self, TrustedProxies};
use crate::framing;
use crate::limits::Exceeded;
use crate::metrics::{Metrics, Outcome, UpstreamErrorKind};
use crate::outage::OutageTally;
use crate::ratelimit::{self, LoginScan, RateLimiter, Write};
use crate::redirect;
use crate::retry;
use crate::upstream::Upstream;

/// Everything the gateway's listeners share, built once at start-up.
pub struct Shared {
    /// The compiled CORS policy.
    pub cors: CorsPolicy,
    /// Request size limits.
    pub limits: Limits,
    /// Peers whose client-IP headers are believed.
    pub trusted: TrustedProxies,
    /// Per-client rate limits.
    pub rate: RateLimiter,
    /// The Ackee replicas.
    pub upstream: Upstream,
    /// `Retry-After` on a 503 when no replica is up.
    pub retry_after_seconds: u32,
    /// The access log, if enabled.
    pub access_log: Option<AccessLog>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Requests answered 502, 503 or 504 for a failing Ackee, summarised instead of logged.
    pub outages: OutageTally,
}

/// What one listener does besides CORS and proxying.
#[derive(Clone, Debug, Default)]
pub struct ListenerPolicy {
    /// Whether the listener terminates TLS.
    pub tls: bool,
    /// Redirect everything (but ACME challenges) to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// Serve ACME HTTP-01 challenges from this webroot.
    pub acme: Option<Webroot>,
    /// Headers added to every response, built at start-up.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The proxy for one listener.
pub struct Gateway {
    shared: Arc<Shared>,
    policy: ListenerPolicy,
    scheme: &'static str,
    proto: HeaderValue,
    retry_after: HeaderValue,
}

impl Gateway {
    /// A proxy for one listener.
    pub fn new(shared: Arc<Shared>, policy: ListenerPolicy) -> Gateway {
        let shared_retry_after = shared.retry_after_seconds;
        let scheme = if policy.tls { "https" } else { "http" };
        Gateway {
            shared,
            policy,
            scheme,
            proto: HeaderValue::from_static(scheme),
            retry_after: HeaderValue::from(shared_retry_after),
        }
    }
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The CORS decision, made once in `request_filter`.
    pub cors: Decision,
    /// The attempts at Ackee: replicas tried, the current one, the next one, the client key.
    pub attempts: retry::Attempts,
    /// When the request was handed to the current replica.
    pub sent_at: Option<Instant>,
    /// Request body bytes seen so far.
    pub body_bytes: u64,
    /// Whether the whole body was read in `request_filter` (pingora sends it from its retry
    /// buffer, through `request_body_filter` once more).
    pub body_buffered: bool,
    /// When the request started, if the access log needs it.
    pub started: Option<Instant>,
    /// The kind of tracker write, for the rate limits.
    pub write: Option<Write>,
    /// The `createToken` calls seen in the body so far.
    pub logins: LoginScan,
}

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

impl Gateway {
    /// Adds the CORS headers an allowed origin gets on an actual response, and `Vary: Origin`.
    fn decorate(&self, resp: &mut ResponseHeader, cors: &Decision) -> Result<()> {
        if let Some(value) = cors.allow_origin() {
            resp.insert_header(names::ALLOW_ORIGIN, value.clone())?;
            if let Some(c) = self.shared.cors.credentials() {
                resp.insert_header(names::ALLOW_CREDENTIALS, c.clone())?;
            }
        }
        match vary::merge(&resp.headers) {
            vary::VaryMerge::Keep => {}
            vary::VaryMerge::Insert => resp.insert_header(names::VARY, vary::ORIGIN.clone())?,
            vary::VaryMerge::Replace(v) => resp.insert_header(names::VARY, v)?,
        }
        self.add_listener_headers(resp)
    }

    /// Adds the listener's configured response headers, replacing any of the same name.
    fn add_listener_headers(&self, resp: &mut ResponseHeader) -> Result<()> {
        for (name, value) in &self.policy.response_headers {
            resp.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }

    /// Answers at the edge: status, extra headers, body, the CORS headers `cors` calls for,
    /// `Vary: Origin` and the listener's headers. `keepalive: false` closes the connection
    /// afterwards (when a request body may be left unread).
    async fn respond(
        &self,
        session: &mut Session,
        cors: &Decision,
        status: u16,
        headers: &[(&'static str, HeaderValue)],
        body: Bytes,
        keepalive: bool,
    ) -> Result<()> {
        let mut resp = ResponseHeader::build(status, Some(4 + headers.len()))?;
        for (name, value) in headers {
            resp.insert_header(*name, value.clone())?;
        }
        resp.insert_header("Content-Length", body.len())?;
        self.decorate(&mut resp, cors)?;
        if !keepalive {
            session.set_keepalive(None);
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        if head_only || body.is_empty() {
            session.write_response_header(Box::new(resp), true).await
        } else {
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await
        }
    }

    /// ACME challenges and the HTTPS redirect. Returns true if it answered.
    async fn listener_answers(&self, session: &mut Session) -> Result<bool> {
        let none = &Decision::NotApplicable;
        let path = session.req_header().uri.path();
        if let Some(webroot) = &self.policy.acme {
            if Webroot::claims(path) {
                let (status, body) = match webroot.serve(path) {
                    Challenge::Found(bytes) => (200, Bytes::from(bytes)),
                    Challenge::NotFound => (404, Bytes::from_static(b"Not Found\n")),
                };
                self.shared.metrics.acme_challenge(status == 200);
                let headers = [("Content-Type", TEXT_PLAIN)];
                self.respond(session, none, status, &headers, body, true)
                    .await?;
                return Ok(true);
            }
        }
        if let Some(port) = self.policy.redirect_to_https {
            let req = session.req_header();
            let host = std::str::from_utf8(request_host(&req.uri, &req.headers)).unwrap_or("");
            let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
            match redirect::https_location(host, target, port)
                .and_then(|l| HeaderValue::from_str(&l).ok())
            {
                Some(location) => {
                    let headers = [("Location", location)];
                    self.respond(session, none, 301, &headers, Bytes::new(), true)
                        .await?;
                }
                None => {
                    self.respond_text(
                        session,
                        none,
                        400,
                        b"Bad Request: no usable Host to redirect to\n",
                        true,
                    )
                    .await?;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Answers at the edge with a short text body (and `Retry-After` on a 503).
    async fn respond_text(
        &self,
        session: &mut Session,
        cors: &Decision,
        status: u16,
        body: &'static [u8],
        keepalive: bool,
    ) -> Result<()> {
        let headers = [
            ("Content-Type", TEXT_PLAIN),
            ("Retry-After", self.retry_after.clone()),
        ];
        let headers = if status == 503 {
            &headers[..]
        } else {
            &headers[..1]
        };
        self.respond(
            session,
            cors,
            status,
            headers,
            Bytes::from_static(body),
            keepalive,
        )
        .await
    }

    /// Answers 431 or 413, counts it, and closes the connection (a body may be left unread).
    async fn refuse_size(
        &self,
        session: &mut Session,
        cors: &Decision,
        exceeded: Exceeded,
    ) -> Result<bool> {
        self.shared.metrics.limit(exceeded);
        self.respond_text(session, cors, exceeded.status(), exceeded.body(), false)
            .await?;
        Ok(true)
    }

    /// Answers 429 with `Retry-After` for a request over its client's rate limit. The body was
    /// read whole, so the connection stays open.
    async fn refuse_rate(
        &self,
        session: &mut Session,
        cors: &Decision,
        refused: ratelimit::Refused<'_>,
    ) -> Result<bool> {
        self.shared.metrics.rate_limited(refused.rule);
        let headers = [
            ("Content-Type", TEXT_PLAIN),
            ("Retry-After", refused.retry_after.clone()),
        ];
        let body = Bytes::from_static(refused.rule.body());
        self.respond(session, cors, 429, &headers, body, true)
            .await?;
        Ok(true)
    }

    /// The client a rate limit counts, through `trusted_proxies`.
    fn limit_client(&self, session: &Session) -> Option<std::net::IpAddr> {
        let peer = Self::peer_ip(session)?;
        let headers = &session.req_header().headers;
        Some(forwarded::limit_client(peer, &self.shared.trusted, headers))
    }

    /// Reads the whole request body before a replica is chosen, so that a client that trickles
    /// its body never holds an Ackee connection. Pingora keeps what was read in its retry buffer
    /// and sends it right after the request head. Returns the limit the body broke, if any.
    async fn buffer_body(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Option<Exceeded>> {
        let limits = &self.shared.limits;
        let expects_continue = crate::limits::expects_continue(&session.req_header().headers);
        let downstream = session.as_mut();
        if expects_continue {
            // The client waits for this before it sends the body; Ackee will not be asked. An
            // answer before the body normally closes the connection afterwards; not this one.
            downstream.set_close_on_response_before_downstream_finish(false);
            downstream.write_continue_response().await?;
            downstream.set_close_on_response_before_downstream_finish(true);
        }
        downstream.enable_retry_buffering();
        ctx.body_buffered = true;
        let scan = self.shared.rate.scans_body(ctx.write);
        loop {
            let read = downstream.read_request_body();
            match tokio::time::timeout(limits.body_timeout, read).await {
                Err(_) => return Ok(Some(Exceeded::BodyTimeout)),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(chunk))) => {
                    ctx.body_bytes += chunk.len() as u64;
                    if scan {
                        ctx.logins.feed(&chunk);
                    }
                    if let Err(exceeded) = limits.check_body_so_far(ctx.body_bytes) {
                        return Ok(Some(exceeded));
                    }
                }
            }
        }
    }

    /// The peer's address, IPv4-mapped IPv6 as IPv4.
    fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| forwarded::canonical(a.ip()))
    }

    /// The client address as bytes for consistent hashing.
    fn client_key(&self, session: &Session) -> retry::ClientKey {
        let Some(peer) = Self::peer_ip(session) else {
            return ([0; 16], 0);
        };
        let trusted = self.shared.trusted.trusts(peer);
        forwarded::ip_bytes(forwarded::client_ip(
            peer,
            trusted,
            &session.req_header().headers,
        ))
    }
}

fn upstream_error_kind(e: &Error) -> UpstreamErrorKind {
    match e.etype() {
        ErrorType::ConnectRefused => UpstreamErrorKind::ConnectRefused,
        ErrorType::ConnectTimedout => UpstreamErrorKind::ConnectTimeout,
        ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::BindError
        | ErrorType::SocketError => UpstreamErrorKind::ConnectError,
        ErrorType::ReadTimedout => UpstreamErrorKind::ReadTimeout,
        ErrorType::WriteTimedout => UpstreamErrorKind::WriteTimeout,
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            UpstreamErrorKind::ConnectionClosed
        }
        ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::InvalidH2 => UpstreamErrorKind::InvalidResponse,
        _ => UpstreamErrorKind::Other,
    }
}

/// The status and body for a request that failed after `request_filter`.
fn failure_response(e: &Error) -> (u16, &'static [u8]) {
    match e.etype() {
        ErrorType::HTTPStatus(413) => (413, Exceeded::Body.body()),
        ErrorType::HTTPStatus(503) => (503, b"Service Unavailable: no Ackee replica is up\n"),
        ErrorType::HTTPStatus(code) if (400..600).contains(code) => (*code, b"Error\n"),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            (504, b"Gateway Timeout: Ackee did not answer in time\n")
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, b"Bad Gateway: Ackee is not reachable\n"),
            ErrorSource::Downstream => match e.etype() {
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                    (0, b"")
                }
                ErrorType::ReadTimedout => (408, b"Request Timeout\n"),
                _ => (400, b"Bad Request\n"),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, b"Internal Server Error\n"),
        },
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn request_header_deadline(&self) -> Option<std::time::Duration> {
        Some(self.shared.limits.header_timeout)
    }

    fn request_header_refused(&self, status: u16) {
        let m = &self.shared.metrics;
        match status {
            408 => m.limit(Exceeded::HeaderTimeout),
            414 => m.limit(Exceeded::Uri),
            _ => m.malformed(crate::framing::Malformed::Unparsable),
        }
    }

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: self.shared.access_log.as_ref().map(|_| Instant::now()),
            ..Ctx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let s = &*self.shared;
        let req = session.req_header();

        if let Err(exceeded) = s.limits.check_head(&req.method, &req.uri, &req.headers) {
            // Answered before CORS is decided (the log says `none`), but an allowed origin
            // still gets its headers, so the tracker can read the status.
            let cors = match s.cors.actual(&req.headers) {
                OriginVerdict::Allowed(v) => Decision::Allowed(v),
                _ => Decision::NotApplicable,
            };
            return self.refuse_size(session, &cors, exceeded).await;
        }

        let head = framing::Head {
            http11: req.version == http::Version::HTTP_11,
            host: req.headers.contains_key(header::HOST),
            transfer_encoding: req.headers.contains_key(header::TRANSFER_ENCODING),
            keepalive_off: session.as_ref().get_keepalive().is_none(),
            asks_close: framing::asks_close(&req.headers),
        };
        if let Err(why) = framing::check(head) {
            s.metrics.malformed(why);
            let none = &Decision::NotApplicable;
            self.respond_text(session, none, 400, why.body(), false)
                .await?;
            return Ok(true);
        }

        if self.listener_answers(session).await? {
            return Ok(true);
        }
        let req = session.req_header();

        ctx.cors = s
            .cors
            .decide(&req.method, &req.uri, &req.headers, self.scheme);
        s.metrics.cors(&ctx.cors);
        match &ctx.cors {
            Decision::PreflightAllowed(allow_origin) => {
                let mut resp = ResponseHeader::build(204, Some(8))?;
                for (name, value) in s.cors.preflight_headers(allow_origin.clone()) {
                    resp.append_header(name, value)?;
                }
                self.add_listener_headers(&mut resp)?;
                session.write_response_header(Box::new(resp), true).await?;
                return Ok(true);
            }
            Decision::PreflightRefused(reason) => {
                let body = reason.body();
                self.respond_text(session, &Decision::NotApplicable, 403, body, true)
                    .await?;
                return Ok(true);
            }
            Decision::Rejected => {
                let body = crate::cors::Refusal::Origin.body();
                self.respond_text(session, &Decision::NotApplicable, 403, body, true)
                    .await?;
                return Ok(true);
            }
            Decision::Allowed(_)
            | Decision::ForwardedBare
            | Decision::SameOrigin
            | Decision::NotApplicable => {}
        }

        let req = session.req_header();
        ctx.write = ratelimit::write_kind(&req.method, req.uri.path());
        if let Err(exceeded) = s.limits.check_declared_body(&req.headers) {
            return self.refuse_size(session, &ctx.cors, exceeded).await;
        }
        if !session.as_mut().is_body_empty() {
            if let Some(exceeded) = self.buffer_body(session, ctx).await? {
                return self.refuse_size(session, &ctx.cors, exceeded).await;
            }
        }
        if let Some((rule, cost)) = s.rate.rule(ctx.write, ctx.logins.count()) {
            let client = self.limit_client(session);
            if let Some(Err(refused)) = client.map(|c| s.rate.check(rule, c, cost)) {
                return self.refuse_rate(session, &ctx.cors, refused).await;
            }
        }
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if ctx.body_buffered {
            // Counted and checked as it was read in request_filter.
            return Ok(());
        }
        if let Some(chunk) = body {
            ctx.body_bytes += chunk.len() as u64;
            if let Err(exceeded) = self.shared.limits.check_body_so_far(ctx.body_bytes) {
                self.shared.metrics.limit(exceeded);
                return Error::e_explain(
                    ErrorType::HTTPStatus(413),
                    "request body over limits.max_body_bytes",
                );
            }
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let up = &self.shared.upstream;
        ctx.attempts.key_or(|| self.client_key(session));
        let Some(attempt) = ctx.attempts.start(|key, tried| up.select(key, tried)) else {
            self.shared.metrics.unavailable();
            return Error::e_explain(ErrorType::HTTPStatus(503), "no Ackee replica is up");
        };
        match up.peer(attempt.replica) {
            Some(mut peer) => {
                if attempt.new_connection {
                    // A group key of its own: no pooled connection matches, so pingora
                    // connects anew.
                    peer.group_key = crate::upstream::fresh_group_key();
                }
                Ok(peer)
            }
            None => Error::e_explain(ErrorType::InternalError, "replica index out of range"),
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let peer = Self::peer_ip(session);
        let trusted = peer.is_some_and(|ip| self.shared.trusted.trusts(ip));
        if !trusted {
            for name in &forwarded::SPOOFABLE {
                upstream_request.remove_header(name);
            }
        }
        if let Some(ip) = peer {
            let xff = forwarded::forwarded_for(
                upstream_request
                    .headers
                    .get_all(&forwarded::X_FORWARDED_FOR)
                    .iter(),
                ip,
                trusted,
            );
            upstream_request.insert_header(forwarded::X_FORWARDED_FOR.clone(), xff)?;
            if !trusted || !upstream_request.headers.contains_key(&forwarded::X_REAL_IP) {
                upstream_request
                    .insert_header(forwarded::X_REAL_IP.clone(), forwarded::real_ip(ip))?;
            }
        } else if !trusted {
            upstream_request.remove_header(&forwarded::X_FORWARDED_FOR);
            upstream_request.remove_header(&forwarded::X_REAL_IP);
        }
        if !trusted
            || !upstream_request
                .headers
                .contains_key(&forwarded::X_FORWARDED_PROTO)
        {
            upstream_request
                .insert_header(forwarded::X_FORWARDED_PROTO.clone(), self.proto.clone())?;
        }
        if ctx.body_buffered {
            // The whole body is known: send it with a length, never chunked, and answer for
            // Expect ourselves (pingora issue #935 double-terminates some chunked bodies).
            upstream_request.remove_header(&header::TRANSFER_ENCODING);
            upstream_request.remove_header(&header::EXPECT);
            upstream_request.insert_header(header::CONTENT_LENGTH, ctx.body_bytes)?;
        }
        ctx.sent_at = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let (Some(i), Some(sent)) = (ctx.attempts.replica(), ctx.sent_at.take()) {
            let m = &self.shared.metrics;
            m.upstream_latency(i, sent.elapsed().as_secs_f64());
            m.replica_outcome(i, Outcome::Status(upstream_response.status.as_u16()));
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        while let Some(name) = strip::first_access_control(&upstream_response.headers) {
            upstream_response.remove_header(&name);
        }
        for name in framing::hop_by_hop(&upstream_response.headers) {
            upstream_response.remove_header(&name);
        }
        self.decorate(upstream_response, &ctx.cors)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(i) = ctx.attempts.replica() {
            let m = &self.shared.metrics;
            m.upstream_error(i, upstream_error_kind(&e));
            m.replica_outcome(i, Outcome::ConnectError);
            // Nothing was sent, so any request may go to a replica it has not tried yet. The
            // choice is kept for upstream_peer, so the balancer is not asked twice.
            let up = &self.shared.upstream;
            if e.etype() == &ErrorType::ConnectRefused && up.refused(i) {
                m.replica_health(i, false);
                warn!(
                    "replica \"{}\" is down, it gets no traffic: it refused a connection",
                    up.name(i)
                );
            }
            let next = ctx
                .attempts
                .connect_failed(|key, tried| up.select(key, tried));
            if let Some(reason) = next.reason() {
                m.retry(i, reason);
            }
            let again = next != retry::Next::GiveUp;
            e.set_retry(again);
            if !again && !up.any_healthy() {
                // Every replica is down and the last connect failed too: 503 and Retry-After.
                m.unavailable();
                let mut unavailable =
                    Error::explain(ErrorType::HTTPStatus(503), "no Ackee replica is up");
                unavailable.set_retry(false);
                return unavailable.more_context(e.to_string());
            }
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        if e.esource() == &ErrorSource::Upstream {
            if let Some(i) = ctx.attempts.replica() {
                let m = &self.shared.metrics;
                m.upstream_error(i, upstream_error_kind(&e));
                if ctx.sent_at.is_some() {
                    m.replica_outcome(i, Outcome::Error);
                }
            }
        }
        let mut e = e.more_context(format!("Peer: {peer}"));
        // Pingora's verdict on the error itself, for this kind of connection.
        let mut verdict = e.retry;
        verdict.decide_reuse(client_reused);
        let failure = retry::SendFailure {
            retryable: verdict.retry(),
            reused: client_reused,
            idempotent: session.req_header().method.is_idempotent(),
            body_replayable: !session.as_ref().retry_buffer_truncated(),
            another_left: false,
        };
        let up = &self.shared.upstream;
        let next = ctx
            .attempts
            .send_failed(failure, |key, tried| up.select(key, tried));
        if let (Some(reason), Some(i)) = (next.reason(), ctx.attempts.replica()) {
            self.shared.metrics.retry(i, reason);
        }
        let again = next != retry::Next::GiveUp;
        e.set_retry(again);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let (code, body) = failure_response(e);
        if code > 0 && session.response_written().is_none() {
            if let Err(write_err) = self
                .respond_text(session, &ctx.cors, code, body, false)
                .await
            {
                debug!("could not send the {code} answer: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        let (code, _) = failure_response(e);
        if !OutageTally::counts(code) {
            return false;
        }
        if let Some(line) = self.shared.outages.record(code) {
            warn!("{line}");
        }
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &Ctx,
        e: &Error,
        context: ProxyWarnLogContext,
    ) -> bool {
        // A connect failure that moves to another replica: ackee_gateway_retries_total counts it,
        // and the health checks log the replica going down.
        matches!(context, ProxyWarnLogContext::UpstreamRetry)
            && e.esource() == &ErrorSource::Upstream
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map(|r| r.status.as_u16());
        let req = session.req_header();
        self.shared.metrics.request(&req.method, status);
        if let (Some(log), Some(started)) = (&self.shared.access_log, ctx.started) {
            log.log(&access_log::Entry {
                time: std::time::SystemTime::now(),
                client: Self::peer_ip(session),
                method: req.method.as_str(),
                path: req.uri.path(),
                status,
                cors: ctx.cors.as_str(),
                replica: ctx.attempts.replica().map(|i| self.shared.upstream.name(i)),
                duration: started.elapsed(),
            });
        }
        if let Some(e) = e {
            if status.is_none() {
                warn!("request failed before a response was sent: {e}");
            }
        }
    }
}
