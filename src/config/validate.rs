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
/// another. Returns `None` if any error was found; every problem is in `problems` either way.
pub fn validate(
    problems: &mut Problems,
    doc: &Value,
    env_allow_origin: Option<&str>,
    resolver: Resolver<'_>,
) -> Option<Config> {
    // Nothing else can be checked in a document that is not a mapping of keys.
    let example = "a mapping of keys such as \"listeners:\" and \"cors:\"";
    let root = Section::open(problems, "", doc, example)?;
    // Pingora's keys share the top level; an unknown key is compared with the gateway's first.
    let pingora = root.share();
    let server = server(problems, &pingora);
    let listeners = super::listener::listeners(problems, &root);
    let (cors, origins_from_env) = super::cors::cors(problems, &root, env_allow_origin);
    let upstream = super::upstream::upstream(problems, &root, resolver);
    let metrics = metrics(problems, &root, listeners.as_deref());
    let limits = limits(problems, &root);
    let proxies = root.texts(problems, "trusted_proxies", "[\"10.0.0.0/8\"]");
    let trusted_proxies = TrustedProxies::new(each(problems, proxies, Cidr::parse));
    let access_log = access_log(problems, &root);
    let rate_limits = rate_limits(problems, &root);
    let assets = super::assets::assets(problems, &root);
    let acme = listeners
        .iter()
        .flatten()
        .any(|listener| listener.tls.as_ref().is_some_and(|tls| tls.acme.is_some()));
    let state_directory = super::acme::state_directory(problems, &root, acme);
    let visits = super::visits::visits(problems, &root);
    root.finish_with(problems, pingora);
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
        visits,
    };
    (!problems.has_errors()).then_some(config)
}

/// `rate_limits`: each rule a number of requests per minute, or `off` (also written 0).
fn rate_limits(problems: &mut Problems, root: &Section<'_>) -> RateLimits {
    let mut out = RateLimits::default();
    let Some(rate_limits) = root.section(
        problems,
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
        let Some(rule) = rate_limits.section(
            problems,
            key,
            &format!("{{requests_per_minute: {example}}}"),
        ) else {
            continue;
        };
        let per_minute = rule.read(
            problems,
            "requests_per_minute",
            "a whole number of requests per minute such as 300, or off",
            |value| match value {
                Value::String(text) if text.trim().eq_ignore_ascii_case("off") => Some(0),
                _ => value.as_u64(),
            },
        );
        rule.finish(problems);
        if let Some(per_minute) = per_minute {
            let limit = (per_minute.value != 0)
                .then(|| problems.within(&per_minute, 1..=MAX_PER_MINUTE.into(), &write));
            *target = limit.flatten().map(|n| n as u32);
        }
    }
    rate_limits.finish(problems);
    out
}

/// `metrics`: its own address, not a listener's.
fn metrics(
    problems: &mut Problems,
    root: &Section<'_>,
    listeners: Option<&[Listener]>,
) -> Option<MetricsSettings> {
    let metrics = root.section(problems, "metrics", "a mapping with address")?;
    let example = "an address in quotes, such as \"127.0.0.1:9464\"";
    let address = metrics.wanted(problems, "address", example, Section::text);
    metrics.finish(problems);
    let write = "the address Prometheus scrapes, such as \"127.0.0.1:9464\"";
    let written = problems.needed(address, write)?;
    let address = listen_address(problems, &written)?;
    let listeners = listeners.unwrap_or_default();
    if let Some(listener) = listeners
        .iter()
        .find(|listener| listener.address == address)
    {
        let name = &listener.name;
        let message = format!(
            "\"{address}\" is also the address of listener \"{name}\"; give metrics its own port"
        );
        problems.error(&written.key, message);
    }
    Some(MetricsSettings { address })
}

/// `access_log`: the format, and a file whose directory exists (or standard output).
fn access_log(problems: &mut Problems, root: &Section<'_>) -> Option<AccessLogSettings> {
    let access_log = root.section(problems, "access_log", "a mapping with format and path")?;
    let format = access_log.text(problems, "format", "text or json");
    let example = "a file path in quotes, such as \"/var/log/ackee-gateway/access.log\"";
    let path = access_log.text(problems, "path", example);
    access_log.finish(problems);
    let formats = [("text", Format::Text), ("json", Format::Json)];
    let format = match format {
        None => Format::Text,
        Some(written) => problems.choice(&written, &formats)?,
    };
    let target = match path {
        None => Target::Stdout,
        Some(path) => problems.ok(&path.key, Target::file(&path.value))?,
    };
    Some(AccessLogSettings { format, target })
}

/// Pingora's server keys the gateway accepts at the top level, in the order they are read: for
/// the test that each is a key of pingora's `ServerConf` (in `server`, which imports pingora).
#[cfg(test)]
pub(crate) fn pingora_keys() -> Vec<&'static str> {
    let empty = Value::Mapping(serde_yaml::Mapping::new());
    let mut problems = Problems::new(super::Source::File(String::new()));
    let root = Section::open(&mut problems, "", &empty, "a mapping").expect("a mapping opens");
    server(&mut problems, &root);
    root.into_asked()
}

/// Pingora's server keys, with the gateway's defaults.
fn server(problems: &mut Problems, top: &Section<'_>) -> ServerSettings {
    const FILE: &str = "a file path";
    let mut out = ServerSettings::default();
    let flag = |problems: &mut Problems, key, default| {
        top.flag(problems, key).map_or(default, |value| value.value)
    };
    let whole = |problems: &mut Problems, key, example, default| {
        top.whole(problems, key, example)
            .map_or(default, |value| value.value)
    };
    let text = |problems: &mut Problems, key, example, what| {
        let written = top.text(problems, key, example);
        non_empty(problems, written, what)
    };
    let _version = top.whole(problems, "version", "1");
    out.daemon = flag(problems, "daemon", out.daemon);
    out.error_log = text(problems, "error_log", "a file path in quotes", FILE);
    let example = "a file path in quotes, such as \"/run/ackee-gateway/ackee-gateway.pid\"";
    out.pid_file = text(problems, "pid_file", example, FILE).unwrap_or(out.pid_file);
    let example = "a file path in quotes, such as \"/run/ackee-gateway/upgrade.sock\"";
    out.upgrade_sock = text(problems, "upgrade_sock", example, FILE).unwrap_or(out.upgrade_sock);
    out.user = text(problems, "user", "a user name in quotes", "a user name");
    out.group = text(problems, "group", "a group name in quotes", "a group name");
    if let Some(threads) = top.whole(problems, "threads", "a whole number such as 2") {
        let threads = problems.within(&threads, 1..=1024, "a whole number from 1 to 1024");
        out.threads = threads.map_or(out.threads, |n| n as usize);
    }
    out.work_stealing = flag(problems, "work_stealing", out.work_stealing);
    let example = "a whole number of seconds such as 3";
    let grace = whole(
        problems,
        "grace_period_seconds",
        example,
        out.grace_period_seconds,
    );
    out.grace_period_seconds = grace;
    let example = "a whole number of seconds such as 2";
    let key = "graceful_shutdown_timeout_seconds";
    let shutdown = whole(
        problems,
        key,
        example,
        out.graceful_shutdown_timeout_seconds,
    );
    out.graceful_shutdown_timeout_seconds = shutdown;
    let pool = out.upstream_keepalive_pool_size as u64;
    let pool = whole(
        problems,
        "upstream_keepalive_pool_size",
        "a whole number",
        pool,
    );
    out.upstream_keepalive_pool_size = pool as usize;
    out.daemon_wait_for_ready = flag(problems, "daemon_wait_for_ready", out.daemon_wait_for_ready);
    out
}

/// `limits.max_connections_per_client`: a number of connections, or `off` (also written 0).
fn connections_per_client(
    problems: &mut Problems,
    limits: &Section<'_>,
    default: Option<u32>,
) -> Option<u32> {
    use crate::connections::{DEFAULT_PER_CLIENT, MAX_PER_CLIENT};
    let example = format!("a whole number of connections such as {DEFAULT_PER_CLIENT}, or off");
    let key = "max_connections_per_client";
    let Some(written) = limits.read(problems, key, &example, |value| match value {
        Value::String(text) if text.trim().eq_ignore_ascii_case("off") => Some(0),
        _ => value.as_u64(),
    }) else {
        return default;
    };
    if written.value == 0 {
        return None;
    }
    let write = format!("a whole number of connections from 1 to {MAX_PER_CLIENT}, or off");
    problems
        .within(&written, 1..=MAX_PER_CLIENT.into(), &write)
        .map_or(default, |n| Some(n as u32))
}

/// `limits`: request body and head sizes, and how long each may take.
fn limits(problems: &mut Problems, root: &Section<'_>) -> Limits {
    let mut out = Limits::default();
    let Some(limits) = root.section(
        problems,
        "limits",
        "a mapping with max_body_bytes, max_header_bytes, body_timeout_seconds, header_timeout_seconds and max_connections_per_client",
    ) else {
        return out;
    };
    let example = "a whole number of bytes such as 65536";
    if let Some(max_body_bytes) = limits.whole(problems, "max_body_bytes", example) {
        let write = format!(
            "a number of bytes from 1 to {MAX_BUFFERED_BODY}: bodies are read whole before a replica is chosen, and at most 64 KiB is buffered (tracker bodies are a few hundred bytes)"
        );
        if max_body_bytes.value == 0 {
            problems.error(&max_body_bytes.key, "found 0, which would refuse every tracker request; write a number of bytes such as 65536");
        } else if let Some(n) = problems.within(&max_body_bytes, 1..=MAX_BUFFERED_BODY, &write) {
            out.max_body_bytes = n;
        }
    }
    let example = "a whole number of bytes such as 16384";
    let max_header_bytes = limits.whole(problems, "max_header_bytes", example);
    let body = limits.duration(problems, "body_timeout_seconds", out.body_timeout);
    out.body_timeout = seconds(problems, body, out.body_timeout, MAX_SECONDS);
    let header = limits.duration(problems, "header_timeout_seconds", out.header_timeout);
    out.header_timeout = seconds(problems, header, out.header_timeout, 60.0);
    let per_client = out.max_connections_per_client;
    out.max_connections_per_client = connections_per_client(problems, &limits, per_client);
    limits.finish(problems);
    if let Some(max_header_bytes) = max_header_bytes {
        let write = "a number of bytes from 1024 to 1048575, such as 16384";
        let n = problems.within(&max_header_bytes, 1024..=1_048_575, write);
        out.max_header_bytes = n.map_or(out.max_header_bytes, |n| n as usize);
    }
    out
}
