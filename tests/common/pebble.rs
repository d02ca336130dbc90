//! Pebble, the ACME test server of the Let's Encrypt project (Debian's `pebble` package), on
//! loopback with ephemeral ports, and `pebble-challtestsrv` as its DNS server, which resolves
//! every name to 127.0.0.1. Pebble validates HTTP-01 on `http_port` and TLS-ALPN-01 on
//! `tls_port` of that address: the gateway's listeners. Debian's package ships no certificate
//! for Pebble's own HTTPS listener, so the harness makes one from a test CA (rcgen), which the
//! gateway trusts as `directory_ca`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::gateway::{free_port, listening_ports};
use super::process::eventually;
use super::tls::{TestCa, connect};

/// A running Pebble and its DNS server. Dropping it stops both.
pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    pub dir: tempfile::TempDir,
    /// The directory URL.
    pub directory: String,
    /// The PEM file of the CA of Pebble's HTTPS listener (`directory_ca`).
    pub ca_file: PathBuf,
    /// Pebble's management interface (roots, certificate status).
    pub management: SocketAddr,
    ca: TestCa,
    args: (PathBuf, u16),
    env: Vec<(String, String)>,
}

/// How a Pebble is started.
#[derive(Clone, Debug, Default)]
pub struct PebbleSpec {
    /// Where Pebble validates HTTP-01 and TLS-ALPN-01 (the gateway's listeners).
    pub http_port: u16,
    pub tls_port: u16,
    /// The lifetime of the certificates it issues, in seconds (Pebble's default: 5 years).
    pub validity_seconds: Option<u64>,
    /// More environment, such as `PEBBLE_WFE_NONCEREJECT=100`.
    pub env: Vec<(String, String)>,
    /// Require external account binding with this key identifier and base64url MAC key.
    pub eab: Option<(String, String)>,
}

/// Fails the test with a clear message if a tool is missing.
fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not installed: apt-get install pebble (the README's test command does)"
    );
}

impl Pebble {
    pub fn start(spec: &PebbleSpec) -> Pebble {
        require("pebble");
        require("pebble-challtestsrv");
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::generate();
        let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
        let (cert, key) = leaf.write(dir.path(), "pebble");
        let ca_file = dir.path().join("pebble-ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        let (listen, management, dns) = (free_port(), free_port(), free_port());
        let dns_log = std::fs::File::create(dir.path().join("dns.log")).unwrap();
        let dns_child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(dns_log.try_clone().unwrap())
            .stderr(dns_log)
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": spec.http_port,
            "tlsPort": spec.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some((kid, key)) = &spec.eab {
            config["pebble"]["externalAccountBindingRequired"] = true.into();
            config["pebble"]["externalAccountMACKeys"] = serde_json::json!({ kid: key });
        }
        if let Some(v) = spec.validity_seconds {
            config["pebble"]["certificateValidityPeriod"] = v.into();
        }
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let mut env = vec![
            ("PEBBLE_VA_NOSLEEP".to_owned(), "1".to_owned()),
            ("PEBBLE_WFE_NONCEREJECT".to_owned(), "0".to_owned()),
            // Every order validates afresh, so each one proves the challenge path.
            ("PEBBLE_AUTHZREUSE".to_owned(), "0".to_owned()),
        ];
        env.extend(spec.env.iter().cloned());
        let mut p = Pebble {
            pebble: None,
            dns: dns_child,
            dir,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            ca,
            args: (config_file, dns),
            env,
        };
        p.restart();
        p
    }

    /// Starts Pebble (again, after [`Pebble::stop`]) on the same ports.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pebble.log"))
            .unwrap();
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(&self.args.0)
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.args.1)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start pebble");
        let pid = child.id();
        self.pebble = Some(child);
        let port = self.management.port();
        eventually(Duration::from_secs(30), "pebble to listen", || {
            listening_ports(pid).contains(&port).then_some(())
        });
        // Its DNS server must answer too before the first validation.
        let dns_pid = self.dns.id();
        eventually(Duration::from_secs(30), "pebble-challtestsrv", || {
            std::fs::read_to_string(format!("/proc/{dns_pid}/stat"))
                .ok()
                .map(|_| ())
        });
    }

    /// Stops Pebble (the CA is down); its DNS server stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What Pebble logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Pebble's current root certificate (it makes a new one at every start), in PEM.
    pub fn root_pem(&self) -> String {
        let config = self.ca.client_config(&[b"http/1.1"]);
        let mut c = connect(self.management, "127.0.0.1", config).expect("pebble management");
        let r = c
            .conn
            .request("GET", "/roots/0", &[("Host", "127.0.0.1")], b"");
        assert_eq!(r.status, 200, "GET /roots/0: {}", r.text());
        r.text()
    }

    /// A client config that trusts Pebble's root, offering HTTP/1.1.
    pub fn client_config(&self) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.root_pem().as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut c =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every handshake a full one, so each shows the certificate served now (a resumed
        // session reports the certificate of the session it resumes).
        c.resumption = rustls::client::Resumption::disabled();
        c
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

/// The name a test certificate is for, valid for a TLS client.
pub fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_owned()).unwrap()
}
