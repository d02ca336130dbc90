//! Origin matching with 1, 100 and 10,000 configured origins: an exact hit, a miss, and a
//! subdomain-pattern hit. The cost must stay flat as the list grows, because the allow list is
//! a hash set and patterns are looked up label by label.
//!
//! Run: `cargo bench --bench origin_match`.

use std::hint::black_box;

use ackee_gateway::cors::{CorsPolicy, CorsSettings};
use ackee_gateway::origin::{OriginSet, parse_entry};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header};

/// `n` exact origins plus one subdomain pattern, so every size can be asked all three questions.
fn entries(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("https://site{i}.example")).collect();
    v.push("https://*.tracked.example".to_owned());
    v
}

fn set(n: usize) -> OriginSet {
    OriginSet::new(entries(n).iter().map(|e| parse_entry(e).unwrap()))
}

fn bench_origin_set(c: &mut Criterion) {
    let mut g = c.benchmark_group("origin_set_find");
    for n in [1usize, 100, 10_000] {
        let s = set(n);
        let hit = format!("https://site{}.example", n / 2);
        g.bench_with_input(BenchmarkId::new("hit", n), &hit, |b, o| {
            b.iter(|| black_box(s.find(black_box(o))))
        });
        let miss = "https://evil.example".to_owned();
        g.bench_with_input(BenchmarkId::new("miss", n), &miss, |b, o| {
            b.iter(|| black_box(s.find(black_box(o))))
        });
        let sub = "https://a.b.tracked.example".to_owned();
        g.bench_with_input(BenchmarkId::new("subdomain_pattern", n), &sub, |b, o| {
            b.iter(|| black_box(s.find(black_box(o))))
        });
    }
    g.finish();
}

fn bench_preflight(c: &mut Criterion) {
    let mut g = c.benchmark_group("preflight_decision");
    for n in [1usize, 100, 10_000] {
        let policy = CorsPolicy::new(CorsSettings::ackee_defaults(set(n))).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://www.tracked.example"),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        g.bench_with_input(BenchmarkId::new("allowed", n), &h, |b, h| {
            b.iter(|| black_box(policy.preflight(black_box(h))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_origin_set, bench_preflight);
criterion_main!(benches);
