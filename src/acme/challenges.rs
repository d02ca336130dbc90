//! The answers to the gateway's own pending challenges, shared by every listener and by every
//! process on one state directory.
//!
//! An order puts each answer in memory (for this process's listeners) and in the state
//! directory (for another process on the same sockets: the old or the new one during a
//! graceful upgrade, which may be the one the CA reaches). A lookup reads memory first, then
//! the directory; both are touched only for challenge requests and `acme-tls/1` handshakes.
//!
//! - HTTP-01: `GET /.well-known/acme-challenge/TOKEN` is answered with the key authorization.
//! - TLS-ALPN-01 (RFC 8737): a ClientHello that offers only ALPN `acme-tls/1` for a name gets a
//!   self-signed certificate for that name carrying the `acmeIdentifier` extension, which
//!   holds the SHA-256 of the key authorization.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use super::store::{Store, write_atomic};
use super::webroot::is_token;

/// The ALPN protocol of TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Pending answers.
#[derive(Debug, Default)]
pub struct Challenges {
    http: RwLock<HashMap<String, String>>,
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Where other processes' answers are, and this one's are written.
    http_dir: Option<PathBuf>,
    alpn_dir: Option<PathBuf>,
}

impl Challenges {
    /// Answers kept in memory and under the state directory's store.
    pub fn new(store: Option<&Store>) -> Challenges {
        Challenges {
            http_dir: store.map(Store::http_challenges),
            alpn_dir: store.map(Store::alpn_challenges),
            ..Challenges::default()
        }
    }

    /// The key authorization for an HTTP-01 token, if one is pending here or in another
    /// process on the same state directory.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        if !is_token(token) {
            return None;
        }
        if let Some(a) = self.http.read().ok()?.get(token) {
            return Some(a.clone());
        }
        let file = self.http_dir.as_ref()?.join(token);
        let bytes = crate::files::read_regular(&file).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Publishes an HTTP-01 answer.
    pub fn put_http(&self, token: &str, key_authorization: &str) -> std::io::Result<()> {
        if let Some(dir) = &self.http_dir {
            write_atomic(&dir.join(token), key_authorization.as_bytes())?;
        }
        if let Ok(mut m) = self.http.write() {
            m.insert(token.to_owned(), key_authorization.to_owned());
        }
        Ok(())
    }

    /// Withdraws an HTTP-01 answer.
    pub fn remove_http(&self, token: &str) {
        if let Ok(mut m) = self.http.write() {
            m.remove(token);
        }
        if let Some(dir) = &self.http_dir {
            let _ = std::fs::remove_file(dir.join(token));
        }
    }

    /// The TLS-ALPN-01 certificate for a name, if one is pending.
    pub fn alpn_certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        if let Some(c) = self.alpn.read().ok()?.get(&name) {
            return Some(c.clone());
        }
        if !is_file_name(&name) {
            return None;
        }
        let file = self.alpn_dir.as_ref()?.join(format!("{name}.pem"));
        let pem = crate::files::read_regular(&file).ok()?;
        certified(&pem).ok().map(Arc::new)
    }

    /// Publishes a TLS-ALPN-01 certificate for `name`, whose `acmeIdentifier` holds `digest`
    /// (the SHA-256 of the key authorization).
    pub fn put_alpn(&self, name: &str, digest: &[u8]) -> Result<(), String> {
        let pem = alpn_certificate_pem(name, digest)?;
        if let Some(dir) = &self.alpn_dir {
            write_atomic(&dir.join(format!("{name}.pem")), pem.as_bytes())
                .map_err(|e| format!("cannot write the TLS-ALPN-01 certificate: {e}"))?;
        }
        let key = certified(pem.as_bytes())?;
        if let Ok(mut m) = self.alpn.write() {
            m.insert(name.to_owned(), Arc::new(key));
        }
        Ok(())
    }

    /// Withdraws a TLS-ALPN-01 certificate.
    pub fn remove_alpn(&self, name: &str) {
        if let Ok(mut m) = self.alpn.write() {
            m.remove(name);
        }
        if let Some(dir) = &self.alpn_dir {
            let _ = std::fs::remove_file(dir.join(format!("{name}.pem")));
        }
    }
}

/// A DNS name that is safe as a file name.
fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// A self-signed certificate for `name` with the `acmeIdentifier` extension, and its key, in
/// one PEM (key first).
pub fn alpn_certificate_pem(name: &str, digest: &[u8]) -> Result<String, String> {
    use rcgen_acme::{CertificateParams, CustomExtension, KeyPair};
    if digest.len() != 32 {
        return Err("the key authorization digest is not SHA-256".to_owned());
    }
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    params
        .custom_extensions
        .push(CustomExtension::new_acme_identifier(digest));
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
}

/// The certificate and key in one PEM, ready for rustls.
fn certified(pem: &[u8]) -> Result<CertifiedKey, String> {
    use rustls::pki_types::CertificateDer;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(chain, signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_come_from_memory_or_from_another_process_on_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mine = Challenges::new(Some(&store));
        let other = Challenges::new(Some(&store));
        mine.put_http("tok3n_-AZ", "tok3n_-AZ.thumb").unwrap();
        let cases: &[(&Challenges, &str, Option<&str>)] = &[
            (&mine, "tok3n_-AZ", Some("tok3n_-AZ.thumb")),
            (&other, "tok3n_-AZ", Some("tok3n_-AZ.thumb")),
            (&mine, "other", None),
            (&other, "../../acme/accounts/x", None),
            (&other, "", None),
        ];
        for (c, token, want) in cases {
            assert_eq!(c.http_answer(token).as_deref(), *want, "{token}");
        }
        mine.remove_http("tok3n_-AZ");
        assert_eq!(other.http_answer("tok3n_-AZ"), None);
        assert_eq!(mine.http_answer("tok3n_-AZ"), None);
    }

    #[test]
    fn alpn_certificates_carry_the_acme_identifier_for_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mine = Challenges::new(Some(&store));
        let other = Challenges::new(Some(&store));
        let digest = [7u8; 32];
        mine.put_alpn("stats.example.com", &digest).unwrap();
        for c in [&mine, &other] {
            let key = c.alpn_certificate("STATS.example.com").unwrap();
            let der = key.cert[0].as_ref();
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            // id-pe-acmeIdentifier, critical, an OCTET STRING of the digest.
            let ext = cert
                .extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
                .unwrap();
            assert!(ext.critical);
            assert_eq!(&ext.value[2..], &digest);
        }
        assert!(mine.alpn_certificate("other.example.com").is_none());
        assert!(other.alpn_certificate("../x").is_none());
        mine.remove_alpn("stats.example.com");
        assert!(other.alpn_certificate("stats.example.com").is_none());
        assert!(alpn_certificate_pem("a.example", &[1, 2]).is_err());
    }
}
