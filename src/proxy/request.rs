//! `request_filter`'s steps, in order: the head's size and framing, CORS, then the body, the
//! visit rules (`visits.rs`) and the rate limit. Each answers at the edge when the request goes
//! no further.

use http::header;
use pingora_core::Result;
use pingora_proxy::Session;

use super::{Ctx, Gateway};
use crate::cors::{Decision, OriginVerdict};
use crate::limits::Exceeded;
use crate::{forwarded, framing, ratelimit, retry};

impl Gateway {
    /// Size limits on the request head, then its framing: 414, 431 or 400. Returns true if
    /// it answered.
    pub(super) async fn refuse_head(&self, session: &mut Session) -> Result<bool> {
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
        Ok(false)
    }

    /// Decides CORS once, counts it, and answers preflights and rejected origins at the edge.
    /// Returns true if it answered.
    pub(super) async fn answer_cors(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let s = &*self.shared;
        let req = session.req_header();
        ctx.cors = s
            .cors
            .decide(&req.method, &req.uri, &req.headers, self.scheme);
        s.metrics.cors(&ctx.cors);
        match &ctx.cors {
            Decision::PreflightAllowed(allow_origin) => {
                let resp = self.preflight_answer(allow_origin)?;
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
        Ok(false)
    }

    /// Ackee's static files for `GET` and `HEAD`, from the edge copy when there is one. Returns
    /// true if it answered; otherwise (no copy yet, another method, a request with a body,
    /// which would be left unread) the request goes to Ackee as before.
    pub(super) async fn serve_asset(&self, session: &mut Session, ctx: &Ctx) -> Result<bool> {
        let Some(assets) = &self.shared.assets else {
            return Ok(false);
        };
        let Some(route) = assets.route(session.req_header().uri.path()) else {
            return Ok(false);
        };
        let Some(copy) = assets.current() else {
            return Ok(false);
        };
        if !session.as_mut().is_body_empty() {
            return Ok(false);
        }
        let req = session.req_header();
        let Some(answer) = assets.answer(&copy, route, &req.method, &req.headers) else {
            return Ok(false);
        };
        self.respond_asset(session, &ctx.cors, route, &answer)
            .await?;
        Ok(true)
    }

    /// Reads the whole body within its limits, answers an ignored visit with Ackee's answer, then
    /// checks the client's rate limit: 413, 408, 200 or 429. Returns true if it answered.
    pub(super) async fn read_body_and_limit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        let s = &*self.shared;
        let req = session.req_header();
        ctx.write = ratelimit::write_kind(&req.method, req.uri.path());
        ctx.visit.wanted = s.visits.applies(&req.method, req.uri.path(), &req.headers);
        if let Err(exceeded) = s.limits.check_declared_body(&req.headers) {
            return self.refuse_size(session, &ctx.cors, exceeded).await;
        }
        if !session.as_mut().is_body_empty() {
            // An error leaves `reading_body` set: the client left mid-body.
            let exceeded = self.buffer_body(session, ctx).await?;
            ctx.reading_body = false;
            if let Some(exceeded) = exceeded {
                return self.refuse_size(session, &ctx.cors, exceeded).await;
            }
        }
        // Ignored visits never reach Ackee, so they are not counted against the rate limit.
        if self.answer_ignored_visit(session, ctx).await? {
            return Ok(true);
        }
        if let Some((rule, cost)) = s.rate.rule(ctx.write, ctx.logins.count()) {
            let client = self.limit_client(session);
            if let Some(Err(refused)) = client.map(|c| s.rate.check(rule, c, cost)) {
                return self.refuse_rate(session, &ctx.cors, refused).await;
            }
        }
        Ok(false)
    }
    /// The client a rate limit counts, through `trusted_proxies`.
    pub(super) fn limit_client(&self, session: &Session) -> Option<std::net::IpAddr> {
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
        ctx.reading_body = true;
        if expects_continue {
            // The client waits for this before it sends the body; Ackee will not be asked.
            downstream
                .write_continue_response()
                .await
                .map_err(downstream_error)?;
        }
        downstream.enable_retry_buffering();
        ctx.body_buffered = true;
        let scan = self.shared.rate.scans_body(ctx.write);
        loop {
            let read = downstream.read_request_body();
            match tokio::time::timeout(limits.body_timeout, read).await {
                Err(_) => return Ok(Some(Exceeded::BodyTimeout)),
                Ok(Err(e)) => return Err(downstream_error(e)),
                Ok(Ok(None)) => return Ok(None),
                Ok(Ok(Some(chunk))) => {
                    ctx.body_bytes += chunk.len() as u64;
                    ctx.visit.keep(&self.shared.visits, &chunk);
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
    pub(super) fn peer_ip(session: &Session) -> Option<std::net::IpAddr> {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| forwarded::canonical(a.ip()))
    }

    /// The client address as bytes for consistent hashing.
    pub(super) fn client_key(&self, session: &Session) -> retry::ClientKey {
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

/// An error reading the body from the client, or writing to it, is the client's: pingora's
/// body reader leaves its source unset, which would make a client that leaves mid-body a 500
/// and an error line.
fn downstream_error(mut e: Box<pingora_core::Error>) -> Box<pingora_core::Error> {
    e.as_down();
    e
}
