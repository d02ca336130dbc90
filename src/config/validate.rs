//! From the file as written to the internal [`Config`]: every semantic check, every default, and
//! `ACKEE_ALLOW_ORIGIN`. All problems are collected; none stops the others from being found.

use super::section::{Problems, Section};
use super::types::{AccessLogSettings, Config, Limits, Listener, MetricsSettings, ServerSettings};
use super::values::{MAX_SECONDS, each, listen_address, non_empty, seconds};
use crate::access_log::{Format, Target};
use crate::forwarded::{Cidr, TrustedProxies};
use crate::limits::MAX_BUFFERED_BODY;
use crate::ratelimit::{MAX_PER_MINUTE, RateLimits};
use crate::replicas::Resolver;
use serde_yaml::Value;

/// Reads and validates the document (and `ACKEE_ALLOW_ORIGIN`, if set), one section after
/// another. Returns `None` if any error was found; every problem is in `r` either way.
pub fn validate(
    r: &mut Problems,
    doc: &Value,
    env_allow_origin: Option<&str>,
    resolver: Resolver<'_>,
) -> Option<Config> {
    // Nothing else can be checked in a document that is not a mapping of keys.
    let example = "a mapping of keys such as \"listeners:\" and \"cors:\"";
    let root = Section::open(r, "", doc, example)?;
    // Pingora's keys share the top level; an unknown key is compared with the gateway's first.
    let pingora = root.share();
    let server = server(r, &pingora);
    let listeners = super::listener::listeners(r, &root);
    let (cors, origins_from_env) = super::cors::cors(r, &root, env_allow_origin);
    let upstream = super::upstream::upstream(r, &root, resolver);
    let metrics = metrics(r, &root, listeners.as_deref());
    let limits = limits(r, &root);
    let proxies = root.texts(r, "trusted_proxies", "[\"10.0.0.0/8\"]");
    let trusted_proxies = TrustedProxies::new(each(r, proxies, Cidr::parse));
    let access_log = access_log(r, &root);
    let rate_limits = rate_limits(r, &root);
    let assets = super::assets::assets(r, &root);
    let acme = listeners
        .iter()
        .flatten()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.acme.is_some()));
    let state_directory = super::acme::state_directory(r, &root, acme);
    root.finish_with(r, pingora);
    let config = Config {
        server,
        listeners: listeners?,
        cors,
        origins_from_env,
        upstream: upstream?,
        metrics,
        limits,
        trusted_proxies,
        access_log,
        rate_limits,
        assets,
        state_directory,
    };
    (!r.has_errors()).then_some(config)
}

/// `rate_limits`: each rule a number of requests per minute, or `off` (also written 0).
fn rate_limits(r: &mut Problems, root: &Section<'_>) -> RateLimits {
    let mut out = RateLimits::default();
    let Some(s) = root.section(
        r,
        "rate_limits",
        "a mapping with tracker and login, such as {tracker: {requests_per_minute: 300}, login: {requests_per_minute: 5}}",
    ) else {
        return out;
    };
    let write = format!("a whole number of requests per minute from 1 to {MAX_PER_MINUTE}, or off");
    let rules = [
        ("tracker", "300", &mut out.tracker),
        ("login", "5", &mut out.login),
    ];
    for (key, example, target) in rules {
        let Some(rule) = s.section(r, key, &format!("{{requests_per_minute: {example}}}")) else {
            continue;
        };
        let per_minute = rule.read(
            r,
            "requests_per_minute",
            "a whole number of requests per minute such as 300, or off",
            |v| match v {
                Value::String(t) if t.trim().eq_ignore_ascii_case("off") => Some(0),
                _ => v.as_u64(),
            },
        );
        rule.finish(r);
        if let Some(k) = per_minute {
            let limit = (k.value != 0).then(|| r.within(&k, 1..=MAX_PER_MINUTE.into(), &write));
            *target = limit.flatten().map(|n| n as u32);
        }
    }
    s.finish(r);
    out
}

/// `metrics`: its own address, not a listener's.
fn metrics(
    r: &mut Problems,
    root: &Section<'_>,
    listeners: Option<&[Listener]>,
) -> Option<MetricsSettings> {
    let s = root.section(r, "metrics", "a mapping with address")?;
    let example = "an address in quotes, such as \"127.0.0.1:9464\"";
    let address = s.wanted(r, "address", example, Section::text);
    s.finish(r);
    let write = "the address Prometheus scrapes, such as \"127.0.0.1:9464\"";
    let a = r.needed(address, write)?;
    let address = listen_address(r, &a)?;
    let listeners = listeners.unwrap_or_default();
    if let Some(l) = listeners.iter().find(|l| l.address == address) {
        let name = &l.name;
        let message = format!(
            "\"{address}\" is also the address of listener \"{name}\"; give metrics its own port"
        );
        r.error(&a.key, message);
    }
    Some(MetricsSettings { address })
}

/// `access_log`: the format, and a file whose directory exists (or standard output).
fn access_log(r: &mut Problems, root: &Section<'_>) -> Option<AccessLogSettings> {
    let s = root.section(r, "access_log", "a mapping with format and path")?;
    let format = s.text(r, "format", "text or json");
    let example = "a file path in quotes, such as \"/var/log/ackee-gateway/access.log\"";
    let path = s.text(r, "path", example);
    s.finish(r);
    let formats = [("text", Format::Text), ("json", Format::Json)];
    let format = match format {
        None => Format::Text,
        Some(f) => r.choice(&f, &formats)?,
    };
    let target = match path {
        None => Target::Stdout,
        Some(p) => r.ok(&p.key, Target::file(&p.value))?,
    };
    Some(AccessLogSettings { format, target })
}

/// Pingora's server keys the gateway accepts at the top level, in the order they are read: for
/// the test that each is a key of pingora's `ServerConf` (in `server`, which imports pingora).
#[cfg(test)]
pub(crate) fn pingora_keys() -> Vec<&'static str> {
    let empty = Value::Mapping(serde_yaml::Mapping::new());
    let mut r = Problems::new(super::Source::File(String::new()));
    let s = Section::open(&mut r, "", &empty, "a mapping").expect("a mapping opens");
    server(&mut r, &s);
    s.into_asked()
}

/// Pingora's server keys, with the gateway's defaults.
fn server(r: &mut Problems, s: &Section<'_>) -> ServerSettings {
    const FILE: &str = "a file path";
    let mut out = ServerSettings::default();
    let flag = |r: &mut Problems, key, default| s.flag(r, key).map_or(default, |k| k.value);
    let whole = |r: &mut Problems, key, example, default| {
        s.whole(r, key, example).map_or(default, |k| k.value)
    };
    let text = |r: &mut Problems, key, example, what| {
        let written = s.text(r, key, example);
        non_empty(r, written, what)
    };
    let _version = s.whole(r, "version", "1");
    out.daemon = flag(r, "daemon", out.daemon);
    out.error_log = text(r, "error_log", "a file path in quotes", FILE);
    let example = "a file path in quotes, such as \"/run/ackee-gateway/ackee-gateway.pid\"";
    out.pid_file = text(r, "pid_file", example, FILE).unwrap_or(out.pid_file);
    let example = "a file path in quotes, such as \"/run/ackee-gateway/upgrade.sock\"";
    out.upgrade_sock = text(r, "upgrade_sock", example, FILE).unwrap_or(out.upgrade_sock);
    out.user = text(r, "user", "a user name in quotes", "a user name");
    out.group = text(r, "group", "a group name in quotes", "a group name");
    if let Some(t) = s.whole(r, "threads", "a whole number such as 2") {
        let threads = r.within(&t, 1..=1024, "a whole number from 1 to 1024");
        out.threads = threads.map_or(out.threads, |n| n as usize);
    }
    out.work_stealing = flag(r, "work_stealing", out.work_stealing);
    let example = "a whole number of seconds such as 3";
    let grace = whole(r, "grace_period_seconds", example, out.grace_period_seconds);
    out.grace_period_seconds = grace;
    let example = "a whole number of seconds such as 2";
    let key = "graceful_shutdown_timeout_seconds";
    let shutdown = whole(r, key, example, out.graceful_shutdown_timeout_seconds);
    out.graceful_shutdown_timeout_seconds = shutdown;
    let pool = out.upstream_keepalive_pool_size as u64;
    let pool = whole(r, "upstream_keepalive_pool_size", "a whole number", pool);
    out.upstream_keepalive_pool_size = pool as usize;
    out.daemon_wait_for_ready = flag(r, "daemon_wait_for_ready", out.daemon_wait_for_ready);
    out
}

/// `limits`: request body and head sizes, and how long each may take.
fn limits(r: &mut Problems, root: &Section<'_>) -> Limits {
    let mut l = Limits::default();
    let Some(s) = root.section(
        r,
        "limits",
        "a mapping with max_body_bytes, max_header_bytes, body_timeout_seconds and header_timeout_seconds",
    ) else {
        return l;
    };
    let example = "a whole number of bytes such as 65536";
    if let Some(b) = s.whole(r, "max_body_bytes", example) {
        let write = format!(
            "a number of bytes from 1 to {MAX_BUFFERED_BODY}: bodies are read whole before a replica is chosen, and at most 64 KiB is buffered (tracker bodies are a few hundred bytes)"
        );
        if b.value == 0 {
            r.error(&b.key, "found 0, which would refuse every tracker request; write a number of bytes such as 65536");
        } else if let Some(n) = r.within(&b, 1..=MAX_BUFFERED_BODY, &write) {
            l.max_body_bytes = n;
        }
    }
    let example = "a whole number of bytes such as 16384";
    let max_header_bytes = s.whole(r, "max_header_bytes", example);
    let body = s.duration(r, "body_timeout_seconds", l.body_timeout);
    l.body_timeout = seconds(r, body, l.body_timeout, MAX_SECONDS);
    let header = s.duration(r, "header_timeout_seconds", l.header_timeout);
    l.header_timeout = seconds(r, header, l.header_timeout, 60.0);
    s.finish(r);
    if let Some(h) = max_header_bytes {
        let write = "a number of bytes from 1024 to 1048575, such as 16384";
        let n = r.within(&h, 1024..=1_048_575, write);
        l.max_header_bytes = n.map_or(l.max_header_bytes, |n| n as usize);
    }
    l
}
