//! Ackee's static files at the edge, without a server: the per-request decision (route,
//! `Accept-Encoding`, `If-None-Match`) for a browser's first and repeat requests, and the
//! once-per-change work of building a copy (SHA-256 and three compressions of Ackee-sized
//! files).
//!
//! Run: `cargo bench --bench assets`.

use std::hint::black_box;
use std::time::SystemTime;

use ackee_gateway::assets::fetch::{Body, Fetched};
use ackee_gateway::assets::{AssetSettings, Assets, Copy};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, header};

/// Text of a given size that compresses about as JavaScript does.
fn script(size: usize, seed: u32) -> Vec<u8> {
    let words = [
        "function", "return", "const", "this", "props", "state", "map", "=>", "null",
    ];
    let mut x = seed;
    let mut out = Vec::with_capacity(size + 16);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(words[(x % 9) as usize].as_bytes());
        out.extend_from_slice(format!("{};", x % 100).as_bytes());
    }
    out.truncate(size);
    out
}

/// Ackee 3.4.2's five files, at their sizes.
fn fetched() -> Fetched {
    let body = |ct: &str, bytes: Vec<u8>| Body {
        content_type: ct.to_owned(),
        bytes,
    };
    let js = "text/javascript; charset=utf-8";
    Fetched {
        replica: "ackee".to_owned(),
        files: [
            body(js, script(20_650, 1)),
            body("text/html; charset=utf-8", script(600, 2)),
            body(js, script(439_052, 3)),
            body("text/css; charset=utf-8", script(58_485, 4)),
            body(
                "image/vnd.microsoft.icon",
                (0..52_799u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                    .collect(),
            ),
        ],
    }
}

fn bench_answer(c: &mut Criterion) {
    let assets = Assets::new(AssetSettings {
        aliases: vec!["/stats.js".to_owned()],
        ..AssetSettings::default()
    });
    let copy = Copy::build(&fetched(), None, SystemTime::UNIX_EPOCH);
    let mut first = HeaderMap::new();
    first.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("gzip, deflate, br, zstd"),
    );
    let mut repeat = first.clone();
    let route = assets.route("/tracker.js").unwrap();
    let etag = assets
        .answer(&copy, route, &Method::GET, &first)
        .unwrap()
        .variant
        .etag
        .clone();
    repeat.insert(header::IF_NONE_MATCH, etag);
    let mut g = c.benchmark_group("assets_answer");
    for (name, headers) in [("first_view", &first), ("revalidation_304", &repeat)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let route = assets.route(black_box("/tracker.js")).unwrap();
                let a = assets.answer(&copy, route, &Method::GET, black_box(headers));
                black_box(a.map(|a| a.not_modified))
            })
        });
    }
    g.bench_function("not_a_static_file", |b| {
        b.iter(|| black_box(assets.route(black_box("/api"))))
    });
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let f = fetched();
    let mut g = c.benchmark_group("assets_copy");
    g.sample_size(10);
    g.bench_function("build_every_file", |b| {
        b.iter(|| black_box(Copy::build(&f, None, SystemTime::UNIX_EPOCH)))
    });
    let previous = Copy::build(&f, None, SystemTime::UNIX_EPOCH);
    g.bench_function("build_unchanged", |b| {
        b.iter(|| black_box(Copy::build(&f, Some(&previous), SystemTime::UNIX_EPOCH)))
    });
    g.finish();
}

criterion_group!(benches, bench_answer, bench_build);
criterion_main!(benches);
