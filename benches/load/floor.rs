//! The least a pingora proxy can do on the harness's workloads: the floor under the gateway's
//! CPU per request. Same pingora (with the gateway's patches), allocator, buffers and
//! upstream pool as the gateway, and none of its work: a preflight is answered from a template
//! with the request's `Origin` echoed, anything else goes to the upstream untouched.
//!
//! `benches/load/run` builds it with `cargo build --release --example pingora_floor` and
//! measures it beside the gateway. Usage: `pingora_floor PLAIN_ADDR TLS_ADDR CERT KEY UPSTREAM`
//! (TLS with ALPN h2, as the gateway's listeners).

use async_trait::async_trait;
use http::{HeaderValue, Method, header};
use pingora::http::ResponseHeader;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::Server;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The proxy: a preflight template and the upstream's address.
struct Floor {
    preflight: ResponseHeader,
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let req = session.req_header();
        if req.method != Method::OPTIONS {
            return Ok(false);
        }
        let origin = req.headers.get(header::ORIGIN).cloned();
        let mut resp = self.preflight.clone();
        resp.insert_header(
            "Access-Control-Allow-Origin",
            origin.unwrap_or(HeaderValue::from_static("null")),
        )?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

/// The preflight answer the gateway sends, with a placeholder origin.
fn preflight() -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(204, Some(8))?;
    for (name, value) in [
        ("Access-Control-Allow-Origin", "null"),
        ("Access-Control-Allow-Methods", "GET, POST, PATCH, OPTIONS"),
        (
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, Time-Zone",
        ),
        ("Access-Control-Allow-Credentials", "true"),
        ("Access-Control-Max-Age", "3600"),
        ("Vary", "Origin"),
    ] {
        resp.append_header(name, value)?;
    }
    Ok(resp)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plain, tls, cert, key, upstream] = args.as_slice() else {
        let usage = "usage: pingora_floor PLAIN_ADDR TLS_ADDR CERT KEY UPSTREAM";
        return Error::e_explain(ErrorType::InternalError, usage);
    };
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        upstream_keepalive_pool_size: 1024,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    let floor = Floor {
        preflight: preflight()?,
        upstream: upstream.clone(),
    };
    let mut service = pingora_proxy::http_proxy_service(&server.configuration, floor);
    let buffers = L4BufferSettings {
        read: Some(0),
        write: None,
    };
    service.add_listener(ListenerConfig::tcp(plain.as_str()).l4_buffer(buffers));
    let mut settings = TlsSettings::intermediate(cert, key)?;
    settings.enable_h2();
    let listener = ListenerConfig::tcp(tls.as_str()).tls(settings);
    service.add_listener(listener.l4_buffer(buffers));
    server.add_service(service);
    server.bootstrap();
    server.run_forever()
}
