//! The HTTP/3 listener: QUIC (quinn) and HTTP/3 (h3) beside a TLS listener that asks for it, on
//! the same address over UDP, with the same certificates. Each request is handed to pingora as
//! a custom server session ([`session`]), so that it runs through the very `ProxyHttp` phases
//! of the TCP listener; nothing here decides anything about a request.
//!
//! What is here is the connection's life:
//!
//! - **Admission** of a new connection by [`crate::quic::Http3Settings::admit`]: accepted, asked
//!   to prove its address with a stateless retry, or refused, by the handshakes in progress.
//! - **Limits** in quinn's transport settings (streams at once, idle time, flow-control
//!   windows), h3's (the largest header block), the byte budget of every inbound stream
//!   ([`transport`]), the time a request head may take, and the resets a client may make
//!   ([`crate::quic::ResetBudget`]).
//! - **Shutdown and upgrade.** The UDP socket goes into pingora's table of listening sockets,
//!   so a graceful upgrade hands it to the new process with the TCP listeners. From the moment
//!   the old process hands it over (or is told to stop), every connection gets a GOAWAY, its
//!   requests in flight are answered, and new connections are left to the new process: both
//!   read the same socket for a while, and a packet that reaches the process that does not
//!   know its connection is lost and sent again by QUIC. Once its connections are done, the
//!   old process stops reading the socket.
//! - **Counting**: handshakes, open connections, and refusals by reason.

mod session;
mod transport;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use log::{debug, error, info};
use pingora_core::apps::HttpServerApp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::{ExecutionPhase, ListenFds, ShutdownWatch};
use pingora_core::services::{ServiceReadyNotifier, ServiceWithDependents};
use pingora_proxy::HttpProxy;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::quic::{Admission, Http3Settings, Refusal, ResetBudget, code, protocol_violation};
use crate::tls::resolver::SniResolver;
use session::{ConnectionShared, H3Session};
use transport::Budgets;

/// How long a connection that got a GOAWAY and answered its last request waits for the client
/// to close it, so that the last answer is acknowledged before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);

/// Framing on a request stream beyond its head and body: frame headers, and frames of unknown
/// types that clients send to keep the protocol extensible (grease).
const FRAMING_SLACK: u64 = 16 * 1024;

/// The budget of a unidirectional stream: the control stream's SETTINGS and the small frames a
/// connection sends over its life.
const UNI_BUDGET: u64 = 256 * 1024;

/// The key of the UDP socket in pingora's table of listening sockets. Pingora's own keys are
/// the TCP addresses; this one cannot be taken for one.
pub(crate) fn socket_key(address: SocketAddr) -> String {
    format!("udp:{address}")
}

/// The largest header block h3 decodes. The gateway's own limit (`limits.max_header_bytes`,
/// 431) is checked on the decoded head in `request_filter`, as for HTTP/1.1 and HTTP/2; this
/// one, twice as large, only bounds what h3 holds for a head the gateway then refuses.
fn field_section_cap(limits: &Limits) -> u64 {
    2 * limits.max_header_bytes as u64 + 8192
}

/// quinn's server settings: TLS from the listener's SNI resolver, transport limits, 0-RTT off.
pub(crate) fn server_config(
    resolver: Arc<SniResolver>,
    settings: &Http3Settings,
    limits: &Limits,
) -> Result<quinn::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3 for QUIC: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // 0-RTT off: a replayed createRecord would be a visit counted twice.
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("TLS settings for QUIC: {e}"))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));

    let request_budget = request_budget(limits);
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(settings.max_concurrent_streams.into())
        // The client's control stream and its two QPACK streams, and room for grease.
        .max_concurrent_uni_streams(8u8.into())
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(settings.idle_timeout)
                .map_err(|e| format!("http3.idle_timeout_seconds: {e}"))?,
        ))
        .stream_receive_window(quinn::VarInt::from_u32(request_budget as u32))
        .receive_window(quinn::VarInt::from_u32(4 * request_budget as u32))
        .datagram_receive_buffer_size(None);
    config.transport_config(Arc::new(transport));
    config.max_incoming(settings.max_handshakes.saturating_mul(2).max(64));
    config.incoming_buffer_size_total(16 * 1024 * 1024);
    Ok(config)
}

/// The bytes a request stream may carry: a head h3 would decode, the largest body, framing.
fn request_budget(limits: &Limits) -> u64 {
    field_section_cap(limits) + limits.max_body_bytes + FRAMING_SLACK
}

/// Why the listener stops taking connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Draining {
    /// It serves.
    No,
    /// The socket was handed to a new process, which takes new connections.
    Upgrade,
    /// The gateway stops.
    Stop,
}

/// The HTTP/3 listener of one TLS listener, as a pingora service.
pub(crate) struct Http3Listener {
    name: String,
    address: SocketAddr,
    settings: Http3Settings,
    limits: Limits,
    config: quinn::ServerConfig,
    proxy: Arc<HttpProxy<Gateway>>,
    metrics: Arc<Metrics>,
    threads: usize,
    phases: Option<broadcast::Receiver<ExecutionPhase>>,
}

impl Http3Listener {
    /// A listener on `address` over UDP, whose requests `proxy` runs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        address: SocketAddr,
        settings: Http3Settings,
        limits: Limits,
        config: quinn::ServerConfig,
        proxy: Arc<HttpProxy<Gateway>>,
        metrics: Arc<Metrics>,
        threads: usize,
        phases: broadcast::Receiver<ExecutionPhase>,
    ) -> Http3Listener {
        Http3Listener {
            name: format!("HTTP/3 listener {name}"),
            address,
            settings,
            limits,
            config,
            proxy,
            metrics,
            threads,
            phases: Some(phases),
        }
    }

    /// The UDP socket: the one the old process handed over, or a new one, recorded in
    /// pingora's table so that the next upgrade hands it on.
    fn socket(&self, fds: Option<ListenFds>) -> std::io::Result<std::net::UdpSocket> {
        let key = socket_key(self.address);
        let Some(fds) = fds else {
            return std::net::UdpSocket::bind(self.address);
        };
        let mut table = fds.lock();
        if let Some(fd) = table.get(&key) {
            info!(
                "{}: using the UDP socket handed over for {}",
                self.name, self.address
            );
            // SAFETY: the descriptor was received from the old process for this key, and
            // only this listener takes it.
            return Ok(unsafe { std::net::UdpSocket::from_raw_fd(*fd) });
        }
        let socket = std::net::UdpSocket::bind(self.address)?;
        table.add(key, socket.as_raw_fd());
        Ok(socket)
    }
}

#[async_trait]
impl ServiceWithDependents for Http3Listener {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let socket = match self.socket(fds) {
            Ok(s) => s,
            Err(e) => {
                error!(
                    "{}: cannot listen on {} over UDP: {e}",
                    self.name, self.address
                );
                return;
            }
        };
        let runtime = Arc::new(quinn::TokioRuntime);
        let endpoint = match quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(self.config.clone()),
            socket,
            runtime,
        ) {
            Ok(e) => e,
            Err(e) => {
                error!("{}: cannot start QUIC on {}: {e}", self.name, self.address);
                return;
            }
        };
        info!("{}: HTTP/3 on {} (UDP)", self.name, self.address);
        ready.notify_ready();
        let phases = self.phases.take();
        let listener = Accepting {
            settings: self.settings,
            limits: self.limits,
            proxy: self.proxy.clone(),
            metrics: self.metrics.clone(),
            local: self.address,
            handshakes: Arc::new(AtomicUsize::new(0)),
            drain: watch::channel(false).0,
        };
        listener.run(endpoint, shutdown, phases).await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        Some(self.threads)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(vec![socket_key(self.address)])
    }
}

/// The accept loop's state.
struct Accepting {
    settings: Http3Settings,
    limits: Limits,
    proxy: Arc<HttpProxy<Gateway>>,
    metrics: Arc<Metrics>,
    local: SocketAddr,
    /// Handshakes in progress.
    handshakes: Arc<AtomicUsize>,
    /// Set when the connections are to go away (GOAWAY).
    drain: watch::Sender<bool>,
}

/// Waits for the next change of pingora's execution phase, or forever without a receiver.
async fn next_phase(phases: &mut Option<broadcast::Receiver<ExecutionPhase>>) -> ExecutionPhase {
    loop {
        let Some(rx) = phases.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(phase) => return phase,
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => *phases = None,
        }
    }
}

impl Accepting {
    async fn run(
        self,
        endpoint: quinn::Endpoint,
        mut shutdown: ShutdownWatch,
        mut phases: Option<broadcast::Receiver<ExecutionPhase>>,
    ) {
        let mut connections = JoinSet::new();
        let mut draining = Draining::No;
        loop {
            tokio::select! {
                incoming = endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    match draining {
                        // The new process has the socket too and takes new connections: let
                        // the client send its Initial again, to whichever process reads it.
                        Draining::Upgrade => incoming.ignore(),
                        Draining::Stop => incoming.refuse(),
                        Draining::No => self.admit(incoming, &mut connections, &shutdown),
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {
                    if draining == Draining::Upgrade && connections.is_empty() {
                        // Every connection of this process is done: stop reading the socket
                        // the new process shares.
                        break;
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        draining = Draining::Stop;
                        self.drain.send_replace(true);
                        break;
                    }
                }
                phase = next_phase(&mut phases), if draining == Draining::No => {
                    if matches!(phase, ExecutionPhase::GracefulUpgradeTransferringFds) {
                        info!("HTTP/3 on {}: the socket goes to the new process; connections get a GOAWAY", self.local);
                        draining = Draining::Upgrade;
                        self.drain.send_replace(true);
                        if connections.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        if draining != Draining::Upgrade {
            self.drain.send_replace(true);
        }
        while connections.join_next().await.is_some() {}
        endpoint.close(quinn::VarInt::from_u32(code::H3_NO_ERROR as u32), b"");
        let _ = tokio::time::timeout(LINGER, endpoint.wait_idle()).await;
        debug!("HTTP/3 on {}: closed", self.local);
    }

    /// Accepts, retries or refuses a new connection, and starts its task.
    fn admit(
        &self,
        incoming: quinn::Incoming,
        connections: &mut JoinSet<()>,
        shutdown: &ShutdownWatch,
    ) {
        let in_flight = self.handshakes.load(Ordering::Relaxed);
        match self
            .settings
            .admit(in_flight, incoming.remote_address_validated())
        {
            Admission::Refuse => {
                self.metrics.quic_refusal(Refusal::Handshakes);
                incoming.refuse();
            }
            Admission::Retry if incoming.may_retry() => {
                self.metrics.quic_refusal(Refusal::Retry);
                // Only fails when a retry is not allowed, checked above.
                let _ = incoming.retry();
            }
            Admission::Retry | Admission::Accept => match incoming.accept() {
                Ok(connecting) => {
                    let handshake = Handshake::start(&self.handshakes);
                    let conn = Conn {
                        limits: self.limits,
                        proxy: self.proxy.clone(),
                        metrics: self.metrics.clone(),
                        local: self.local,
                        drain: self.drain.subscribe(),
                        shutdown: shutdown.clone(),
                    };
                    connections.spawn(conn.run(connecting, handshake));
                }
                Err(e) => {
                    debug!("a QUIC connection could not be accepted: {e}");
                    self.metrics.quic_handshake(false);
                }
            },
        }
    }
}

/// A handshake in progress, counted until it ends either way.
struct Handshake(Option<Arc<AtomicUsize>>);

impl Handshake {
    fn start(count: &Arc<AtomicUsize>) -> Handshake {
        count.fetch_add(1, Ordering::Relaxed);
        Handshake(Some(count.clone()))
    }

    fn done(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.done();
    }
}

/// Counts an open connection until it is dropped.
struct Open(Arc<Metrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.quic_connections(-1);
    }
}

/// One connection's task.
struct Conn {
    limits: Limits,
    proxy: Arc<HttpProxy<Gateway>>,
    metrics: Arc<Metrics>,
    local: SocketAddr,
    drain: watch::Receiver<bool>,
    shutdown: ShutdownWatch,
}

impl Conn {
    async fn run(mut self, connecting: quinn::Connecting, mut handshake: Handshake) {
        let conn = match connecting.await {
            Ok(c) => c,
            Err(e) => {
                debug!("a QUIC handshake failed: {e}");
                self.metrics.quic_handshake(false);
                self.metrics.quic_refusal(Refusal::HandshakeFailed);
                return;
            }
        };
        handshake.done();
        self.metrics.quic_handshake(true);
        self.metrics.quic_connections(1);
        let _open = Open(self.metrics.clone());

        let budgets = Budgets {
            request: request_budget(&self.limits),
            unidirectional: UNI_BUDGET,
        };
        let quic = transport::Connection::new(conn.clone(), budgets, self.metrics.clone());
        let built = h3::server::builder()
            .max_field_section_size(field_section_cap(&self.limits))
            .send_grease(true)
            .build::<_, Bytes>(quic)
            .await;
        let mut h3 = match built {
            Ok(h3) => h3,
            Err(e) => {
                self.closed(&e);
                return;
            }
        };
        let shared = Arc::new(ConnectionShared {
            conn: conn.clone(),
            resets: Mutex::new(ResetBudget::default()),
            metrics: self.metrics.clone(),
        });
        let mut requests = JoinSet::new();
        let mut going_away = *self.drain.borrow();
        if going_away {
            let _ = h3.shutdown(0).await;
        }
        loop {
            tokio::select! {
                accepted = h3.accept() => match accepted {
                    Ok(Some(resolver)) => {
                        let request = Request {
                            proxy: self.proxy.clone(),
                            shared: shared.clone(),
                            metrics: self.metrics.clone(),
                            local: self.local,
                            head_timeout: self.limits.header_timeout,
                            shutdown: self.shutdown.clone(),
                        };
                        requests.spawn(request.run(resolver));
                    }
                    // A GOAWAY was exchanged and every request is answered.
                    Ok(None) => break,
                    Err(e) => {
                        self.closed(&e);
                        break;
                    }
                },
                Some(_) = requests.join_next(), if !requests.is_empty() => {}
                changed = self.drain.changed(), if !going_away => {
                    if changed.is_err() || *self.drain.borrow() {
                        going_away = true;
                        // GOAWAY: requests already on their way are answered, new ones go to
                        // a new connection.
                        if let Err(e) = h3.shutdown(0).await {
                            self.closed(&e);
                            break;
                        }
                    }
                }
            }
        }
        // Answers still being written finish, then the client has a moment to close.
        while requests.join_next().await.is_some() {}
        if going_away {
            let _ = tokio::time::timeout(LINGER, conn.closed()).await;
        }
        conn.close(quinn::VarInt::from_u32(code::H3_NO_ERROR as u32), b"");
    }

    /// Counts how a connection ended, when the client broke the protocol.
    fn closed(&self, e: &h3::error::ConnectionError) {
        use h3::error::{ConnectionError, LocalError};
        if let ConnectionError::Local {
            error: LocalError::Application { code, reason, .. },
            ..
        } = e
        {
            if let Some(refusal) = protocol_violation(code.value()) {
                debug!("closed an HTTP/3 connection: {code}: {reason}");
                self.metrics.quic_refusal(refusal);
            }
        }
    }
}

/// One request's task.
struct Request {
    proxy: Arc<HttpProxy<Gateway>>,
    shared: Arc<ConnectionShared>,
    metrics: Arc<Metrics>,
    local: SocketAddr,
    head_timeout: Duration,
    shutdown: ShutdownWatch,
}

type Resolver = h3::server::RequestResolver<transport::Connection, Bytes>;

impl Request {
    async fn run(self, resolver: Resolver) {
        let resolved = tokio::time::timeout(self.head_timeout, resolver.resolve_request()).await;
        let (head, stream) = match resolved {
            Ok(Ok(request)) => request,
            Ok(Err(e)) => {
                self.refused(&e);
                return;
            }
            Err(_) => {
                // The stream is dropped unanswered: the transport resets it.
                self.metrics.quic_refusal(Refusal::IncompleteHead);
                return;
            }
        };
        let (head, ()) = head.into_parts();
        let client = self.shared.conn.remote_address();
        let session = match H3Session::new(head, stream, self.shared.clone(), client, self.local) {
            Ok(s) => s,
            Err(e) => {
                debug!("an HTTP/3 request head was refused: {e}");
                self.metrics.quic_refusal(Refusal::Malformed);
                return;
            }
        };
        let session = ServerSession::new_custom(Box::new(session));
        self.proxy.process_new_http(session, &self.shutdown).await;
    }

    /// Counts a request whose head was refused by h3.
    fn refused(&self, e: &h3::error::StreamError) {
        use h3::error::StreamError;
        let reason = match e {
            StreamError::HeaderTooBig { .. } => Refusal::HeaderTooLarge,
            StreamError::StreamError { code, .. } => {
                if code.value() == code::H3_REQUEST_INCOMPLETE {
                    Refusal::IncompleteHead
                } else {
                    protocol_violation(code.value()).unwrap_or(Refusal::Malformed)
                }
            }
            StreamError::RemoteTerminate { .. } => {
                // A reset before the head spends the connection's reset budget too.
                self.shared.reset();
                Refusal::IncompleteHead
            }
            // The connection's task counts what closed the connection; the transport counts a
            // stream over its budget (its error reaches here as undefined).
            StreamError::ConnectionError { .. }
            | StreamError::RemoteClosing { .. }
            | StreamError::Undefined { .. } => return,
            _ => Refusal::Malformed,
        };
        // Debug only: a client chooses how often this happens; the metric counts it.
        debug!("an HTTP/3 request was refused: {e}");
        self.metrics.quic_refusal(reason);
    }
}
