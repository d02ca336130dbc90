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
pub(super) fn listeners(problems: &mut Problems, root: &Section<'_>) -> Option<Vec<Listener>> {
    let example = "[{address: \"127.0.0.1:8080\"}]";
    let missing = format!("listeners: {example}");
    let what = "at least one listener";
    let list = root.required_sections(problems, "listeners", what, example, &missing)?;
    // Addresses, and certificate names: each unique across listeners.
    let mut addresses = Seen::default();
    let mut cert_names = Seen::default();
    // Whether some listener serves plain HTTP (where ACME's HTTP-01 is answered).
    let plain_listener = list.value.iter().any(|entry| entry.get("tls").is_none());
    let listeners: Vec<_> = list
        .value
        .into_iter()
        .map(|entry| {
            listener(
                problems,
                entry,
                &mut addresses,
                &mut cert_names,
                plain_listener,
            )
        })
        .collect();
    listeners.into_iter().collect()
}

/// One listener. `None` if anything in it is wrong.
fn listener(
    problems: &mut Problems,
    listener: Section<'_>,
    addresses: &mut Seen<SocketAddr>,
    cert_names: &mut Seen<String>,
    plain_listener: bool,
) -> Option<Listener> {
    let before = problems.errors();
    let name = listener.text(problems, "name", "a name in quotes, such as \"public\"");
    let example = "an address in quotes, such as \"127.0.0.1:8080\"";
    let address = listener.wanted(problems, "address", example, Section::text);
    let tls = listener.section(problems, "tls", "a mapping with certificates");
    let has_tls = tls.is_some();
    let tls = tls.and_then(|tls| self::tls(problems, tls, cert_names, plain_listener));
    let redirect_to_https = self::redirect(problems, &listener, has_tls);
    let example = "a directory path in quotes, such as \"/var/www/letsencrypt\"";
    let acme_webroot = listener.text(problems, "acme_webroot", example);
    let acme_webroot = acme_webroot
        .and_then(|webroot| problems.ok(&webroot.key, crate::acme::webroot(&webroot.value)));
    let response_headers = self::response_headers(problems, &listener, has_tls);
    let http3 = super::http3::http3(problems, &listener, has_tls);
    let at = listener.path().to_owned();
    listener.finish(problems);
    let written = problems.needed(address, LISTEN_EXAMPLE)?;
    let address = listen_address(problems, &written)?;
    if let Some(first) = addresses.first_use(address, &at) {
        let message =
            format!("\"{address}\" is also {first}'s address; give each listener its own");
        return problems.fail(&written.key, message);
    }
    // An empty name is an error, but the listener is still valid for the checks that follow.
    let valid = problems.errors() == before;
    let name = non_empty(problems, name, "a name").unwrap_or_else(|| address.to_string());
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
fn redirect(problems: &mut Problems, listener: &Section<'_>, has_tls: bool) -> Option<u16> {
    let redirect = listener
        .flag(problems, "redirect_to_https")
        .filter(|flag| flag.value);
    let https_port = listener.whole(problems, "https_port", "a port number such as 443");
    let port = https_port.map_or(Some(443), |written| {
        let port = problems.within(&written, 1..=65535, "a port from 1 to 65535, such as 443");
        if port.is_some() && redirect.is_none() {
            problems.warning(&written.key, "does nothing without redirect_to_https: true");
        }
        port
    });
    match redirect {
        Some(flag) if has_tls => problems.fail(
            &flag.key,
            "is set on a TLS listener, which would redirect HTTPS to itself; set it on the plain-HTTP listener (port 80) instead",
        ),
        Some(_) => port.map(|port| port as u16),
        None => None,
    }
}

/// `response_headers`: valid names and values; HSTS on plain HTTP is a warning.
fn response_headers(
    problems: &mut Problems,
    listener: &Section<'_>,
    has_tls: bool,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let example = "{Strict-Transport-Security: \"max-age=31536000\", X-Frame-Options: deny}";
    let (name, value) = ("X-Frame-Options", "\"max-age=31536000\"");
    let written = listener.text_map(problems, "response_headers", example, name, value);
    let mut out = Vec::new();
    for header in written.map(|map| map.value).unwrap_or_default() {
        let (name, value) = header.value;
        let Ok(header_name) = http::HeaderName::from_bytes(name.as_bytes()) else {
            let message =
                format!("\"{name}\" is not a header name; write a name such as X-Frame-Options");
            problems.error(&header.key, message);
            continue;
        };
        let Ok(header_value) = http::HeaderValue::from_str(&value) else {
            let found = format!("\"{value}\", which cannot be a header value");
            problems.found(&header.key, found, "printable ASCII text");
            continue;
        };
        if !has_tls && header_name == http::header::STRICT_TRANSPORT_SECURITY {
            problems.warning(&header.key, "browsers ignore Strict-Transport-Security on plain HTTP; set it on the TLS listener");
        }
        out.push((header_name, header_value));
    }
    out
}

/// `listeners[].tls`. `None` if anything in it is wrong.
/// `plain_listener`: whether some listener serves plain HTTP, where ACME's HTTP-01 is answered.
fn tls(
    problems: &mut Problems,
    tls: Section<'_>,
    cert_names: &mut Seen<String>,
    plain_listener: bool,
) -> Option<ListenerTls> {
    let before = problems.errors();
    let example = "[{cert: \"/etc/letsencrypt/live/NAME/fullchain.pem\", key: \"/etc/letsencrypt/live/NAME/privkey.pem\"}]";
    // With a certificate from ACME, the static ones are optional.
    let acme = tls.section(problems, "acme", "a mapping with domains, such as {domains: [\"stats.example.com\"], contact: \"mailto:admin@example.com\"}");
    let list = match acme.is_some() {
        false => tls
            .required_sections(problems, "certificates", "at least one", example, example)
            .map(|list| list.value),
        true => Some(
            tls.sections(problems, "certificates", example)
                .map_or_else(Vec::new, |list| list.value),
        ),
    };
    let mut sni_owners = Seen::default();
    let certificates = list.map(|list| {
        let certificates = list.into_iter();
        let certificates = certificates
            .filter_map(|section| certificate(problems, section, cert_names, &mut sni_owners));
        certificates.collect::<Vec<_>>()
    });
    let example = "the name of one of the certificates";
    let default_certificate = tls.text(problems, "default_certificate", example);
    let watch = tls.flag(problems, "watch").is_some_and(|flag| flag.value);
    let interval = tls.duration(
        problems,
        "watch_interval_seconds",
        ListenerTls::WATCH_INTERVAL,
    );
    tls.finish(problems);
    let acme = acme.and_then(|acme| super::acme::acme(problems, acme, plain_listener, cert_names));
    let certificates = certificates?;
    let default_certificate = default_certificate.map_or(0, |written| {
        let valid = problems.errors() == before;
        default_index(problems, &certificates, written, valid)
    });
    let watch_interval = match (watch, interval) {
        (true, interval) => Some(seconds(
            problems,
            interval,
            ListenerTls::WATCH_INTERVAL,
            86400.0,
        )),
        (false, Some(interval)) => {
            problems.warning(&interval.key, "does nothing without watch: true");
            None
        }
        (false, None) => None,
    };
    let valid = problems.errors() == before;
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
    problems: &mut Problems,
    certificates: &[CertificateSettings],
    written: Keyed<String>,
    valid: bool,
) -> usize {
    if let Some(i) = certificates
        .iter()
        .position(|certificate| certificate.name == written.value)
    {
        return i;
    }
    if valid {
        let names: Vec<String> = certificates
            .iter()
            .map(|certificate| format!("\"{}\"", certificate.name))
            .collect();
        let found = format!(
            "\"{}\", which is not a certificate of this listener",
            written.value
        );
        problems.found(&written.key, found, format!("one of {}", names.join(", ")));
    }
    0
}

/// One certificate: its files loaded and checked now. `None` if it cannot be used at all.
fn certificate(
    problems: &mut Problems,
    certificate: Section<'_>,
    cert_names: &mut Seen<String>,
    sni_owners: &mut Seen<String>,
) -> Option<CertificateSettings> {
    let at = certificate.path().to_owned();
    let written_name = certificate.text(problems, "name", "a name in quotes, such as \"stats\"");
    let example = "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/fullchain.pem\"";
    let cert = certificate.wanted(problems, "cert", example, Section::text);
    let example = "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/privkey.pem\"";
    let key = certificate.wanted(problems, "key", example, Section::text);
    let written_names = certificate.texts(problems, "server_names", "[\"stats.example.com\"]");
    certificate.finish(problems);
    let write =
        "the path of a PEM certificate chain, such as /etc/letsencrypt/live/NAME/fullchain.pem";
    let cert = problems.needed(cert, write);
    let write = "the path of the PEM private key, such as /etc/letsencrypt/live/NAME/privkey.pem";
    let (Some(cert), Some(key)) = (cert, problems.needed(key, write)) else {
        return None;
    };
    let cert_file = PathBuf::from(cert.value.trim());
    let key_file = PathBuf::from(key.value.trim());
    let loaded = certs::load(&cert_file, &key_file).map_err(|error| {
        let at = if error.which == Which::Cert {
            &cert
        } else {
            &key
        };
        problems.error(&at.key, error.message);
    });
    let loaded = loaded.ok()?;
    if let Some(warning) = loaded.expired(&cert_file) {
        problems.warning(&cert.key, warning);
    }
    let server_names = written_names.as_ref().map(|list| {
        let covered = |name: &Keyed<String>| match loaded.uncovered(&name.value, &cert_file) {
            None => Some(name.value.trim().to_ascii_lowercase()),
            Some(why) => problems.fail(&name.key, why),
        };
        list.value.iter().filter_map(covered).collect::<Vec<_>>()
    });
    for name in server_names.as_ref().unwrap_or(&loaded.dns_names) {
        if let Some(first) = sni_owners.first_use(name.clone(), &at) {
            let at = written_names.as_ref().map_or(&cert.key, |names| &names.key);
            let message = format!(
                "\"{name}\" is already served by {first}; each server name maps to one certificate"
            );
            problems.error(at, message);
        }
    }
    // The certificate's `name`, or its first DNS name, unique across listeners.
    let name_key = written_name
        .as_ref()
        .map_or(at.clone(), |name| name.key.clone());
    let name = match written_name {
        Some(name) => non_empty(problems, Some(name), "a name such as \"stats\"")?
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
        return problems.fail(&name_key, message);
    }
    Some(CertificateSettings {
        name,
        cert: cert_file,
        key: key_file,
        server_names,
        loaded,
    })
}
