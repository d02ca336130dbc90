//! Client connections counted at accept, on pingora's connection filter: each listener asks
//! [`crate::connections`] before any TLS work whether a new connection may stay, and is told
//! when one closes (a pingora-core patch, patches/README.md). Refusals are counted, and logged
//! once per episode with a summary a minute while they go on.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::listeners::ConnectionFilter;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use crate::connections::episode::{SUMMARY_PERIOD, first_line};
use crate::connections::{self, Bound, Refusal, RefusalTally, Table};
use crate::forwarded::TrustedProxies;
use crate::metrics::Metrics;
use crate::periodic;

/// Admits or refuses each new client connection on every listener, and counts it while open.
/// One for the process, shared by the listeners.
pub(crate) struct ConnectionCounter {
    table: Table,
    bound: Bound,
    trusted: TrustedProxies,
    metrics: Arc<Metrics>,
    tally: RefusalTally,
}

impl std::fmt::Debug for ConnectionCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionCounter")
            .field("bound", &self.bound)
            .field("per_client", &self.table.per_client())
            .finish_non_exhaustive()
    }
}

impl ConnectionCounter {
    /// The counter for a process whose descriptors give `bound`, with the per-client limit
    /// (`None`: off) and the peers exempt from it.
    pub(crate) fn new(
        bound: Bound,
        per_client: Option<u32>,
        trusted: TrustedProxies,
        metrics: Arc<Metrics>,
    ) -> Arc<ConnectionCounter> {
        metrics.connections.set_limit(bound.connections);
        let counter = Arc::new(ConnectionCounter {
            table: Table::new(per_client, bound.connections),
            bound,
            trusted,
            metrics,
            tally: RefusalTally::default(),
        });
        let weak = Arc::downgrade(&counter);
        crate::logging::on_descriptors_exhausted(Box::new(move || {
            weak.upgrade()?.refused(Refusal::Descriptors, None)
        }));
        counter
    }

    /// Counts a refusal; the line to log when it starts an episode.
    fn refused(&self, why: Refusal, client: Option<std::net::IpAddr>) -> Option<String> {
        self.metrics.connections.refused(why);
        self.tally
            .record(why)
            .then(|| first_line(why, client, self.table.per_client(), &self.bound))
    }
}

#[async_trait]
impl ConnectionFilter for ConnectionCounter {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        // A peer without an address (not TCP) is neither counted nor told about at close.
        let Some(addr) = addr else {
            return true;
        };
        match self
            .table
            .admit(connections::client_key(addr.ip(), &self.trusted))
        {
            Ok(_) => {
                self.metrics.connections.opened();
                true
            }
            Err(why) => {
                if let Some(line) = self.refused(why, Some(addr.ip())) {
                    log::warn!("{line}");
                }
                false
            }
        }
    }

    fn connection_closed(&self, addr: &SocketAddr) {
        self.table
            .release(connections::client_key(addr.ip(), &self.trusted));
        self.metrics.connections.closed();
    }
}

/// Writes the summary of refused connections once a minute while refusals go on.
pub(super) struct ConnectionSummary {
    pub(super) counter: Arc<ConnectionCounter>,
}

#[async_trait]
impl BackgroundService for ConnectionSummary {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let c = &self.counter;
        periodic::every(SUMMARY_PERIOD, &mut shutdown, || async {
            if let Some(line) = c
                .tally
                .summary(SUMMARY_PERIOD, c.table.per_client(), &c.bound)
            {
                log::warn!("{line}");
            }
        })
        .await;
    }
}
