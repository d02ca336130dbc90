//! Loading whole configs through the public API: defaults, every message, and the order they
//! come in; `cors.origins_from_ackee` with its token file.

use ackee_gateway::config::types::{HealthCheckSettings, HealthProbe, Selection};
use ackee_gateway::config::{load, parse, parse_with};
use ackee_gateway::cors::DisallowedOrigin;
use ackee_gateway::quic::Http3Settings;

const MINIMAL: &str = r#"
listeners: [{address: "127.0.0.1:8080"}]
cors: {allowed_origins: ["https://example.com"]}
upstream: {replicas: [{address: "127.0.0.1:3000"}]}
"#;

fn errors(text: &str, env: Option<&str>) -> Vec<String> {
    match parse("gw.yaml", text, env) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn a_minimal_config_gets_ackees_defaults_and_short_grace_periods() {
    let loaded = parse("gw.yaml", MINIMAL, None).unwrap();
    let c = loaded.config;
    assert!(loaded.warnings.iter().next().is_none());
    assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:8080");
    assert_eq!(c.listeners[0].name, "127.0.0.1:8080");
    assert!(c.cors.allow_credentials);
    assert_eq!(c.cors.allowed_methods, ["GET", "POST", "PATCH", "OPTIONS"]);
    assert_eq!(
        c.cors.allowed_headers,
        ["Content-Type", "Authorization", "Time-Zone"]
    );
    assert_eq!(c.cors.max_age_seconds, Some(3600));
    assert_eq!(c.cors.disallowed_origin, DisallowedOrigin::Forward);
    assert_eq!(c.upstream.replicas[0].name, "127.0.0.1:3000");
    assert!(c.upstream.idle_timeout.as_secs_f64() < 5.0);
    assert_eq!(c.server.grace_period_seconds, 3);
    assert_eq!(c.server.graceful_shutdown_timeout_seconds, 2);
    assert!(c.metrics.is_none());
    assert!(!c.origins_from_env);
}

#[test]
fn every_problem_is_reported_in_one_run_with_file_key_found_and_fix() {
    let text = r#"
threads: two
listenrs: []
listeners:
  - address: "localhost:8080"
  - address: "127.0.0.1:8081"
    nmae: public
cors:
  allowed_origins:
    - "https://example.com"
    - "https://*.example.org"
    - "https://stats.example.com/"
  allow_credentials: "yes"
  disallowed_origin: block
upstream:
  replicas: []
metrics:
  address: "127.0.0.1:8081"
limits:
  max_header_bytes: 10
trusted_proxies: ["10.0.0.1/8"]
"#;
    let got = errors(text, None);
    let want = [
        r#"error: gw.yaml: listenrs: unknown key; did you mean "listeners"?"#,
        r#"error: gw.yaml: threads: found "two"; write a whole number such as 2"#,
        r#"error: gw.yaml: listeners[1].nmae: unknown key; did you mean "name"?"#,
        r#"error: gw.yaml: cors.allow_credentials: found "yes"; write true or false"#,
        r#"error: gw.yaml: listeners[0].address: found "localhost:8080"; write an IP address and port, such as "127.0.0.1:8080" or "[::]:443""#,
        r#"error: gw.yaml: cors.allowed_origins[2]: "https://stats.example.com/" has a path; write "https://stats.example.com""#,
        r#"error: gw.yaml: cors.disallowed_origin: found "block"; write forward or reject"#,
        r#"error: gw.yaml: upstream.replicas: is empty; write where Ackee listens, such as [{address: "127.0.0.1:3000"}]"#,
        r#"error: gw.yaml: limits.max_header_bytes: found 10; write a number of bytes from 1024 to 1048575, such as 16384"#,
        r#"error: gw.yaml: trusted_proxies[0]: "10.0.0.1/8" has host bits set; write "10.0.0.0/8", or "10.0.0.1" for that one host"#,
    ];
    assert_eq!(got, want);
}

#[test]
fn the_login_limit_is_on_by_default_and_the_tracker_limit_off() {
    use ackee_gateway::ratelimit::RateLimits;
    let c = parse("gw.yaml", MINIMAL, None).unwrap().config;
    assert_eq!(c.rate_limits, RateLimits::default());
    assert_eq!(c.rate_limits.tracker, None);
    assert_eq!(c.rate_limits.login, Some(5));
    let cases: &[(&str, Option<u32>, Option<u32>)] = &[
        ("{tracker: {requests_per_minute: 120}}", Some(120), Some(5)),
        (
            "{tracker: {requests_per_minute: off}, login: {requests_per_minute: 0}}",
            None,
            None,
        ),
        ("{login: {requests_per_minute: \"OFF\"}}", None, None),
        (
            "{tracker: {requests_per_minute: 300}, login: {requests_per_minute: 1000000}}",
            Some(300),
            Some(1_000_000),
        ),
        ("{tracker: {}}", None, Some(5)),
    ];
    for (section, tracker, login) in cases {
        let text = format!("{MINIMAL}rate_limits: {section}\n");
        let c = parse("gw.yaml", &text, None).unwrap().config;
        assert_eq!(
            (c.rate_limits.tracker, c.rate_limits.login),
            (*tracker, *login),
            "{section}"
        );
    }
    let text = format!(
        "{MINIMAL}rate_limits: {{tracker: {{requests_per_minute: 1000001}}, login: {{requests_per_minute: five, per_hour: 3}}, signup: {{}}}}\n"
    );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: rate_limits.signup: unknown key; the keys allowed here are tracker, login"#,
            r#"error: gw.yaml: rate_limits.login.per_hour: unknown key; the keys allowed here are requests_per_minute"#,
            r#"error: gw.yaml: rate_limits.login.requests_per_minute: found "five"; write a whole number of requests per minute such as 300, or off"#,
            r#"error: gw.yaml: rate_limits.tracker.requests_per_minute: found 1000001; write a whole number of requests per minute from 1 to 1000000, or off"#,
        ]
    );
}

#[test]
fn visits_ignore_bots_by_default_and_read_networks_and_privacy_signals() {
    use ackee_gateway::visits::VisitSettings;
    let c = parse("gw.yaml", MINIMAL, None).unwrap().config;
    assert_eq!(c.visits, VisitSettings::default());
    assert!(c.visits.ignore_bots && c.visits.ignore_networks.is_empty());
    assert!(!c.visits.honor_gpc && !c.visits.honor_dnt);
    let text = format!(
        "{MINIMAL}visits: {{ignore_bots: false, ignore_networks: [\"192.0.2.0/24\", \"2001:db8::1\"], honor_gpc: true, honor_dnt: true}}\n"
    );
    let c = parse("gw.yaml", &text, None).unwrap().config;
    assert!(!c.visits.ignore_bots && c.visits.honor_gpc && c.visits.honor_dnt);
    let nets: Vec<String> = c
        .visits
        .ignore_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["192.0.2.0/24", "2001:db8::1/128"]);

    let text = format!(
        "{MINIMAL}visits: {{ignore_bot: true, ignore_networks: [\"10.0.0.1/8\", office], honor_gpc: yes}}\n"
    );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: visits.ignore_bot: unknown key; did you mean "ignore_bots"?"#,
            r#"error: gw.yaml: visits.honor_gpc: found "yes"; write true or false"#,
            r#"error: gw.yaml: visits.ignore_networks[0]: "10.0.0.1/8" has host bits set; write "10.0.0.0/8", or "10.0.0.1" for that one host"#,
            r#"error: gw.yaml: visits.ignore_networks[1]: "office" is not an IP address or network; write one such as "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32""#,
        ]
    );
    // A whole address family is allowed, with a warning that says what it means.
    let text = format!("{MINIMAL}visits: {{ignore_networks: [\"0.0.0.0/0\"]}}\n");
    let loaded = parse("gw.yaml", &text, None).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        warnings,
        [
            r#"warning: gw.yaml: visits.ignore_networks[0]: "0.0.0.0/0" is every IPv4 address, so no visit over IPv4 would be counted; write your own networks, such as "192.0.2.0/24""#
        ]
    );
}

#[test]
fn metrics_cannot_share_a_listeners_port() {
    let text = format!("{MINIMAL}metrics: {{address: \"127.0.0.1:8080\"}}\n");
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: metrics.address: "127.0.0.1:8080" is also the address of listener "127.0.0.1:8080"; give metrics its own port"#
        ]
    );
}

#[test]
fn missing_sections_say_what_to_write() {
    assert_eq!(
        errors("threads: 2\n", None),
        [
            r#"error: gw.yaml: listeners: missing; write at least one listener, such as listeners: [{address: "127.0.0.1:8080"}]"#,
            r#"error: gw.yaml: cors.allowed_origins: missing; list the origins of the sites that embed the tracker, such as ["https://example.com"], or set ACKEE_ALLOW_ORIGIN"#,
            r#"error: gw.yaml: upstream: missing; write where Ackee listens, such as upstream: {replicas: [{address: "127.0.0.1:3000"}]}"#,
        ]
    );
}

#[test]
fn yaml_syntax_errors_and_empty_files_are_reported() {
    let got = errors("listeners: [\n", None);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("error: gw.yaml: is not valid YAML: "),
        "{got:?}"
    );
    assert_eq!(
        errors("", None),
        [
            r#"error: gw.yaml: found nothing; write a mapping of keys such as "listeners:" and "cors:""#
        ]
    );
}

#[test]
fn star_with_credentials_names_both_settings() {
    let text = MINIMAL.replace(
        r#"cors: {allowed_origins: ["https://example.com"]}"#,
        r#"cors: {allowed_origins: ["*"], allow_credentials: true}"#,
    );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: cors.allow_credentials: is true, but cors.allowed_origins[0] is "*"; browsers refuse credentials together with "*", so write cors.allow_credentials: false, or list the origins instead of "*""#
        ]
    );
    let text = MINIMAL.replace(
        r#"cors: {allowed_origins: ["https://example.com"]}"#,
        r#"cors: {allowed_origins: ["*"]}"#,
    );
    let c = parse("gw.yaml", &text, None).unwrap().config;
    assert!(c.cors.origins.find("https://any.example").is_some());
    assert!(
        !c.cors.allow_credentials,
        "credentials default to off with *"
    );
}

#[test]
fn star_with_other_origins_is_an_error() {
    let text = MINIMAL.replace(
        r#"["https://example.com"]"#,
        r#"["https://example.com", "*"]"#,
    );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: cors.allowed_origins[1]: is "*", which allows every origin, so the other entries do nothing; keep only "*", or remove it and list the origins"#
        ]
    );
}

#[test]
fn ackee_allow_origin_replaces_the_file_and_trims_spaces() {
    let loaded = parse(
        "gw.yaml",
        MINIMAL,
        Some("https://a.example, https://B.example:443 ,http://localhost:8080"),
    )
    .unwrap();
    let set = &loaded.config.cors.origins;
    assert!(loaded.config.origins_from_env);
    assert_eq!(set.len(), 3);
    assert!(set.find("https://b.example").is_some());
    assert!(
        set.find("https://example.com").is_none(),
        "the file's list is replaced"
    );
    let warnings: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "warning: gw.yaml: cors.allowed_origins: is replaced by the environment variable ACKEE_ALLOW_ORIGIN"
        ]
    );
}

#[test]
fn bad_ackee_allow_origin_entries_are_reported_like_config_errors() {
    assert_eq!(
        errors(MINIMAL, Some("https://a.example, https://b.example/,")),
        [
            "warning: gw.yaml: cors.allowed_origins: is replaced by the environment variable ACKEE_ALLOW_ORIGIN",
            r#"error: environment variable ACKEE_ALLOW_ORIGIN: [1]: "https://b.example/" has a path; write "https://b.example""#,
            r#"error: environment variable ACKEE_ALLOW_ORIGIN: [2]: "" is empty; write an origin such as "https://example.com""#,
        ]
    );
    assert_eq!(
        errors(MINIMAL, Some("  ")),
        [
            "warning: gw.yaml: cors.allowed_origins: is replaced by the environment variable ACKEE_ALLOW_ORIGIN",
            r#"error: environment variable ACKEE_ALLOW_ORIGIN: is set but empty; set it to an origin such as "https://example.com", to a comma-separated list, or to "*", or unset it"#,
        ]
    );
}

#[test]
fn ackee_allow_origin_star_turns_credentials_off_unless_forced_on() {
    let c = parse("gw.yaml", MINIMAL, Some("*")).unwrap().config;
    assert!(!c.cors.allow_credentials);
    let text = MINIMAL.replace("cors: {", "cors: {allow_credentials: true, ");
    let got = errors(&text, Some("*"));
    assert_eq!(
        got.last().unwrap(),
        r#"error: gw.yaml: cors.allow_credentials: is true, but ACKEE_ALLOW_ORIGIN is "*"; browsers refuse credentials together with "*", so write cors.allow_credentials: false, or list the origins instead of "*""#
    );
}

#[test]
fn an_idle_timeout_at_or_above_nodes_keep_alive_is_a_warning() {
    let text = MINIMAL.replace("upstream: {", "upstream: {idle_timeout_seconds: 5, ");
    let loaded = parse("gw.yaml", &text, None).unwrap();
    let w: Vec<String> = loaded.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        [
            "warning: gw.yaml: upstream.idle_timeout_seconds: is 5 seconds, but Node (and so Ackee) closes idle connections after 5, so a request can meet a closing connection; write 4"
        ]
    );
}

#[test]
fn methods_are_uppercased_and_headers_deduplicated() {
    let text = MINIMAL.replace(
            "cors: {",
            "cors: {allowed_methods: [post, PATCH, POST], allowed_headers: [Content-Type, content-type, X-Thing], max_age_seconds: 600, disallowed_origin: reject, ",
        );
    let c = parse("gw.yaml", &text, None).unwrap().config;
    assert_eq!(c.cors.allowed_methods, ["POST", "PATCH"]);
    assert_eq!(c.cors.allowed_headers, ["Content-Type", "X-Thing"]);
    assert_eq!(c.cors.max_age_seconds, Some(600));
    assert_eq!(c.cors.disallowed_origin, DisallowedOrigin::Reject);
}

#[test]
fn replicas_resolve_names_and_default_their_name_to_the_address() {
    let text = MINIMAL.replace(
            r#"replicas: [{address: "127.0.0.1:3000"}]"#,
            r#"replicas: [{address: "localhost:3000"}, {address: "127.0.0.1:3001", name: ackee-2, weight: 3}]"#,
        );
    let c = parse("gw.yaml", &text, None).unwrap().config;
    let r = &c.upstream.replicas;
    assert_eq!(r[0].name, "localhost:3000");
    assert!(r[0].address.ip().is_loopback());
    assert_eq!(r[1].name, "ackee-2");
    assert_eq!(r[1].weight, 3);
}

#[test]
fn selection_and_health_checks_default_sensibly_and_check_their_values() {
    let c = parse("gw.yaml", MINIMAL, None).unwrap().config;
    assert_eq!(c.upstream.selection, Selection::RoundRobin);
    assert_eq!(c.upstream.health_check, HealthCheckSettings::default());
    assert_eq!(c.upstream.retry_after_seconds, 5);
    let text = MINIMAL.replace(
            "upstream: {",
            "upstream: {selection: consistent_hash, retry_after_seconds: 30, health_check: {type: tcp, interval_seconds: 0.5, unhealthy_after: 5}, ",
        );
    let c = parse("gw.yaml", &text, None).unwrap().config;
    assert_eq!(c.upstream.selection, Selection::ConsistentHash);
    assert_eq!(c.upstream.health_check.probe, HealthProbe::Tcp);
    assert_eq!(c.upstream.health_check.unhealthy_after, 5);
    assert_eq!(c.upstream.health_check.healthy_after, 2);
    assert_eq!(c.upstream.retry_after_seconds, 30);
    let text = MINIMAL.replace(
            "upstream: {",
            "upstream: {selection: least_conn, health_check: {type: grpc, healthy_after: 0, path: health}, ",
        );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: upstream.selection: found "least_conn"; write round_robin, random or consistent_hash"#,
            r#"error: gw.yaml: upstream.health_check.type: found "grpc"; write http, tcp or none"#,
            r#"warning: gw.yaml: upstream.health_check.path: is used only by type: http"#,
            r#"error: gw.yaml: upstream.health_check.healthy_after: found 0; write a whole number from 1 to 100"#,
        ]
    );
}

#[test]
fn host_names_are_resolved_once_and_failures_are_config_errors() {
    let resolver = |host: &str, port: u16| -> std::io::Result<Vec<std::net::SocketAddr>> {
        match host {
            "ackee-1.internal" => Ok(vec![
                std::net::SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)),
                std::net::SocketAddr::from(([10, 0, 0, 11], port)),
            ]),
            "empty.internal" => Ok(vec![]),
            _ => Err(std::io::Error::other("Name or service not known")),
        }
    };
    let text = MINIMAL.replace(
        r#"replicas: [{address: "127.0.0.1:3000"}]"#,
        r#"replicas: [{address: "ackee-1.internal:3000"}]"#,
    );
    let c = parse_with("gw.yaml", &text, None, &resolver)
        .unwrap()
        .config;
    assert_eq!(
        c.upstream.replicas[0].address.to_string(),
        "10.0.0.11:3000",
        "IPv4 first"
    );
    assert_eq!(c.upstream.replicas[0].name, "ackee-1.internal:3000");
    let text = MINIMAL.replace(
        r#"replicas: [{address: "127.0.0.1:3000"}]"#,
        r#"replicas: [{address: "ackee-9.internal:3000"}, {address: "empty.internal:3000"}]"#,
    );
    let got: Vec<String> = parse_with("gw.yaml", &text, None, &resolver)
        .unwrap_err()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        got,
        [
            r#"error: gw.yaml: upstream.replicas[0].address: "ackee-9.internal:3000" could not be resolved (Name or service not known); write an IP address and port, or a host name this machine resolves"#,
            r#"error: gw.yaml: upstream.replicas[1].address: "empty.internal:3000" resolves to no address; write an IP address and port"#,
        ]
    );
}

#[test]
fn unresolvable_replicas_and_bad_weights_are_errors() {
    let text = MINIMAL.replace(
        r#"replicas: [{address: "127.0.0.1:3000"}]"#,
        r#"replicas: [{address: "ackee"}, {address: "127.0.0.1:3001", weight: 0}]"#,
    );
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: upstream.replicas[0].address: found "ackee" without a port; write "ackee:3000" if Ackee listens on its default port"#,
            r#"error: gw.yaml: upstream.replicas[1].weight: found 0; write a whole number from 1 to 1000 (to stop traffic to a replica, remove it from the list)"#,
        ]
    );
}

// `cors.origins_from_ackee`: the token file read at load, and every problem at once.

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
    assert_eq!(a.rules, ackee_gateway::ackee_origins::TitleRules::default());
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
        [
            ackee_gateway::origin::Scheme::Http,
            ackee_gateway::origin::Scheme::Https
        ]
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

#[test]
fn diagnostics_print_level_place_key_and_message() {
    let text = MINIMAL.replace("]}\nupstream", "], max_age_seconds: soon}\nupstream");
    let env = Some("https://a.example,https://a.example");
    let Err(d) = parse("conf/x.yaml", &text, env) else {
        panic!("an error")
    };
    assert_eq!(
        d.to_string(),
        "error: conf/x.yaml: cors.max_age_seconds: found \"soon\"; write a whole number of seconds such as 3600\n\
         warning: conf/x.yaml: cors.allowed_origins: is replaced by the environment variable ACKEE_ALLOW_ORIGIN\n\
         warning: environment variable ACKEE_ALLOW_ORIGIN: [1]: \"https://a.example\" is the same origin as [0]; remove one\n"
    );
    assert_eq!(d.error_count(), 1);
    let Err(d) = load("/nonexistent/x.yaml", None) else {
        panic!("an error")
    };
    assert_eq!(
        d.to_string(),
        "error: /nonexistent/x.yaml: cannot be read (No such file or directory (os error 2)); pass the config file with -c FILE\n"
    );
}

#[test]
fn typos_get_a_suggestion_strangers_the_list_and_key_types_are_shape_problems() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
Listeners: []
metric: {}
trusted_proxy: []
database: x
limits: {max_body_byte: 1, colour: red}
"#
    )
    .replace(
        r#"{address: "127.0.0.1:8080"}"#,
        r#"{address: "127.0.0.1:8080", response_headers: {1: y}}"#,
    );
    let allowed = "max_body_bytes, max_header_bytes, body_timeout_seconds, header_timeout_seconds, max_connections_per_client";
    assert_eq!(
        errors(&text, None),
        [
            r#"error: gw.yaml: Listeners: unknown key; did you mean "listeners"?"#.to_owned(),
            r#"error: gw.yaml: metric: unknown key; did you mean "metrics"?"#.to_owned(),
            r#"error: gw.yaml: trusted_proxy: unknown key; did you mean "trusted_proxies"?"#
                .to_owned(),
            "error: gw.yaml: database: unknown key; the keys allowed here are listeners, cors, upstream, metrics, limits, trusted_proxies, access_log, rate_limits, assets, state_directory, visits, version, daemon, error_log, pid_file, upgrade_sock, user, group, threads, work_stealing, grace_period_seconds, graceful_shutdown_timeout_seconds, upstream_keepalive_pool_size, daemon_wait_for_ready".to_owned(),
            "error: gw.yaml: listeners[0].response_headers: found the key 1; write a name such as X-Frame-Options".to_owned(),
            r#"error: gw.yaml: limits.max_body_byte: unknown key; did you mean "max_body_bytes"?"#
                .to_owned(),
            format!("error: gw.yaml: limits.colour: unknown key; the keys allowed here are {allowed}"),
        ]
    );
}

#[test]
fn http3_is_off_by_default_and_on_with_true_or_its_settings() {
    let loaded = parse("gw.yaml", MINIMAL, None).unwrap();
    assert!(loaded.config.listeners[0].http3.is_none(), "off by default");
    let ca = rcgen::generate_simple_self_signed(vec!["stats.example.com".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ca.cert.pem()).unwrap();
    std::fs::write(&key, ca.key_pair.serialize_pem()).unwrap();
    let tls = format!(
        "tls: {{certificates: [{{cert: \"{}\", key: \"{}\"}}]}}",
        cert.display(),
        key.display()
    );
    for (http3, want) in [
        ("false", None),
        ("true", Some(Http3Settings::default())),
        (
            "{alt_svc_max_age_seconds: 600, max_concurrent_streams: 20, idle_timeout_seconds: 10, max_handshakes: 50, retry_above_handshakes: 0}",
            Some(Http3Settings {
                alt_svc_max_age: 600,
                max_concurrent_streams: 20,
                idle_timeout: std::time::Duration::from_secs(10),
                max_handshakes: 50,
                retry_above: 0,
            }),
        ),
    ] {
        let text = MINIMAL.replace(
            "listeners: [{address: \"127.0.0.1:8080\"}]",
            &format!("listeners: [{{address: \"127.0.0.1:8443\", {tls}, http3: {http3}}}]"),
        );
        let loaded = parse("gw.yaml", &text, None).unwrap_or_else(|d| panic!("{http3}: {d:?}"));
        assert_eq!(loaded.config.listeners[0].http3, want, "{http3}");
    }
    let d = Http3Settings::default();
    assert_eq!(
        (
            d.alt_svc_max_age,
            d.max_concurrent_streams,
            d.idle_timeout.as_secs()
        ),
        (86_400, 100, 30)
    );
    assert_eq!((d.max_handshakes, d.retry_above), (1024, 64));
}

#[test]
fn connections_per_client_default_to_1024_and_turn_off_with_off_or_0() {
    let c = parse("gw.yaml", MINIMAL, None).unwrap().config;
    assert_eq!(c.limits.max_connections_per_client, Some(1024));
    let cases: &[(&str, Option<u32>)] = &[
        ("8", Some(8)),
        ("1", Some(1)),
        ("1000000", Some(1_000_000)),
        ("off", None),
        ("\"Off\"", None),
        ("0", None),
    ];
    for (value, want) in cases {
        let text = format!("{MINIMAL}limits: {{max_connections_per_client: {value}}}\n");
        let c = parse("gw.yaml", &text, None).unwrap().config;
        assert_eq!(c.limits.max_connections_per_client, *want, "{value}");
    }
    for (value, found) in [("1000001", "1000001"), ("-3", "-3"), ("many", "\"many\"")] {
        let text = format!("{MINIMAL}limits: {{max_connections_per_client: {value}}}\n");
        let want = if value == "1000001" {
            format!(
                "error: gw.yaml: limits.max_connections_per_client: found {found}; write a whole number of connections from 1 to 1000000, or off"
            )
        } else {
            format!(
                "error: gw.yaml: limits.max_connections_per_client: found {found}; write a whole number of connections such as 1024, or off"
            )
        };
        assert_eq!(errors(&text, None), [want], "{value}");
    }
}
