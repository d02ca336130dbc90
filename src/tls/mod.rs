//! TLS certificates: loading and checking them ([`certs`]), choosing one by SNI
//! ([`resolver`]), and reloading them on SIGHUP or when their files change ([`Reloader`]).
//!
//! No pingora here; the server wires a [`resolver::SniResolver`] into pingora's rustls
//! listener and calls [`Reloader::reload`] from a background service.

pub mod certs;
pub mod resolver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use log::{error, info};

use crate::config::types::{CertificateSettings, ListenerTls};
use crate::metrics::Metrics;
use resolver::{CertStore, SniResolver, StoreEntry};

/// The server names a certificate is served for: the configured ones, or else its own DNS names.
fn server_names(
    spec: &CertificateSettings,
    loaded: &certs::LoadedCert,
) -> Result<Vec<String>, String> {
    match &spec.server_names {
        None => Ok(loaded.dns_names.clone()),
        Some(names) => {
            if let Some(missing) = names.iter().find(|n| !certs::covers(&loaded.dns_names, n)) {
                return Err(format!(
                    "the certificate in \"{}\" does not cover \"{missing}\" (it covers {})",
                    spec.cert.display(),
                    loaded.dns_names.join(", ")
                ));
            }
            Ok(names.clone())
        }
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

/// What a reload did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Certificates now serving their new files.
    pub reloaded: Vec<String>,
    /// Certificates whose new files could not be used, with the reason; the old one is kept.
    pub failed: Vec<(String, String)>,
}

/// Every TLS listener's certificates, and how to reload them.
pub struct Reloader {
    listeners: Vec<ListenerCerts>,
    metrics: Arc<Metrics>,
}

impl Reloader {
    /// Loads every certificate once. Fails with a message if one cannot be used.
    pub fn new(
        tls: &[ListenerTls],
        metrics: Arc<Metrics>,
    ) -> Result<(Reloader, Vec<Arc<SniResolver>>), String> {
        let mut listeners = Vec::new();
        let mut resolvers = Vec::new();
        for settings in tls {
            let mut entries = Vec::new();
            for spec in &settings.certificates {
                let (entry, not_after) =
                    load_entry(spec).map_err(|e| format!("certificate \"{}\": {e}", spec.name))?;
                metrics.tls_expiry(&spec.name, not_after);
                entries.push(entry);
            }
            let resolver = Arc::new(SniResolver::new(CertStore::new(
                entries,
                settings.default_certificate,
            )));
            resolvers.push(resolver.clone());
            listeners.push(ListenerCerts {
                settings: settings.clone(),
                resolver,
            });
        }
        Ok((Reloader { listeners, metrics }, resolvers))
    }

    /// Whether there is anything to reload.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Re-reads every certificate. A certificate whose files are missing, unreadable or do not
    /// match keeps serving the old one; the failure is logged and counted.
    pub fn reload(&self) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        for l in &self.listeners {
            let current = l.resolver.current();
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
                        summary.reloaded.push(spec.name.clone());
                        entries.push(entry);
                    }
                    Err(why) => {
                        self.metrics.tls_reload(&spec.name, false);
                        error!(
                            "certificate \"{}\" was not reloaded, the old one stays in use: {why}",
                            spec.name
                        );
                        summary.failed.push((spec.name.clone(), why));
                        if let Some(old) = current.entries().get(i) {
                            entries.push(old.clone());
                        }
                    }
                }
            }
            l.resolver
                .replace(CertStore::new(entries, l.settings.default_certificate));
        }
        summary
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
