//! Choosing a certificate by SNI, and swapping certificates without touching open connections.
//!
//! A [`SniResolver`] holds an immutable [`CertStore`] behind an `ArcSwap`: a handshake reads the
//! current store without locking, and a reload builds a new store and swaps it in. Connections
//! already established keep the certificate they were handshaken with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("store", &self.store.load())
            .finish()
    }
}

impl SniResolver {
    /// A resolver serving `store`.
    pub fn new(store: CertStore) -> SniResolver {
        SniResolver {
            store: ArcSwap::from_pointee(store),
        }
    }

    /// The current store.
    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }

    /// Replaces the store: new handshakes use it, open connections are untouched.
    pub fn replace(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store
            .load()
            .select(hello.server_name())
            .map(|e| e.certified.clone())
    }
}
