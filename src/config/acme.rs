//! `listeners[].tls.acme`: a certificate the gateway obtains and renews itself, and the
//! top-level `state_directory` where it keeps it. The rules about each value are
//! [`crate::acme::settings`]'s; nothing here contacts the CA.

use std::path::PathBuf;

use super::section::{Problems, Section, Seen};
use crate::acme::settings::{self as rules, AcmeSettings, ChallengeKind, ExternalAccount};

/// Reads `tls.acme`. `plain_listener`: whether the config has a plain-HTTP listener (where
/// HTTP-01 is answered); `names` holds the certificate names used so far, across listeners.
pub(super) fn acme(
    problems: &mut Problems,
    acme: Section<'_>,
    plain_listener: bool,
    names: &mut Seen<String>,
) -> Option<AcmeSettings> {
    let before = problems.errors();
    let at = acme.path().to_owned();
    let domains = acme.wanted(
        problems,
        "domains",
        "[\"stats.example.com\"]",
        Section::texts,
    );
    let example = "a mailto URL such as \"mailto:admin@example.com\", or a list of them";
    let contact = acme.text_or_texts(problems, "contact", example);
    let example = format!("a URL in quotes, such as \"{}\"", rules::LETS_ENCRYPT);
    let directory = acme.text(problems, "directory", &example);
    let example = "a file path in quotes, such as \"/etc/ackee-gateway/acme-ca.pem\"";
    let directory_ca = acme.text(problems, "directory_ca", example);
    let challenge = acme.text(problems, "challenge", "http-01 or tls-alpn-01");
    let example = "a mapping with key_id and hmac_key, as the CA gave them";
    let binding = acme.section(problems, "external_account", example);
    let name = acme.wanted(
        problems,
        "name",
        "a name in quotes, such as \"stats\"",
        Section::text,
    );
    acme.finish(problems);

    let write = "the names the certificate is for, such as [\"stats.example.com\"]";
    let domains = problems.needed(domains, write)?;
    if domains.value.is_empty() {
        return problems.fail(&domains.key, format!("is empty; write {write}"));
    }
    let mut seen = Seen::default();
    let mut valid_domains = Vec::new();
    for written in &domains.value {
        let Some(domain) = problems.ok(&written.key, rules::domain(&written.value)) else {
            continue;
        };
        if let Some(first) = seen.first_use(domain.clone(), &written.key) {
            problems.warning(
                &written.key,
                format!("\"{domain}\" is also {first}; remove one"),
            );
            continue;
        }
        valid_domains.push(domain);
    }
    let contact = contact.map_or_else(Vec::new, |written| {
        let list = written.value.iter();
        let list =
            list.filter_map(|mailto| problems.ok(&mailto.key, rules::contact(&mailto.value)));
        list.collect()
    });
    let directory = match directory {
        Some(written) => problems.ok(&written.key, rules::directory(&written.value)),
        None => Some(rules::LETS_ENCRYPT.to_owned()),
    };
    let directory_ca = directory_ca
        .and_then(|written| problems.ok(&written.key, rules::directory_ca(&written.value)));
    let choices = [
        ("http-01", ChallengeKind::Http01),
        ("tls-alpn-01", ChallengeKind::TlsAlpn01),
    ];
    let challenge = match challenge {
        Some(written) => {
            let kind = problems.choice(&written, &choices);
            if kind == Some(ChallengeKind::Http01) && !plain_listener {
                problems.error(&written.key, "is http-01, but no listener serves plain HTTP, where the CA asks for it; add a listener on port 80 without tls (redirect_to_https: true still answers challenges), or write tls-alpn-01");
            }
            kind
        }
        // HTTP-01 where a plain listener can answer it, else TLS-ALPN-01 on this listener.
        None if plain_listener => Some(ChallengeKind::Http01),
        None => Some(ChallengeKind::TlsAlpn01),
    };
    let external_account = binding.and_then(|binding| external_account(problems, binding));
    let name_key = name.key.clone();
    let name = match name.written() {
        Some(name) => problems.ok(&name.key, rules::name(&name.value)),
        None => valid_domains.first().cloned(),
    };
    if let Some(name) = &name
        && let Some(first) = names.first_use(name.clone(), &at)
    {
        let message =
            format!("\"{name}\" is also the name of {first}; give each certificate its own name");
        problems.error(&name_key, message);
    }
    let valid = problems.errors() == before;
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
fn external_account(problems: &mut Problems, binding: Section<'_>) -> Option<ExternalAccount> {
    let example = "the key identifier in quotes, as the CA gave it";
    let key_id = binding.wanted(problems, "key_id", example, Section::text);
    let example = "the MAC key in quotes, as the CA gave it";
    let hmac_key = binding.wanted(problems, "hmac_key", example, Section::text);
    binding.finish(problems);
    let write = "the key identifier the CA gave (EAB KID)";
    let key_id = problems.needed(key_id, write);
    let write = "the base64url MAC key the CA gave (EAB HMAC key)";
    let hmac_key = problems.needed(hmac_key, write);
    let hmac_key =
        hmac_key.and_then(|written| problems.ok(&written.key, rules::hmac_key(&written.value)));
    Some(ExternalAccount {
        key_id: key_id?.value.trim().to_owned(),
        hmac_key: hmac_key?,
    })
}

/// `state_directory`: where ACME state is kept. Checked (writable, or creatable) only when a
/// listener has `tls.acme`, which is the only user.
pub(super) fn state_directory(problems: &mut Problems, root: &Section<'_>, used: bool) -> PathBuf {
    let example = "a directory path in quotes, such as \"/var/lib/ackee-gateway\"";
    let written = root.wanted(problems, "state_directory", example, Section::text);
    let key = written.key;
    let dir = written.value.map_or_else(
        || PathBuf::from(rules::STATE_DIRECTORY),
        |written| PathBuf::from(written.trim()),
    );
    if used {
        problems.ok(&key, rules::state_directory(&dir));
    }
    dir
}
