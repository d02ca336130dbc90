//! `cors.origins_from_ackee`: the token file read at load, and every problem at once.

use super::*;

/// Token files for origins_from_ackee: good, world-readable, empty, and missing.
struct Tokens {
    _dir: tempfile::TempDir,
    token: std::path::PathBuf,
    open: std::path::PathBuf,
    empty: std::path::PathBuf,
    missing: std::path::PathBuf,
}

fn tokens() -> Tokens {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "secret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let open = dir.path().join("open");
    std::fs::write(&open, "secret").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let missing = dir.path().join("missing");

    Tokens {
        _dir: dir,
        token,
        open,
        empty,
        missing,
    }
}

/// A minimal config with this `cors` section.
fn base(cors: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\nupstream: {{replicas: [{{address: \"127.0.0.1:3000\"}}]}}\ncors: {cors}\n"
    )
}

#[test]
fn origins_from_ackee_read_the_token_file_now() {
    let Tokens { token, open, .. } = &tokens();
    let t = token.display();

    // Alone, with the defaults: no static list needed.
    let loaded = parse(
        "gw.yaml",
        &base(&format!("{{origins_from_ackee: {{token_file: \"{t}\"}}}}")),
        None,
    )
    .unwrap();
    let a = loaded.config.cors.from_ackee.unwrap();
    assert_eq!(&a.token_file, token);
    assert_eq!(a.interval, std::time::Duration::from_secs(60));
    assert_eq!(a.timeout, std::time::Duration::from_secs(5));
    assert_eq!(a.rules, crate::ackee_origins::TitleRules::default());
    assert!(loaded.config.cors.origins.is_empty());
    assert!(loaded.warnings.iter().next().is_none());

    // Every key.
    let text = base(&format!(
        "{{allowed_origins: [\"https://static.example\"], origins_from_ackee: {{token_file: \"{t}\", interval_seconds: 30, timeout_seconds: 2, schemes: [http, https, HTTP], www: true}}}}"
    ));
    let a = parse("gw.yaml", &text, None)
        .unwrap()
        .config
        .cors
        .from_ackee
        .unwrap();
    assert_eq!(a.interval, std::time::Duration::from_secs(30));
    assert_eq!(
        a.rules.schemes,
        [crate::origin::Scheme::Http, crate::origin::Scheme::Https]
    );
    assert!(a.rules.www);

    // A world-readable token is a warning.
    let text = base(&format!(
        "{{origins_from_ackee: {{token_file: \"{}\"}}}}",
        open.display()
    ));
    let warnings: Vec<String> = parse("gw.yaml", &text, None)
        .unwrap()
        .warnings
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: gw.yaml: cors.origins_from_ackee.token_file: \"{}\" is readable by every user, and the token lets anyone read your Ackee statistics; chmod 640 it (group ackee-gateway) or 600",
            open.display()
        )]
    );
}

#[test]
fn origins_from_ackee_report_every_problem() {
    let Tokens { empty, missing, .. } = &tokens();

    // Every problem at once.
    let text = base(&format!(
        "{{allowed_origins: [\"*\"], allow_credentials: false, origins_from_ackee: {{token_file: \"{}\", interval_seconds: 0, schemes: [ftp], wwww: true}}}}",
        missing.display()
    ));
    assert_eq!(
            errors(&text, None),
            [
                r#"error: gw.yaml: cors.origins_from_ackee.wwww: unknown key; did you mean "www"?"#.to_owned(),
                r#"error: gw.yaml: cors.origins_from_ackee.interval_seconds: found 0; write a number of seconds greater than 0, such as 60"#.to_owned(),
                r#"error: gw.yaml: cors.origins_from_ackee: is set, but cors.allowed_origins[0] is "*", which already allows every origin; remove origins_from_ackee, or list the origins instead of "*""#.to_owned(),
                format!(
                    "error: gw.yaml: cors.origins_from_ackee.token_file: \"{}\" cannot be read (No such file or directory (os error 2)); write the file that holds a permanent token from Ackee (Settings, Permanent tokens), readable by the user the gateway runs as",
                    missing.display()
                ),
                r#"error: gw.yaml: cors.origins_from_ackee.schemes[0]: found "ftp"; write https or http"#.to_owned(),
            ]
        );
    let text = base(&format!(
        "{{origins_from_ackee: {{token_file: \"{}\", schemes: []}}}}",
        empty.display()
    ));
    assert_eq!(
            errors(&text, None),
            [
                format!(
                    "error: gw.yaml: cors.origins_from_ackee.token_file: \"{}\" is empty; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), readable by the user the gateway runs as",
                    empty.display()
                ),
                r#"error: gw.yaml: cors.origins_from_ackee.schemes: is empty, so no title would give an origin; write [https], or [https, http]"#.to_owned(),
            ]
        );
    assert_eq!(
        errors(&base("{origins_from_ackee: {interval_seconds: 10}}"), None),
        [
            r#"error: gw.yaml: cors.origins_from_ackee.token_file: missing; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), such as "/etc/ackee-gateway/ackee-token""#
        ]
    );
}
