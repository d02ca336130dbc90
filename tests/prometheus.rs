//! The Prometheus assets checked with `promtool`: the alert rules, unit tests of when each alert
//! fires, and a Prometheus config built from the scrape job and the rules; the rules may use
//! only metrics the gateway exports. Needs `apt-get install prometheus`.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod assets;
    pub mod metric_names;
}

use common::assets::{assert_success, map, path, promtool, read, write_yaml, yaml};
use common::metric_names::unknown_metric_names;

use std::collections::BTreeSet;
use std::ffi::OsStr;

use serde_yaml::Value;

const SCRAPE: &str = "conf/prometheus/scrape.yml";
const ALERTS: &str = "conf/prometheus/alerts.yml";

#[test]
fn the_rules_use_only_exported_metrics() {
    let unknown = unknown_metric_names(&read(ALERTS));
    assert!(
        unknown.is_empty(),
        "{ALERTS} uses metrics the gateway does not export: {unknown:?}"
    );
    assert_eq!(
        unknown_metric_names(
            "x ackee_gateway_nope_total ackee_gateway_upstream_response_seconds_bucket"
        ),
        BTreeSet::from(["ackee_gateway_nope_total".to_owned()]),
        "the name scanner itself"
    );
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = path(ALERTS);
    let out = promtool(&[OsStr::new("check"), OsStr::new("rules"), rules.as_os_str()]);
    assert_success("promtool check rules", &out);
}

#[test]
fn every_alert_has_a_duration_a_severity_and_an_explanation() {
    let rules = yaml(ALERTS);
    let mut names = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .expect("only alerting rules")
                .to_owned();
            assert!(rule.get("for").is_some(), "{name} has no `for:`");
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("critical" | "warning" | "info")
                ),
                "{name} has no severity label"
            );
            for a in ["summary", "description"] {
                assert!(
                    rule["annotations"][a]
                        .as_str()
                        .is_some_and(|s| !s.trim().is_empty()),
                    "{name} has no {a}"
                );
            }
            names.push((name, rule["expr"].as_str().unwrap().trim().to_owned()));
        }
    }
    for wanted in [
        "AckeeGatewayReplicaDown",
        "AckeeGatewayAllReplicasDown",
        "AckeeGatewayCorsRejectionSpike",
        "AckeeGatewayHigh5xxRate",
        "AckeeGatewayCertificateExpiresSoon",
        "AckeeGatewayOriginsRefreshFailing",
    ] {
        assert!(names.iter().any(|(n, _)| n == wanted), "no alert {wanted}");
    }
    let cert = names
        .iter()
        .find(|(n, _)| n == "AckeeGatewayCertificateExpiresSoon")
        .unwrap();
    assert_eq!(
        cert.1,
        "ackee_gateway_tls_certificate_expiry_timestamp_seconds - time() < 14 * 24 * 3600"
    );
}

/// The alerts fire on the series that should fire them, and stay quiet on the others
/// (`promtool test rules`; an alert not listed at an eval time must not be firing then).
const RULE_TESTS: &str = r#"
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="ackee-gateway", instance="gw1"}'
        values: '1x10'
      - series: 'up{job="ackee-gateway", instance="gw2"}'
        values: '0x10'
      # gw1: one of two replicas down. gw3: its only replica down.
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="a"}'
        values: '1x10'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="b"}'
        values: '0x10'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw3", replica="only"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 1m
        alertname: AckeeGatewayReplicaDown
      - eval_time: 3m
        alertname: AckeeGatewayReplicaDown
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, replica: b}
      - eval_time: 3m
        alertname: AckeeGatewayAllReplicasDown
        exp_alerts:
          - exp_labels: {severity: critical, job: ackee-gateway, instance: gw3}
      - eval_time: 3m
        alertname: AckeeGatewayDown
        exp_alerts:
          - exp_labels: {severity: critical, job: ackee-gateway, instance: gw2}
  - interval: 1m
    input_series:
      # gw1 per minute: 60 POSTs answered 2xx, 15 answered 5xx, 45 preflights refused for
      # their origin, 2 bodies over the limit.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="POST", status="2xx"}'
        values: '0+60x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="POST", status="5xx"}'
        values: '0+15x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw1", method="OPTIONS", status="4xx"}'
        values: '0+45x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw1", reason="origin", request="preflight"}'
        values: '0+45x40'
      - series: 'ackee_gateway_limit_rejections_total{job="ackee-gateway", instance="gw1", limit="body"}'
        values: '0+2x40'
      # gw2: healthy traffic with a few failures and refusals.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw2", method="POST", status="2xx"}'
        values: '0+600x40'
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw2", method="POST", status="5xx"}'
        values: '0+6x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw2", reason="origin", request="actual"}'
        values: '0+30x40'
      # gw3: almost no traffic, all of it failing: below the floors.
      - series: 'ackee_gateway_requests_total{job="ackee-gateway", instance="gw3", method="POST", status="5xx"}'
        values: '0+0.2x40'
      - series: 'ackee_gateway_cors_rejections_total{job="ackee-gateway", instance="gw3", reason="origin", request="preflight"}'
        values: '0+0.2x40'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayHigh5xxRate
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 30m
        alertname: AckeeGatewayCorsRejectionSpike
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 30m
        alertname: AckeeGatewayLimitRejections
        exp_alerts:
          - exp_labels: {severity: info, job: ackee-gateway, instance: gw1, limit: body}
  - interval: 1m
    input_series:
      # gw1: a password guesser, 20 logins refused a minute, and a replayer, 30 tracker writes
      # refused a minute. gw2: a person who mistyped twice, once; a burst of refused tracker
      # writes that stops after 10 minutes.
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw1", rule="login"}'
        values: '0+20x40'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw1", rule="tracker"}'
        values: '0+30x40'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw2", rule="login"}'
        values: '0x10 2x30'
      - series: 'ackee_gateway_rate_limit_rejections_total{job="ackee-gateway", instance="gw2", rule="tracker"}'
        values: '0+120x10 1200x30'
    alert_rule_test:
      - eval_time: 3m
        alertname: AckeeGatewayLoginRateLimited
      - eval_time: 12m
        alertname: AckeeGatewayLoginRateLimited
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
      - eval_time: 12m
        alertname: AckeeGatewayTrackerRateLimited
      - eval_time: 30m
        alertname: AckeeGatewayTrackerRateLimited
        exp_alerts:
          - exp_labels: {severity: info, job: ackee-gateway, instance: gw1}
  - interval: 1m
    input_series:
      # At time 0, "soon" expires in 1,000,000 s (11.6 days), "later" in 3.2 years.
      - series: 'ackee_gateway_tls_certificate_expiry_timestamp_seconds{job="ackee-gateway", instance="gw1", certificate="soon"}'
        values: '1000000x150'
      - series: 'ackee_gateway_tls_certificate_expiry_timestamp_seconds{job="ackee-gateway", instance="gw1", certificate="later"}'
        values: '100000000x150'
      - series: 'ackee_gateway_tls_certificate_reloads_total{job="ackee-gateway", instance="gw1", certificate="soon", result="failed"}'
        values: '0x30 1x120'
      - series: 'ackee_gateway_tls_certificate_reloads_total{job="ackee-gateway", instance="gw1", certificate="later", result="ok"}'
        values: '0x30 1x120'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayCertificateExpiresSoon
      - eval_time: 2h
        alertname: AckeeGatewayCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: soon}
      - eval_time: 40m
        alertname: AckeeGatewayCertificateReloadFailed
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: soon, result: failed}
  - interval: 1m
    input_series:
      # "failing": every ACME order fails from minute 10 on. "recovered": one fails at minute
      # 10, the retry succeeds at minute 12.
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="failing", result="failed"}'
        values: '0x10 1+1x80'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="failing", result="issued"}'
        values: '0x90'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="recovered", result="failed"}'
        values: '0x10 1x80'
      - series: 'ackee_gateway_acme_orders_total{job="ackee-gateway", instance="gw1", certificate="recovered", result="issued"}'
        values: '0x12 1x78'
    alert_rule_test:
      - eval_time: 30m
        alertname: AckeeGatewayAcmeOrderFailing
      - eval_time: 60m
        alertname: AckeeGatewayAcmeOrderFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, certificate: failing, result: failed}
  - interval: 1m
    input_series:
      # gw1: origins_from_ackee, Ackee refuses the token from the start (never a success).
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw1", reason="token_refused"}'
        values: '0+1x60'
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw1", reason="unreachable"}'
        values: '0x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw1"}'
        values: '0x60'
      # gw2: without origins_from_ackee: everything stays 0.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw2", reason="unreachable"}'
        values: '0x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw2"}'
        values: '0x60'
      # gw3: a poll fails now and then, but one succeeds every minute.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw3", reason="unreachable"}'
        values: '0+1x60'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0+60x60'
      # gw4: worked for 10 minutes, then Ackee went away.
      - series: 'ackee_gateway_ackee_origins_refresh_failures_total{job="ackee-gateway", instance="gw4", reason="unreachable"}'
        values: '0x10 1+1x50'
      - series: 'ackee_gateway_ackee_origins_last_success_timestamp_seconds{job="ackee-gateway", instance="gw4"}'
        values: '0+60x10 600x50'
    alert_rule_test:
      - eval_time: 12m
        alertname: AckeeGatewayOriginsRefreshFailing
      - eval_time: 22m
        alertname: AckeeGatewayOriginsRefreshFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, reason: token_refused}
      - eval_time: 33m
        alertname: AckeeGatewayOriginsRefreshFailing
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1, reason: token_refused}
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw4, reason: unreachable}
  - interval: 1m
    input_series:
      # gw1: assets every 60 s, refreshes fail from minute 5 while Ackee is up.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw1"}'
        values: '0x5 60+60x40'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw1"}'
        values: '60x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw1", replica="a"}'
        values: '1x45'
      # gw2: the same age, but Ackee is down: AckeeGatewayAllReplicasDown speaks for it.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw2"}'
        values: '0x5 60+60x40'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw2"}'
        values: '60x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw2", replica="a"}'
        values: '0x45'
      # gw3: assets off: the age grows since start-up, the interval is 0.
      - series: 'ackee_gateway_assets_age_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0+60x45'
      - series: 'ackee_gateway_assets_refresh_interval_seconds{job="ackee-gateway", instance="gw3"}'
        values: '0x45'
      - series: 'ackee_gateway_upstream_healthy{job="ackee-gateway", instance="gw3", replica="a"}'
        values: '1x45'
    alert_rule_test:
      - eval_time: 15m
        alertname: AckeeGatewayAssetsStale
      - eval_time: 22m
        alertname: AckeeGatewayAssetsStale
        exp_alerts:
          - exp_labels: {severity: warning, job: ackee-gateway, instance: gw1}
"#;

#[test]
fn the_alerts_fire_when_they_should_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    // promtool compares annotations too; they are prose, checked by `check rules` above, so the
    // copy under test leaves them out.
    let mut rules = yaml(ALERTS);
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    let rules_file = dir.path().join("alerts.yml");
    write_yaml(&rules_file, &rules);
    let mut tests: Value = serde_yaml::from_str(RULE_TESTS).unwrap();
    tests.as_mapping_mut().unwrap().insert(
        Value::from("rule_files"),
        Value::Sequence(vec![Value::from(rules_file.to_string_lossy().as_ref())]),
    );
    let tests_file = dir.path().join("tests.yml");
    write_yaml(&tests_file, &tests);
    let out = promtool(&[
        OsStr::new("test"),
        OsStr::new("rules"),
        tests_file.as_os_str(),
    ]);
    assert_success("promtool test rules", &out);
}

#[test]
fn promtool_accepts_a_prometheus_config_with_the_scrape_job_and_the_rules() {
    let scrape = yaml(SCRAPE);
    let jobs = scrape["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("ackee-gateway"))
        .expect("a job named ackee-gateway");
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let metrics_address = yaml("conf/ackee-gateway.yaml")["metrics"]["address"]
        .as_str()
        .expect("metrics.address in conf/ackee-gateway.yaml")
        .to_owned();
    let targets: Vec<&str> = job["static_configs"][0]["targets"]
        .as_sequence()
        .expect("static_configs[0].targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        targets,
        [metrics_address.as_str()],
        "the scrape target is the shipped config's metrics.address"
    );

    // Debian 12's Prometheus (2.42) has no scrape_config_files, so the job is copied in.
    let dir = tempfile::tempdir().unwrap();
    let config = map(vec![
        (
            "global",
            map(vec![
                ("scrape_interval", Value::from("15s")),
                ("evaluation_interval", Value::from("15s")),
            ]),
        ),
        (
            "rule_files",
            Value::Sequence(vec![Value::from(path(ALERTS).to_string_lossy().as_ref())]),
        ),
        ("scrape_configs", Value::Sequence(jobs.clone())),
    ]);
    let file = dir.path().join("prometheus.yml");
    write_yaml(&file, &config);
    let out = promtool(&[OsStr::new("check"), OsStr::new("config"), file.as_os_str()]);
    assert_success("promtool check config", &out);
}
