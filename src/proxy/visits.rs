//! Tracker writes answered at the edge: a visit [`crate::visits`] ignores gets Ackee's own
//! answer (the fixed id), with the CORS headers of every answer at the edge, and never reaches
//! Ackee.

use http::HeaderValue;
use pingora_core::Result;
use pingora_proxy::Session;

use super::{Ctx, Gateway};
use crate::visits::{FixedIdScan, Verdict, Visits};

/// Apollo Server's `Content-Type`, which Ackee sends with every GraphQL answer.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What the visit rules need of a tracker write's body while it is read: whether the fixed id
/// is in it, scanned chunk by chunk without copying. The whole body is read back from
/// pingora's retry buffer only when it must be parsed (a rule holds, or the id is there).
#[derive(Debug, Default)]
pub struct KeptBody {
    /// Whether the rules look at this request.
    pub(super) wanted: bool,
    scan: FixedIdScan,
}

impl KeptBody {
    /// Notes one chunk of the body.
    pub(super) fn keep(&mut self, visits: &Visits, chunk: &[u8]) {
        if self.wanted {
            self.scan.feed(visits, chunk);
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
        let client = if s.visits.needs_client() {
            self.limit_client(session)
        } else {
            None
        };
        let visitor = s.visits.visitor(&session.req_header().headers, client);
        let whole_body = || session.as_ref().get_retry_buffer();
        let verdict = s
            .visits
            .decide_scanned(&visitor, &ctx.visit.scan, whole_body);
        let Verdict::Ignore { reason, body } = verdict else {
            return Ok(false);
        };
        s.metrics.visit_ignored(reason);
        let headers = [("Content-Type", APPLICATION_JSON)];
        self.respond(session, &ctx.cors, 200, &headers, body, true)
            .await?;
        Ok(true)
    }
}
