//! The validated configuration the gateway runs on. Nothing here can be wrong: every value was
//! checked by [`super::validate`], and defaults are filled in.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cors::CorsSettings;
use crate::forwarded::TrustedProxies;

/// The default `grace_period_seconds`: how long in-flight requests get after SIGTERM or SIGQUIT.
pub const DEFAULT_GRACE_PERIOD_SECONDS: u64 = 3;
/// The default `graceful_shutdown_timeout_seconds`: how long runtimes get to stop after that.
pub const DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS: u64 = 2;
/// Node's HTTP keep-alive timeout, which Ackee inherits.
pub const NODE_KEEP_ALIVE_SECONDS: f64 = 5.0;

/// Pingora's server settings, without importing pingora.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// Fork into the background.
    pub daemon: bool,
    /// Log file instead of stderr.
    pub error_log: Option<String>,
    /// PID file.
    pub pid_file: String,
    /// Socket for the graceful upgrade.
    pub upgrade_sock: String,
    /// User to run as after binding.
    pub user: Option<String>,
    /// Group to run as after binding.
    pub group: Option<String>,
    /// Worker threads per service.
    pub threads: usize,
    /// Work stealing between worker threads.
    pub work_stealing: bool,
    /// Seconds in-flight requests get after SIGTERM or SIGQUIT.
    pub grace_period_seconds: u64,
    /// Seconds the runtimes get to stop after the grace period.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Idle upstream connections kept per process.
    pub upstream_keepalive_pool_size: usize,
    /// With `daemon`, the parent waits until the child is ready.
    pub daemon_wait_for_ready: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            daemon: false,
            error_log: None,
            pid_file: "/tmp/ackee-gateway.pid".to_owned(),
            upgrade_sock: "/tmp/ackee-gateway-upgrade.sock".to_owned(),
            user: None,
            group: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            work_stealing: true,
            grace_period_seconds: DEFAULT_GRACE_PERIOD_SECONDS,
            graceful_shutdown_timeout_seconds: DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT_SECONDS,
            upstream_keepalive_pool_size: 128,
            daemon_wait_for_ready: false,
        }
    }
}

/// One listening socket for visitors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// Name for logs; defaults to the address.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
}

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

/// How the gateway talks to Ackee.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamSettings {
    /// The Ackee processes.
    pub replicas: Vec<Replica>,
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

/// The Prometheus listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served.
    pub address: SocketAddr,
}

/// Request size limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body; more gets 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line plus headers); more gets 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pingora's server settings.
    pub server: ServerSettings,
    /// Visitor-facing listeners.
    pub listeners: Vec<Listener>,
    /// CORS, with the allow list compiled.
    pub cors: CorsSettings,
    /// Where allowed origins came from: the file, or `ACKEE_ALLOW_ORIGIN`.
    pub origins_from_env: bool,
    /// Ackee.
    pub upstream: UpstreamSettings,
    /// Prometheus, if enabled.
    pub metrics: Option<MetricsSettings>,
    /// Request limits.
    pub limits: Limits,
    /// Peers whose client-IP headers are believed.
    pub trusted_proxies: TrustedProxies,
}
