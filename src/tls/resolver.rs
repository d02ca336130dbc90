//! Choosing a certificate by SNI, and swapping certificates without touching open connections.
//!
//! A [`SniResolver`] holds an immutable [`CertStore`] behind an `ArcSwap`: a handshake reads the
//! current store without locking, and a reload builds a new store and swaps it in. Connections
//! already established keep the certificate they were handshaken with. A CA validating a
//! TLS-ALPN-01 challenge (ALPN `acme-tls/1`) gets the challenge's certificate instead.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::acme::challenges::{ACME_TLS_ALPN, Challenges};

/// One certificate and the server names it answers for.
#[derive(Clone, Debug)]
pub struct StoreEntry {
    /// The configured name of the certificate.
    pub name: String,
    /// The chain and key.
    pub certified: Arc<CertifiedKey>,
    /// Names it is served for: exact names, or `*.parent` for one label under `parent`.
    pub server_names: Vec<String>,
}

/// An immutable snapshot of a listener's certificates.
#[derive(Debug)]
pub struct CertStore {
    entries: Vec<StoreEntry>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    default: usize,
}

impl CertStore {
    /// Builds the lookup tables. `default` is the index served without SNI or for unknown names.
    /// An earlier entry wins when two list the same name.
    pub fn new(entries: Vec<StoreEntry>, default: usize) -> CertStore {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            for n in &e.server_names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(parent) => {
                        wildcard.entry(parent.to_owned()).or_insert(i);
                    }
                    None => {
                        exact.entry(n).or_insert(i);
                    }
                }
            }
        }
        let default = default.min(entries.len().saturating_sub(1));
        CertStore {
            entries,
            exact,
            wildcard,
            default,
        }
    }

    /// The entry for a server name (SNI), or the default entry.
    pub fn select(&self, server_name: Option<&str>) -> Option<&StoreEntry> {
        let index = server_name
            .map(str::to_ascii_lowercase)
            .and_then(|n| {
                self.exact.get(&n).copied().or_else(|| {
                    n.split_once('.')
                        .filter(|(label, _)| !label.is_empty())
                        .and_then(|(_, parent)| self.wildcard.get(parent).copied())
                })
            })
            .unwrap_or(self.default);
        self.entries.get(index)
    }

    /// Every entry, in config order.
    pub fn entries(&self) -> &[StoreEntry] {
        &self.entries
    }
}

/// The rustls certificate resolver for one TLS listener.
///
/// Its store is built from two parts, each replaced on its own under a lock: the certificates
/// from files (replaced by a reload) and the ones the gateway obtains itself (replaced when a
/// renewal succeeds). A ClientHello that offers ALPN `acme-tls/1` is a CA validating a
/// TLS-ALPN-01 challenge: it gets the pending challenge certificate for its name, or nothing.
pub struct SniResolver {
    store: ArcSwap<CertStore>,
    parts: Mutex<Parts>,
    challenges: Option<Arc<Challenges>>,
}

/// What the store is built from.
struct Parts {
    fixed: Vec<StoreEntry>,
    default: usize,
    managed: Vec<StoreEntry>,
}

impl Parts {
    /// The managed certificates come first, so that for a name both serve, the one the
    /// gateway obtained wins once it exists (a certbot certificate can stay as the fallback
    /// while moving over). The default stays among the files' certificates, if any.
    fn build(&self) -> CertStore {
        let entries = self.managed.iter().chain(&self.fixed).cloned().collect();
        let default = match self.fixed.is_empty() {
            true => 0,
            false => self.managed.len() + self.default,
        };
        CertStore::new(entries, default)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("store", &self.store.load())
            .finish()
    }
}

impl SniResolver {
    /// A resolver serving `fixed` (certificates from files), `default` among them, and
    /// answering TLS-ALPN-01 challenges from `challenges`, if given.
    pub fn new(
        fixed: Vec<StoreEntry>,
        default: usize,
        challenges: Option<Arc<Challenges>>,
    ) -> SniResolver {
        let parts = Parts {
            fixed,
            default,
            managed: Vec::new(),
        };
        SniResolver {
            store: ArcSwap::from_pointee(parts.build()),
            parts: Mutex::new(parts),
            challenges,
        }
    }

    /// The current store.
    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }

    /// The certificates from files in use, in config order.
    pub fn fixed(&self) -> Vec<StoreEntry> {
        self.parts
            .lock()
            .map(|p| p.fixed.clone())
            .unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut Parts)) {
        let Ok(mut parts) = self.parts.lock() else {
            return;
        };
        change(&mut parts);
        self.store.store(Arc::new(parts.build()));
    }

    /// Replaces the certificates from files: new handshakes use them, open connections are
    /// untouched. The managed ones stay.
    pub fn replace(&self, fixed: Vec<StoreEntry>, default: usize) {
        self.update(|p| {
            p.fixed = fixed;
            p.default = default;
        });
    }

    /// Puts in a managed certificate, replacing the one of the same name.
    pub fn put_managed(&self, entry: StoreEntry) {
        self.update(|p| {
            p.managed.retain(|e| e.name != entry.name);
            p.managed.push(entry);
        });
    }
}

/// Whether a ClientHello's ALPN offers `acme-tls/1`: a CA validating TLS-ALPN-01.
fn offers_acme_tls<'a>(alpn: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    alpn.is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges
            && offers_acme_tls(hello.alpn())
        {
            return challenges.alpn_certificate(hello.server_name()?);
        }
        self.store
            .load()
            .select(hello.server_name())
            .map(|e| e.certified.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, names: &[&str]) -> StoreEntry {
        let key = rcgen_acme::KeyPair::generate().unwrap();
        let params = rcgen_acme::CertificateParams::new(vec![names[0].to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signer = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        StoreEntry {
            name: name.to_owned(),
            certified: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer)),
            server_names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_managed_certificate_wins_for_its_names_and_the_default_stays_a_static_one() {
        let resolver = SniResolver::new(
            vec![
                entry("certbot", &["stats.example.com"]),
                entry("other", &["other.example.com"]),
            ],
            1,
            None,
        );
        let pick = |sni: Option<&str>| resolver.current().select(sni).unwrap().name.clone();
        assert_eq!(pick(Some("stats.example.com")), "certbot");
        assert_eq!(pick(None), "other");
        resolver.put_managed(entry("acme", &["stats.example.com"]));
        let cases = [
            (Some("stats.example.com"), "acme"),
            (Some("other.example.com"), "other"),
            (Some("unknown.example.com"), "other"),
            (None, "other"),
        ];
        for (sni, want) in cases {
            assert_eq!(pick(sni), want, "{sni:?}");
        }
        // A reload of the files keeps the managed one; a renewal replaces it by name.
        resolver.replace(vec![entry("certbot2", &["stats.example.com"])], 0);
        assert_eq!(pick(Some("stats.example.com")), "acme");
        assert_eq!(pick(None), "certbot2");
        resolver.put_managed(entry("acme", &["stats.example.com", "new.example.com"]));
        assert_eq!(resolver.current().entries().len(), 2);
        assert_eq!(resolver.fixed().len(), 1);
        // Managed only: it is the default too.
        let only = SniResolver::new(Vec::new(), 0, None);
        assert!(only.current().select(None).is_none());
        only.put_managed(entry("acme", &["stats.example.com"]));
        assert_eq!(only.current().select(None).unwrap().name, "acme");
    }

    #[test]
    fn only_an_offer_of_acme_tls_is_a_challenge() {
        let cases: &[(Option<&[&[u8]]>, bool)] = &[
            (None, false),
            (Some(&[]), false),
            (Some(&[b"h2", b"http/1.1"]), false),
            (Some(&[b"acme-tls/1"]), true),
            (Some(&[b"h2", b"acme-tls/1"]), true),
            (Some(&[b"acme-tls/2"]), false),
        ];
        for (offer, want) in cases {
            let alpn = offer.map(|o| o.iter().copied());
            assert_eq!(offers_acme_tls(alpn), *want, "{offer:?}");
        }
    }
}
