//! The validated configuration the gateway runs on. Nothing here can be wrong: every value was
//! checked by [`super::validate`], and defaults are filled in. Settings that a module of their
//! own acts on live in that module and are re-exported here: [`Limits`], [`AccessLogSettings`],
//! the health checks, the replicas and [`UpstreamSettings`], and [`ListenerTls`].

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cors::CorsSettings;
use crate::forwarded::TrustedProxies;

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
            grace_period_seconds: 3,
            graceful_shutdown_timeout_seconds: 2,
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
    /// HTTP/3 on the same address over UDP, if the listener asks for it (TLS listeners only).
    pub http3: Option<Http3Settings>,
}

/// The Prometheus listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served.
    pub address: SocketAddr,
}

pub use crate::access_log::AccessLogSettings;
pub use crate::assets::AssetSettings;
pub use crate::health::{HealthCheckSettings, HealthProbe};
pub use crate::limits::Limits;
pub use crate::quic::Http3Settings;
pub use crate::replicas::{NODE_KEEP_ALIVE_SECONDS, Replica, Selection, UpstreamSettings};
pub use crate::tls::{CertificateSettings, ListenerTls};

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
    /// Ackee's static files served from the edge; `None` when `assets: off`.
    pub assets: Option<AssetSettings>,
    /// Where ACME state is kept (`state_directory`).
    pub state_directory: PathBuf,
    /// Which tracker writes are answered at the edge.
    pub visits: crate::visits::VisitSettings,
}
