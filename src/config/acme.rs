//! `listeners[].tls.acme`: a certificate the gateway obtains and renews itself, and the
//! top-level `state_directory` where it keeps it. The rules about each value are
//! [`crate::acme::settings`]'s; nothing here contacts the CA.

use std::path::PathBuf;

use super::section::{Problems, Section, Seen};
use crate::acme::settings::{self as rules, AcmeSettings, ChallengeKind, ExternalAccount};

/// Reads `tls.acme`. `plain_listener`: whether the config has a plain-HTTP listener (where
/// HTTP-01 is answered); `names` holds the certificate names used so far, across listeners.
pub(super) fn acme(
    r: &mut Problems,
    a: Section<'_>,
    plain_listener: bool,
    names: &mut Seen<String>,
) -> Option<AcmeSettings> {
    let before = r.errors();
    let at = a.path().to_owned();
    let domains = a.wanted(r, "domains", "[\"stats.example.com\"]", Section::texts);
    let example = "a mailto URL such as \"mailto:admin@example.com\", or a list of them";
    let contact = a.text_or_texts(r, "contact", example);
    let example = format!("a URL in quotes, such as \"{}\"", rules::LETS_ENCRYPT);
    let directory = a.text(r, "directory", &example);
    let example = "a file path in quotes, such as \"/etc/ackee-gateway/acme-ca.pem\"";
    let directory_ca = a.text(r, "directory_ca", example);
    let challenge = a.text(r, "challenge", "http-01 or tls-alpn-01");
    let example = "a mapping with key_id and hmac_key, as the CA gave them";
    let binding = a.section(r, "external_account", example);
    let name = a.wanted(
        r,
        "name",
        "a name in quotes, such as \"stats\"",
        Section::text,
    );
    a.finish(r);

    let write = "the names the certificate is for, such as [\"stats.example.com\"]";
    let domains = r.needed(domains, write)?;
    if domains.value.is_empty() {
        return r.fail(&domains.key, format!("is empty; write {write}"));
    }
    let mut seen = Seen::default();
    let mut valid_domains = Vec::new();
    for d in &domains.value {
        let Some(domain) = r.ok(&d.key, rules::domain(&d.value)) else {
            continue;
        };
        if let Some(first) = seen.first_use(domain.clone(), &d.key) {
            r.warning(&d.key, format!("\"{domain}\" is also {first}; remove one"));
            continue;
        }
        valid_domains.push(domain);
    }
    let contact = contact.map_or_else(Vec::new, |c| {
        let list = c.value.iter();
        let list = list.filter_map(|m| r.ok(&m.key, rules::contact(&m.value)));
        list.collect()
    });
    let directory = match directory {
        Some(d) => r.ok(&d.key, rules::directory(&d.value)),
        None => Some(rules::LETS_ENCRYPT.to_owned()),
    };
    let directory_ca = directory_ca.and_then(|c| r.ok(&c.key, rules::directory_ca(&c.value)));
    let choices = [
        ("http-01", ChallengeKind::Http01),
        ("tls-alpn-01", ChallengeKind::TlsAlpn01),
    ];
    let challenge = match challenge {
        Some(c) => {
            let kind = r.choice(&c, &choices);
            if kind == Some(ChallengeKind::Http01) && !plain_listener {
                r.error(&c.key, "is http-01, but no listener serves plain HTTP, where the CA asks for it; add a listener on port 80 without tls (redirect_to_https: true still answers challenges), or write tls-alpn-01");
            }
            kind
        }
        // HTTP-01 where a plain listener can answer it, else TLS-ALPN-01 on this listener.
        None if plain_listener => Some(ChallengeKind::Http01),
        None => Some(ChallengeKind::TlsAlpn01),
    };
    let external_account = binding.and_then(|b| external_account(r, b));
    let name_key = name.key.clone();
    let name = match name.written() {
        Some(n) => r.ok(&n.key, rules::name(&n.value)),
        None => valid_domains.first().cloned(),
    };
    if let Some(n) = &name
        && let Some(first) = names.first_use(n.clone(), &at)
    {
        let message =
            format!("\"{n}\" is also the name of {first}; give each certificate its own name");
        r.error(&name_key, message);
    }
    let valid = r.errors() == before;
    valid.then_some(AcmeSettings {
        name: name?,
        domains: valid_domains,
        contact,
        directory: directory?,
        directory_ca,
        challenge: challenge?,
        external_account,
    })
}

/// `external_account`: the key identifier and MAC key the CA gave.
fn external_account(r: &mut Problems, b: Section<'_>) -> Option<ExternalAccount> {
    let example = "the key identifier in quotes, as the CA gave it";
    let key_id = b.wanted(r, "key_id", example, Section::text);
    let example = "the MAC key in quotes, as the CA gave it";
    let hmac_key = b.wanted(r, "hmac_key", example, Section::text);
    b.finish(r);
    let write = "the key identifier the CA gave (EAB KID)";
    let key_id = r.needed(key_id, write);
    let write = "the base64url MAC key the CA gave (EAB HMAC key)";
    let hmac_key = r.needed(hmac_key, write);
    let hmac_key = hmac_key.and_then(|k| r.ok(&k.key, rules::hmac_key(&k.value)));
    Some(ExternalAccount {
        key_id: key_id?.value.trim().to_owned(),
        hmac_key: hmac_key?,
    })
}

/// `state_directory`: where ACME state is kept. Checked (writable, or creatable) only when a
/// listener has `tls.acme`, which is the only user.
pub(super) fn state_directory(r: &mut Problems, root: &Section<'_>, used: bool) -> PathBuf {
    let example = "a directory path in quotes, such as \"/var/lib/ackee-gateway\"";
    let written = root.wanted(r, "state_directory", example, Section::text);
    let key = written.key;
    let dir = written.value.map_or_else(
        || PathBuf::from(rules::STATE_DIRECTORY),
        |w| PathBuf::from(w.trim()),
    );
    if used {
        r.ok(&key, rules::state_directory(&dir));
    }
    dir
}
