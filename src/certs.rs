//! Certificates from PEM files: loading a chain and its key, checking that they belong together,
//! reading the DNS names a certificate covers and when it expires. No pingora here.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A certificate chain and key, loaded and checked.
#[derive(Clone, Debug)]
pub struct LoadedCert {
    /// The chain and signing key, ready for rustls.
    pub certified: Arc<CertifiedKey>,
    /// The DNS names in the leaf certificate's subject alternative names, lowercased. Wildcards
    /// keep their `*.` prefix.
    pub dns_names: Vec<String>,
    /// The leaf certificate's notAfter, in Unix seconds.
    pub not_after: i64,
}

/// Two loads are equal when they hold the same key in memory, not merely equal files.
impl PartialEq for LoadedCert {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.certified, &other.certified)
            && self.dns_names == other.dns_names
            && self.not_after == other.not_after
    }
}

impl Eq for LoadedCert {}

impl LoadedCert {
    /// Why the certificate in `cert_file` cannot serve `name`, or `None` if it covers it.
    pub fn uncovered(&self, name: &str, cert_file: &Path) -> Option<String> {
        if covers(&self.dns_names, name.trim()) {
            return None;
        }
        let covered = if self.dns_names.is_empty() {
            "no DNS names".to_owned()
        } else {
            self.dns_names.join(", ")
        };
        Some(format!(
            "\"{name}\" is not covered by the certificate in \"{}\" (it covers {covered}); remove it, or use a certificate issued for that name",
            cert_file.display()
        ))
    }

    /// A warning if the certificate in `cert_file` has expired, with its date.
    pub fn expired(&self, cert_file: &Path) -> Option<String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let now = now.map_or(0, |d| d.as_secs() as i64);
        (self.not_after < now).then(|| {
            format!(
                "\"{}\" expired on {}; browsers will refuse it until it is renewed (certbot renew)",
                cert_file.display(),
                format_utc(self.not_after)
            )
        })
    }
}

/// Which of the two files a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The certificate chain file.
    Cert,
    /// The private key file.
    Key,
}

/// Why a certificate could not be used, phrased for a config message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertError {
    /// The file the problem is in.
    pub which: Which,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn err(which: Which, message: String) -> CertError {
    CertError { which, message }
}

/// Loads `cert_path` (a PEM chain, leaf first) and `key_path` (a PEM private key), and checks
/// that the key belongs to the leaf certificate.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, CertError> {
    let c = cert_path.display();
    let k = key_path.display();
    let cert_pem = crate::files::read_regular(cert_path).map_err(|e| {
        err(
            Which::Cert,
            format!("cannot read \"{c}\" ({e}); write the path of a PEM certificate chain, such as /etc/letsencrypt/live/NAME/fullchain.pem"),
        )
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(Which::Cert, format!("\"{c}\" is not valid PEM ({e}); write the path of a PEM certificate chain (fullchain.pem)")))?;
    let Some(leaf) = chain.first() else {
        return Err(err(
            Which::Cert,
            format!(
                "\"{c}\" holds no PEM certificate; write the path of a PEM certificate chain (fullchain.pem)"
            ),
        ));
    };
    let (dns_names, not_after) = leaf_facts(leaf.as_ref())
        .map_err(|detail| err(Which::Cert, format!("\"{c}\" holds a certificate that cannot be parsed ({detail}); write the path of a PEM certificate chain")))?;

    let key_pem = crate::files::read_regular(key_path).map_err(|e| {
        err(
            Which::Key,
            format!("cannot read \"{k}\" ({e}); write the path of the PEM private key, such as /etc/letsencrypt/live/NAME/privkey.pem"),
        )
    })?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(err(
                Which::Key,
                format!(
                    "\"{k}\" holds no PEM private key; write the path of the private key (privkey.pem)"
                ),
            ));
        }
        Err(e) => {
            return Err(err(
                Which::Key,
                format!(
                    "\"{k}\" is not valid PEM ({e}); write the path of the private key (privkey.pem)"
                ),
            ));
        }
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        err(
            Which::Key,
            format!(
                "\"{k}\" holds a key rustls cannot use ({e}); use an RSA, ECDSA or Ed25519 key"
            ),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    if certified.keys_match().is_err() {
        return Err(err(
            Which::Key,
            format!(
                "\"{k}\" does not match the certificate in \"{c}\"; write the key that was issued with that certificate"
            ),
        ));
    }
    Ok(LoadedCert {
        certified: Arc::new(certified),
        dns_names,
        not_after,
    })
}

/// The SAN DNS names (lowercased) and notAfter of a DER certificate.
fn leaf_facts(der: &[u8]) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let not_after = cert.validity().not_after.timestamp();
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    Ok((names, not_after))
}

/// Whether a certificate's DNS names cover a server name. A `*.example.com` name covers
/// exactly one more label, as TLS clients check it.
pub fn covers(dns_names: &[String], server_name: &str) -> bool {
    let name = server_name.to_ascii_lowercase();
    dns_names.iter().any(|d| {
        if *d == name {
            return true;
        }
        match (d.strip_prefix("*."), name.split_once('.')) {
            (Some(parent), Some((label, rest))) => !label.is_empty() && rest == parent,
            _ => false,
        }
    })
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (out of `time`'s range: the seconds).
pub fn format_utc(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ts} seconds after 1970 UTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_names_cover_exactly_one_label() {
        let names = vec!["stats.example.com".to_owned(), "*.example.org".to_owned()];
        for (sni, want) in [
            ("stats.example.com", true),
            ("STATS.example.com", true),
            ("www.stats.example.com", false),
            ("a.example.org", true),
            ("example.org", false),
            ("a.b.example.org", false),
            (".example.org", false),
            ("evilexample.org", false),
        ] {
            assert_eq!(covers(&names, sni), want, "{sni}");
        }
    }

    #[test]
    fn unix_times_format_as_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }
}
