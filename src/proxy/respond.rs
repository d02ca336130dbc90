//! Answers at the edge, and the CORS and listener headers every answer carries.

use bytes::Bytes;
use http::HeaderValue;
use pingora_core::Result;
use pingora_proxy::Session;

use pingora::http::ResponseHeader;

use super::{Gateway, ListenerPolicy};
use crate::acme::{Challenge, Webroot};
use crate::assets::{Answer, Route};
use crate::cors::{CorsPolicy, Decision, names, request_host, vary};
use crate::limits::Exceeded;
use crate::{ratelimit, redirect};

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
/// A static file's `Vary`: its variant follows `Accept-Encoding`, and its CORS headers
/// `Origin` (so [`Gateway::decorate`] keeps it as it is).
const VARY_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding, Origin");

/// The answer to an allowed preflight, built once per listener: 204, every
/// `Access-Control-Allow-*` header, `Vary: Origin` and the listener's headers, in the order they
/// are sent. `Access-Control-Allow-Origin` holds a placeholder that
/// [`Gateway::preflight_answer`] replaces, in place, with the request's origin.
pub(super) fn preflight_template(
    cors: &CorsPolicy,
    policy: &ListenerPolicy,
) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(204, Some(8))?;
    for (name, value) in cors.preflight_headers(HeaderValue::from_static("null")) {
        resp.append_header(name, value)?;
    }
    policy.add_headers(&mut resp)?;
    Ok(resp)
}

impl ListenerPolicy {
    /// Adds the listener's configured response headers, replacing any of the same name.
    fn add_headers(&self, resp: &mut ResponseHeader) -> Result<()> {
        for (name, value) in &self.response_headers {
            resp.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }
}

impl Gateway {
    /// The answer to a preflight from `allow_origin`: a copy of the listener's template with
    /// the origin put in (in place: the header keeps its position). One header is set per
    /// request instead of the whole set.
    pub(super) fn preflight_answer(&self, allow_origin: &HeaderValue) -> Result<ResponseHeader> {
        let mut resp = self.preflight.clone();
        resp.insert_header(names::ALLOW_ORIGIN, allow_origin.clone())?;
        Ok(resp)
    }

    /// Adds the CORS headers an allowed origin gets on an actual response, and `Vary: Origin`.
    pub(super) fn decorate(&self, resp: &mut ResponseHeader, cors: &Decision) -> Result<()> {
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
        self.policy.add_headers(resp)
    }

    /// Answers at the edge: status, extra headers, body, the CORS headers `cors` calls for,
    /// `Vary: Origin` and the listener's headers. `keepalive: false` closes the connection
    /// afterwards (when a request body may be left unread).
    pub(super) async fn respond(
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

    /// Answers a static file from the edge copy: `200` with the variant `Accept-Encoding` chose
    /// (its body unless the request is `HEAD`), or `304` when `If-None-Match` holds its `ETag`.
    /// Both carry the `ETag`, `Cache-Control` and `Vary`, then the CORS and listener headers
    /// every answer gets.
    pub(super) async fn respond_asset(
        &self,
        session: &mut Session,
        cors: &Decision,
        route: Route,
        answer: &Answer<'_>,
    ) -> Result<()> {
        let variant = answer.variant;
        let status = if answer.not_modified { 304 } else { 200 };
        let mut resp = ResponseHeader::build(status, Some(10))?;
        if !answer.not_modified {
            resp.insert_header("Content-Type", answer.file.content_type.clone())?;
            resp.insert_header("Content-Length", variant.length.clone())?;
            if let Some(coding) = &variant.content_encoding {
                resp.insert_header("Content-Encoding", coding.clone())?;
            }
        }
        resp.insert_header("ETag", variant.etag.clone())?;
        resp.insert_header("Cache-Control", answer.cache_control.clone())?;
        resp.insert_header("Vary", VARY_ENCODING)?;
        self.decorate(&mut resp, cors)?;
        let no_body = answer.not_modified || session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), no_body)
            .await?;
        if !no_body {
            session
                .write_response_body(Some(variant.body.clone()), true)
                .await?;
        }
        let sent = if no_body { 0 } else { variant.body.len() };
        let m = &self.shared.metrics.assets;
        m.response(route, variant.encoding, answer.not_modified, sent);
        Ok(())
    }

    /// ACME challenges and the HTTPS redirect. Returns true if it answered.
    pub(super) async fn listener_answers(&self, session: &mut Session) -> Result<bool> {
        let none = &Decision::NotApplicable;
        let path = session.req_header().uri.path();
        let answers = self.policy.acme.is_some() || self.policy.challenges.is_some();
        if answers && Webroot::claims(path) {
            // The gateway's own orders first, then certbot's webroot.
            let own = self.policy.challenges.as_ref().and_then(|c| {
                let token = path.strip_prefix(crate::acme::webroot::PREFIX)?;
                c.http_answer(token)
            });
            let served = match (own, &self.policy.acme) {
                (Some(answer), _) => Challenge::Found(answer.into_bytes()),
                (None, Some(webroot)) => webroot.serve(path),
                (None, None) => Challenge::NotFound,
            };
            let (status, body) = match served {
                Challenge::Found(bytes) => (200, Bytes::from(bytes)),
                Challenge::NotFound => (404, Bytes::from_static(b"Not Found\n")),
            };
            self.shared.metrics.acme_challenge(status == 200);
            let headers = [("Content-Type", TEXT_PLAIN)];
            self.respond(session, none, status, &headers, body, true)
                .await?;
            return Ok(true);
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
    pub(super) async fn respond_text(
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
    pub(super) async fn refuse_size(
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
    pub(super) async fn refuse_rate(
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
}
