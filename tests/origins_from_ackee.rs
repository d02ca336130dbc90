//! `cors.origins_from_ackee`: the gateway polls the fake Ackee's `{ domains { id title } }`
//! with a permanent token from a file, allows the titles' origins next to the static list, and
//! follows the dashboard without a restart. A refused token and a stopped Ackee keep the last
//! good list, are counted by reason and logged once per state change.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod client;
    pub mod fake_ackee;
    pub mod gateway;
    pub mod process;
}

use common::client::preflight;
use common::fake_ackee::FakeAckee;
use common::gateway::{Gateway, Spec};
use common::process::{eventually, run};

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "8a1b6f7e-permanent-token";

fn token_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let p = dir.path().join("ackee-token");
    fs::write(&p, text).unwrap();
    p
}

/// cors lines: a static origin, and origins from Ackee polled every 100 ms.
fn cors(token: &std::path::Path, extra: &str) -> String {
    format!(
        "allowed_origins: [\"https://static.example\"]\norigins_from_ackee:\n  token_file: \"{}\"\n  interval_seconds: 0.1\n  timeout_seconds: 2\n{extra}",
        token.display()
    )
}

fn status(gw: &Gateway, origin: &str) -> u16 {
    preflight(gw.http, origin).status
}

fn becomes(gw: &Gateway, origin: &str, want: u16) {
    eventually(
        Duration::from_secs(10),
        &format!("a preflight from {origin} answered {want}"),
        || (status(gw, origin) == want).then_some(()),
    );
}

#[test]
fn domains_added_and_removed_in_ackee_are_allowed_and_refused_without_a_restart() {
    let ackee = FakeAckee::start();
    ackee.set(|b| {
        b.token = Some(TOKEN.into());
        b.domains = vec!["a.example".into(), "My blog".into(), "Shop.Example".into()];
    });
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, &format!("{TOKEN}\n"));
    let gw = Gateway::start(
        &Spec::new(ackee.addr)
            .cors(&cors(&token, "  schemes: [https, http]"))
            .env("ACKEE_ALLOW_ORIGIN", "https://env.example"),
    );

    // The first poll is done before the listeners open: no waiting for Ackee's sites.
    let r = preflight(gw.http, "https://a.example");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.example")
    );
    for (origin, want) in [
        ("http://a.example", 204),
        ("https://shop.example", 204),
        // ACKEE_ALLOW_ORIGIN replaces allowed_origins, and the origins from Ackee join it.
        ("https://env.example", 204),
        ("https://static.example", 403),
        ("https://b.example", 403),
        // Ackee's substring matching would let these through.
        ("https://a.exampl", 403),
        ("https://a.example.evil.test", 403),
        ("https://www.a.example", 403),
    ] {
        assert_eq!(status(&gw, origin), want, "{origin}");
    }
    assert_only_the_poller_asks_ackee(&ackee);

    // A site added in Ackee's dashboard.
    ackee.set(|b| b.domains.push("b.example".into()));
    becomes(&gw, "https://b.example", 204);
    // And one removed.
    ackee.set(|b| b.domains.retain(|d| d != "a.example"));
    becomes(&gw, "https://a.example", 403);
    assert_eq!(status(&gw, "https://env.example"), 204);

    let scrape = gw.scrape_until("the gauges after the removal", |s| {
        s.get("ackee_gateway_ackee_origins", &[]) == 4.0
    });
    assert_eq!(scrape.get("ackee_gateway_ackee_domains_skipped", &[]), 1.0);
    assert!(
        scrape.get(
            "ackee_gateway_ackee_origins_last_success_timestamp_seconds",
            &[]
        ) > 1.7e9
    );
    assert_eq!(
        scrape.total("ackee_gateway_ackee_origins_refresh_failures_total"),
        0.0
    );
    assert_logged(
        &gw,
        &[
            "origins from Ackee: 3 domain(s) give 4 origin(s)",
            r#"origins from Ackee: 1 title(s) are not host names and give no origin: "My blog""#,
            r#"origins from Ackee: now allowed: "http://b.example", "https://b.example""#,
            r#"origins from Ackee: no longer allowed: "http://a.example", "https://a.example""#,
        ],
    );
}

/// The poll carries the token and asks for the domains; preflights cause no lookup.
fn assert_only_the_poller_asks_ackee(ackee: &FakeAckee) {
    assert!(ackee.count_path("/api") >= 1);
    let seen = ackee.seen();
    let poll = seen.iter().find(|s| s.path == "/api").unwrap();
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(poll.header("authorization"), Some(bearer.as_str()));
    let query = r#"{"query":"{ domains { id title } }"}"#;
    assert_eq!(String::from_utf8_lossy(&poll.body), query);
    assert!(
        seen.iter()
            .all(|s| s.path != "/api" || s.header("authorization").is_some()),
        "only the poller's requests may reach Ackee"
    );
}

/// Every line is in the gateway's log.
fn assert_logged(gw: &Gateway, lines: &[&str]) {
    let log = gw.stderr();
    for line in lines {
        assert!(log.contains(line), "{line}\nnot in:\n{log}");
    }
}

/// Each line is in the gateway's log exactly once.
fn assert_logged_once(gw: &Gateway, lines: &[&str]) {
    let log = gw.stderr();
    for line in lines {
        assert_eq!(log.matches(line).count(), 1, "{line}\nin:\n{log}");
    }
}

#[test]
fn a_refused_token_and_a_stopped_ackee_keep_the_last_good_list_counted_and_logged_once() {
    let mut ackee = FakeAckee::start();
    ackee.set(|b| {
        b.token = Some(TOKEN.into());
        b.domains = vec!["a.example".into()];
    });
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&cors(&token, "")));
    assert_eq!(status(&gw, "https://a.example"), 204);

    // The token is deleted in Ackee: Ackee answers 200 with "Token invalid".
    ackee.set(|b| {
        b.token = Some("a-new-token".into());
        b.domains.push("b.example".into());
    });
    let failures = |gw: &Gateway, reason: &str| {
        gw.scrape().get(
            "ackee_gateway_ackee_origins_refresh_failures_total",
            &[("reason", reason)],
        )
    };
    eventually(Duration::from_secs(10), "3 refused polls", || {
        (failures(&gw, "token_refused") >= 3.0).then_some(())
    });
    assert_eq!(
        status(&gw, "https://a.example"),
        204,
        "the last good list stays"
    );
    assert_eq!(status(&gw, "https://b.example"), 403);

    // Ackee goes down.
    ackee.stop();
    eventually(
        Duration::from_secs(10),
        "3 polls of a stopped Ackee",
        || (failures(&gw, "unreachable") >= 3.0).then_some(()),
    );
    assert_eq!(
        status(&gw, "https://a.example"),
        204,
        "the last good list stays"
    );

    // Ackee comes back, and the new token is written to the file: read at the next poll.
    ackee.restart();
    fs::write(&token, "a-new-token\n").unwrap();
    becomes(&gw, "https://b.example", 204);
    // The poll puts the new list in use, then logs, then sets the gauge (1 origin until now):
    // the preflight can see the list before the line is written.
    let scrape = gw.scrape_until("the gauge after the recovery", |s| {
        s.get("ackee_gateway_ackee_origins", &[]) >= 2.0
    });

    assert_logged_once(
        &gw,
        &[
            "origins from Ackee: cannot refresh (token refused): replica \"ackee-0\": Ackee answered 200 with the GraphQL error \"Token invalid\"; keeping the last good list of 1 origin(s) from Ackee",
            "origins from Ackee: cannot refresh (unreachable)",
            "origins from Ackee: the domain list can be read again; 2 domain(s) give 2 origin(s)",
        ],
    );
    let refreshes = gw
        .stderr()
        .matches("origins from Ackee: cannot refresh")
        .count();
    assert_eq!(refreshes, 2, "one line for each failing state");
    assert_eq!(scrape.get("ackee_gateway_ackee_origins", &[]), 2.0);
    for reason in [
        "token_refused",
        "unreachable",
        "bad_answer",
        "token_unreadable",
    ] {
        let series =
            format!("ackee_gateway_ackee_origins_refresh_failures_total{{reason=\"{reason}\"}}");
        assert!(
            scrape.text.contains(&series),
            "every reason is exported: {reason}"
        );
    }
}

#[test]
fn ackee_down_at_start_leaves_the_static_list_and_the_gateway_serves() {
    let mut ackee = FakeAckee::start();
    ackee.set(|b| {
        b.token = Some(TOKEN.into());
        b.domains = vec!["a.example".into()];
    });
    ackee.stop();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let gw = Gateway::start(&Spec::new(ackee.addr).cors(&cors(&token, "")));
    assert_eq!(status(&gw, "https://static.example"), 204);
    assert_eq!(status(&gw, "https://a.example"), 403);
    assert!(
        gw.stderr()
            .contains("until a refresh succeeds only the static list applies"),
        "{}",
        gw.stderr()
    );
    assert_eq!(
        gw.scrape().get(
            "ackee_gateway_ackee_origins_last_success_timestamp_seconds",
            &[]
        ),
        0.0
    );
    ackee.restart();
    becomes(&gw, "https://a.example", 204);
}

#[test]
fn dash_t_checks_that_the_token_file_is_readable_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-token");
    let conf = dir.path().join("gw.yaml");
    let write = |token: &std::path::Path| {
        fs::write(
            &conf,
            format!(
                "listeners: [{{address: \"127.0.0.1:8080\"}}]\nupstream: {{replicas: [{{address: \"127.0.0.1:3000\"}}]}}\ncors:\n  origins_from_ackee:\n    token_file: \"{}\"\n",
                token.display()
            ),
        )
        .unwrap();
    };
    let c = conf.to_string_lossy().into_owned();

    write(&missing);
    let (code, stderr) = run(&["-t", "-c", &c], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: {c}: cors.origins_from_ackee.token_file: \"{}\" cannot be read (No such file or directory (os error 2)); write the file that holds a permanent token from Ackee (Settings, Permanent tokens), readable by the user the gateway runs as\nackee-gateway: 1 problem in the configuration; nothing was started\n",
            missing.display()
        )
    );

    write(dir.path());
    let (code, stderr) = run(&["-t", "-c", &c], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("it is a directory, not a regular file"),
        "{stderr}"
    );

    let token = dir.path().join("token");
    fs::write(&token, "abc\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&token, fs::Permissions::from_mode(0o640)).unwrap();
    }
    write(&token);
    let (code, stderr) = run(&["-t", "-c", &c], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, format!("ackee-gateway: {c} is valid\n"));
}

#[test]
fn explain_asks_ackee_and_says_which_domain_an_origin_comes_from() {
    let ackee = FakeAckee::start();
    ackee.set(|b| {
        b.token = Some(TOKEN.into());
        b.domains = vec!["My blog".into(), "A.example".into()];
    });
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, TOKEN);
    let conf = dir.path().join("gw.yaml");
    fs::write(
        &conf,
        format!(
            "listeners: [{{address: \"127.0.0.1:8080\"}}]\nupstream: {{replicas: [{{address: \"{}\"}}]}}\ncors:\n  origins_from_ackee: {{token_file: \"{}\"}}\n",
            ackee.addr,
            token.display()
        ),
    )
    .unwrap();
    let explain = |origin: &str| {
        let out = std::process::Command::new(common::process::binary())
            .args(["explain", "-c"])
            .arg(&conf)
            .args(["--origin", origin])
            .env_remove("ACKEE_ALLOW_ORIGIN")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = explain("https://a.example");
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("Origins from Ackee: 2 domain(s) give 1 origin(s)\n\"https://a.example\" comes from Ackee: the domain titled \"A.example\"\n"),
        "{stdout}"
    );
    let (code, stdout, _) = explain("https://b.example");
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("Fix: add a domain titled \"b.example\" in Ackee (Settings, Domains; allowed within cors.origins_from_ackee.interval_seconds), or add \"https://b.example\" to cors.allowed_origins in"),
        "{stdout}"
    );
    // Ackee refuses the token: explained with the static list, and said so.
    ackee.set(|b| b.token = Some("another".into()));
    let (code, stdout, stderr) = explain("https://a.example");
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("cannot read Ackee's domain list (token_refused: replica \"127.0.0.1:"),
        "{stderr}"
    );
}
