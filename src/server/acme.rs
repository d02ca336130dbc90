//! The background service that keeps one managed certificate (`listeners[].tls.acme`) valid:
//! it serves the stored certificate, orders a new one when none is stored or renewal is due,
//! swaps it into the listener's SNI resolver (new handshakes get it, open connections keep
//! theirs, as a SIGHUP reload does), and after a failure keeps the current certificate and
//! tries again after a jittered backoff. The decisions are [`crate::acme`]'s; this runs them.
//!
//! Several processes on one state directory (the old and the new one in a graceful upgrade, or
//! two gateways) share the work through it: an order runs only under the certificate's order
//! lock, and every process picks up a certificate another one stored, within a minute.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{debug, error, info, warn};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::acme::challenges::Challenges;
use crate::acme::settings::{AcmeSettings, ChallengeKind};
use crate::acme::status::{Problem, Status};
use crate::acme::store::{CertDir, Store, Stored, Unusable};
use crate::acme::{client, schedule};
use crate::certs::format_utc;
use crate::metrics::Metrics;
use crate::tls::resolver::{SniResolver, StoreEntry};

/// How often the stored certificate is looked at while nothing is due, to pick up another
/// process's renewal.
const RECHECK: Duration = Duration::from_secs(60);

/// How long to wait when another process holds the order lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Keeps one managed certificate valid. See the module documentation.
pub(super) struct AcmeService {
    pub(super) settings: AcmeSettings,
    pub(super) store: Store,
    pub(super) challenges: Arc<Challenges>,
    pub(super) resolver: Arc<SniResolver>,
    pub(super) metrics: Arc<Metrics>,
}

/// What the loop remembers between rounds.
#[derive(Default)]
struct Round {
    /// The PEM bytes of the certificate in use.
    installed: Option<Vec<u8>>,
    /// No order before this (after a failure), Unix seconds.
    retry_at: i64,
    /// Failed orders in a row.
    failures: u32,
    /// The last failure logged, to log only changes.
    logged: Option<Problem>,
    /// The status last written.
    written: Option<Status>,
    issued_at: Option<i64>,
    last_error_at: Option<i64>,
}

impl AcmeService {
    fn dir(&self) -> CertDir {
        self.store.certificate(&self.settings.name)
    }

    /// Serves the stored certificate, if there is one that fits, before the listeners open.
    /// Says what the service will do otherwise.
    pub(super) fn install_stored(&self) -> Option<Vec<u8>> {
        let s = &self.settings;
        self.metrics.acme_orders.certificate(&s.name);
        match self.dir().load(s) {
            Ok(stored) => {
                info!(
                    "certificate \"{}\" ({}): the stored one from {} is served; it expires {}",
                    s.name,
                    s.domains.join(", "),
                    stored.issuer,
                    format_utc(stored.loaded.not_after)
                );
                self.install(&stored);
                Some(stored.fingerprint)
            }
            Err(why) => {
                // No expiry yet: the expiry alert counts this one as expired until it exists.
                self.metrics.tls_expiry(&s.name, 0);
                let fallback = if self.resolver.current().entries().is_empty() {
                    "TLS handshakes on this listener fail until it is issued"
                } else {
                    "until it is issued, handshakes for these names get the listener's default certificate"
                };
                warn!(
                    "certificate \"{}\" ({}): {why}; ordering it from {} over {}; {fallback}",
                    s.name,
                    s.domains.join(", "),
                    s.directory,
                    s.challenge.as_str()
                );
                None
            }
        }
    }

    fn install(&self, stored: &Stored) {
        self.resolver.put_managed(StoreEntry {
            name: self.settings.name.clone(),
            certified: stored.loaded.certified.clone(),
            server_names: self.settings.domains.clone(),
        });
        self.metrics
            .tls_expiry(&self.settings.name, stored.loaded.not_after);
    }

    /// What the CA will be asked to check, for the log.
    fn waiting_for(&self) -> String {
        let names = self.settings.domains.join(", ");
        match self.settings.challenge {
            ChallengeKind::Http01 => format!(
                "the CA to fetch http://NAME/.well-known/acme-challenge/TOKEN on port 80 for {names}"
            ),
            ChallengeKind::TlsAlpn01 => {
                format!("the CA to connect on port 443 with ALPN acme-tls/1 for {names}")
            }
        }
    }

    fn write_status(&self, round: &mut Round, next_attempt: i64, last_error: Option<Problem>) {
        let status = Status {
            next_attempt,
            failures: round.failures,
            last_error,
            last_error_at: round.last_error_at,
            issued_at: round.issued_at,
            settings: self.settings.summary(),
        };
        self.metrics
            .acme_orders
            .next_order(&self.settings.name, next_attempt);
        if round.written.as_ref() == Some(&status) {
            return;
        }
        if let Err(e) = self.dir().write_status(&status) {
            warn!(
                "certificate \"{}\": cannot write its status in the state directory: {e}",
                self.settings.name
            );
        }
        round.written = Some(status);
    }

    /// One round: serve what is stored, and order when due. Returns how long to wait.
    async fn round(&self, r: &mut Round) -> Duration {
        let s = &self.settings;
        let now = now();
        let stored = self.dir().load(s);
        if let Ok(st) = &stored
            && r.installed.as_ref() != Some(&st.fingerprint)
        {
            if r.installed.is_some() {
                info!(
                    "certificate \"{}\": another process stored a new one; it is served now, it expires {}",
                    s.name,
                    format_utc(st.loaded.not_after)
                );
            }
            self.install(st);
            r.installed = Some(st.fingerprint.clone());
        }
        let due = match &stored {
            Ok(st) => schedule::renewal_at(st.not_before, st.loaded.not_after),
            Err(_) => now,
        }
        .max(r.retry_at);
        if due > now {
            let last = r.written.as_ref().and_then(|w| w.last_error.clone());
            self.write_status(r, due, last);
            let wait = Duration::from_secs(u64::try_from(due - now).unwrap_or(0));
            return wait.min(RECHECK);
        }
        let lock = match self.dir().try_lock() {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                debug!(
                    "certificate \"{}\": another process holds the order lock; waiting for it",
                    s.name
                );
                return LOCK_WAIT;
            }
            Err(e) => {
                let p = Problem {
                    kind: String::new(),
                    detail: format!("cannot take the order lock in the state directory: {e}"),
                };
                return self.failed(r, p, now);
            }
        };
        // Another process may have stored a new certificate just before we took the lock.
        if let Ok(st) = self.dir().load(s)
            && r.installed.as_ref() != Some(&st.fingerprint)
        {
            return Duration::ZERO;
        }
        let why = match &stored {
            Ok(st) => format!(
                "renewal is due (it expires {})",
                format_utc(st.loaded.not_after)
            ),
            Err(Unusable::Missing) => "none is stored yet".to_owned(),
            Err(other) => other.to_string(),
        };
        info!(
            "certificate \"{}\": {why}; ordering it from {}, waiting for {}",
            s.name,
            s.directory,
            self.waiting_for()
        );
        let result = client::order(s, &self.store, &self.challenges).await;
        let result = result.and_then(|issued| {
            self.dir()
                .save(&s.directory, &issued.chain_pem, &issued.key_pem)
                .map_err(|e| Problem {
                    kind: String::new(),
                    detail: format!("the certificate was issued but cannot be stored: {e}"),
                })?;
            self.dir().load(s).map_err(|why| Problem {
                kind: String::new(),
                detail: format!("the certificate issued cannot be used: {why}"),
            })
        });
        drop(lock);
        match result {
            Ok(st) => {
                self.install(&st);
                r.installed = Some(st.fingerprint.clone());
                self.metrics.acme_orders.order(&s.name, true);
                let next = schedule::renewal_at(st.not_before, st.loaded.not_after);
                info!(
                    "certificate \"{}\" ({}) issued by {}; served now; it expires {}, renewal {}{}",
                    s.name,
                    s.domains.join(", "),
                    st.issuer,
                    format_utc(st.loaded.not_after),
                    format_utc(next),
                    if r.logged.is_some() {
                        " (the earlier failures are over)"
                    } else {
                        ""
                    }
                );
                r.failures = 0;
                r.retry_at = 0;
                r.logged = None;
                r.issued_at = Some(now);
                self.write_status(r, next, None);
                Duration::ZERO
            }
            Err(p) => self.failed(r, p, now),
        }
    }

    /// After a failed order: counted, logged when it differs from the last one, the status
    /// written, the next attempt after the backoff. The certificate in use stays.
    fn failed(&self, r: &mut Round, p: Problem, now: i64) -> Duration {
        let s = &self.settings;
        r.failures = r.failures.saturating_add(1);
        self.metrics.acme_orders.order(&s.name, false);
        let wait = schedule::backoff(r.failures, p.rate_limited(), schedule::jitter());
        r.retry_at = now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
        r.last_error_at = Some(now);
        let keeping = match &r.installed {
            Some(_) => "the current certificate stays in use",
            None => "there is still no certificate for these names",
        };
        if r.logged.as_ref() != Some(&p) {
            error!(
                "certificate \"{}\": the order failed: {p}; {keeping}; next attempt {} (logged again only when the error changes)",
                s.name,
                format_utc(r.retry_at)
            );
            r.logged = Some(p.clone());
        } else {
            debug!(
                "certificate \"{}\": the order failed again ({} in a row): {p}",
                s.name, r.failures
            );
        }
        let retry = r.retry_at;
        self.write_status(r, retry, Some(p));
        Duration::ZERO
    }
}

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut round = Round {
            installed: self.dir().load(&self.settings).ok().map(|s| s.fingerprint),
            ..Round::default()
        };
        if let Some(old) = self.dir().status() {
            round.issued_at = old.issued_at;
            // Keep the backoff across restarts with the same settings: a crash loop must not
            // hammer the CA. Changed settings (the fix, usually) are tried at once.
            if old.last_error.is_some() && old.settings == self.settings.summary() {
                round.failures = old.failures;
                round.last_error_at = old.last_error_at;
                round.retry_at = old.next_attempt;
            }
        }
        loop {
            let wait = self.round(&mut round).await;
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
