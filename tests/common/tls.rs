//! Throwaway certificates made at test time (rcgen), and TLS clients that verify against the
//! test CA: a blocking HTTP/1.1 client over rustls and an HTTP/2 client over tokio-rustls.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};

use super::client::{Conn, Response};

/// A test certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate in PEM, to trust in clients.
    pub pem: String,
}

/// A leaf certificate and its key, in PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Leaf {
    /// Writes `<name>.pem` and `<name>.key` in `dir`, returning their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

impl TestCa {
    /// A new CA, its key generated now.
    pub fn generate() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "ackee-gateway test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        TestCa { cert, key, pem }
    }

    /// A leaf for `names`, valid from 2020 until the given date.
    pub fn leaf_until(&self, names: &[&str], year: i32, month: u8, day: u8) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A leaf for `names`, valid until 2099.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_until(names, 2099, 12, 31)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// A client config that verifies against this CA and offers `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut c =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(self.roots())
                .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        c
    }

    /// A client config that sends `sni` (or none) but verifies the chain against this CA for
    /// `expected_name`, and records the certificate the server presented.
    pub fn inspecting_config(
        &self,
        send_sni: bool,
        expected_name: &str,
        seen: Arc<Mutex<Option<Vec<u8>>>>,
    ) -> ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.roots()),
            provider.clone(),
        )
        .build()
        .unwrap();
        let verifier = Arc::new(Recording {
            inner,
            expected: ServerName::try_from(expected_name.to_owned()).unwrap(),
            seen,
        });
        let mut c = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        c.enable_sni = send_sni;
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        c
    }
}

/// Verifies the chain for a fixed name, whatever SNI was sent, and records the leaf.
#[derive(Debug)]
struct Recording {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: ServerName<'static>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expected, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A finished TLS handshake: what was negotiated, and the connection for requests.
pub struct TlsConn {
    pub alpn: Option<Vec<u8>>,
    pub leaf: Vec<u8>,
    pub conn: Conn,
}

/// Connects, completes the handshake with `config` for `sni`, and returns the connection.
pub fn connect(addr: SocketAddr, sni: &str, config: ClientConfig) -> Result<TlsConn, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let client = ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut stream = StreamOwned::new(client, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| e.to_string())?;
    }
    let alpn = stream.conn.alpn_protocol().map(|p| p.to_vec());
    let leaf = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok(TlsConn {
        alpn,
        leaf,
        conn: Conn::over(Box::new(stream)),
    })
}

/// One HTTP/2 request over TLS, verified against the CA. Returns the response and the
/// negotiated ALPN protocol.
pub fn h2_request(
    ca: &TestCa,
    addr: SocketAddr,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Response, Option<Vec<u8>>) {
    h2_exchange(ca, addr, authority, method, path, headers, body, false)
}

/// Like [`h2_request`], but the body ends with an empty DATA frame carrying END_STREAM, as
/// `curl -T -` and CDNs relaying over HTTP/2 send it (pingora issue #935).
pub fn h2_request_empty_end(
    ca: &TestCa,
    addr: SocketAddr,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    h2_exchange(ca, addr, authority, method, path, headers, body, true).0
}

/// An HTTP/2 connection over TLS to `addr` for `authority`, verified against the CA, driven
/// on the current runtime; and the negotiated ALPN protocol.
async fn h2_connect(
    ca: &TestCa,
    addr: SocketAddr,
    authority: &str,
) -> (h2::client::SendRequest<bytes::Bytes>, Option<Vec<u8>>) {
    let config = Arc::new(ca.client_config(&[b"h2"]));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let host = authority.split(':').next().unwrap().to_owned();
    let name = ServerName::try_from(host).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, alpn)
}

#[allow(clippy::too_many_arguments)]
fn h2_exchange(
    ca: &TestCa,
    addr: SocketAddr,
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    empty_end: bool,
) -> (Response, Option<Vec<u8>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, alpn) = h2_connect(ca, addr, authority).await;
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://{authority}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).unwrap();
        let (resp, mut send) = client.send_request(req, body.is_empty()).unwrap();
        if !body.is_empty() {
            send.send_data(bytes::Bytes::copy_from_slice(body), !empty_end)
                .unwrap();
            if empty_end {
                send.send_data(bytes::Bytes::new(), true).unwrap();
            }
        }
        let resp = tokio::time::timeout(Duration::from_secs(30), resp)
            .await
            .unwrap()
            .unwrap();
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let mut recv = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.unwrap();
            let _ = recv.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        (
            Response {
                status,
                headers,
                body: out,
            },
            alpn,
        )
    })
}

/// Sends a POST with `body` over HTTP/2, waits until `received()` says the upstream has it,
/// then resets the stream with `CANCEL`, as a browser does for a page that is left, and sends
/// a preflight on the same connection: its answer shows the reset reached the gateway first.
/// Returns the preflight's status.
pub fn h2_post_then_cancel(
    ca: &TestCa,
    addr: SocketAddr,
    authority: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    received: impl Fn() -> bool,
) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, _) = h2_connect(ca, addr, authority).await;
        let mut client = client.ready().await.unwrap();
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("https://{authority}/api"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (_resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
        send.send_data(bytes::Bytes::copy_from_slice(body), true)
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !received() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the upstream never got the POST"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        send.send_reset(h2::Reason::CANCEL);
        let mut client = client.ready().await.unwrap();
        let mut req = http::Request::builder()
            .method("OPTIONS")
            .uri(format!("https://{authority}/api"))
            .header("access-control-request-method", "POST");
        for (k, v) in headers.iter().filter(|(k, _)| *k == "origin") {
            req = req.header(*k, *v);
        }
        let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), resp)
            .await
            .unwrap()
            .unwrap()
            .status()
            .as_u16()
    })
}
