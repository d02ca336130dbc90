//! The Ackee replicas as the config lists them, and how the gateway talks to them: each
//! replica's address, resolved once at start-up, its name and weight; how one is chosen; the
//! health checks, timeouts and `Retry-After` (the `upstream` section, validated:
//! [`UpstreamSettings`]). No pingora here: the balancer (`crate::balancer`) builds pingora's
//! load balancer and peers from these settings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::health::HealthCheckSettings;

/// Node's HTTP keep-alive timeout, which Ackee inherits.
pub const NODE_KEEP_ALIVE_SECONDS: f64 = 5.0;

/// One Ackee process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Name for metrics and logs; defaults to the address as written.
    pub name: String,
    /// The address as written, such as `ackee:3000`.
    pub written: String,
    /// The resolved address.
    pub address: SocketAddr,
    /// Relative share of traffic.
    pub weight: usize,
}

/// Resolves a host name and port to addresses: the system's resolver, or a stand-in in tests.
pub type Resolver<'a> = &'a dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system's resolver (`/etc/hosts`, then DNS).
pub(crate) fn system_resolver(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

impl Replica {
    /// The address `written` in the config, `HOST:PORT`, resolved once, at start-up: an IPv4
    /// address is preferred when a name has both. Otherwise what is wrong with it.
    pub(crate) fn resolve(written: &str, resolver: Resolver<'_>) -> Result<SocketAddr, String> {
        let text = written.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                let write = "the port Ackee listens on, such as 3000";
                return Err(format!("found \"{text}\" with port 0; write {write}"));
            }
            return Ok(addr);
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            let write = format!("\"{text}:3000\" if Ackee listens on its default port");
            return Err(format!("found \"{text}\" without a port; write {write}"));
        };
        let Some(port) = port.parse::<u16>().ok().filter(|p| *p != 0) else {
            return Err(format!(
                "found \"{text}\"; write a port from 1 to 65535 after the host"
            ));
        };
        match resolver(host, port) {
            Ok(addrs) => {
                let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
                addr.copied().ok_or_else(|| {
                    format!("\"{text}\" resolves to no address; write an IP address and port")
                })
            }
            Err(e) => Err(format!(
                "\"{text}\" could not be resolved ({e}); write an IP address and port, or a host name this machine resolves"
            )),
        }
    }

    /// Where the poll of Ackee's domain list asks this replica.
    pub fn domains_target(&self) -> crate::ackee_origins::Target {
        crate::ackee_origins::Target {
            name: self.name.clone(),
            address: self.address,
            host: self.written.clone(),
        }
    }
}

/// How a replica is chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Weighted round robin.
    RoundRobin,
    /// Weighted random.
    Random,
    /// Consistent (Ketama) hashing on the client address: a client stays on one replica.
    ConsistentHash,
}

/// How the gateway talks to Ackee.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamSettings {
    /// The Ackee processes.
    pub replicas: Vec<Replica>,
    /// How a replica is chosen.
    pub selection: Selection,
    /// Active health checks.
    pub health_check: HealthCheckSettings,
    /// `Retry-After` seconds on a 503 when no replica is up.
    pub retry_after_seconds: u32,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each read from Ackee.
    pub read_timeout: Duration,
    /// Timeout for each write to Ackee.
    pub write_timeout: Duration,
    /// How long a pooled connection may idle; below Node's 5 s keep-alive.
    pub idle_timeout: Duration,
}

impl UpstreamSettings {
    /// Default connect timeout.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default read timeout.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default write timeout.
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default idle timeout for pooled connections.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
}

/// The most replicas a config may list: as many as a request can remember having tried
/// ([`crate::retry::Tried`]).
pub const MAX_REPLICAS: usize = 64;
