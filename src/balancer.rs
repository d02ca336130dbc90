//! The balancer: choosing an Ackee replica for a request on pingora's load balancer, the peer
//! and its timeouts, and the active health checks that decide which replicas get traffic. The
//! replicas and their settings, as configured, are [`crate::replicas`]; this is the pingora
//! side of them.
//!
//! - Selection is pingora-load-balancing's weighted round robin, weighted random, or Ketama
//!   consistent hashing on the client address. A request remembers the replicas it tried, so a
//!   retry after a connection failure goes to one it has not tried.
//! - Health comes from [`crate::health`]: a replica gets traffic only after its first passing
//!   check. The probes are pingora-load-balancing's HTTP and TCP checks, run by
//!   [`HealthChecker`] for every replica at once, each bounded by the timeout.
//! - Each replica's [`HttpPeer`] is built once; pooled connections idle for less than Node's
//!   5 s keep-alive timeout, so a request never races Ackee closing the connection under it.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use log::{info, warn};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::ServiceReadyNotifier;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::{BasicPeer, HttpPeer};
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::selection::{
    BackendIter, BackendSelection, Consistent, Random, RoundRobin,
};
use pingora_load_balancing::{Backend, Backends, LoadBalancer, discovery};

use crate::health::{HealthCheckSettings, HealthProbe};
use crate::health::{ReplicaHealth, Thresholds};
use crate::metrics::Metrics;
use crate::replicas::{Replica, Selection, UpstreamSettings};
use crate::retry::Tried;

/// Pingora's load balancer, with the selection the config chose.
enum Algorithm {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Consistent(LoadBalancer<Consistent>),
}

fn load_balancer<S>(backends: BTreeSet<Backend>) -> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let lb = LoadBalancer::from_backends(Backends::new(discovery::Static::new(backends)));
    // Static discovery never blocks or fails.
    let _ = lb.update().now_or_never();
    lb
}

/// A replica's index in the config, carried in its [`Backend`]'s extensions (as River does).
#[derive(Clone, Copy, Debug)]
struct ReplicaIndex(usize);

/// A replica as pingora's load balancer and health checks see it.
fn backend(i: usize, r: &Replica) -> Backend {
    let mut ext = http::Extensions::new();
    ext.insert(ReplicaIndex(i));
    Backend {
        addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(r.address),
        weight: r.weight,
        ext,
    }
}

/// The config index of a backend.
fn index_of(b: &Backend) -> Option<usize> {
    b.ext.get::<ReplicaIndex>().map(|r| r.0)
}

/// The replicas on pingora's load balancer, how to reach them, and their health.
pub struct Balancer {
    algorithm: Algorithm,
    names: Vec<String>,
    peers: Vec<HttpPeer>,
    health: Vec<ReplicaHealth>,
    thresholds: Option<Thresholds>,
    max_iterations: usize,
}

impl Balancer {
    /// Builds the balancer, one peer per replica, and the health state (all down until checked,
    /// or all up when checks are off).
    pub fn new(settings: &UpstreamSettings) -> Balancer {
        let mut backends = BTreeSet::new();
        let mut peers = Vec::new();
        let mut names = Vec::new();
        for (i, r) in settings.replicas.iter().enumerate() {
            backends.insert(backend(i, r));
            let mut peer = HttpPeer::new(r.address, false, String::new());
            peer.options.connection_timeout = Some(settings.connect_timeout);
            peer.options.read_timeout = Some(settings.read_timeout);
            peer.options.write_timeout = Some(settings.write_timeout);
            peer.options.idle_timeout = Some(settings.idle_timeout);
            peers.push(peer);
            names.push(r.name.clone());
        }
        let total_weight: usize = settings.replicas.iter().map(|r| r.weight).sum();
        let algorithm = match settings.selection {
            Selection::RoundRobin => Algorithm::RoundRobin(load_balancer(backends)),
            Selection::Random => Algorithm::Random(load_balancer(backends)),
            Selection::ConsistentHash => Algorithm::Consistent(load_balancer(backends)),
        };
        let checked = settings.health_check.probe != HealthProbe::Off;
        let health = settings
            .replicas
            .iter()
            .map(|_| {
                if checked {
                    ReplicaHealth::unchecked()
                } else {
                    ReplicaHealth::always_up()
                }
            })
            .collect();
        let thresholds = checked.then_some(Thresholds {
            unhealthy_after: settings.health_check.unhealthy_after,
            healthy_after: settings.health_check.healthy_after,
        });
        Balancer {
            algorithm,
            names,
            peers,
            health,
            thresholds,
            max_iterations: total_weight.max(1) * 4 + 64,
        }
    }

    /// Picks a healthy replica not in `tried`, or `None` if none
    /// is left. When no replica is healthy, every one may be picked ([`crate::health::routable`]).
    /// `key` is the client address, used by consistent hashing.
    pub fn select(&self, key: &[u8], tried: Tried) -> Option<usize> {
        let any_healthy = self.any_healthy();
        let accept = |b: &Backend, _: bool| {
            index_of(b).is_some_and(|i| {
                crate::health::routable(self.is_healthy(i), any_healthy) && !tried.contains(i)
            })
        };
        let backend = match &self.algorithm {
            Algorithm::RoundRobin(lb) => lb.select_with(key, self.max_iterations, accept),
            Algorithm::Random(lb) => lb.select_with(key, self.max_iterations, accept),
            Algorithm::Consistent(lb) => lb.select_with(key, self.max_iterations, accept),
        }?;
        index_of(&backend)
    }

    /// Whether a replica currently gets traffic.
    pub fn is_healthy(&self, replica: usize) -> bool {
        self.health
            .get(replica)
            .is_some_and(ReplicaHealth::is_healthy)
    }

    /// Whether any replica is healthy; when none is, every replica gets traffic (panic mode).
    pub fn any_healthy(&self) -> bool {
        self.health.iter().any(ReplicaHealth::is_healthy)
    }

    /// Takes a replica that refused a connection down at once (when health checks are on).
    /// Returns true when this changed its health.
    pub fn refused(&self, replica: usize) -> bool {
        match (self.health.get(replica), self.thresholds) {
            (Some(h), Some(t)) => h.refused(t).is_some(),
            _ => false,
        }
    }

    /// A fresh peer for a replica, with the configured timeouts.
    pub fn peer(&self, replica: usize) -> Option<Box<HttpPeer>> {
        self.peers.get(replica).map(|p| Box::new(p.clone()))
    }

    /// The replica's configured name.
    pub fn name(&self, replica: usize) -> &str {
        self.names.get(replica).map_or("unknown", String::as_str)
    }

    /// The configured replica names, by index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many replicas there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

/// Runs the active health checks for every replica, every interval, in the background.
pub struct HealthChecker {
    balancer: Arc<Balancer>,
    metrics: Arc<Metrics>,
    probe: Box<dyn HealthCheck + Send + Sync>,
    backends: Vec<Backend>,
    settings: HealthCheckSettings,
}

impl HealthChecker {
    /// A checker for the replicas, whose health changes it records in `balancer` and in
    /// `metrics`, or `None` when checks are off. An error (a
    /// path the HTTP check cannot send) must stop the start: without a checker no replica
    /// would ever be marked up.
    pub fn new(
        balancer: Arc<Balancer>,
        metrics: Arc<Metrics>,
        settings: &UpstreamSettings,
    ) -> Result<Option<HealthChecker>, String> {
        let hc = &settings.health_check;
        let probe: Box<dyn HealthCheck + Send + Sync> = match &hc.probe {
            HealthProbe::Off => return Ok(None),
            HealthProbe::Http { path } => {
                let mut check = HttpHealthCheck::new("localhost", false);
                let uri = path.parse::<http::Uri>().map_err(|e| {
                    format!("upstream.health_check.path: \"{}\" cannot be sent as a request target ({e}); write a path such as \"/.well-known/apollo/server-health\"", path.escape_debug())
                })?;
                check.req.set_uri(uri);
                check.peer_template.options.connection_timeout = Some(hc.timeout);
                check.peer_template.options.read_timeout = Some(hc.timeout);
                check.peer_template.options.write_timeout = Some(hc.timeout);
                Box::new(check)
            }
            HealthProbe::Tcp => {
                let mut check = TcpHealthCheck::new();
                let mut peer = BasicPeer::new("0.0.0.0:1");
                peer.options.connection_timeout = Some(hc.timeout);
                check.peer_template = peer;
                check
            }
        };
        Ok(Some(HealthChecker {
            balancer,
            metrics,
            probe,
            backends: settings
                .replicas
                .iter()
                .enumerate()
                .map(|(i, r)| backend(i, r))
                .collect(),
            settings: hc.clone(),
        }))
    }

    async fn check_all(&self) {
        let thresholds = Thresholds {
            unhealthy_after: self.settings.unhealthy_after,
            healthy_after: self.settings.healthy_after,
        };
        let checks = self
            .backends
            .iter()
            .map(|b| tokio::time::timeout(self.settings.timeout, self.probe.check(b)));
        for (i, result) in futures::future::join_all(checks)
            .await
            .into_iter()
            .enumerate()
        {
            let passed = matches!(result, Ok(Ok(())));
            let up = &self.balancer;
            let Some(state) = up.health.get(i) else {
                continue;
            };
            if let Some(now) = state.record(passed, thresholds) {
                self.metrics.replica_health(i, now);
                if now {
                    info!(
                        "replica \"{}\" is up: it passes its health check",
                        up.name(i)
                    );
                } else {
                    let why = match result {
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(())) => "passed".to_owned(),
                        Err(_) => format!("no answer within {:?}", self.settings.timeout),
                    };
                    warn!(
                        "replica \"{}\" is down, it gets no traffic: {why}",
                        up.name(i)
                    );
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        // The listeners wait for the first round, so the gateway (and a new process taking
        // over in a graceful upgrade) never turns visitors away only because it has not
        // looked at the replicas yet.
        self.check_all().await;
        ready.notify_ready();
        crate::periodic::every(self.settings.interval, &mut shutdown, || self.check_all()).await;
    }
}

/// A pool key that no other peer has, so that a connection is made anew instead of taken from
/// the pool (a retry after a pooled connection failed).
pub fn fresh_group_key() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
