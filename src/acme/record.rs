//! What the renewing gateway last knew about a managed certificate ([`Status`], with the CA's
//! last [`Problem`]): the record the store keeps in the state directory and
//! `ackee-gateway certificates` reads. A module of its own, below both, so that neither the
//! store nor the command imports the other's.

use serde::{Deserialize, Serialize};

/// The CA's problem document (RFC 7807), or our own words when there is none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The problem type, such as `urn:ietf:params:acme:error:rateLimited`; empty when the
    /// failure was not the CA's answer (a connection, a timeout, the disk).
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub detail: String,
}

impl Problem {
    /// Whether the CA said a rate limit was hit.
    pub fn rate_limited(&self) -> bool {
        self.kind.ends_with(":rateLimited")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind.is_empty() {
            f.write_str(&self.detail)
        } else {
            write!(f, "{} ({})", self.detail, self.kind)
        }
    }
}

/// What the renewing gateway last knew about a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// When the next order is due (a renewal or a retry), Unix seconds.
    pub next_attempt: i64,
    /// Failed orders since the last success.
    pub failures: u32,
    /// The last failure, if the last order failed.
    pub last_error: Option<Problem>,
    /// When it failed, Unix seconds.
    pub last_error_at: Option<i64>,
    /// When the certificate in use was obtained, Unix seconds.
    pub issued_at: Option<i64>,
    /// The settings the failures were with ([`super::settings::AcmeSettings::summary`]): a restart with other
    /// settings (the fix) tries at once, the same settings wait out the backoff.
    #[serde(default)]
    pub settings: String,
}
