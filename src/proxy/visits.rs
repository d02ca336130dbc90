//! Tracker writes answered at the edge: a visit [`crate::visits`] ignores gets Ackee's own
//! answer (the fixed id), with the CORS headers of every answer at the edge, and never reaches
//! Ackee.

use bytes::Bytes;
use http::HeaderValue;
use pingora_core::Result;
use pingora_proxy::Session;

use super::{Ctx, Gateway};
use crate::visits::{Verdict, Visitor};

/// Apollo Server's `Content-Type`, which Ackee sends with every GraphQL answer.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The body of a tracker write, kept for the visit rules while it is read: the chunk itself
/// when it came in one (as a browser sends it; no copy), else only the count, and the rules read
/// pingora's retry buffer.
#[derive(Debug, Default)]
pub struct KeptBody {
    /// Whether the rules look at this request.
    pub(super) wanted: bool,
    first: Option<Bytes>,
    chunks: u32,
}

impl KeptBody {
    /// Notes one chunk of the body.
    pub(super) fn keep(&mut self, chunk: &Bytes) {
        if self.wanted {
            self.chunks += 1;
            self.first = (self.chunks == 1).then(|| chunk.clone());
        }
    }
}

impl Gateway {
    /// Decides, once the body has been read, whether the request is a visit to ignore, and
    /// answers it at the edge if so. Returns true if it answered.
    pub(super) async fn answer_ignored_visit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        if !ctx.visit.wanted {
            return Ok(false);
        }
        let s = &*self.shared;
        let body = match ctx.visit.chunks {
            0 => Bytes::new(),
            1 => ctx.visit.first.take().unwrap_or_default(),
            _ => session.as_ref().get_retry_buffer().unwrap_or_default(),
        };
        let client = if s.visits.needs_client() {
            self.limit_client(session)
        } else {
            None
        };
        let visitor = Visitor::of(&session.req_header().headers, client);
        let Verdict::Ignore { reason, body } = s.visits.decide(&visitor, &body) else {
            return Ok(false);
        };
        s.metrics.visit_ignored(reason);
        let headers = [("Content-Type", APPLICATION_JSON)];
        self.respond(session, &ctx.cors, 200, &headers, body, true)
            .await?;
        Ok(true)
    }
}
