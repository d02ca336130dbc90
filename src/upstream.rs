//! Choosing an Ackee replica and describing the connection to it, on pingora's load balancer.
//!
//! Each replica's [`HttpPeer`] is built once with the configured timeouts; a request gets a
//! clone. Pooled connections idle for less than Node's 5 s keep-alive timeout, so a request
//! never races Ackee closing the connection under it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::upstreams::peer::HttpPeer;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::{Backend, Backends, LoadBalancer, discovery};

use crate::config::UpstreamSettings;

/// The most replicas a request can remember having tried (the width of the bit mask).
pub const MAX_REPLICAS: usize = 64;

/// The replicas and how to reach them.
pub struct Upstream {
    lb: Arc<LoadBalancer<RoundRobin>>,
    names: Vec<String>,
    peers: Vec<HttpPeer>,
    by_addr: HashMap<SocketAddr, usize>,
    max_iterations: usize,
}

impl Upstream {
    /// Builds the balancer and one peer template per replica.
    pub fn new(settings: &UpstreamSettings) -> Upstream {
        let mut backends = std::collections::BTreeSet::new();
        let mut by_addr = HashMap::new();
        let mut peers = Vec::new();
        let mut names = Vec::new();
        for (i, r) in settings.replicas.iter().enumerate() {
            backends.insert(Backend {
                addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(r.address),
                weight: r.weight,
                ext: http::Extensions::new(),
            });
            by_addr.insert(r.address, i);
            let mut peer = HttpPeer::new(r.address, false, String::new());
            peer.options.connection_timeout = Some(settings.connect_timeout);
            peer.options.read_timeout = Some(settings.read_timeout);
            peer.options.write_timeout = Some(settings.write_timeout);
            peer.options.idle_timeout = Some(settings.idle_timeout);
            peers.push(peer);
            names.push(r.name.clone());
        }
        let total_weight: usize = settings.replicas.iter().map(|r| r.weight).sum();
        let discovery = discovery::Static::new(backends);
        let lb = LoadBalancer::from_backends(Backends::new(discovery));
        // Static discovery never blocks or fails.
        let _ = futures_now(lb.update());
        Upstream {
            lb: Arc::new(lb),
            names,
            peers,
            by_addr,
            max_iterations: total_weight.max(1) * 2 + 16,
        }
    }

    /// Picks a replica not in `tried` (a bit mask of replica indexes), or `None` if none is left.
    pub fn select(&self, tried: u64) -> Option<usize> {
        let backend = self
            .lb
            .select_with(b"", self.max_iterations, |b, healthy| {
                healthy
                    && self
                        .index_of(b)
                        .is_some_and(|i| i >= MAX_REPLICAS || tried & (1 << i) == 0)
            })?;
        self.index_of(&backend)
    }

    fn index_of(&self, b: &Backend) -> Option<usize> {
        b.addr.as_inet().and_then(|a| self.by_addr.get(a).copied())
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
}

/// Polls a future that is known to complete without waiting.
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
