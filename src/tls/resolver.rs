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
    fn build(&self) -> CertStore {
        let entries = self.fixed.iter().chain(&self.managed).cloned().collect();
        CertStore::new(entries, self.default)
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
