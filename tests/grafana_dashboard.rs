//! The Grafana dashboard: importable (its format, panels and data source), every query accepted
//! by `promtool`, and only metrics the gateway exports. Needs `apt-get install prometheus`.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod assets;
    pub mod metric_names;
}

use common::assets::{map, promtool, read, text, write_yaml, yaml};
use common::metric_names::unknown_metric_names;

use std::collections::BTreeSet;
use std::ffi::OsStr;

use serde_yaml::Value;

const DASHBOARD: &str = "conf/grafana/ackee-gateway.json";

#[test]
fn the_dashboard_uses_only_exported_metrics() {
    let unknown = unknown_metric_names(&read(DASHBOARD));
    assert!(
        unknown.is_empty(),
        "{DASHBOARD} uses metrics the gateway does not export: {unknown:?}"
    );
}

/// Every string under an `expr` key, with the path to it.
fn exprs(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().unwrap_or("?");
                match (k, v) {
                    ("expr", Value::String(e)) => out.push((at.clone(), e.clone())),
                    _ => exprs(v, format!("{at}.{k}"), out),
                }
            }
        }
        Value::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                exprs(v, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn dashboard() -> Value {
    // JSON is YAML, so serde_yaml reads the dashboard.
    yaml(DASHBOARD)
}

#[test]
fn the_dashboard_is_an_importable_grafana_dashboard() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    assert_eq!(d["uid"].as_str(), Some("ackee-gateway"));
    assert!(d["title"].as_str().is_some());
    let variables = d["templating"]["list"]
        .as_sequence()
        .expect("templating.list");
    assert!(
        variables
            .iter()
            .any(|v| v["type"].as_str() == Some("datasource")
                && v["query"].as_str() == Some("prometheus")
                && v["name"].as_str() == Some("datasource")),
        "a datasource variable named `datasource`, so the import asks for the Prometheus"
    );
    let panels = d["panels"].as_sequence().expect("panels");
    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in panels {
        let title = p["title"]
            .as_str()
            .expect("every panel has a title")
            .to_owned();
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "duplicate id on {title}"
        );
        for k in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][k].as_u64().is_some(), "{title}: gridPos.{k}");
        }
        if p["type"].as_str() != Some("row") {
            assert_eq!(
                p["datasource"]["uid"].as_str(),
                Some("${datasource}"),
                "{title}"
            );
            let targets = p["targets"].as_sequence().expect("targets");
            assert!(!targets.is_empty(), "{title} has no query");
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some(),
                    "{title}: a target without expr"
                );
                assert_eq!(
                    t["datasource"]["uid"].as_str(),
                    Some("${datasource}"),
                    "{title}"
                );
            }
        }
        titles.push(title);
    }
    for wanted in [
        "Preflights answered at the edge",
        "Rejections by reason",
        "Requests by status",
        "Upstream latency p50 / p90 / p99",
        "Replica health",
        "Certificate expiry (days left)",
        "Visits ignored at the edge, by reason",
    ] {
        assert!(titles.iter().any(|t| t == wanted), "no panel {wanted:?}");
    }
    let mut all = Vec::new();
    exprs(&d, String::new(), &mut all);
    for q in ["0.5", "0.9", "0.99"] {
        assert!(
            all.iter()
                .any(|(_, e)| e.starts_with(&format!("histogram_quantile({q},"))
                    && e.contains("by (replica, le)")),
            "no p{q} latency by replica"
        );
    }
}

#[test]
fn promtool_accepts_every_dashboard_query() {
    let mut all = Vec::new();
    exprs(&dashboard(), String::new(), &mut all);
    assert!(all.len() >= 10, "only {} queries found", all.len());
    // As recording rules, with Grafana's variables replaced by what they expand to.
    let rules: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            assert!(!e.contains('$'), "an unknown Grafana variable in {e}");
            map(vec![
                ("record", Value::from(format!("dashboard:query_{i}"))),
                ("expr", Value::from(e)),
            ])
        })
        .collect();
    let file = map(vec![(
        "groups",
        Value::Sequence(vec![map(vec![
            ("name", Value::from("dashboard")),
            ("rules", Value::Sequence(rules)),
        ])]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("dashboard.yml");
    write_yaml(&rules_file, &file);
    let out = promtool(&[
        OsStr::new("check"),
        OsStr::new("rules"),
        rules_file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query:\n{}\nqueries: {all:#?}",
        text(&out)
    );
}
