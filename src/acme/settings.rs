//! A managed certificate's settings (`listeners[].tls.acme`), and the rules about each value
//! that `-t` checks without contacting the CA. Each rule returns what is wrong, phrased for
//! the config; config reports it at the key path.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The default state directory (the unit's `StateDirectory=ackee-gateway`).
pub const STATE_DIRECTORY: &str = "/var/lib/ackee-gateway";

/// How the CA checks that the gateway answers for a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01: `GET http://NAME/.well-known/acme-challenge/TOKEN` on port 80.
    Http01,
    /// TLS-ALPN-01: a TLS handshake on port 443 with ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl ChallengeKind {
    /// The name in the config and in ACME.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// External account binding (RFC 8555 7.3.4), for CAs that require one (ZeroSSL, Google, ...).
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    /// The key identifier the CA gave.
    pub key_id: String,
    /// The MAC key, decoded from the base64url the CA gave.
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in a log or a debug print.
        f.debug_struct("ExternalAccount")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// One certificate the gateway obtains and renews itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The `certificate` label in metrics and logs, and its directory's name in the state
    /// directory.
    pub name: String,
    /// The names on the certificate, lowercased, IDN in punycode; the first is its subject.
    pub domains: Vec<String>,
    /// `mailto:` URLs for the CA's expiry and problem mail; may be empty.
    pub contact: Vec<String>,
    /// The CA's directory URL.
    pub directory: String,
    /// A PEM file with the CA certificate that the directory's HTTPS certificate chains to,
    /// for a private CA; `None` trusts the system's roots.
    pub directory_ca: Option<PathBuf>,
    /// The challenge the CA is asked to validate.
    pub challenge: ChallengeKind,
    /// External account binding, if the CA needs one.
    pub external_account: Option<ExternalAccount>,
}

impl AcmeSettings {
    /// What an order depends on, in one line: the CA, the names, the challenge and the
    /// account binding's key identifier (never its key).
    pub fn summary(&self) -> String {
        format!(
            "{} {} {} {}",
            self.directory,
            self.domains.join(","),
            self.challenge.as_str(),
            self.external_account
                .as_ref()
                .map_or("", |e| e.key_id.as_str())
        )
    }
}

/// A name for a certificate: what it covers must be a DNS name the CA can validate with
/// HTTP-01 or TLS-ALPN-01. IP addresses and wildcards (DNS-01 only) are refused.
pub fn domain(written: &str) -> Result<String, String> {
    let w = written.trim();
    let fix = "write a DNS name that points to this gateway, such as \"stats.example.com\"";
    if w.parse::<IpAddr>().is_ok() || w.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(format!(
            "\"{w}\" is an IP address; ACME certificates here are for DNS names: {fix}"
        ));
    }
    if w.starts_with("*.") || w.contains('*') {
        return Err(format!(
            "\"{w}\" is a wildcard, which a CA validates only over DNS (DNS-01), not with http-01 or tls-alpn-01; list each name instead, such as \"stats.example.com\""
        ));
    }
    let ascii = idna::domain_to_ascii(w)
        .map_err(|_| format!("\"{w}\" is not a valid DNS name; {fix}"))?
        .to_ascii_lowercase();
    let labels: Vec<&str> = ascii.split('.').collect();
    let valid_label = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(valid_label) {
        return Err(format!(
            "\"{w}\" is not a public DNS name (at least two labels of letters, digits and -); {fix}"
        ));
    }
    Ok(ascii)
}

/// A contact: a `mailto:` URL with one address.
pub fn contact(written: &str) -> Result<String, String> {
    let w = written.trim();
    let fix = "write a mailto URL, such as \"mailto:admin@example.com\"";
    let Some(address) = w.strip_prefix("mailto:") else {
        return Err(format!("\"{w}\" is not a mailto URL; {fix}"));
    };
    let valid = match address.split_once('@') {
        Some((local, host)) => {
            !local.is_empty()
                && host.contains('.')
                && !address.contains([',', ' ', '?', '<', '>'])
                && !host.starts_with('.')
                && !host.ends_with('.')
        }
        None => false,
    };
    if !valid {
        return Err(format!("\"{w}\" is not one e-mail address; {fix}"));
    }
    Ok(w.to_owned())
}

/// A directory URL: `https://` with a host (ACME requires HTTPS).
pub fn directory(written: &str) -> Result<String, String> {
    let w = written.trim();
    let fix = format!(
        "write the CA's directory URL, such as \"{LETS_ENCRYPT}\" (or \"{LETS_ENCRYPT_STAGING}\" to test)"
    );
    let Some(rest) = w.strip_prefix("https://") else {
        return Err(format!(
            "\"{w}\" is not an https URL (ACME servers are reached over HTTPS); {fix}"
        ));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || w.contains(char::is_whitespace) {
        return Err(format!("\"{w}\" has no host; {fix}"));
    }
    Ok(w.to_owned())
}

/// `directory_ca`: a readable PEM file that holds a certificate.
pub fn directory_ca(written: &str) -> Result<PathBuf, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let path = PathBuf::from(written.trim());
    let fix = "write the PEM file of the CA certificate that the ACME server's HTTPS certificate chains to, or leave the key out to trust the system's roots";
    let bytes = crate::files::read_regular(&path)
        .map_err(|e| format!("\"{}\" cannot be read ({e}); {fix}", path.display()))?;
    match CertificateDer::pem_slice_iter(&bytes).next() {
        Some(Ok(_)) => Ok(path),
        _ => Err(format!(
            "\"{}\" holds no PEM certificate; {fix}",
            path.display()
        )),
    }
}

/// An external account's MAC key, as the CA gives it: base64url (padding allowed).
pub fn hmac_key(written: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let w = written.trim().trim_end_matches('=');
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(w)
        .map_err(|_| "is not base64url; write the MAC key exactly as the CA gave it".to_owned())?;
    if key.is_empty() {
        return Err("is empty; write the MAC key the CA gave".to_owned());
    }
    Ok(key)
}

/// A certificate's name, which is also a directory name: letters, digits, `.`, `-`, `_`.
pub fn name(written: &str) -> Result<String, String> {
    let w = written.trim();
    let ok = !w.is_empty()
        && !w.starts_with('.')
        && w.len() <= 128
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(w.to_owned())
    } else {
        Err(format!(
            "\"{w}\" cannot name a directory; write letters, digits, '.', '-' and '_', such as \"stats\""
        ))
    }
}

/// Whether the gateway can keep its ACME state in `dir`: an existing directory it may write
/// to, or one it can create (its nearest existing parent is writable).
pub fn state_directory(dir: &Path) -> Result<(), String> {
    let fix = "create it, writable by the user the gateway runs as (the systemd unit's StateDirectory= does), or set state_directory to such a directory";
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => break,
        }
    }
    if existing.exists() && !existing.is_dir() {
        return Err(format!(
            "\"{}\" is not a directory; {fix}",
            existing.display()
        ));
    }
    if !writable(existing) {
        let what = if existing == dir {
            format!("\"{}\" is not writable", dir.display())
        } else {
            format!(
                "\"{}\" does not exist and \"{}\" is not writable",
                dir.display(),
                existing.display()
            )
        };
        return Err(format!("{what}; {fix}"));
    }
    Ok(())
}

fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a NUL-terminated path this function owns.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_dns_names_never_ips_or_wildcards() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("stats.example.com", Ok("stats.example.com")),
            (" Stats.Example.COM ", Ok("stats.example.com")),
            ("bücher.example", Ok("xn--bcher-kva.example")),
            ("a-b.example.org", Ok("a-b.example.org")),
            ("192.0.2.7", Err("is an IP address")),
            ("::1", Err("is an IP address")),
            ("[2001:db8::1]", Err("is an IP address")),
            ("*.example.com", Err("is a wildcard")),
            ("localhost", Err("is not a public DNS name")),
            ("-bad.example.com", Err("is not a public DNS name")),
            ("a..example.com", Err("not")),
            ("exa mple.com", Err("not")),
            ("example.com/path", Err("not")),
        ];
        for (written, want) in cases {
            match (domain(written), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{written}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{written}: {e}"),
                (got, want) => panic!("{written}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn contacts_are_mailto_urls_with_one_address() {
        let cases: &[(&str, bool)] = &[
            ("mailto:admin@example.com", true),
            ("mailto:a.b+c@mail.example.org", true),
            ("admin@example.com", false),
            ("mailto:", false),
            ("mailto:admin", false),
            ("mailto:admin@localhost", false),
            ("mailto:a@example.com,b@example.com", false),
            ("https://example.com", false),
        ];
        for (written, ok) in cases {
            assert_eq!(contact(written).is_ok(), *ok, "{written}");
        }
    }

    #[test]
    fn directories_are_https_urls() {
        let cases: &[(&str, bool)] = &[
            (LETS_ENCRYPT, true),
            ("https://127.0.0.1:14000/dir", true),
            ("http://127.0.0.1:14000/dir", false),
            ("https://", false),
            ("acme-v02.api.letsencrypt.org/directory", false),
        ];
        for (written, ok) in cases {
            assert_eq!(directory(written).is_ok(), *ok, "{written}");
        }
    }

    #[test]
    fn names_are_safe_directory_names() {
        for (written, ok) in [
            ("stats", true),
            ("stats.example.com", true),
            ("a_b-c", true),
            ("", false),
            ("..", false),
            ("a/b", false),
            (".hidden", false),
        ] {
            assert_eq!(name(written).is_ok(), ok, "{written}");
        }
    }

    #[test]
    fn hmac_keys_are_base64url() {
        assert_eq!(hmac_key("AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(hmac_key("_-8=").unwrap(), vec![0xff, 0xef]);
        assert!(hmac_key("not base64!").is_err());
        assert!(hmac_key("").is_err());
    }

    #[test]
    fn a_state_directory_must_be_or_become_writable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(state_directory(dir.path()).is_ok());
        assert!(state_directory(&dir.path().join("new/sub")).is_ok());
        let file = dir.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(
            state_directory(&file.join("x"))
                .unwrap_err()
                .contains("is not a directory")
        );
    }
}
