//! The validated configuration the gateway runs on. Nothing here can be wrong: every value was
//! checked by [`super::validate`], and defaults are filled in.

use std::net::SocketAddr;
use std::path::PathBuf;
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
            upstream_keepalive_pool_size: 1024,
            daemon_wait_for_ready: false,
        }
    }
}

/// One listening socket for visitors.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// Name for logs; defaults to the address.
    pub name: String,
    /// Where to listen.
    pub address: SocketAddr,
    /// TLS, for an HTTPS listener.
    pub tls: Option<ListenerTls>,
    /// Answer every request (but ACME challenges) with a 301 to HTTPS on this port.
    pub redirect_to_https: Option<u16>,
    /// certbot's webroot, served under `/.well-known/acme-challenge/`.
    pub acme_webroot: Option<PathBuf>,
    /// Headers added to every response.
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// The TLS side of an HTTPS listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerTls {
    /// The certificates, in config order.
    pub certificates: Vec<CertificateSettings>,
    /// Index of the certificate for clients without SNI or with an unknown name.
    pub default_certificate: usize,
    /// Poll the files this often and reload on change; `None` reloads on SIGHUP only.
    pub watch_interval: Option<Duration>,
}

/// One certificate of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSettings {
    /// Name for metrics and logs.
    pub name: String,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names to serve it for; `None` means the certificate's own DNS names.
    pub server_names: Option<Vec<String>>,
    /// The chain and key as loaded and checked when the config was: the gateway starts with
    /// these, and reads the files again only to reload them.
    pub loaded: crate::certs::LoadedCert,
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

impl Replica {
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

/// What an active health check does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthProbe {
    /// `GET path`, passing on 200.
    Http {
        /// The path, such as `/.well-known/apollo/server-health`.
        path: String,
    },
    /// A TCP connect.
    Tcp,
    /// No checks: every replica is always up.
    Off,
}

/// Active health checks.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheckSettings {
    /// The probe.
    pub probe: HealthProbe,
    /// Time between checks of a replica.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Consecutive failures that take a replica down.
    pub unhealthy_after: u32,
    /// Consecutive passes that bring it back.
    pub healthy_after: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        HealthCheckSettings {
            probe: HealthProbe::Http {
                path: "/.well-known/apollo/server-health".to_owned(),
            },
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            unhealthy_after: 3,
            healthy_after: 2,
        }
    }
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

impl ListenerTls {
    /// Default interval for watching certificate files.
    pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);
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

pub use crate::limits::Limits;

/// The access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogSettings {
    /// Text or JSON lines.
    pub format: crate::access_log::Format,
    /// Standard output or a file.
    pub target: crate::access_log::Target,
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
    /// The access log, if enabled.
    pub access_log: Option<AccessLogSettings>,
    /// Per-client rate limits.
    pub rate_limits: crate::ratelimit::RateLimits,
}
