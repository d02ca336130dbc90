//! Turning a validated [`Config`] into a running pingora `Server`: one proxy service per
//! listener (TLS listeners with the SNI resolver, HTTP/2 and the handshake counter), the
//! certificate reloader, the metrics service, and pingora's own settings mapped from
//! [`ServerSettings`]. The background services themselves are in `services.rs`; the
//! connections counted at accept, on pingora's connection filter, in `connections.rs`.

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora::http::IntoCaseHeaderName;
use pingora_core::apps::HttpServerOptions;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig, TlsAccept};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::server::Server;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::services::ServiceHandle;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use crate::access_log::AccessLog;
use crate::ackee_origins;
use crate::acme::Webroot;
use crate::acme::challenges::Challenges;
use crate::acme::store::Store;
use crate::balancer::{Balancer, HealthChecker};
use crate::config::{Config, Listener, ServerSettings};
use crate::cors::CorsPolicy;
use crate::handover::{self, UpgradeLock};
use crate::metrics::Metrics;
use crate::outage::OutageTally;
use crate::proxy::{Gateway, ListenerPolicy, Shared};
use crate::ratelimit::RateLimiter;
use crate::tls::ListenerTls;
use crate::tls::Reloader;
use crate::tls::resolver::SniResolver;
use allocator::Collected;
use connections::{ConnectionCounter, ConnectionSummary};
use services::{
    AckeeOriginsService, AssetsService, CertReloadService, OutageSummary, ParentReadyGate,
    ReadyReporter,
};

mod acme;
mod allocator;
mod connections;
mod services;
mod signals;

pub use signals::run;

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
///
/// Every timeout of a second or more runs on tokio's timer instead of pingora's shared timer
/// wheel (`fast_timeout_to_tokio_threshold_seconds: 0`). Both allocate one box per wait, but a
/// pingora timer (a 64-byte `Arc` per 10 ms deadline, and the 384-byte nodes of the map that
/// holds them) stays allocated until its deadline, 60 s for the read of a request head,
/// however soon its connection closes. Made on the listener's thread among the memory of
/// 10,000 new connections, a few of them per 64 KiB page kept ~2 MB of pages resident after
/// the connections had closed (README, Benchmarks). A tokio timer lives inside its box and
/// goes with it.
pub(crate) fn server_conf(s: &ServerSettings) -> ServerConf {
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
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    }
}

/// Serves `/metrics` in Prometheus text format; every other path is 404.
pub(crate) struct MetricsApp {
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

/// What a listener does besides CORS and proxying. `challenges`: the gateway's own pending
/// ACME challenges; `alt_svc`: whether its answers advertise its HTTP/3 (the TCP side of a
/// listener with `http3`).
fn policy(
    listener: &Listener,
    challenges: Option<&Arc<Challenges>>,
    alt_svc: bool,
) -> ListenerPolicy {
    let mut response_headers: Vec<(Bytes, http::HeaderValue)> = listener
        .response_headers
        .iter()
        .map(|(name, value)| {
            // The bytes pingora would write for this name, made once instead of per answer.
            let written = name.clone().into_case_header_name();
            (Bytes::copy_from_slice(written.as_slice()), value.clone())
        })
        .collect();
    if let (true, Some(h3)) = (alt_svc, &listener.http3) {
        let value = h3.alt_svc(listener.address.port());
        // A configured Alt-Svc wins; the value is ASCII made from numbers.
        let configured = listener
            .response_headers
            .iter()
            .any(|(n, _)| n == http::header::ALT_SVC);
        if let (false, Ok(value)) = (configured, http::HeaderValue::from_str(&value)) {
            response_headers.push((Bytes::from_static(b"Alt-Svc"), value));
        }
    }
    ListenerPolicy {
        tls: listener.tls.is_some(),
        redirect_to_https: listener.redirect_to_https,
        acme: listener.acme_webroot.clone().map(Webroot::new),
        challenges: challenges.cloned(),
        response_headers,
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

    let challenges = challenges(config);
    let (shared, reloader, resolvers) = shared_state(config, challenges.as_ref())?;
    add_acme(
        &mut server,
        config,
        &shared,
        &resolvers,
        challenges.as_ref(),
    );
    let waits = add_background(&mut server, config, &shared, reloader)?;
    let counter = ConnectionCounter::new(
        crate::connections::bound_for(crate::connections::bound::raise_nofile()),
        config.limits.max_connections_per_client,
        config.trusted_proxies.clone(),
        shared.metrics.clone(),
    );
    server.add_service(background_service(
        "connection refusals summary",
        ConnectionSummary {
            counter: counter.clone(),
        },
    ));
    let listeners = (&shared, resolvers, challenges.as_ref());
    add_listeners(
        &mut server,
        config,
        listeners,
        (&bootstrap, &waits),
        &counter,
    )?;
    let metrics = shared.metrics.clone();

    if let Some(m) = &config.metrics {
        let mut service = Service::new(
            "metrics".to_owned(),
            HttpServer::new_app(MetricsApp { metrics }),
        );
        service.add_tcp(&m.address.to_string());
        let service = Collected::new(service, config.server.threads);
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

/// One SNI resolver per TLS listener, by the listener's address.
type Resolvers = HashMap<SocketAddr, Arc<SniResolver>>;

/// The pending answers to the gateway's own ACME challenges, if any listener has a managed
/// certificate.
fn challenges(config: &Config) -> Option<Arc<Challenges>> {
    let managed = config.listeners.iter().filter_map(|l| l.tls.as_ref());
    let any = managed.filter_map(|t| t.acme.as_ref()).next().is_some();
    any.then(|| Arc::new(Challenges::new(Some(&Store::new(&config.state_directory)))))
}

/// The state every listener shares, the certificate reloader and one SNI resolver per TLS
/// listener.
fn shared_state(
    config: &Config,
    challenges: Option<&Arc<Challenges>>,
) -> Result<(Arc<Shared>, Reloader, Resolvers), String> {
    let balancer = Arc::new(Balancer::new(&config.upstream));
    let tls: Vec<ListenerTls> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.clone())
        .collect();
    let certificate_names: Vec<String> = tls
        .iter()
        .flat_map(|t| t.certificates.iter().map(|c| c.name.clone()))
        .collect();
    let metrics = Arc::new(Metrics::new(balancer.names(), &certificate_names));
    crate::logging::count_handshake_failures_in(metrics.clone());
    let (reloader, resolvers) = Reloader::new(
        config
            .listeners
            .iter()
            .filter_map(|l| Some((l.address, l.tls.as_ref()?))),
        metrics.clone(),
        challenges,
    );
    let shared = Arc::new(Shared {
        cors: CorsPolicy::new(config.cors.clone())?,
        limits: config.limits,
        trusted: config.trusted_proxies.clone(),
        rate: RateLimiter::new(config.rate_limits),
        visits: crate::visits::Visits::new(&config.visits)?,
        balancer: balancer.clone(),
        retry_after_seconds: config.upstream.retry_after_seconds,
        access_log: config
            .access_log
            .as_ref()
            .map(|a| AccessLog::new(a.format, a.target.clone(), metrics.access_log_dropped())),
        metrics: metrics.clone(),
        outages: OutageTally::default(),
        assets: config
            .assets
            .clone()
            .map(|settings| Arc::new(crate::assets::Assets::new(settings))),
    });
    for i in 0..balancer.len() {
        metrics.replica_health(i, balancer.is_healthy(i));
    }
    Ok((shared, reloader, resolvers))
}

/// The background services: the outage summary, the health checks, the origins from Ackee
/// and the certificate reloader. Returns those the listeners wait for.
fn add_background(
    server: &mut Server,
    config: &Config,
    shared: &Arc<Shared>,
    reloader: Reloader,
) -> Result<Vec<ServiceHandle>, String> {
    let metrics = &shared.metrics;
    server.add_service(background_service(
        "outage summary",
        OutageSummary {
            shared: shared.clone(),
        },
    ));
    let health_handle =
        HealthChecker::new(shared.balancer.clone(), metrics.clone(), &config.upstream)?
            .map(|checker| server.add_service(background_service("health checks", checker)));
    // Where each replica answers Ackee's own queries: the domain list and the static files.
    let domain_targets: Vec<_> = config
        .upstream
        .replicas
        .iter()
        .map(crate::config::Replica::domains_target)
        .collect();
    let ackee_handle = config.cors.from_ackee.as_ref().map(|settings| {
        let service = AckeeOriginsService {
            settings: settings.clone(),
            targets: domain_targets.clone(),
            refresh: std::sync::Mutex::new(ackee_origins::Refresh::new(
                config.cors.origins.entries(),
                settings.rules.clone(),
            )),
            live: shared.cors.live_origins().clone(),
            metrics: metrics.clone(),
        };
        server.add_service(background_service("origins from Ackee", service))
    });

    if let Some(assets) = &shared.assets {
        // Not among the services the listeners wait for: start-up never waits on Ackee.
        server.add_service(background_service(
            "Ackee's static files",
            AssetsService {
                assets: assets.clone(),
                targets: domain_targets,
                balancer: shared.balancer.clone(),
                refresh: std::sync::Mutex::new(crate::assets::refresh::Refresh::new()),
                metrics: metrics.clone(),
            },
        ));
    }

    let reload_handle = (!reloader.is_empty()).then(|| {
        server.add_service(background_service(
            "certificate reloader",
            CertReloadService { reloader },
        ))
    });
    Ok([reload_handle, health_handle, ackee_handle]
        .into_iter()
        .flatten()
        .collect())
}

/// One background service per managed certificate (ACME). Each stored certificate is served
/// from the start: it is put in its listener's resolver now, before the listeners open.
fn add_acme(
    server: &mut Server,
    config: &Config,
    shared: &Arc<Shared>,
    resolvers: &Resolvers,
    challenges: Option<&Arc<Challenges>>,
) {
    let (Some(challenges), store) = (challenges, Store::new(&config.state_directory)) else {
        return;
    };
    for listener in &config.listeners {
        let Some(settings) = listener.tls.as_ref().and_then(|t| t.acme.clone()) else {
            continue;
        };
        let Some(resolver) = resolvers.get(&listener.address) else {
            continue;
        };
        let service = acme::AcmeService {
            settings,
            store: store.clone(),
            challenges: challenges.clone(),
            resolver: resolver.clone(),
            metrics: shared.metrics.clone(),
        };
        service.install_stored();
        let name = format!("ACME {}", service.settings.name);
        server.add_service(background_service(&name, service));
    }
}

/// The ALPN protocols a TLS listener offers: HTTP/2 and HTTP/1.1, and `acme-tls/1` after them
/// where TLS-ALPN-01 challenges may come (a listener with a managed certificate).
fn alpn(listener: &Listener) -> Option<Vec<Vec<u8>>> {
    let managed = listener.tls.as_ref().is_some_and(|t| t.acme.is_some());
    managed.then(|| {
        let acme = crate::acme::challenges::ACME_TLS_ALPN;
        vec![b"h2".to_vec(), b"http/1.1".to_vec(), acme.to_vec()]
    })
}

/// The listeners' HTTP options: an HTTP/2 connection with no stream in progress is closed with
/// a GOAWAY after `limits.header_timeout_seconds`, the bound after which an idle HTTP/1.1
/// keep-alive connection gets its 408 (README, "Connections").
fn http_options(config: &Config) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2_idle_timeout = Some(config.limits.header_timeout);
    options
}

/// One proxy service per listener, each waiting for the bootstrap and for `waits`, each
/// counting its connections with the shared counter.
fn add_listeners(
    server: &mut Server,
    config: &Config,
    (shared, resolvers, challenges): (&Arc<Shared>, Resolvers, Option<&Arc<Challenges>>),
    (bootstrap, waits): (&ServiceHandle, &[ServiceHandle]),
    counter: &Arc<ConnectionCounter>,
) -> Result<(), String> {
    let mut resolvers = resolvers;
    for listener in &config.listeners {
        let mut service = pingora_proxy::http_proxy_service_with_name(
            &server.configuration,
            Gateway::new(shared.clone(), policy(listener, challenges, true))?,
            &format!("listener {}", listener.name),
        );
        if let Some(proxy) = service.app_logic_mut() {
            proxy.server_options = Some(http_options(config));
        }
        service.set_connection_filter(counter.clone());
        let address = listener.address.to_string();
        if listener.tls.is_some() {
            let resolver = resolvers
                .remove(&listener.address)
                .ok_or_else(|| "internal error: a TLS listener without certificates".to_owned())?;
            if let Some(h3) = &listener.http3 {
                let handle = add_http3(server, config, shared, listener, h3, resolver.clone())?;
                handle.add_dependency(bootstrap);
                for dependency in waits {
                    handle.add_dependency(dependency);
                }
            }
            let mut settings = TlsSettings::with_callbacks(Box::new(HandshakeCounter {
                metrics: shared.metrics.clone(),
            }))
            .map_err(|e| format!("TLS settings for {}: {e}", listener.name))?;
            settings.set_cert_resolver(resolver);
            match alpn(listener) {
                Some(protocols) => settings.set_alpn_protocols(protocols),
                None => settings.enable_h2(),
            }
            service.add_listener(
                ListenerConfig::tcp(address)
                    .tls(settings)
                    .l4_buffer(CLIENT_BUFFERS),
            );
        } else {
            service.add_listener(ListenerConfig::tcp(address).l4_buffer(CLIENT_BUFFERS));
        }
        let handle = server.add_service(Collected::new(service, config.server.threads));
        handle.add_dependency(bootstrap);
        for dependency in waits {
            handle.add_dependency(dependency);
        }
    }
    Ok(())
}

/// The HTTP/3 listener beside a TLS listener: the same gateway (a proxy of its own, for its
/// own pool of connections to Ackee) and the same SNI resolver, so the same certificates and
/// their reloads.
fn add_http3(
    server: &mut Server,
    config: &Config,
    shared: &Arc<Shared>,
    listener: &Listener,
    settings: &crate::quic::Http3Settings,
    resolver: Arc<SniResolver>,
) -> Result<ServiceHandle, String> {
    // HTTP-01 challenges are validated over plain HTTP, never here.
    let gateway = Gateway::new(shared.clone(), policy(listener, None, false))?;
    let proxy = Arc::new(pingora_proxy::http_proxy(&server.configuration, gateway));
    let quic = crate::http3::server_config(resolver, settings, &config.limits)
        .map_err(|e| format!("listener {}: {e}", listener.name))?;
    let service = crate::http3::Http3Listener::new(
        &listener.name,
        listener.address,
        *settings,
        config.limits,
        quic,
        proxy,
        shared.metrics.clone(),
        config.server.threads,
        server.watch_execution_phase(),
    );
    Ok(server.add_service(Collected::new(service, config.server.threads)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::pingora_keys;

    #[test]
    fn every_pingora_key_the_gateway_accepts_exists_in_pingoras_server_conf() {
        let yaml = serde_yaml::to_value(ServerConf::default()).unwrap();
        let map = yaml.as_mapping().unwrap();
        for key in pingora_keys() {
            assert!(
                map.contains_key(key),
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
