//! A managed certificate's status, kept in the state directory by the gateway that renews it,
//! and `ackee-gateway certificates`, which shows it for every managed certificate of a config:
//! names, issuer, expiry, next renewal and last error. It reads the state directory only, so it
//! works whether or not the gateway runs, and contacts no CA.

use super::settings::AcmeSettings;
use super::store::{Store, Unusable};
use crate::certs::format_utc;

pub use super::record::{Problem, Status};

/// The lines `ackee-gateway certificates` prints for one managed certificate.
pub fn describe(store: &Store, settings: &AcmeSettings, now: i64) -> Vec<String> {
    let dir = store.certificate(&settings.name);
    let mut out = vec![format!(
        "certificate \"{}\": {} from {} over {}",
        settings.name,
        settings.domains.join(", "),
        settings.directory,
        settings.challenge.as_str()
    )];
    match dir.load(settings) {
        Ok(stored) => {
            let left = (stored.loaded.not_after - now) / 86_400;
            out.push(format!("  issuer:       {}", stored.issuer));
            out.push(format!(
                "  expires:      {} ({})",
                format_utc(stored.loaded.not_after),
                if stored.loaded.not_after < now {
                    "EXPIRED".to_owned()
                } else {
                    format!("in {left} days")
                }
            ));
            out.push(format!("  stored in:    {}", dir.pem().display()));
        }
        Err(Unusable::Missing) => out.push("  none yet: the gateway orders it when it runs".into()),
        Err(why) => out.push(format!("  not usable: {why}; the gateway orders a new one")),
    }
    let status = dir.status();
    match status.as_ref().map(|s| s.next_attempt) {
        Some(t) if t > 0 => out.push(format!("  next renewal: {}", format_utc(t))),
        _ => out.push("  next renewal: when the gateway starts".into()),
    }
    match status
        .as_ref()
        .and_then(|s| s.last_error.as_ref().map(|e| (s, e)))
    {
        Some((s, e)) => out.push(format!(
            "  last error:   {}{}, {} failure(s) in a row",
            s.last_error_at
                .map(|t| format!("{}: ", format_utc(t)))
                .unwrap_or_default(),
            e,
            s.failures
        )),
        None => out.push("  last error:   none".into()),
    }
    out
}

const USAGE: &str = "\
usage: ackee-gateway certificates [-c FILE]

Shows each certificate the gateway obtains itself (listeners[].tls.acme in FILE, default
/etc/ackee-gateway/ackee-gateway.yaml): its names, issuer, expiry, next renewal and last
error, from the state directory. It contacts no CA and works whether or not the gateway runs.
Exit 0 when every one is there and its last order did not fail, 1 otherwise, 2 on a usage or
config error.
";

/// `ackee-gateway certificates`: prints [`describe`] for every managed certificate of a
/// config. Returns the exit code.
pub fn cli(args: &[String]) -> u8 {
    let mut conf = "/etc/ackee-gateway/ackee-gateway.yaml".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" | "--conf" => match it.next() {
                Some(f) => conf = f.clone(),
                None => {
                    eprint!("ackee-gateway certificates: {a} needs a file name\n\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            other => {
                eprint!("ackee-gateway certificates: unknown argument \"{other}\"\n\n{USAGE}");
                return 2;
            }
        }
    }
    let env = std::env::var(crate::config::ENV_ALLOW_ORIGIN).ok();
    let config = match crate::config::load(&conf, env.as_deref()) {
        Ok(l) => l.config,
        Err(diags) => {
            eprint!("{diags}");
            return 2;
        }
    };
    let store = Store::new(&config.state_directory);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let managed: Vec<&AcmeSettings> = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref()?.acme.as_ref())
        .collect();
    if managed.is_empty() {
        println!("{conf}: no listener has tls.acme; the gateway obtains no certificate itself");
        return 0;
    }
    let mut all_good = true;
    for settings in managed {
        for line in describe(&store, settings, now) {
            println!("{line}");
        }
        let dir = store.certificate(&settings.name);
        let there = dir.load(settings).is_ok_and(|s| s.loaded.not_after > now);
        let failing = dir.status().is_some_and(|s| s.last_error.is_some());
        all_good &= there && !failing;
    }
    u8::from(!all_good)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::settings::ChallengeKind;

    #[test]
    fn problems_print_their_detail_and_type() {
        let p = Problem {
            kind: "urn:ietf:params:acme:error:rateLimited".to_owned(),
            detail: "too many certificates".to_owned(),
        };
        assert!(p.rate_limited());
        assert_eq!(
            p.to_string(),
            "too many certificates (urn:ietf:params:acme:error:rateLimited)"
        );
        let own = Problem {
            kind: String::new(),
            detail: "the CA cannot be reached".to_owned(),
        };
        assert!(!own.rate_limited());
        assert_eq!(own.to_string(), "the CA cannot be reached");
    }

    #[test]
    fn a_certificate_without_state_says_it_is_not_there_yet() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let settings = AcmeSettings {
            name: "stats".to_owned(),
            domains: vec!["stats.example.com".to_owned()],
            contact: Vec::new(),
            directory: "https://ca.example/dir".to_owned(),
            directory_ca: None,
            challenge: ChallengeKind::TlsAlpn01,
            external_account: None,
        };
        let lines = describe(&store, &settings, 0);
        assert_eq!(
            lines[0],
            "certificate \"stats\": stats.example.com from https://ca.example/dir over tls-alpn-01"
        );
        assert!(lines.iter().any(|l| l.contains("none yet")));
        assert!(lines.iter().any(|l| l.contains("last error:   none")));
        let status = Status {
            next_attempt: 60,
            failures: 2,
            last_error: Some(Problem {
                kind: "urn:ietf:params:acme:error:connection".into(),
                detail: "refused".into(),
            }),
            last_error_at: Some(0),
            issued_at: None,
            settings: String::new(),
        };
        store.certificate("stats").write_status(&status).unwrap();
        let lines = describe(&store, &settings, 0);
        assert!(lines.contains(&"  next renewal: 1970-01-01 00:01:00 UTC".to_owned()));
        assert!(lines.contains(
            &"  last error:   1970-01-01 00:00:00 UTC: refused (urn:ietf:params:acme:error:connection), 2 failure(s) in a row"
                .to_owned()
        ));
    }
}
