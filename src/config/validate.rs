//! From the file as written to the internal [`Config`]: every semantic check, every default, and
//! `ACKEE_ALLOW_ORIGIN`. All problems are collected; none stops the others from being found.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::section::{Keyed, Problems, Section};
use super::types::{AccessLogSettings, Config, Limits, Listener, MetricsSettings, ServerSettings};
use crate::forwarded::{Cidr, TrustedProxies};
use crate::ratelimit::{MAX_PER_MINUTE, RateLimits};
use serde_yaml::Value;

/// The environment variable that, as in Ackee, lists the allowed origins.
pub const ENV_ALLOW_ORIGIN: &str = "ACKEE_ALLOW_ORIGIN";

pub(super) const LISTEN_EXAMPLE: &str =
    "an IP address and port, such as \"127.0.0.1:8080\" or \"[::]:443\"";

/// Resolves a host name and port to addresses: the system's resolver, or a stand-in in tests.
pub type Resolver<'a> = &'a dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>;

/// The system's resolver (`/etc/hosts`, then DNS).
pub fn system_resolver(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    (host, port).to_socket_addrs().map(Iterator::collect)
}

/// Reads and validates the document (and `ACKEE_ALLOW_ORIGIN`, if set), one section after
/// another. Returns `None` if any error was found; every problem is in `r` either way.
pub fn validate(
    r: &mut Problems,
    root: Section<'_>,
    env_allow_origin: Option<&str>,
    resolver: Resolver<'_>,
) -> Option<Config> {
    // Pingora's keys share the top level; an unknown key is compared with the gateway's first.
    let pingora = root.share();
    let server = server(r, &pingora);
    let listeners = super::listener::listeners(r, &root);
    let (cors, origins_from_env) = super::cors::cors(r, &root, env_allow_origin);
    let upstream = super::upstream::upstream(r, &root, resolver);
    let metrics = metrics(r, &root, listeners.as_deref());
    let limits = limits(r, &root);
    let trusted_proxies = trusted_proxies(r, &root);
    let access_log = access_log(r, &root);
    let rate_limits = rate_limits(r, &root);
    root.finish_with(r, pingora);

    if r.has_errors() {
        return None;
    }
    Some(Config {
        server,
        listeners: listeners?,
        cors: cors?,
        origins_from_env,
        upstream: upstream?,
        metrics,
        limits,
        trusted_proxies,
        access_log,
        rate_limits,
    })
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
    let tracker = per_minute(r, &s, "tracker", "{requests_per_minute: 300}");
    let login = per_minute(r, &s, "login", "{requests_per_minute: 5}");
    s.finish(r);
    for (written, target) in [(tracker, &mut out.tracker), (login, &mut out.login)] {
        let Some(k) = written else {
            continue;
        };
        *target = match k.value {
            None | Some(0) => None,
            Some(n) => match u32::try_from(n) {
                Ok(n) if n <= MAX_PER_MINUTE => Some(n),
                _ => {
                    r.error(
                        &k.key,
                        format!(
                            "found {n}; write a whole number of requests per minute from 1 to {MAX_PER_MINUTE}, or off"
                        ),
                    );
                    None
                }
            },
        };
    }
    out
}

/// `requests_per_minute` of one rule as written: a count, or `None` for `off`.
fn per_minute(
    r: &mut Problems,
    s: &Section<'_>,
    key: &'static str,
    example: &str,
) -> Option<Keyed<Option<u64>>> {
    let rule = s.section(r, key, example)?;
    let found = rule.get("requests_per_minute").and_then(|(path, v)| {
        let value = match v {
            Value::String(t) if t.trim().eq_ignore_ascii_case("off") => Some(None),
            _ => v.as_u64().map(Some),
        };
        if value.is_none() {
            r.wrong_type(
                &path,
                v,
                "a whole number of requests per minute such as 300, or off",
            );
        }
        value.map(|value| Keyed { key: path, value })
    });
    rule.finish(r);
    found
}

/// `metrics`: its own address, not a listener's.
fn metrics(
    r: &mut Problems,
    root: &Section<'_>,
    listeners: Option<&[Listener]>,
) -> Option<MetricsSettings> {
    let s = root.section(r, "metrics", "a mapping with address")?;
    let address = s.text(
        r,
        "address",
        "an address in quotes, such as \"127.0.0.1:9464\"",
    );
    s.finish(r);
    let Some(a) = address else {
        r.error(
            "metrics.address",
            "missing; write the address Prometheus scrapes, such as \"127.0.0.1:9464\"",
        );
        return None;
    };
    let address = listen_address(r, &a)?;
    if let Some(l) = listeners
        .unwrap_or_default()
        .iter()
        .find(|l| l.address == address)
    {
        r.error(
            "metrics.address",
            format!(
                "\"{address}\" is also the address of listener \"{}\"; give metrics its own port",
                l.name
            ),
        );
    }
    Some(MetricsSettings { address })
}

/// `access_log`: the format, and a file whose directory exists (or standard output).
fn access_log(r: &mut Problems, root: &Section<'_>) -> Option<AccessLogSettings> {
    use crate::access_log::{Format, Target};
    let s = root.section(r, "access_log", "a mapping with format and path")?;
    let format = s.text(r, "format", "text or json");
    let path = s.text(
        r,
        "path",
        "a file path in quotes, such as \"/var/log/ackee-gateway/access.log\"",
    );
    s.finish(r);
    let format = match format.as_ref().map(|f| (f.key.as_str(), f.value.trim())) {
        None | Some((_, "text")) => Format::Text,
        Some((_, "json")) => Format::Json,
        Some((key, other)) => {
            r.error(key, format!("found \"{other}\"; write text or json"));
            return None;
        }
    };
    let target = match path {
        None => Target::Stdout,
        Some(p) => {
            let path = std::path::PathBuf::from(p.value.trim());
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if p.value.trim().is_empty() || !dir.is_dir() {
                r.error(
                    &p.key,
                    format!(
                        "found \"{}\", whose directory does not exist; create it, or leave path out to log to standard output (journald)",
                        p.value
                    ),
                );
                return None;
            }
            Target::File(path)
        }
    };
    Some(AccessLogSettings { format, target })
}

/// Pingora's server keys the gateway accepts at the top level, in the order they are read.
pub fn pingora_keys() -> Vec<&'static str> {
    let empty = Value::Mapping(serde_yaml::Mapping::new());
    let mut r = Problems::new(super::Source::File(String::new()));
    let s = Section::open(&mut r, "", &empty, "a mapping").expect("a mapping opens");
    server(&mut r, &s);
    s.into_asked()
}

/// Pingora's server keys, with the gateway's defaults.
fn server(r: &mut Problems, s: &Section<'_>) -> ServerSettings {
    const FILE: &str = "a file path";
    let _version = s.whole(r, "version", "1");
    let daemon = s.flag(r, "daemon");
    let error_log = s.text(r, "error_log", "a file path in quotes");
    let pid_file = s.text(
        r,
        "pid_file",
        "a file path in quotes, such as \"/run/ackee-gateway/ackee-gateway.pid\"",
    );
    let upgrade_sock = s.text(
        r,
        "upgrade_sock",
        "a file path in quotes, such as \"/run/ackee-gateway/upgrade.sock\"",
    );
    let user = s.text(r, "user", "a user name in quotes");
    let group = s.text(r, "group", "a group name in quotes");
    let threads = s.whole(r, "threads", "a whole number such as 2");
    let work_stealing = s.flag(r, "work_stealing");
    let grace = s.whole(
        r,
        "grace_period_seconds",
        "a whole number of seconds such as 3",
    );
    let shutdown = s.whole(
        r,
        "graceful_shutdown_timeout_seconds",
        "a whole number of seconds such as 2",
    );
    let pool = s.whole(r, "upstream_keepalive_pool_size", "a whole number");
    let wait_for_ready = s.flag(r, "daemon_wait_for_ready");

    let mut out = ServerSettings::default();
    let flag = |k: Option<Keyed<bool>>, default| k.map_or(default, |k| k.value);
    let whole = |k: Option<Keyed<u64>>, default| k.map_or(default, |k| k.value);
    out.daemon = flag(daemon, out.daemon);
    out.error_log = non_empty(r, error_log, FILE);
    if let Some(v) = non_empty(r, pid_file, FILE) {
        out.pid_file = v;
    }
    if let Some(v) = non_empty(r, upgrade_sock, FILE) {
        out.upgrade_sock = v;
    }
    out.user = non_empty(r, user, "a user name");
    out.group = non_empty(r, group, "a group name");
    if let Some(t) = threads {
        match t.value {
            1..=1024 => out.threads = t.value as usize,
            n => r.error(
                &t.key,
                format!("found {n}; write a whole number from 1 to 1024"),
            ),
        }
    }
    out.work_stealing = flag(work_stealing, out.work_stealing);
    out.grace_period_seconds = whole(grace, out.grace_period_seconds);
    out.graceful_shutdown_timeout_seconds = whole(shutdown, out.graceful_shutdown_timeout_seconds);
    out.upstream_keepalive_pool_size =
        whole(pool, out.upstream_keepalive_pool_size as u64) as usize;
    out.daemon_wait_for_ready = flag(wait_for_ready, out.daemon_wait_for_ready);
    out
}

pub(super) fn non_empty(r: &mut Problems, v: Option<Keyed<String>>, what: &str) -> Option<String> {
    let v = v?;
    if v.value.trim().is_empty() {
        r.error(
            &v.key,
            format!("is empty; write {what}, or leave the key out"),
        );
        None
    } else {
        Some(v.value)
    }
}

pub(super) fn listen_address(r: &mut Problems, a: &Keyed<String>) -> Option<SocketAddr> {
    match a.value.trim().parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => {
            r.error(
                &a.key,
                format!(
                    "found \"{}\" with port 0; write a fixed port, such as \"127.0.0.1:8080\"",
                    a.value
                ),
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            r.error(
                &a.key,
                format!("found \"{}\"; write {LISTEN_EXAMPLE}", a.value),
            );
            None
        }
    }
}

/// The largest body the gateway buffers: pingora's retry buffer holds 64 KiB.
pub const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// `s` seconds as a duration, if it is at least a millisecond and at most `max`.
fn bounded_seconds(s: f64, max: f64) -> Option<Duration> {
    (0.001..=max)
        .contains(&s)
        .then(|| Duration::from_secs_f64(s))
}

/// The longest duration any `*_seconds` key accepts, but `watch_interval_seconds`: an hour.
pub const MAX_SECONDS: f64 = 3600.0;

/// A bounded number of seconds, or `default` when the key is absent. Out of bounds is an error
/// (a duration of 1e20 seconds cannot even be represented) and gives `None`.
pub fn seconds(
    r: &mut Problems,
    v: Option<Keyed<f64>>,
    default: Duration,
    max: f64,
) -> Option<Duration> {
    let Some(k) = v else {
        return Some(default);
    };
    let d = bounded_seconds(k.value, max);
    if d.is_none() {
        r.error(
            &k.key,
            format!(
                "found {}; write a number of seconds from 0.001 to {max}, such as {}",
                k.value,
                default.as_secs_f64()
            ),
        );
    }
    d
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
    let max_body_bytes = s.whole(r, "max_body_bytes", "a whole number of bytes such as 65536");
    let max_header_bytes = s.whole(
        r,
        "max_header_bytes",
        "a whole number of bytes such as 16384",
    );
    let body_timeout_seconds = s.seconds(
        r,
        "body_timeout_seconds",
        "a number of seconds greater than 0, such as 15",
    );
    let header_timeout_seconds = s.seconds(
        r,
        "header_timeout_seconds",
        "a number of seconds greater than 0, such as 60",
    );
    s.finish(r);

    if let Some(b) = max_body_bytes {
        if b.value == 0 {
            r.error(&b.key, "found 0, which would refuse every tracker request; write a number of bytes such as 65536");
        } else if b.value > MAX_BUFFERED_BODY {
            r.error(
                &b.key,
                format!(
                    "found {}; write a number of bytes from 1 to {MAX_BUFFERED_BODY}: bodies are read whole before a replica is chosen, and at most 64 KiB is buffered (tracker bodies are a few hundred bytes)",
                    b.value
                ),
            );
        } else {
            l.max_body_bytes = b.value;
        }
    }
    let defaults = Limits::default();
    if let Some(d) = seconds(r, body_timeout_seconds, defaults.body_timeout, MAX_SECONDS) {
        l.body_timeout = d;
    }
    if let Some(d) = seconds(r, header_timeout_seconds, defaults.header_timeout, 60.0) {
        l.header_timeout = d;
    }
    if let Some(h) = max_header_bytes {
        if (1024..=1_048_575).contains(&h.value) {
            l.max_header_bytes = h.value as usize;
        } else {
            r.error(
                &h.key,
                format!(
                    "found {}; write a number of bytes from 1024 to 1048575, such as 16384",
                    h.value
                ),
            );
        }
    }
    l
}

/// `trusted_proxies`: CIDR blocks whose client-IP headers are believed.
fn trusted_proxies(r: &mut Problems, root: &Section<'_>) -> TrustedProxies {
    let written = root.texts(r, "trusted_proxies", "[\"10.0.0.0/8\"]");
    let mut cidrs = Vec::new();
    for item in written.map(|l| l.value).unwrap_or_default() {
        match Cidr::parse(&item.value) {
            Ok(c) => cidrs.push(c),
            Err(e) => r.error(&item.key, e.to_string()),
        }
    }
    TrustedProxies::new(cidrs)
}
