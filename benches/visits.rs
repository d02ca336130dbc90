//! What the visit rules cost a tracker write, without a server: the bot matcher (isbot's list,
//! one regex) over real user agents, and the whole decision on ackee-tracker's `createRecord`
//! body: a browser's (counted: one pass of the matcher and a search of the body for the fixed
//! id), a bot's (the body is parsed and Ackee's answer written), and with every rule off. Also
//! the one-off cost at start-up: translating and compiling the list.
//!
//! Run: `cargo bench --bench visits`.

use std::hint::black_box;

use ackee_gateway::visits::{BotMatcher, VisitSettings, Visitor, Visits};
use criterion::{Criterion, criterion_group, criterion_main};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1";
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/138.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.7204.92 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// ackee-tracker 5.1.3's createRecord body, as `JSON.stringify` writes it (with `detailed` off).
const CREATE_RECORD: &str = r#"{"query":"\n\t\t\tmutation createRecord($domainId: ID!, $input: CreateRecordInput!) {\n\t\t\t\tcreateRecord(domainId: $domainId, input: $input) {\n\t\t\t\t\tpayload {\n\t\t\t\t\t\tid\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t","variables":{"domainId":"d0000000-0000-4000-8000-000000000001","input":{"siteLocation":"https://example.com/blog/a-post-about-something?utm_source=newsletter","siteReferrer":"https://news.example.org/"}}}"#;

fn bench_matcher(c: &mut Criterion) {
    let m = BotMatcher::isbot().unwrap();
    let mut g = c.benchmark_group("bot_matcher");
    for (name, ua) in [
        ("chrome_desktop", CHROME),
        ("safari_iphone", IPHONE),
        ("headless_chrome", HEADLESS),
        ("googlebot", GOOGLEBOT),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(m.is_bot(black_box(ua.as_bytes()))))
        });
    }
    g.finish();
}

fn bench_decision(c: &mut Criterion) {
    let on = Visits::new(&VisitSettings::default()).unwrap();
    let off = Visits::new(&VisitSettings {
        ignore_bots: false,
        ..VisitSettings::default()
    })
    .unwrap();
    let visitor = |ua: &'static str| Visitor {
        user_agent: ua.as_bytes(),
        client: None,
        gpc: false,
        dnt: false,
    };
    let body = CREATE_RECORD.as_bytes();
    let mut g = c.benchmark_group("visit_decision_create_record");
    g.bench_function("browser_counted", |b| {
        b.iter(|| black_box(on.decide(black_box(&visitor(CHROME)), black_box(body))))
    });
    g.bench_function("bot_answered_at_the_edge", |b| {
        b.iter(|| black_box(on.decide(black_box(&visitor(HEADLESS)), black_box(body))))
    });
    g.bench_function("every_rule_off", |b| {
        b.iter(|| black_box(off.decide(black_box(&visitor(HEADLESS)), black_box(body))))
    });
    g.finish();
}

fn bench_start_up(c: &mut Criterion) {
    let mut g = c.benchmark_group("bot_matcher_start_up");
    g.sample_size(10);
    g.bench_function("translate_and_compile_isbot", |b| {
        b.iter(|| black_box(BotMatcher::isbot().unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench_matcher, bench_decision, bench_start_up);
criterion_main!(benches);
