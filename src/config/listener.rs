//! Validating one `listeners` entry's extras: TLS certificates (read and checked here, so `-t`
//! finds a bad key or an expired certificate), the HTTPS redirect, the ACME webroot and the
//! response headers.

use std::collections::HashMap;
use std::path::PathBuf;

use super::file::{FileCertificate, FileListener, FileTls};
use super::reader::{Keyed, Problems};
use super::types::{CertificateSettings, ListenerTls};
use crate::tls::certs;

/// The extras of one listener, validated.
pub struct Extras {
    /// TLS, if configured.
    pub tls: Option<ListenerTls>,
    /// The HTTPS port to redirect to, if redirecting.
    pub redirect_to_https: Option<u16>,
    /// The ACME webroot, canonicalised.
    pub acme_webroot: Option<PathBuf>,
    /// Response headers to add.
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Certificate names seen so far across all listeners: name to key path.
pub type CertNames = HashMap<String, String>;

/// Validates a listener's extras. Returns `None` if any of them is in error.
pub fn extras(
    r: &mut Problems,
    l: &mut FileListener,
    cert_names: &mut CertNames,
    now: i64,
) -> Option<Extras> {
    let mut ok = true;
    let has_tls = l.tls.is_some();
    let tls = match l.tls.take() {
        None => None,
        Some(t) => {
            let v = tls(r, t, cert_names, now);
            ok &= v.is_some();
            v
        }
    };

    let redirect = l.redirect_to_https.take().filter(|k| k.value);
    let https_port = match l.https_port.take() {
        None => 443,
        Some(p) => match u16::try_from(p.value) {
            Ok(port) if port != 0 => {
                if redirect.is_none() {
                    r.warning(&p.key, "does nothing without redirect_to_https: true");
                }
                port
            }
            _ => {
                r.error(
                    &p.key,
                    format!(
                        "found {}; write a port from 1 to 65535, such as 443",
                        p.value
                    ),
                );
                ok = false;
                443
            }
        },
    };
    let redirect_to_https = match redirect {
        Some(k) if has_tls => {
            r.error(
                &k.key,
                "is set on a TLS listener, which would redirect HTTPS to itself; set it on the plain-HTTP listener (port 80) instead",
            );
            ok = false;
            None
        }
        Some(_) => Some(https_port),
        None => None,
    };

    let acme_webroot = match l.acme_webroot.take() {
        None => None,
        Some(w) => match std::fs::canonicalize(w.value.trim()) {
            Ok(p) if p.is_dir() => Some(p),
            Ok(_) => {
                r.error(&w.key, format!("\"{}\" is not a directory; write the directory certbot's --webroot-path uses", w.value));
                ok = false;
                None
            }
            Err(e) => {
                r.error(
                    &w.key,
                    format!(
                        "\"{}\" cannot be used ({e}); create it (mkdir -p {}) or write the directory certbot's --webroot-path uses",
                        w.value, w.value
                    ),
                );
                ok = false;
                None
            }
        },
    };

    let mut response_headers = Vec::new();
    for h in l
        .response_headers
        .take()
        .map(|m| m.value)
        .unwrap_or_default()
    {
        let (name, value) = h.value;
        let Ok(header_name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            r.error(
                &h.key,
                format!("\"{name}\" is not a header name; write a name such as X-Frame-Options"),
            );
            ok = false;
            continue;
        };
        let Ok(header_value) = http::HeaderValue::from_str(&value) else {
            r.error(
                &h.key,
                format!(
                    "found \"{value}\", which cannot be a header value; write printable ASCII text"
                ),
            );
            ok = false;
            continue;
        };
        if !has_tls && header_name == http::header::STRICT_TRANSPORT_SECURITY {
            r.warning(&h.key, "browsers ignore Strict-Transport-Security on plain HTTP; set it on the TLS listener");
        }
        response_headers.push((header_name, header_value));
    }

    ok.then_some(Extras {
        tls,
        redirect_to_https,
        acme_webroot,
        response_headers,
    })
}

fn tls(r: &mut Problems, t: FileTls, cert_names: &mut CertNames, now: i64) -> Option<ListenerTls> {
    let example = "[{cert: \"/etc/letsencrypt/live/NAME/fullchain.pem\", key: \"/etc/letsencrypt/live/NAME/privkey.pem\"}]";
    let list = match t.certificates {
        None => {
            r.error(
                &format!("{}.certificates", t.key),
                format!("missing; write at least one, such as {example}"),
            );
            return None;
        }
        Some(l) if l.value.is_empty() => {
            r.error(
                &l.key,
                format!("is empty; write at least one, such as {example}"),
            );
            return None;
        }
        Some(l) => l.value,
    };
    let mut ok = true;
    let mut certificates = Vec::new();
    let mut sni_owner: HashMap<String, String> = HashMap::new();
    for c in list {
        match certificate(r, c, cert_names, &mut sni_owner, now) {
            Some(cert) => certificates.push(cert),
            None => ok = false,
        }
    }
    let default_certificate = match t.default_certificate {
        None => 0,
        Some(d) => match certificates.iter().position(|c| c.name == d.value) {
            Some(i) => i,
            None => {
                if ok {
                    let names: Vec<String> = certificates
                        .iter()
                        .map(|c| format!("\"{}\"", c.name))
                        .collect();
                    r.error(
                        &d.key,
                        format!("found \"{}\", which is not a certificate of this listener; write one of {}", d.value, names.join(", ")),
                    );
                }
                ok = false;
                0
            }
        },
    };
    let watch_interval = match (t.watch, t.watch_interval_seconds) {
        (Some(w), Some(i)) if w.value => {
            let d = super::validate::seconds(r, Some(i), ListenerTls::WATCH_INTERVAL, 86400.0);
            ok &= d.is_some();
            d
        }
        (Some(w), None) if w.value => Some(ListenerTls::WATCH_INTERVAL),
        (_, Some(i)) => {
            r.warning(&i.key, "does nothing without watch: true");
            None
        }
        _ => None,
    };
    ok.then_some(ListenerTls {
        certificates,
        default_certificate,
        watch_interval,
    })
}

fn certificate(
    r: &mut Problems,
    c: FileCertificate,
    cert_names: &mut CertNames,
    sni_owner: &mut HashMap<String, String>,
    now: i64,
) -> Option<CertificateSettings> {
    let cert_key = format!("{}.cert", c.key);
    let key_key = format!("{}.key", c.key);
    let (Some(cert), Some(key)) = (&c.cert, &c.key_file) else {
        if c.cert.is_none() {
            r.error(&cert_key, "missing; write the path of a PEM certificate chain, such as /etc/letsencrypt/live/NAME/fullchain.pem");
        }
        if c.key_file.is_none() {
            r.error(&key_key, "missing; write the path of the PEM private key, such as /etc/letsencrypt/live/NAME/privkey.pem");
        }
        return None;
    };
    let cert_path = PathBuf::from(cert.value.trim());
    let key_path = PathBuf::from(key.value.trim());
    let loaded = match certs::load(&cert_path, &key_path) {
        Ok(l) => l,
        Err(e) => {
            let at = match e.which {
                certs::Which::Cert => &cert.key,
                certs::Which::Key => &key.key,
            };
            r.error(at, e.message);
            return None;
        }
    };
    if loaded.not_after < now {
        r.warning(
            &cert.key,
            format!(
                "\"{}\" expired on {}; browsers will refuse it until it is renewed (certbot renew)",
                cert_path.display(),
                certs::format_utc(loaded.not_after)
            ),
        );
    }

    let mut ok = true;
    let server_names = match &c.server_names {
        None => None,
        Some(list) => {
            let mut names = Vec::new();
            for n in &list.value {
                let name = n.value.trim().to_ascii_lowercase();
                if !certs::covers(&loaded.dns_names, &name) {
                    let covered = if loaded.dns_names.is_empty() {
                        "no DNS names".to_owned()
                    } else {
                        loaded.dns_names.join(", ")
                    };
                    r.error(
                        &n.key,
                        format!(
                            "\"{}\" is not covered by the certificate in \"{}\" (it covers {covered}); remove it, or use a certificate issued for that name",
                            n.value,
                            cert_path.display()
                        ),
                    );
                    ok = false;
                    continue;
                }
                names.push(name);
            }
            Some(names)
        }
    };
    for n in server_names.as_ref().unwrap_or(&loaded.dns_names) {
        if let Some(first) = sni_owner.get(n) {
            let at = c.server_names.as_ref().map_or(&cert.key, |k| &k.key);
            r.error(
                at,
                format!(
                    "\"{n}\" is already served by {first}; each server name maps to one certificate"
                ),
            );
            ok = false;
        } else {
            sni_owner.insert(n.clone(), c.key.clone());
        }
    }

    let name = match &c.name {
        Some(Keyed { key, value }) if value.trim().is_empty() => {
            r.error(
                key,
                "is empty; write a name such as \"stats\", or leave the key out",
            );
            return None;
        }
        Some(n) => n.value.trim().to_owned(),
        None => loaded
            .dns_names
            .first()
            .cloned()
            .unwrap_or_else(|| cert_path.display().to_string()),
    };
    if let Some(first) = cert_names.get(&name) {
        let at = c.name.as_ref().map_or(c.key.clone(), |n| n.key.clone());
        r.error(
            &at,
            format!("\"{name}\" is also the name of {first}; give each certificate its own name"),
        );
        return None;
    }
    cert_names.insert(name.clone(), c.key.clone());

    ok.then_some(CertificateSettings {
        name,
        cert: cert_path,
        key: key_path,
        server_names,
        not_after: loaded.not_after,
    })
}
