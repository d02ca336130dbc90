//! Turning a validated [`Config`] into a running pingora `Server`: one proxy service per
//! listener (TLS listeners with the SNI resolver, HTTP/2 and the handshake counter), the
//! certificate reloader, the metrics service, and pingora's own settings mapped from
//! [`ServerSettings`].

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::Response;
use log::{error, info};
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, TlsAccept};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::ServiceReadyNotifier;
use pingora_core::services::background::{BackgroundService, background_service};
use pingora_core::services::listening::Service;

use crate::access_log::AccessLog;
use crate::ackee_origins;
use crate::acme::Webroot;
use crate::config::types::ListenerTls;
use crate::config::{Config, Listener, ServerSettings};
use crate::cors::CorsPolicy;
use crate::handover::{self, UpgradeLock};
use crate::metrics::Metrics;
use crate::outage::{OutageTally, SUMMARY_PERIOD};
use crate::procnet;
use crate::proxy::{Gateway, ListenerPolicy, Shared};
use crate::ratelimit::RateLimiter;
use crate::tls::Reloader;
use crate::upstream::{HealthChecker, Upstream};

/// The socket buffers of a client connection. Pingora's default read buffer is 64 KiB per
/// connection, allocated at accept and kept while the connection idles; a tracker request is a
/// few hundred bytes, and the HTTP/1 parser reads into its own 4 KiB buffer anyway. Without it
/// an idle keep-alive connection costs a few kB instead of about 47 kB (see the README's
/// benchmarks). The 1460-byte write buffer stays: it joins a response head and its body.
const CLIENT_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: None,
};

/// Maps the gateway's view of pingora's settings onto pingora's `ServerConf`.
pub fn server_conf(s: &ServerSettings) -> ServerConf {
    ServerConf {
        version: 1,
        daemon: s.daemon,
        error_log: s.error_log.clone(),
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        user: s.user.clone(),
        group: s.group.clone(),
        threads: s.threads,
        work_stealing: s.work_stealing,
        grace_period_seconds: Some(s.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout_seconds),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        daemon_wait_for_ready: s.daemon_wait_for_ready,
        ..ServerConf::default()
    }
}

/// Serves `/metrics` in Prometheus text format; every other path is 404.
pub struct MetricsApp {
    metrics: Arc<Metrics>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let (status, content_type, body) = if session.req_header().uri.path() == "/metrics" {
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            )
        } else {
            (
                404,
                "text/plain; charset=utf-8",
                b"Not Found: the metrics are at /metrics\n".to_vec(),
            )
        };
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

/// Counts completed TLS handshakes. Failed ones are counted from pingora's log record, see
/// [`crate::logging`].
struct HandshakeCounter {
    metrics: Arc<Metrics>,
}

#[async_trait]
impl TlsAccept for HandshakeCounter {
    async fn handshake_complete_callback(
        &self,
        _tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        self.metrics.tls_handshake(true);
        None
    }
}

/// Holds the bootstrap back until the daemonising parent listens for SIGUSR1.
///
/// With `daemon_wait_for_ready`, pingora's bootstrap sends SIGUSR1 to the parent as soon as it
/// starts, but the parent installs its SIGUSR1 handler only after the fork, so a fast child can
/// signal first and kill the parent (SIGUSR1's default action), failing the start or reload.
/// This gate waits, briefly, until the parent's signal mask shows it catches SIGUSR1.
struct ParentReadyGate {
    parent: u32,
}

#[async_trait]
impl BackgroundService for ParentReadyGate {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && procnet::catches(self.parent, libc::SIGUSR1) == Some(false)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ready.notify_ready();
    }
}

/// Says when this process serves on every listener: it has the listening sockets (after the
/// bootstrap, which in an upgrade receives them), and pingora's SIGQUIT and SIGTERM handlers
/// are in place. Then it releases the upgrade lock, so the next upgrade may begin, and, as a
/// daemon, writes its PID to the ready marker that `--wait-ready` (the last step of the unit's
/// start and reload) waits for. See [`crate::handover`].
struct ReadyReporter {
    addresses: Vec<std::net::SocketAddr>,
    marker: Option<std::path::PathBuf>,
    lock: std::sync::Mutex<Option<UpgradeLock>>,
}

/// How long a process may take to serve on every listener before it says it never will.
const READY_LIMIT: Duration = Duration::from_secs(60);

#[async_trait]
impl BackgroundService for ReadyReporter {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        ready.notify_ready();
        let pid = std::process::id();
        let deadline = std::time::Instant::now() + READY_LIMIT;
        let serving = loop {
            if handover::serves_on_all(pid, &self.addresses) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if serving {
            if let Some(marker) = &self.marker
                && let Err(e) = handover::mark_ready(marker, pid)
            {
                error!("cannot write the ready marker {}: {e}", marker.display());
            }
            info!("serving on every listener");
        } else {
            // No marker: the start or reload waiting for it fails.
            error!(
                "not serving on every listener ({:?}) after {READY_LIMIT:?}",
                self.addresses
            );
        }
        // Dropping the lock lets the next upgrade take the sockets from this process.
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }
}

/// Reloads certificates on SIGHUP, and when their files change if a listener watches them.
struct CertReloadService {
    reloader: Reloader,
}

#[async_trait]
impl BackgroundService for CertReloadService {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot listen for SIGHUP, certificates will not be reloaded: {e}");
                ready.notify_ready();
                return;
            }
        };
        // The listeners wait for this, so a SIGHUP never meets a gateway without its handler.
        ready.notify_ready();
        let watch = self.reloader.watch_interval();
        let mut tick = tokio::time::interval(watch.unwrap_or(Duration::from_secs(3600)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut stamps = self.reloader.stamps();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hup.recv() => {
                    info!("SIGHUP: reloading certificates");
                    self.reloader.reload();
                    stamps = self.reloader.stamps();
                }
                _ = tick.tick(), if watch.is_some() => {
                    let now = self.reloader.stamps();
                    if now != stamps {
                        info!("certificate files changed: reloading certificates");
                        self.reloader.reload();
                        stamps = self.reloader.stamps();
                    }
                }
            }
        }
    }
}

/// Writes the summary of requests that failed because Ackee did, once a period while they go on.
struct OutageSummary {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for OutageSummary {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(SUMMARY_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {
                    if let Some(line) = self.shared.outages.summary(SUMMARY_PERIOD) {
                        log::warn!("{line}");
                    }
                }
            }
        }
    }
}

/// Polls Ackee's domain list (`cors.origins_from_ackee`) at start-up and every interval, and
/// swaps the allow list when the origins change. The logic is in [`crate::ackee_origins`];
/// this runs it: the blocking poll on tokio's blocking pool, the result into the state
/// machine, its step into the log, the metrics and the live allow list. The first poll is done
/// before the listeners open, so a start or an upgrade serves Ackee's sites from its first
/// request; it is bounded by the timeout for each replica.
struct AckeeOriginsService {
    settings: ackee_origins::Settings,
    targets: Vec<ackee_origins::Target>,
    refresh: std::sync::Mutex<ackee_origins::Refresh>,
    live: crate::origin::LiveOrigins,
    metrics: Arc<Metrics>,
}

impl AckeeOriginsService {
    async fn poll_once(&self) {
        let settings = self.settings.clone();
        let targets = self.targets.clone();
        let result = tokio::task::spawn_blocking(move || ackee_origins::poll(&settings, &targets))
            .await
            .unwrap_or_else(|e| {
                Err(ackee_origins::Failed::new(
                    ackee_origins::Failure::BadAnswer,
                    format!("the poll did not finish: {e}"),
                ))
            });
        let Ok(mut refresh) = self.refresh.lock() else {
            return;
        };
        let step = refresh.on_result(result);
        if let Some(set) = step.set {
            self.live.store(set);
        }
        for (level, line) in &step.log {
            log::log!(*level, "{line}");
        }
        let m = &self.metrics.ackee_origins;
        if step.success {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            m.success(refresh.origins().len(), refresh.skipped().len(), now);
        }
        if let Some(reason) = step.failure {
            m.failure(reason);
        }
    }
}

#[async_trait]
impl BackgroundService for AckeeOriginsService {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        self.poll_once().await;
        ready.notify_ready();
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => self.poll_once().await,
            }
        }
    }
}

fn policy(listener: &Listener) -> ListenerPolicy {
    ListenerPolicy {
        tls: listener.tls.is_some(),
        redirect_to_https: listener.redirect_to_https,
        acme: listener.acme_webroot.clone().map(Webroot::new),
        response_headers: listener.response_headers.clone(),
    }
}

/// Builds the server with every service, ready to run. `opt` carries `-u` and `-d`.
/// `upgrade_lock` (taken by a `-u` process before it looked at the running gateway) is
/// released once this process serves on every listener.
pub fn build(
    config: &Config,
    opt: Opt,
    upgrade_lock: Option<UpgradeLock>,
) -> Result<Server, String> {
    let daemon = opt.daemon || config.server.daemon;
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config.server));
    // Bootstrap (taking over the old process's sockets with -u) runs as a service after any
    // daemonising fork. With daemon_wait_for_ready the parent returns as soon as the child waits
    // for the sockets, which is what lets a reload start the new process first and only then
    // send SIGQUIT to the old one. Every listening service waits for it.
    let bootstrap = server.bootstrap_as_a_service();
    if daemon && config.server.daemon_wait_for_ready {
        // The process running now becomes the waiting parent after the fork.
        let gate = server.add_service(background_service(
            "parent ready gate",
            ParentReadyGate {
                parent: std::process::id(),
            },
        ));
        bootstrap.add_dependency(&gate);
    }

    let upstream = Arc::new(Upstream::new(&config.upstream));
    let tls: Vec<ListenerTls> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.clone())
        .collect();
    let certificate_names: Vec<String> = tls
        .iter()
        .flat_map(|t| t.certificates.iter().map(|c| c.name.clone()))
        .collect();
    let metrics = Arc::new(Metrics::new(upstream.names(), &certificate_names));
    crate::logging::count_handshake_failures_in(metrics.clone());
    let (reloader, resolvers) = Reloader::new(&tls, metrics.clone())?;
    let mut resolvers = resolvers.into_iter();
    let shared = Arc::new(Shared {
        cors: CorsPolicy::new(config.cors.clone())?,
        limits: config.limits,
        trusted: config.trusted_proxies.clone(),
        rate: RateLimiter::new(config.rate_limits),
        upstream: upstream.clone(),
        retry_after_seconds: config.upstream.retry_after_seconds,
        access_log: config
            .access_log
            .as_ref()
            .map(|a| AccessLog::new(a.format, a.target.clone(), metrics.access_log_dropped())),
        metrics: metrics.clone(),
        outages: OutageTally::default(),
    });
    for i in 0..shared.upstream.len() {
        metrics.replica_health(i, shared.upstream.is_healthy(i));
    }
    server.add_service(background_service(
        "outage summary",
        OutageSummary {
            shared: shared.clone(),
        },
    ));
    let health_handle = HealthChecker::new(upstream, metrics.clone(), &config.upstream)?
        .map(|checker| server.add_service(background_service("health checks", checker)));

    let ackee_handle = config.cors.from_ackee.as_ref().map(|settings| {
        let service = AckeeOriginsService {
            settings: settings.clone(),
            targets: config
                .upstream
                .replicas
                .iter()
                .map(|r| ackee_origins::Target {
                    name: r.name.clone(),
                    address: r.address,
                    host: r.written.clone(),
                })
                .collect(),
            refresh: std::sync::Mutex::new(ackee_origins::Refresh::new(
                config.cors.origins.entries(),
                settings.rules.clone(),
            )),
            live: shared.cors.live_origins().clone(),
            metrics: metrics.clone(),
        };
        server.add_service(background_service("origins from Ackee", service))
    });

    let reload_handle = (!reloader.is_empty()).then(|| {
        server.add_service(background_service(
            "certificate reloader",
            CertReloadService { reloader },
        ))
    });

    for listener in &config.listeners {
        let mut service = pingora_proxy::http_proxy_service_with_name(
            &server.configuration,
            Gateway::new(shared.clone(), policy(listener)),
            &format!("listener {}", listener.name),
        );
        let address = listener.address.to_string();
        if listener.tls.is_some() {
            let resolver = resolvers
                .next()
                .ok_or_else(|| "internal error: a TLS listener without certificates".to_owned())?;
            let mut settings = TlsSettings::with_callbacks(Box::new(HandshakeCounter {
                metrics: metrics.clone(),
            }))
            .map_err(|e| format!("TLS settings for {}: {e}", listener.name))?;
            settings.set_cert_resolver(resolver);
            settings.enable_h2();
            service.add_listener(
                ListenerConfig::tcp(address)
                    .tls(settings)
                    .l4_buffer(CLIENT_BUFFERS),
            );
        } else {
            service.add_listener(ListenerConfig::tcp(address).l4_buffer(CLIENT_BUFFERS));
        }
        let handle = server.add_service(service);
        handle.add_dependency(&bootstrap);
        for dependency in [&reload_handle, &health_handle, &ackee_handle]
            .into_iter()
            .flatten()
        {
            handle.add_dependency(dependency);
        }
    }

    if let Some(m) = &config.metrics {
        let mut service = Service::new(
            "metrics".to_owned(),
            HttpServer::new_app(MetricsApp { metrics }),
        );
        service.add_tcp(&m.address.to_string());
        server.add_service(service).add_dependency(&bootstrap);
    }

    let reporter = server.add_service(background_service(
        "ready reporter",
        ReadyReporter {
            addresses: config
                .listeners
                .iter()
                .map(|l| l.address)
                .chain(config.metrics.iter().map(|m| m.address))
                .collect(),
            // Only a daemon writes a PID file, and so the marker that goes with it.
            marker: daemon.then(|| handover::ready_path(&config.server.pid_file)),
            lock: std::sync::Mutex::new(upgrade_lock),
        },
    ));
    reporter.add_dependency(&bootstrap);
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::PINGORA_KEYS;

    #[test]
    fn every_pingora_key_the_gateway_accepts_exists_in_pingoras_server_conf() {
        let yaml = serde_yaml::to_value(ServerConf::default()).unwrap();
        let map = yaml.as_mapping().unwrap();
        for key in PINGORA_KEYS {
            assert!(
                map.contains_key(*key),
                "pingora's ServerConf has no key {key}"
            );
        }
    }

    #[test]
    fn grace_periods_default_to_seconds_not_minutes() {
        let conf = server_conf(&ServerSettings::default());
        assert_eq!(conf.grace_period_seconds, Some(3));
        assert_eq!(conf.graceful_shutdown_timeout_seconds, Some(2));
    }
}
