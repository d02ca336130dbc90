//! The gateway's background services: the gate and the reporter around a graceful upgrade,
//! certificate reloads, the outage summary and the polls of Ackee's domain list.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{error, info};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::ServiceReadyNotifier;
use pingora_core::services::background::BackgroundService;

use crate::ackee_origins;
use crate::handover::{self, UpgradeLock};
use crate::metrics::Metrics;
use crate::outage::SUMMARY_PERIOD;
use crate::periodic;
use crate::procnet;
use crate::proxy::Shared;
use crate::tls::Reloader;

/// Holds the bootstrap back until the daemonising parent listens for SIGUSR1.
///
/// With `daemon_wait_for_ready`, pingora's bootstrap sends SIGUSR1 to the parent as soon as it
/// starts, but the parent installs its SIGUSR1 handler only after the fork, so a fast child can
/// signal first and kill the parent (SIGUSR1's default action), failing the start or reload.
/// This gate waits, briefly, until the parent's signal mask shows it catches SIGUSR1.
pub(super) struct ParentReadyGate {
    pub(super) parent: u32,
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
pub(super) struct ReadyReporter {
    pub(super) addresses: Vec<std::net::SocketAddr>,
    pub(super) marker: Option<std::path::PathBuf>,
    pub(super) lock: std::sync::Mutex<Option<UpgradeLock>>,
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
            info!("{}", crate::lifecycle::serving(pid));
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
pub(super) struct CertReloadService {
    pub(super) reloader: Reloader,
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
pub(super) struct OutageSummary {
    pub(super) shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for OutageSummary {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        periodic::every(SUMMARY_PERIOD, &mut shutdown, || async {
            if let Some(line) = self.shared.outages.summary(SUMMARY_PERIOD) {
                log::warn!("{line}");
            }
        })
        .await;
    }
}

/// Polls Ackee's domain list (`cors.origins_from_ackee`) at start-up and every interval, and
/// swaps the allow list when the origins change. The logic is in [`crate::ackee_origins`];
/// this runs it: the blocking poll on tokio's blocking pool, the result into the state
/// machine, its step into the log, the metrics and the live allow list. The first poll is done
/// before the listeners open, so a start or an upgrade serves Ackee's sites from its first
/// request; it is bounded by the timeout for each replica.
pub(super) struct AckeeOriginsService {
    pub(super) settings: ackee_origins::Settings,
    pub(super) targets: Vec<ackee_origins::Target>,
    pub(super) refresh: std::sync::Mutex<ackee_origins::Refresh>,
    pub(super) live: crate::origin::LiveOrigins,
    pub(super) metrics: Arc<Metrics>,
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
        periodic::every(self.settings.interval, &mut shutdown, || self.poll_once()).await;
    }
}

/// Keeps the edge copy of Ackee's static files (`assets`): a refresh at start-up and every
/// `assets.refresh_seconds`, from the healthy replicas in config order. The logic is in
/// [`crate::assets`]; this runs it: the blocking fetch on tokio's blocking pool, the result
/// into the state machine, a changed copy compressed (also on the blocking pool) and swapped
/// in, the step into the log and the metrics. Unlike the domain list, start-up never waits for
/// it: until a copy is taken, the files are proxied to Ackee as before.
pub(super) struct AssetsService {
    pub(super) assets: Arc<crate::assets::Assets>,
    pub(super) targets: Vec<ackee_origins::Target>,
    pub(super) balancer: Arc<crate::balancer::Balancer>,
    pub(super) refresh: std::sync::Mutex<crate::assets::refresh::Refresh>,
    pub(super) metrics: Arc<Metrics>,
}

impl AssetsService {
    async fn refresh_once(&self) {
        use crate::assets::fetch::{self, Failed, Failure};
        let healthy: Vec<ackee_origins::Target> = (0..self.targets.len())
            .filter(|i| self.balancer.is_healthy(*i))
            .map(|i| self.targets[i].clone())
            .collect();
        let settings = self.assets.settings().clone();
        let result = tokio::task::spawn_blocking(move || fetch::fetch(&healthy, &settings))
            .await
            .unwrap_or_else(|e| {
                Err(Failed {
                    reason: Failure::Unreachable,
                    detail: format!("the refresh did not finish: {e}"),
                })
            });
        let step = match self.refresh.lock() {
            Ok(mut refresh) => refresh.step(&result),
            Err(_) => return,
        };
        let mut log = step.log;
        if let (true, Ok(fetched)) = (step.take, result) {
            let previous = self.assets.current();
            let built = tokio::task::spawn_blocking(move || {
                let now = std::time::SystemTime::now();
                crate::assets::Copy::build(&fetched, previous.as_deref(), now)
            })
            .await;
            match built {
                Ok(copy) => {
                    let tracker = copy.summary(crate::assets::File::Tracker);
                    if let Some((_, line)) = log.last_mut() {
                        line.push_str(&format!("; tracker.js {tracker}"));
                    }
                    self.assets.swap(copy);
                }
                Err(e) => error!("Ackee's static files: the copy could not be built: {e}"),
            }
        }
        for (level, line) in &log {
            log::log!(*level, "{line}");
        }
        let in_use = self.assets.current().is_some();
        self.metrics.assets.refresh(step.outcome, in_use);
    }
}

#[async_trait]
impl BackgroundService for AssetsService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let interval = self.assets.settings().refresh;
        self.metrics.assets.interval(interval.as_secs_f64());
        // Replicas start down until their first passing check: give the checks a moment, so
        // that a normal start takes its copy at the first try and logs no failure.
        let deadline = tokio::time::Instant::now() + FIRST_CHECKS;
        while !self.balancer.any_healthy() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        // Until a copy is taken, try again sooner: 1 s, 2 s, 4 s, ... up to the interval.
        let mut before_copy = Duration::from_secs(1);
        loop {
            self.refresh_once().await;
            let pause = if self.assets.current().is_some() {
                interval
            } else {
                before_copy = (before_copy * 2).min(interval);
                (before_copy / 2).min(interval)
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The longest the first refresh waits for a replica to pass its health checks.
const FIRST_CHECKS: Duration = Duration::from_secs(10);
