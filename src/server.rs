//! Turning a validated [`Config`] into a running pingora `Server`: one proxy service per
//! listener, one metrics service, pingora's own settings mapped from [`ServerSettings`].

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::Server;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::services::listening::Service;

use crate::config::{Config, ServerSettings};
use crate::cors::CorsPolicy;
use crate::metrics::Metrics;
use crate::proxy::{Gateway, Shared};
use crate::upstream::Upstream;

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

/// Builds the server with every service, ready to run. `opt` carries `-u` and `-d`.
pub fn build(config: &Config, opt: Opt) -> Result<Server, String> {
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config.server));
    server.bootstrap();

    let upstream = Upstream::new(&config.upstream);
    let metrics = Arc::new(Metrics::new(upstream.names()));
    let shared = Arc::new(Shared {
        cors: CorsPolicy::new(config.cors.clone())?,
        limits: config.limits,
        trusted: config.trusted_proxies.clone(),
        upstream,
        metrics: metrics.clone(),
    });

    for listener in &config.listeners {
        let mut service = pingora_proxy::http_proxy_service_with_name(
            &server.configuration,
            Gateway::new(shared.clone(), false),
            &format!("listener {}", listener.name),
        );
        service.add_tcp(&listener.address.to_string());
        server.add_service(service);
    }

    if let Some(m) = &config.metrics {
        let mut service = Service::new(
            "metrics".to_owned(),
            HttpServer::new_app(MetricsApp { metrics }),
        );
        service.add_tcp(&m.address.to_string());
        server.add_service(service);
    }
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
