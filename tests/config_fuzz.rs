//! A bounded fuzz test of the config loader: thousands of mutations of a config that uses
//! every key, each of which must give a valid config or a list of problems (`-t` exit 0 or 2),
//! never a panic. A few of them also go through the real binary's `-t`.

/// The helpers in tests/common/ that this binary uses.
#[path = "common"]
pub mod common {
    pub mod process;
}

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use serde_yaml::Value;

const BASE: &str = r#"
threads: 2
pid_file: /tmp/gw.pid
upgrade_sock: /tmp/gw.sock
grace_period_seconds: 3
graceful_shutdown_timeout_seconds: 2
daemon: false
daemon_wait_for_ready: true
work_stealing: true
upstream_keepalive_pool_size: 128
listeners:
  - name: public
    address: "127.0.0.1:8080"
    redirect_to_https: false
    https_port: 443
    response_headers: {X-Frame-Options: deny}
  - name: secure
    address: "127.0.0.1:8443"
    tls:
      certificates:
        - {name: a, cert: /nonexistent/cert.pem, key: /nonexistent/key.pem, server_names: [a.example]}
      default_certificate: a
      watch: true
      watch_interval_seconds: 5
cors:
  allowed_origins: ["https://example.com", "https://*.example.org"]
  allow_credentials: true
  allowed_methods: [GET, POST, PATCH, OPTIONS]
  allowed_headers: [Content-Type, Authorization]
  max_age_seconds: 3600
  disallowed_origin: forward
upstream:
  selection: round_robin
  retry_after_seconds: 5
  connect_timeout_seconds: 2
  read_timeout_seconds: 60
  write_timeout_seconds: 30
  idle_timeout_seconds: 4
  replicas:
    - {name: one, address: "127.0.0.1:3000", weight: 2}
    - {address: "ackee.internal:3000"}
  health_check:
    type: http
    path: /.well-known/apollo/server-health
    interval_seconds: 2
    timeout_seconds: 1
    unhealthy_after: 3
    healthy_after: 2
limits:
  max_body_bytes: 65536
  max_header_bytes: 16384
  body_timeout_seconds: 15
  header_timeout_seconds: 60
  max_connections_per_client: 1024
trusted_proxies: ["10.0.0.0/8", "192.0.2.7"]
access_log: {format: json}
metrics: {address: "127.0.0.1:9464"}
"#;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn interesting(rng: &mut Rng) -> Value {
    let yaml = [
        "1e20",
        "-1e20",
        "-1",
        "0",
        "0.0000001",
        ".nan",
        ".inf",
        "-.inf",
        "18446744073709551615",
        "-9223372036854775808",
        "1e400",
        "''",
        "' '",
        "null",
        "true",
        "[]",
        "{}",
        "[1, [2]]",
        "{a: {b: c}}",
        "'/health<x>'",
        "'/gesundheit-ü'",
        "\"\\x01\"",
        "'127.0.0.1:0'",
        "'[::]:443'",
        "'*'",
        "'null'",
        "'https://*.com'",
        "'0.0.0.0/0'",
        "'::/0'",
        "4294967296",
        "65536",
        "1048576",
        "'ü.example:3000'",
        "'localhost'",
        "!tag value",
        "3600.0001",
    ];
    match rng.below(yaml.len() + 2) {
        i if i < yaml.len() => serde_yaml::from_str(yaml[i]).unwrap_or(Value::Null),
        i if i == yaml.len() => Value::String("x".repeat(rng.below(70_000))),
        _ => Value::String(
            (0..rng.below(20))
                .map(|_| char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('?'))
                .collect(),
        ),
    }
}

/// Replaces, removes or adds one thing somewhere in the tree.
fn mutate(v: &mut Value, rng: &mut Rng, depth: usize) {
    let go_deeper = depth < 6 && rng.below(4) != 0;
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            let keys: Vec<Value> = m.keys().cloned().collect();
            let key = keys[rng.below(keys.len())].clone();
            match rng.below(8) {
                0 => {
                    m.remove(&key);
                }
                1 => {
                    m.insert(interesting(rng), interesting(rng));
                }
                _ if go_deeper => {
                    if let Some(child) = m.get_mut(&key) {
                        mutate(child, rng, depth + 1);
                    }
                }
                _ => {
                    m.insert(key, interesting(rng));
                }
            }
        }
        Value::Sequence(s) if !s.is_empty() => {
            let i = rng.below(s.len());
            match rng.below(6) {
                0 => {
                    s.remove(i);
                }
                1 => {
                    let copy = s[i].clone();
                    s.push(copy);
                }
                _ if go_deeper => mutate(&mut s[i], rng, depth + 1),
                _ => s[i] = interesting(rng),
            }
        }
        _ => *v = interesting(rng),
    }
}

fn resolver(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    match host {
        "ackee.internal" => Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))]),
        _ => Err(std::io::Error::other("not resolvable in this test")),
    }
}

/// Loads text as `-t` does; `Err` holds the panic message.
fn load(text: &str) -> Result<bool, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        ackee_gateway::config::parse_with("gw.yaml", text, None, &resolver).is_ok()
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn mutated_configs_load_or_fail_cleanly_and_never_panic() {
    std::panic::set_hook(Box::new(|_| {}));
    let base: Value = serde_yaml::from_str(BASE).unwrap();
    assert_eq!(
        load(BASE),
        Ok(false),
        "the base fails only on its missing files"
    );
    let seed = std::env::var("CONFIG_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut cases = 0;
    let mut panics = Vec::new();
    while Instant::now() < deadline && cases < 20_000 {
        let mut doc = base.clone();
        for _ in 0..=rng.below(3) {
            mutate(&mut doc, &mut rng, 0);
        }
        let mut text = serde_yaml::to_string(&doc).unwrap_or_default();
        if rng.below(10) == 0 && !text.is_empty() {
            // A raw byte-level change too, for the YAML parser.
            let i = rng.below(text.len());
            let mut bytes = text.into_bytes();
            const NOISE: &[u8] = b"{}[]:-'\"\n #&*!|>%@`";
            bytes[i] = NOISE[rng.below(NOISE.len())];
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        cases += 1;
        if let Err(message) = load(&text) {
            panics.push((message, text));
            if panics.len() >= 3 {
                break;
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        panics.is_empty(),
        "{} panics in {cases} cases (seed {seed:#x}); first: {:?}",
        panics.len(),
        panics.first()
    );
    assert!(cases >= 200, "only {cases} cases ran");
}

#[test]
fn the_binary_exits_0_or_2_on_mutated_configs() {
    let base: Value = serde_yaml::from_str(BASE).unwrap();
    let mut rng = Rng(0xb1_0a_57);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        let mut doc = base.clone();
        // Without the files the base lacks, so that some cases are valid (exit 0).
        if let Value::Mapping(m) = &mut doc {
            if let Some(Value::Sequence(ls)) = m.get_mut("listeners") {
                ls.truncate(1);
            }
            if let Some(Value::Mapping(u)) = m.get_mut("upstream") {
                u.insert(
                    "replicas".into(),
                    serde_yaml::from_str("[{address: '127.0.0.1:3000'}]").unwrap(),
                );
            }
        }
        if i > 0 {
            mutate(&mut doc, &mut rng, 0);
        }
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        let (code, stderr) = common::process::run(&["-t", "-c", &path.to_string_lossy()], &[]);
        assert!(
            code == 0 || code == 2,
            "case {i}: exit {code}\n{stderr}\n{}",
            serde_yaml::to_string(&doc).unwrap()
        );
        if i == 0 {
            assert_eq!(code, 0, "{stderr}");
        }
    }
}
