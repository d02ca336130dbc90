//! The `ProxyHttp` implementation. Each phase is a few lines that call into the pure modules
//! ([`crate::cors`], [`crate::limits`], [`crate::forwarded`]) and count what happened.
//!
//! | phase | does |
//! |---|---|
//! | `request_filter` | framing (`Host`, ambiguous lengths); size limits; ACME challenges and the HTTPS redirect; preflights answered at the edge; the origin decision; Ackee's static files from the edge copy |
//! | `request_filter` (body) | the whole body read before a replica is chosen: 413, 408 |
//! | `request_filter` (visits) | a tracker write from a visit [`crate::visits`] ignores: Ackee's answer, 200 |
//! | `request_filter` (rate) | the client's rate limit, decided by [`crate::ratelimit`]: 429 |
//! | `upstream_peer` | picks a replica not yet tried for this request |
//! | `upstream_request_filter` | the client-IP and `X-Forwarded-*` header edits decided by [`crate::forwarded`]; a buffered body's length |
//! | `upstream_response_filter` | upstream latency |
//! | `response_filter` | hop-by-hop headers and Ackee's CORS headers out, the gateway's in, `Vary: Origin` merged |
//! | `fail_to_connect`, `error_while_proxy` | upstream errors counted; the retry decided by [`crate::retry`] |
//! | `fail_to_proxy` | a short 502, 504 or 4xx body, with CORS headers for allowed origins |
//! | `request_header_abandoned` | a client that left in the middle of a request head counted (a patched pingora-proxy calls it) |
//! | `suppress_error_log` | a failing Ackee tallied in [`crate::outage`], not logged per request; a client that went away not logged |
//! | `logging` | requests by protocol, method and status class; a client that went away counted by stage, not logged |
//!
//! `request_filter`'s steps are in `request.rs` (ignored visits in `visits.rs`), the answers at
//! the edge in `respond.rs`, and
//! the labels and answers for Ackee's failures in `failure.rs`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, header};
use log::{debug, warn};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use pingora::http::{RequestHeader, ResponseHeader};

use crate::access_log::{self, AccessLog};
use crate::acme::Webroot;
use crate::balancer::Balancer;
use crate::config::Limits;
use crate::cors::{CorsPolicy, Decision, strip};
use crate::forwarded::{self, TrustedProxies};
use crate::framing;
use crate::limits::Exceeded;
use crate::metrics::{AbandonedAt, Metrics, Outcome, Protocol};
use crate::outage::OutageTally;
use crate::ratelimit::{LoginScan, RateLimiter, Write};
use crate::retry;
use failure::{client_went_away, failure_response, upstream_error_kind};

mod failure;
mod request;
mod respond;
mod visits;

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
    /// Which tracker writes are answered at the edge as ignored visits.
    pub visits: crate::visits::Visits,
    /// The Ackee replicas on pingora's load balancer (shared with the health checks).
    pub balancer: Arc<Balancer>,
    /// `Retry-After` on a 503 when no replica is up.
    pub retry_after_seconds: u32,
    /// The access log, if enabled.
    pub access_log: Option<AccessLog>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Requests answered 502, 503 or 504 for a failing Ackee, summarised instead of logged.
    pub outages: OutageTally,
    /// Ackee's static files served from the edge; `None` when `assets: off`.
    pub assets: Option<Arc<crate::assets::Assets>>,
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
    /// The gateway's own pending ACME challenges, answered before the webroot.
    pub challenges: Option<std::sync::Arc<crate::acme::challenges::Challenges>>,
    /// Headers added to every response, built at start-up. Each name is kept as the bytes
    /// pingora writes for it, so that adding it to a response copies nothing.
    pub response_headers: Vec<(Bytes, HeaderValue)>,
}

/// The proxy for one listener.
pub struct Gateway {
    shared: Arc<Shared>,
    policy: ListenerPolicy,
    scheme: &'static str,
    proto: HeaderValue,
    retry_after: HeaderValue,
    /// The answer to an allowed preflight, built once: only its allowed origin changes.
    preflight: ResponseHeader,
}

impl Gateway {
    /// A proxy for one listener.
    pub fn new(
        shared: Arc<Shared>,
        policy: ListenerPolicy,
    ) -> std::result::Result<Gateway, String> {
        let shared_retry_after = shared.retry_after_seconds;
        let scheme = if policy.tls { "https" } else { "http" };
        let preflight = respond::preflight_template(&shared.cors, &policy)
            .map_err(|e| format!("internal error: the preflight answer cannot be built: {e}"))?;
        Ok(Gateway {
            shared,
            policy,
            scheme,
            proto: HeaderValue::from_static(scheme),
            retry_after: HeaderValue::from(shared_retry_after),
            preflight,
        })
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
    /// buffer; every non-empty body is, so `request_body_filter` has nothing to count).
    pub body_buffered: bool,
    /// Whether the body is being read in `request_filter`: a client that leaves now leaves
    /// mid-body.
    pub reading_body: bool,
    /// When the request started, if the access log needs it.
    pub started: Option<Instant>,
    /// The kind of tracker write, for the rate limits.
    pub write: Option<Write>,
    /// The `createToken` calls seen in the body so far.
    pub logins: LoginScan,
    /// The body of a tracker write, for the visit rules.
    pub visit: visits::KeptBody,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    /// No downstream modules. Pingora's default adds its response compression module switched
    /// off, which still cost three allocations and two filter calls per request; the gateway
    /// never compresses (Ackee's answers are a few hundred bytes).
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

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

    fn h2_idle_closed(&self) {
        self.shared.metrics.connections.h2_idle_closed();
    }

    fn request_header_abandoned(&self) {
        self.shared.metrics.abandoned(AbandonedAt::Head);
    }

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: self.shared.access_log.as_ref().map(|_| Instant::now()),
            ..Ctx::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if self.refuse_head(session).await? || self.listener_answers(session).await? {
            return Ok(true);
        }
        if self.answer_cors(session, ctx).await? || self.serve_asset(session, ctx).await? {
            return Ok(true);
        }
        self.read_body_and_limit(session, ctx).await
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let balancer = &self.shared.balancer;
        ctx.attempts.key_or(|| self.client_key(session));
        let Some(attempt) = ctx.attempts.start(|key, tried| balancer.select(key, tried)) else {
            self.shared.metrics.unavailable();
            return Error::e_explain(ErrorType::HTTPStatus(503), "no Ackee replica is up");
        };
        match balancer.peer(attempt.replica) {
            Some(mut peer) => {
                if attempt.new_connection {
                    // A group key of its own: no pooled connection matches, so pingora
                    // connects anew.
                    peer.group_key = crate::balancer::fresh_group_key();
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
        let trusted = &self.shared.trusted;
        let edits = forwarded::edits(peer, trusted, &upstream_request.headers, &self.proto);
        edits.apply(|name, edit| match edit {
            forwarded::Edit::Remove => {
                upstream_request.remove_header(name);
                Ok(())
            }
            forwarded::Edit::Set(value) => upstream_request.insert_header(name.as_str(), value),
        })?;
        if ctx.body_buffered {
            // The whole body is known: send it with a length, never chunked, and answer for
            // Expect ourselves (pingora issue #935 double-terminates some chunked bodies).
            upstream_request.remove_header(&header::TRANSFER_ENCODING);
            upstream_request.remove_header(&header::EXPECT);
            if !framing::declares_length(&upstream_request.headers, ctx.body_bytes) {
                upstream_request.insert_header(header::CONTENT_LENGTH, ctx.body_bytes)?;
            }
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
        // Ackee's five CORS headers and Connection: one list, one allocation.
        let mut strip = Vec::with_capacity(8);
        strip::access_control(&upstream_response.headers, &mut strip);
        framing::hop_by_hop(&upstream_response.headers, &mut strip);
        for name in &strip {
            upstream_response.remove_header(name);
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
            let balancer = &self.shared.balancer;
            if e.etype() == &ErrorType::ConnectRefused && balancer.refused(i) {
                m.replica_health(i, false);
                warn!(
                    "replica \"{}\" is down, it gets no traffic: it refused a connection",
                    balancer.name(i)
                );
            }
            let next = ctx
                .attempts
                .connect_failed(|key, tried| balancer.select(key, tried));
            if let Some(reason) = next.reason() {
                m.retry(i, reason);
            }
            let again = next != retry::Next::GiveUp;
            e.set_retry(again);
            if !again && !balancer.any_healthy() {
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
        let balancer = &self.shared.balancer;
        let next = ctx
            .attempts
            .send_failed(failure, |key, tried| balancer.select(key, tried));
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
        if client_went_away(e) {
            // Nothing to answer, and nothing wrong with the gateway; a client chooses how
            // often. `logging` counts it.
            debug!("the client went away: {e}");
            return true;
        }
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
        let downstream = session.as_ref();
        let protocol = if downstream.is_http2() {
            Protocol::Http2
        } else if downstream.is_custom() {
            // The gateway's only custom session is HTTP/3's.
            Protocol::Http3
        } else {
            Protocol::Http1
        };
        let req = session.req_header();
        self.shared.metrics.request(protocol, &req.method, status);
        if let (Some(log), Some(started)) = (&self.shared.access_log, ctx.started) {
            log.log(&access_log::Entry {
                time: std::time::SystemTime::now(),
                client: Self::peer_ip(session),
                method: req.method.as_str(),
                path: req.uri.path(),
                status,
                cors: ctx.cors.as_str(),
                replica: ctx.attempts.replica().map(|i| self.shared.balancer.name(i)),
                duration: started.elapsed(),
            });
        }
        if let Some(e) = e {
            if client_went_away(e) {
                let stage = if ctx.reading_body {
                    AbandonedAt::Body
                } else {
                    AbandonedAt::Answer
                };
                self.shared.metrics.abandoned(stage);
            } else if status.is_none() {
                warn!("request failed before a response was sent: {e}");
            }
        }
    }
}
