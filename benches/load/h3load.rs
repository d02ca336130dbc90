//! The load harness's HTTP/3 load generator (benches/load/run): what h2load is for HTTP/2,
//! since Debian's h2load is built without QUIC. quinn and h3, the same stack as the gateway's,
//! on the load generator's core; the proxies under test (the gateway and Caddy) see the same
//! client.
//!
//!   h3load --addr 127.0.0.1:PORT --ca cert.pem (the server's own certificate) [--server-name localhost] [--origin ORIGIN]
//!          [--request preflight|post] [--body FILE] [--connections N] [--streams M]
//!          [--seconds S] [--handshakes] [--check]
//!
//! Default: N connections, each with M requests in flight, for S seconds. `--handshakes`: N
//! clients, each opening a new connection for every request, a full handshake every time (no
//! session is resumed: the client keeps no tickets). `--check`: one request, printed as an
//! HTTP/1-style head and the body, for the harness's functional check. Prints one line:
//! `H3LOAD ok=… errors=… duration_us=… resumed=0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Clone)]
struct Args {
    addr: SocketAddr,
    ca: String,
    server_name: String,
    origin: String,
    request: String,
    body: Bytes,
    connections: usize,
    streams: usize,
    seconds: u64,
    handshakes: bool,
    check: bool,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:443".parse().unwrap(),
        ca: String::new(),
        server_name: "localhost".into(),
        origin: "https://example.com".into(),
        request: "preflight".into(),
        body: Bytes::new(),
        connections: 16,
        streams: 16,
        seconds: 5,
        handshakes: false,
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--addr" => a.addr = value().parse().unwrap_or_else(|_| usage("--addr IP:PORT")),
            "--ca" => a.ca = value(),
            "--server-name" => a.server_name = value(),
            "--origin" => a.origin = value(),
            "--request" => a.request = value(),
            "--body" => {
                let path = value();
                a.body = std::fs::read(&path)
                    .unwrap_or_else(|e| usage(&format!("--body {path}: {e}")))
                    .into();
            }
            "--connections" => {
                a.connections = value().parse().unwrap_or_else(|_| usage("--connections N"))
            }
            "--streams" => a.streams = value().parse().unwrap_or_else(|_| usage("--streams N")),
            "--seconds" => a.seconds = value().parse().unwrap_or_else(|_| usage("--seconds S")),
            "--handshakes" => a.handshakes = true,
            "--check" => a.check = true,
            other => usage(&format!("unknown option {other}")),
        }
    }
    if a.ca.is_empty() {
        usage("--ca FILE is required");
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!("h3load: {why}\nsee benches/load/h3load.rs for the options");
    std::process::exit(2)
}

/// Accepts the harness's own certificate, and only that one: compared byte for byte with the
/// file (it is self-signed, so a chain check refuses it as a CA used as a server certificate);
/// the handshake's signature is still verified.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the harness's certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_config(a: &Args) -> quinn::ClientConfig {
    let pem = std::fs::read(&a.ca).unwrap_or_else(|e| usage(&format!("--ca {}: {e}", a.ca)));
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| usage(&format!("--ca {}: no PEM certificate", a.ca)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        cert,
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap_or_else(|e| usage(&e.to_string()))
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    // Every handshake a full one: no tickets kept, no 0-RTT.
    tls.resumption = rustls::client::Resumption::disabled();
    tls.enable_early_data = false;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .unwrap_or_else(|e| usage(&e.to_string()));
    quinn::ClientConfig::new(Arc::new(quic))
}

fn request(a: &Args) -> http::Request<()> {
    let uri = format!("https://{}:{}/api", a.server_name, a.addr.port());
    let mut r = http::Request::builder()
        .uri(uri)
        .header("origin", &a.origin);
    r = match a.request.as_str() {
        "preflight" => r
            .method("OPTIONS")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
        "post" => r
            .method("POST")
            .header("content-type", "application/json;charset=UTF-8")
            .header("content-length", a.body.len()),
        other => usage(&format!("--request {other}: preflight or post")),
    };
    r.body(()).unwrap_or_else(|e| usage(&e.to_string()))
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An answer: status, headers, body; or what failed.
type Answer = Result<(u16, Vec<(String, String)>, Vec<u8>), String>;

/// One request on `send`: its status and body.
async fn exchange(
    send: &mut Sender,
    a: &Args,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let mut stream = send
        .send_request(request(a))
        .await
        .map_err(|e| e.to_string())?;
    if !a.body.is_empty() && a.request == "post" {
        stream
            .send_data(a.body.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    stream.finish().await.map_err(|e| e.to_string())?;
    let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
        while chunk.has_remaining() {
            let c = chunk.chunk();
            body.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Ok((resp.status().as_u16(), headers, body))
}

/// A new connection and its HTTP/3 client; the driver runs on its own task.
async fn connect(
    endpoint: &quinn::Endpoint,
    a: &Args,
) -> Result<(quinn::Connection, Sender), String> {
    let conn = endpoint
        .connect(a.addr, &a.server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok((conn, send))
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn count(&self, result: &Answer) {
        match result {
            Ok((status, _, _)) if (200..300).contains(status) => &self.ok,
            _ => &self.errors,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap())
        .unwrap_or_else(|e| usage(&format!("a UDP socket: {e}")));
    endpoint.set_default_client_config(client_config(&a));
    if a.check {
        let (conn, mut send) = connect(&endpoint, &a).await.unwrap_or_else(|e| usage(&e));
        let (status, headers, body) = exchange(&mut send, &a).await.unwrap_or_else(|e| usage(&e));
        println!("HTTP/3 {status}");
        for (k, v) in headers {
            println!("{k}: {v}");
        }
        println!();
        println!("{}", String::from_utf8_lossy(&body));
        conn.close(0u32.into(), b"");
        endpoint.wait_idle().await;
        return;
    }
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.connections {
        let (endpoint, a, tally) = (endpoint.clone(), a.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            if a.handshakes {
                while Instant::now() < deadline {
                    match connect(&endpoint, &a).await {
                        Ok((conn, mut send)) => {
                            tally.count(&exchange(&mut send, &a).await);
                            conn.close(0u32.into(), b"");
                        }
                        Err(_) => {
                            tally.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                return;
            }
            let Ok((conn, send)) = connect(&endpoint, &a).await else {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut streams = Vec::new();
            for _ in 0..a.streams {
                let (mut send, a, tally) = (send.clone(), a.clone(), tally.clone());
                streams.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        tally.count(&exchange(&mut send, &a).await);
                    }
                }));
            }
            for s in streams {
                let _ = s.await;
            }
            conn.close(0u32.into(), b"");
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    println!(
        "H3LOAD ok={} errors={} duration_us={} resumed=0",
        tally.ok.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        elapsed.as_micros()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}
