//! The metric names the operations assets may use: the gateway's, as the README's metrics
//! table lists them (tests/metrics.rs keeps that table identical to what /metrics serves).

use std::collections::BTreeSet;

use super::assets::read;

/// Every metric the gateway exports: the README's metrics table, which tests/metrics.rs keeps
/// identical to what /metrics serves. The dashboard and the rules may use no other.
pub fn exported_metrics() -> Vec<String> {
    read("README.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `ackee_gateway_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("ackee_gateway_{n}"))
        .collect()
}

/// Histograms also appear as `_bucket`, `_sum` and `_count` series.
pub const HISTOGRAMS: &[&str] = &["ackee_gateway_upstream_response_seconds"];

/// Every `ackee_gateway_*` name in `text` that is not an exported metric.
pub fn unknown_metric_names(text: &str) -> BTreeSet<String> {
    let exported = exported_metrics();
    assert!(
        exported.len() >= 15,
        "the README's metrics table was not found"
    );
    let known = |name: &str| {
        exported.iter().any(|m| m == name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| HISTOGRAMS.contains(&base))
            })
    };
    let mut unknown = BTreeSet::new();
    for (i, _) in text.match_indices("ackee_gateway_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let preceded_by_name_char = text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !preceded_by_name_char && !known(&name) {
            unknown.insert(name);
        }
    }
    unknown
}
