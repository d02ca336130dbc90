//! The `ProxyHttp` implementation. Each phase is a few lines that call into the pure modules
//! ([`crate::cors`], [`crate::limits`], [`crate::forwarded`]) and count what happened.
//!
//! | phase | does |
//! |---|---|
//! | `request_filter` | size limits; ACME challenges and the HTTPS redirect; preflights answered at the edge; the origin decision |
//! | `request_body_filter` | the body limit for streamed bodies |
//! | `upstream_peer` | picks a replica not yet tried for this request |
//! | `upstream_request_filter` | client-IP headers, `X-Forwarded-*` |
//! | `upstream_response_filter` | upstream latency |
//! | `response_filter` | Ackee's CORS headers out, the gateway's in, `Vary: Origin` merged |
//! | `fail_to_connect`, `error_while_proxy` | upstream errors counted |
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

use crate::access_log::{self, AccessLog, CorsDecision};
use crate::acme::{Challenge, Webroot};
use crate::config::Limits;
use crate::cors::allow_origin::is_same_origin;
use crate::cors::{
    CorsPolicy, DisallowedOrigin, OriginVerdict, Preflight, Refusal, names, strip, vary,
};
use crate::forwarded::{self, TrustedProxies};
use crate::limits::Exceeded;
use crate::metrics::{Metrics, Outcome, RequestKind, UpstreamErrorKind};
use crate::outage::OutageTally;
use crate::redirect;
use crate::upstream::{MAX_REPLICAS, Upstream};

/// Everything the gateway's listeners share, built once at start-up.
pub struct Shared {
    /// The compiled CORS policy.
    pub cors: CorsPolicy,
    /// Request size limits.
    pub limits: Limits,
    /// Peers whose client-IP headers are believed.
    pub trusted: TrustedProxies,
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

/// The CORS state of a request, decided once in `request_filter`.
#[derive(Debug, Default)]
pub enum CorsState {
    /// No `Origin`, or the gateway's own origin: no CORS headers.
    #[default]
    NotApplicable,
    /// Allowed: this `Access-Control-Allow-Origin` value.
    Allowed(HeaderValue),
    /// Not allowed, and forwarded without CORS headers.
    Refused,
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The CORS decision.
    pub cors: CorsState,
    /// The replica chosen for the current attempt.
    pub replica: Option<usize>,
    /// Replicas already tried for this request, as a bit mask.
    pub tried: u64,
    /// When the request was handed to the current replica.
    pub sent_at: Option<Instant>,
    /// Request body bytes seen so far.
    pub body_bytes: u64,
    /// The client address as hashing bytes (consistent hashing), computed once.
    pub client_key: Option<([u8; 16], usize)>,
    /// The replica a failed connect chose for the retry, so it is not chosen twice.
    pub next_replica: Option<usize>,
    /// The CORS decision, for the access log.
    pub decision: CorsDecision,
    /// When the request started, if the access log needs it.
    pub started: Option<Instant>,
}

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

impl Gateway {
    /// Adds the CORS headers an allowed origin gets on an actual response, and `Vary: Origin`.
    fn decorate(&self, resp: &mut ResponseHeader, cors: &CorsState) -> Result<()> {
        if let CorsState::Allowed(value) = cors {
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
        cors: &CorsState,
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
        let none = &CorsState::NotApplicable;
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
            let host = std::str::from_utf8(Self::request_host(req)).unwrap_or("");
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
        cors: &CorsState,
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
        cors: &CorsState,
        exceeded: Exceeded,
    ) -> Result<bool> {
        self.shared.metrics.limit(exceeded);
        self.respond_text(session, cors, exceeded.status(), exceeded.body(), false)
            .await?;
        Ok(true)
    }

    /// The peer's address, IPv4-mapped IPv6 as IPv4.
    fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| forwarded::canonical(a.ip()))
    }

    /// The client address as bytes for consistent hashing.
    fn client_key(&self, session: &Session) -> ([u8; 16], usize) {
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

    /// The host the client addressed: `Host`, or the HTTP/2 `:authority`.
    fn request_host(req: &RequestHeader) -> &[u8] {
        match req.headers.get(header::HOST) {
            Some(h) => h.as_bytes(),
            None => req
                .uri
                .authority()
                .map_or(&[][..], |a| a.as_str().as_bytes()),
        }
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
            if let OriginVerdict::Allowed(v) = s.cors.actual(&req.headers) {
                ctx.cors = CorsState::Allowed(v);
            }
            return self.refuse_size(session, &ctx.cors, exceeded).await;
        }

        if self.listener_answers(session).await? {
            return Ok(true);
        }
        let req = session.req_header();

        if CorsPolicy::is_preflight(&req.method, &req.headers) {
            match s.cors.preflight(&req.headers) {
                Preflight::Allowed(allow_origin) => {
                    s.metrics.preflight(true);
                    ctx.decision = CorsDecision::PreflightAllowed;
                    let mut resp = ResponseHeader::build(204, Some(8))?;
                    for (name, value) in s.cors.preflight_headers(allow_origin) {
                        resp.append_header(name, value)?;
                    }
                    self.add_listener_headers(&mut resp)?;
                    session.write_response_header(Box::new(resp), true).await?;
                }
                Preflight::Refused(reason) => {
                    s.metrics.preflight(false);
                    ctx.decision = CorsDecision::PreflightRefused;
                    s.metrics.rejection(reason, RequestKind::Preflight);
                    self.respond_text(session, &CorsState::NotApplicable, 403, reason.body(), true)
                        .await?;
                }
            }
            return Ok(true);
        }

        ctx.cors = match s.cors.actual(&req.headers) {
            OriginVerdict::Absent => CorsState::NotApplicable,
            OriginVerdict::Allowed(v) => {
                ctx.decision = CorsDecision::Allowed;
                CorsState::Allowed(v)
            }
            OriginVerdict::Refused => {
                let same_origin = req
                    .headers
                    .get(header::ORIGIN)
                    .is_some_and(|o| is_same_origin(o, self.scheme, Self::request_host(req)));
                if same_origin {
                    CorsState::NotApplicable
                } else {
                    s.metrics.rejection(Refusal::Origin, RequestKind::Actual);
                    ctx.decision = CorsDecision::Refused;
                    if s.cors.disallowed_origin() == DisallowedOrigin::Reject {
                        self.respond_text(
                            session,
                            &CorsState::NotApplicable,
                            403,
                            Refusal::Origin.body(),
                            true,
                        )
                        .await?;
                        return Ok(true);
                    }
                    CorsState::Refused
                }
            }
        };

        if let Err(exceeded) = s.limits.check_declared_body(&req.headers) {
            return self.refuse_size(session, &ctx.cors, exceeded).await;
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
        let (key, len) = *ctx
            .client_key
            .get_or_insert_with(|| self.client_key(session));
        let Some(i) = ctx
            .next_replica
            .take()
            .or_else(|| up.select(&key[..len], ctx.tried))
        else {
            self.shared.metrics.unavailable();
            return Error::e_explain(ErrorType::HTTPStatus(503), "no Ackee replica is up");
        };
        if i < MAX_REPLICAS {
            ctx.tried |= 1 << i;
        }
        ctx.replica = Some(i);
        match up.peer(i) {
            Some(peer) => Ok(peer),
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
        if let (Some(i), Some(sent)) = (ctx.replica, ctx.sent_at.take()) {
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
        self.decorate(upstream_response, &ctx.cors)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(i) = ctx.replica {
            let m = &self.shared.metrics;
            m.upstream_error(i, upstream_error_kind(&e));
            m.replica_outcome(i, Outcome::ConnectError);
            // Nothing was sent, so any request may go to a replica it has not tried yet. The
            // choice is kept for upstream_peer, so the balancer is not asked twice.
            let (key, len) = ctx.client_key.unwrap_or(([0; 16], 0));
            ctx.next_replica = self.shared.upstream.select(&key[..len], ctx.tried);
            e.set_retry(ctx.next_replica.is_some());
            if ctx.next_replica.is_some() {
                m.retry(i);
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
            if let Some(i) = ctx.replica {
                let m = &self.shared.metrics;
                m.upstream_error(i, upstream_error_kind(&e));
                if ctx.sent_at.is_some() {
                    m.replica_outcome(i, Outcome::Error);
                }
            }
        }
        // Pingora's default policy: never retry a non-idempotent request (POST, PATCH) once it
        // was sent; retry others only when the failure was on a reused connection.
        let mut e = e.more_context(format!("Peer: {peer}"));
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
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
                cors: ctx.decision,
                replica: ctx.replica.map(|i| self.shared.upstream.name(i)),
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
