//! TLS certificates: loading and checking them ([`crate::certs`]), choosing one by SNI
//! ([`resolver`]), and reloading them on SIGHUP or when their files change ([`Reloader`]); a
//! TLS listener's settings ([`ListenerTls`]).
//!
//! No pingora here; the server wires a [`resolver::SniResolver`] into pingora's rustls
//! listener and calls [`Reloader::reload`] from a background service.

pub(crate) mod resolver;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info};

use crate::certs;
use crate::metrics::Metrics;
use resolver::{SniResolver, StoreEntry};

/// The TLS side of an HTTPS listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerTls {
    /// The certificates, in config order.
    pub certificates: Vec<CertificateSettings>,
    /// Index of the certificate for clients without SNI or with an unknown name.
    pub default_certificate: usize,
    /// Poll the files this often and reload on change; `None` reloads on SIGHUP only.
    pub watch_interval: Option<Duration>,
    /// A certificate the gateway obtains and renews itself (ACME), served after the static
    /// ones by SNI.
    pub acme: Option<crate::acme::settings::AcmeSettings>,
}

/// One certificate of a TLS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSettings {
    /// Name for metrics and logs.
    pub name: String,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// SNI names to serve it for; `None` means the certificate's own DNS names.
    pub server_names: Option<Vec<String>>,
    /// The chain and key as loaded and checked when the config was: the gateway starts with
    /// these, and reads the files again only to reload them.
    pub loaded: crate::certs::LoadedCert,
}

impl ListenerTls {
    /// Default interval for watching certificate files.
    pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);
}

/// The server names a certificate is served for: the configured ones, each covered by the
/// certificate, or else its own DNS names.
fn server_names(
    spec: &CertificateSettings,
    loaded: &certs::LoadedCert,
) -> Result<Vec<String>, String> {
    let Some(names) = &spec.server_names else {
        return Ok(loaded.dns_names.clone());
    };
    match names.iter().find_map(|n| loaded.uncovered(n, &spec.cert)) {
        Some(why) => Err(why),
        None => Ok(names.clone()),
    }
}

fn load_entry(spec: &CertificateSettings) -> Result<(StoreEntry, i64), String> {
    let loaded = certs::load(&spec.cert, &spec.key).map_err(|e| e.message)?;
    let names = server_names(spec, &loaded)?;
    Ok((
        StoreEntry {
            name: spec.name.clone(),
            certified: loaded.certified,
            server_names: names,
        },
        loaded.not_after,
    ))
}

/// A file's identity for change detection: modification time and size, following symlinks
/// (certbot's `live/` files are symlinks into `archive/`).
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct ListenerCerts {
    settings: ListenerTls,
    resolver: Arc<SniResolver>,
}

/// Every TLS listener's certificates, and how to reload them.
pub struct Reloader {
    listeners: Vec<ListenerCerts>,
    metrics: Arc<Metrics>,
}

impl Reloader {
    /// Serves the certificates loaded with the config, without reading their files again.
    /// Returns each TLS listener's resolver, by the listener's address.
    /// A listener with a managed certificate answers TLS-ALPN-01 challenges from `challenges`.
    pub fn new<'a>(
        listeners: impl IntoIterator<Item = (SocketAddr, &'a ListenerTls)>,
        metrics: Arc<Metrics>,
        challenges: Option<&Arc<crate::acme::challenges::Challenges>>,
    ) -> (Reloader, HashMap<SocketAddr, Arc<SniResolver>>) {
        let mut certs = Vec::new();
        let mut resolvers = HashMap::new();
        for (address, settings) in listeners {
            let mut entries = Vec::new();
            for spec in &settings.certificates {
                metrics.tls_expiry(&spec.name, spec.loaded.not_after);
                entries.push(StoreEntry {
                    name: spec.name.clone(),
                    certified: spec.loaded.certified.clone(),
                    server_names: spec
                        .server_names
                        .clone()
                        .unwrap_or_else(|| spec.loaded.dns_names.clone()),
                });
            }
            let resolver = Arc::new(SniResolver::new(
                entries,
                settings.default_certificate,
                challenges.filter(|_| settings.acme.is_some()).cloned(),
            ));
            resolvers.insert(address, resolver.clone());
            certs.push(ListenerCerts {
                settings: settings.clone(),
                resolver,
            });
        }
        let reloader = Reloader {
            listeners: certs,
            metrics,
        };
        (reloader, resolvers)
    }

    /// Whether there is anything to reload.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Re-reads every certificate. A certificate whose files are missing, unreadable or do not
    /// match keeps serving the old one; the failure is logged and counted.
    pub fn reload(&self) {
        for l in &self.listeners {
            let current = l.resolver.fixed();
            let mut entries = Vec::with_capacity(l.settings.certificates.len());
            for (i, spec) in l.settings.certificates.iter().enumerate() {
                match load_entry(spec) {
                    Ok((entry, not_after)) => {
                        self.metrics.tls_reload(&spec.name, true);
                        self.metrics.tls_expiry(&spec.name, not_after);
                        info!(
                            "certificate \"{}\" reloaded from {}; it expires {}",
                            spec.name,
                            spec.cert.display(),
                            certs::format_utc(not_after)
                        );
                        entries.push(entry);
                    }
                    Err(why) => {
                        self.metrics.tls_reload(&spec.name, false);
                        error!(
                            "certificate \"{}\" was not reloaded, the old one stays in use: {why}",
                            spec.name
                        );
                        if let Some(old) = current.get(i) {
                            entries.push(old.clone());
                        }
                    }
                }
            }
            l.resolver.replace(entries, l.settings.default_certificate);
        }
    }

    /// The stamps of every certificate and key file, to notice changes.
    pub fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.files().iter().map(|p| stamp(p)).collect()
    }

    fn files(&self) -> Vec<PathBuf> {
        self.listeners
            .iter()
            .flat_map(|l| l.settings.certificates.iter())
            .flat_map(|c| [c.cert.clone(), c.key.clone()])
            .collect()
    }

    /// The shortest watch interval of any listener, if any listener watches its files.
    pub fn watch_interval(&self) -> Option<std::time::Duration> {
        self.listeners
            .iter()
            .filter_map(|l| l.settings.watch_interval)
            .min()
    }
}
