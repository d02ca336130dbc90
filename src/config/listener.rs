//! `listeners`: each visitor-facing socket, with its TLS certificates (loaded and checked now by
//! `certs`, so `-t` finds a bad key or an expired certificate), the HTTPS redirect, the ACME
//! webroot, the response headers and HTTP/3 (`http3.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::section::{Keyed, Problems, Section, Seen};
use super::types::{CertificateSettings, Listener, ListenerTls};
use super::values::{LISTEN_EXAMPLE, listen_address, non_empty, seconds};
use crate::certs::{self, Which};

/// Reads and validates `listeners`. `None` if it is missing, empty, or anything in it is wrong.
pub(super) fn listeners(r: &mut Problems, root: &Section<'_>) -> Option<Vec<Listener>> {
    let example = "[{address: \"127.0.0.1:8080\"}]";
    let missing = format!("listeners: {example}");
    let what = "at least one listener";
    let list = root.required_sections(r, "listeners", what, example, &missing)?;
    // Addresses, and certificate names: each unique across listeners.
    let mut addresses = Seen::default();
    let mut cert_names = Seen::default();
    // Whether some listener serves plain HTTP (where ACME's HTTP-01 is answered).
    let plain_listener = list.value.iter().any(|e| e.get("tls").is_none());
    let listeners: Vec<_> = list
        .value
        .into_iter()
        .map(|e| listener(r, e, &mut addresses, &mut cert_names, plain_listener))
        .collect();
    listeners.into_iter().collect()
}

/// One listener. `None` if anything in it is wrong.
fn listener(
    r: &mut Problems,
    e: Section<'_>,
    addresses: &mut Seen<SocketAddr>,
    cert_names: &mut Seen<String>,
    plain_listener: bool,
) -> Option<Listener> {
    let before = r.errors();
    let name = e.text(r, "name", "a name in quotes, such as \"public\"");
    let example = "an address in quotes, such as \"127.0.0.1:8080\"";
    let address = e.wanted(r, "address", example, Section::text);
    let tls = e.section(r, "tls", "a mapping with certificates");
    let has_tls = tls.is_some();
    let tls = tls.and_then(|t| self::tls(r, t, cert_names, plain_listener));
    let redirect_to_https = self::redirect(r, &e, has_tls);
    let example = "a directory path in quotes, such as \"/var/www/letsencrypt\"";
    let acme_webroot = e.text(r, "acme_webroot", example);
    let acme_webroot = acme_webroot.and_then(|w| r.ok(&w.key, crate::acme::webroot(&w.value)));
    let response_headers = self::response_headers(r, &e, has_tls);
    let http3 = super::http3::http3(r, &e, has_tls);
    let at = e.path().to_owned();
    e.finish(r);
    let addr = r.needed(address, LISTEN_EXAMPLE)?;
    let address = listen_address(r, &addr)?;
    if let Some(first) = addresses.first_use(address, &at) {
        let message =
            format!("\"{address}\" is also {first}'s address; give each listener its own");
        return r.fail(&addr.key, message);
    }
    // An empty name is an error, but the listener is still valid for the checks that follow.
    let valid = r.errors() == before;
    let name = non_empty(r, name, "a name").unwrap_or_else(|| address.to_string());
    valid.then_some(Listener {
        name,
        address,
        tls,
        redirect_to_https,
        acme_webroot,
        response_headers,
        http3,
    })
}

/// `redirect_to_https` and `https_port`: the port to redirect to, only on a plain listener.
fn redirect(r: &mut Problems, e: &Section<'_>, has_tls: bool) -> Option<u16> {
    let redirect = e.flag(r, "redirect_to_https").filter(|k| k.value);
    let https_port = e.whole(r, "https_port", "a port number such as 443");
    let port = https_port.map_or(Some(443), |p| {
        let port = r.within(&p, 1..=65535, "a port from 1 to 65535, such as 443");
        if port.is_some() && redirect.is_none() {
            r.warning(&p.key, "does nothing without redirect_to_https: true");
        }
        port
    });
    match redirect {
        Some(k) if has_tls => r.fail(
            &k.key,
            "is set on a TLS listener, which would redirect HTTPS to itself; set it on the plain-HTTP listener (port 80) instead",
        ),
        Some(_) => port.map(|p| p as u16),
        None => None,
    }
}

/// `response_headers`: valid names and values; HSTS on plain HTTP is a warning.
fn response_headers(
    r: &mut Problems,
    e: &Section<'_>,
    has_tls: bool,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let example = "{Strict-Transport-Security: \"max-age=31536000\", X-Frame-Options: deny}";
    let (name, value) = ("X-Frame-Options", "\"max-age=31536000\"");
    let written = e.text_map(r, "response_headers", example, name, value);
    let mut out = Vec::new();
    for h in written.map(|m| m.value).unwrap_or_default() {
        let (name, value) = h.value;
        let Ok(header_name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            let message =
                format!("\"{name}\" is not a header name; write a name such as X-Frame-Options");
            r.error(&h.key, message);
            continue;
        };
        let Ok(header_value) = http::HeaderValue::from_str(&value) else {
            let found = format!("\"{value}\", which cannot be a header value");
            r.found(&h.key, found, "printable ASCII text");
            continue;
        };
        if !has_tls && header_name == http::header::STRICT_TRANSPORT_SECURITY {
            r.warning(&h.key, "browsers ignore Strict-Transport-Security on plain HTTP; set it on the TLS listener");
        }
        out.push((header_name, header_value));
    }
    out
}

/// `listeners[].tls`. `None` if anything in it is wrong.
/// `plain_listener`: whether some listener serves plain HTTP, where ACME's HTTP-01 is answered.
fn tls(
    r: &mut Problems,
    t: Section<'_>,
    cert_names: &mut Seen<String>,
    plain_listener: bool,
) -> Option<ListenerTls> {
    let before = r.errors();
    let example = "[{cert: \"/etc/letsencrypt/live/NAME/fullchain.pem\", key: \"/etc/letsencrypt/live/NAME/privkey.pem\"}]";
    // With a certificate from ACME, the static ones are optional.
    let acme = t.section(r, "acme", "a mapping with domains, such as {domains: [\"stats.example.com\"], contact: \"mailto:admin@example.com\"}");
    let list = match acme.is_some() {
        false => t
            .required_sections(r, "certificates", "at least one", example, example)
            .map(|l| l.value),
        true => Some(
            t.sections(r, "certificates", example)
                .map_or_else(Vec::new, |l| l.value),
        ),
    };
    let mut sni_owners = Seen::default();
    let certificates = list.map(|list| {
        let certificates = list.into_iter();
        let certificates =
            certificates.filter_map(|c| certificate(r, c, cert_names, &mut sni_owners));
        certificates.collect::<Vec<_>>()
    });
    let example = "the name of one of the certificates";
    let default_certificate = t.text(r, "default_certificate", example);
    let watch = t.flag(r, "watch").is_some_and(|w| w.value);
    let interval = t.duration(r, "watch_interval_seconds", ListenerTls::WATCH_INTERVAL);
    t.finish(r);
    let acme = acme.and_then(|a| super::acme::acme(r, a, plain_listener, cert_names));
    let certificates = certificates?;
    let default_certificate = default_certificate.map_or(0, |d| {
        let valid = r.errors() == before;
        default_index(r, &certificates, d, valid)
    });
    let watch_interval = match (watch, interval) {
        (true, i) => Some(seconds(r, i, ListenerTls::WATCH_INTERVAL, 86400.0)),
        (false, Some(i)) => {
            r.warning(&i.key, "does nothing without watch: true");
            None
        }
        (false, None) => None,
    };
    let valid = r.errors() == before;
    valid.then_some(ListenerTls {
        certificates,
        default_certificate,
        watch_interval,
        acme,
    })
}

/// `default_certificate`: the index of the named certificate. Another name is an error when
/// every certificate was valid (else it may name one that was not).
fn default_index(
    r: &mut Problems,
    certificates: &[CertificateSettings],
    d: Keyed<String>,
    valid: bool,
) -> usize {
    if let Some(i) = certificates.iter().position(|c| c.name == d.value) {
        return i;
    }
    if valid {
        let names: Vec<String> = certificates
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let found = format!(
            "\"{}\", which is not a certificate of this listener",
            d.value
        );
        r.found(&d.key, found, format!("one of {}", names.join(", ")));
    }
    0
}

/// One certificate: its files loaded and checked now. `None` if it cannot be used at all.
fn certificate(
    r: &mut Problems,
    c: Section<'_>,
    cert_names: &mut Seen<String>,
    sni_owners: &mut Seen<String>,
) -> Option<CertificateSettings> {
    let at = c.path().to_owned();
    let written_name = c.text(r, "name", "a name in quotes, such as \"stats\"");
    let example = "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/fullchain.pem\"";
    let cert = c.wanted(r, "cert", example, Section::text);
    let example = "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/privkey.pem\"";
    let key = c.wanted(r, "key", example, Section::text);
    let written_names = c.texts(r, "server_names", "[\"stats.example.com\"]");
    c.finish(r);
    let write =
        "the path of a PEM certificate chain, such as /etc/letsencrypt/live/NAME/fullchain.pem";
    let cert = r.needed(cert, write);
    let write = "the path of the PEM private key, such as /etc/letsencrypt/live/NAME/privkey.pem";
    let (Some(cert), Some(key)) = (cert, r.needed(key, write)) else {
        return None;
    };
    let cert_file = PathBuf::from(cert.value.trim());
    let key_file = PathBuf::from(key.value.trim());
    let loaded = certs::load(&cert_file, &key_file).map_err(|e| {
        let at = if e.which == Which::Cert { &cert } else { &key };
        r.error(&at.key, e.message);
    });
    let loaded = loaded.ok()?;
    if let Some(warning) = loaded.expired(&cert_file) {
        r.warning(&cert.key, warning);
    }
    let server_names = written_names.as_ref().map(|list| {
        let covered = |n: &Keyed<String>| match loaded.uncovered(&n.value, &cert_file) {
            None => Some(n.value.trim().to_ascii_lowercase()),
            Some(why) => r.fail(&n.key, why),
        };
        list.value.iter().filter_map(covered).collect::<Vec<_>>()
    });
    for n in server_names.as_ref().unwrap_or(&loaded.dns_names) {
        if let Some(first) = sni_owners.first_use(n.clone(), &at) {
            let at = written_names.as_ref().map_or(&cert.key, |k| &k.key);
            let message = format!(
                "\"{n}\" is already served by {first}; each server name maps to one certificate"
            );
            r.error(at, message);
        }
    }
    // The certificate's `name`, or its first DNS name, unique across listeners.
    let name_key = written_name.as_ref().map_or(at.clone(), |n| n.key.clone());
    let name = match written_name {
        Some(n) => non_empty(r, Some(n), "a name such as \"stats\"")?
            .trim()
            .to_owned(),
        None => loaded
            .dns_names
            .first()
            .cloned()
            .unwrap_or_else(|| cert.value.trim().to_owned()),
    };
    if let Some(first) = cert_names.first_use(name.clone(), &at) {
        let message =
            format!("\"{name}\" is also the name of {first}; give each certificate its own name");
        return r.fail(&name_key, message);
    }
    Some(CertificateSettings {
        name,
        cert: cert_file,
        key: key_file,
        server_names,
        loaded,
    })
}
