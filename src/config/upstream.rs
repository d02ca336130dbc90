//! `upstream`: the Ackee replicas, how one is chosen, active health checks, and timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::section::{Keyed, Later, Problems, Section};
use super::types::{
    HealthCheckSettings, HealthProbe, NODE_KEEP_ALIVE_SECONDS, Replica, Selection, UpstreamSettings,
};
use super::validate::{MAX_SECONDS, Resolver, non_empty, seconds};
use crate::health::check_request_target;

/// Reads and validates `upstream`. `None` if anything in it is wrong, or it is missing.
pub(super) fn upstream(
    r: &mut Problems,
    root: &Section<'_>,
    resolver: Resolver<'_>,
) -> Option<UpstreamSettings> {
    let Some(s) = root.section(r, "upstream", "a mapping with replicas and timeouts") else {
        r.error(
            "upstream",
            "missing; write where Ackee listens, such as upstream: {replicas: [{address: \"127.0.0.1:3000\"}]}",
        );
        return None;
    };
    let replicas = replicas(r, &s, resolver);
    let selection = s.text(r, "selection", "round_robin, random or consistent_hash");
    let health_check = s
        .section(
            r,
            "health_check",
            "a mapping with type, path, interval_seconds and the other health-check keys",
        )
        .map(|h| health_check(r, h));
    let retry_after = s.whole(
        r,
        "retry_after_seconds",
        "a whole number of seconds such as 5",
    );
    let timeouts = [
        (
            "connect_timeout_seconds",
            "2",
            UpstreamSettings::CONNECT_TIMEOUT,
        ),
        ("read_timeout_seconds", "60", UpstreamSettings::READ_TIMEOUT),
        (
            "write_timeout_seconds",
            "30",
            UpstreamSettings::WRITE_TIMEOUT,
        ),
        ("idle_timeout_seconds", "4", UpstreamSettings::IDLE_TIMEOUT),
    ]
    .map(|(key, example, default)| {
        let example = format!("a number of seconds greater than 0, such as {example}");
        (s.seconds(r, key, &example), default)
    });
    s.finish(r);

    let (replicas, mut ok) = replicas?;
    idle_warning(r, &timeouts[3].0);
    if replicas.len() > crate::retry::MAX_REPLICAS {
        r.error(
            "upstream.replicas",
            format!(
                "lists {} replicas; write at most {}",
                replicas.len(),
                crate::retry::MAX_REPLICAS
            ),
        );
        ok = false;
    }
    let selection = self::selection(r, selection, &mut ok);
    let health_check = health_check.map_or(Some(HealthCheckSettings::default()), |check| check(r));
    ok &= health_check.is_some();
    let retry_after_seconds = self::retry_after(r, retry_after, &mut ok);
    let [connect, read, write, idle] =
        timeouts.map(|(written, default)| seconds(r, written, default, MAX_SECONDS));
    let settings = UpstreamSettings {
        replicas,
        selection,
        health_check: health_check.unwrap_or_default(),
        retry_after_seconds,
        connect_timeout: connect?,
        read_timeout: read?,
        write_timeout: write?,
        idle_timeout: idle?,
    };
    ok.then_some(settings)
}

/// An idle timeout at or above Node's keep-alive lets a request meet a closing connection.
fn idle_warning(r: &mut Problems, idle: &Option<Keyed<f64>>) {
    let Some(idle) = idle else {
        return;
    };
    if (NODE_KEEP_ALIVE_SECONDS..=MAX_SECONDS).contains(&idle.value) {
        r.warning(
            &idle.key,
            format!(
                "is {} seconds, but Node (and so Ackee) closes idle connections after 5, so a request can meet a closing connection; write 4",
                idle.value
            ),
        );
    }
}

fn selection(r: &mut Problems, written: Option<Keyed<String>>, ok: &mut bool) -> Selection {
    let Some(s) = written else {
        return Selection::RoundRobin;
    };
    match s.value.trim() {
        "round_robin" => Selection::RoundRobin,
        "random" => Selection::Random,
        "consistent_hash" => Selection::ConsistentHash,
        other => {
            r.error(
                &s.key,
                format!("found \"{other}\"; write round_robin, random or consistent_hash"),
            );
            *ok = false;
            Selection::RoundRobin
        }
    }
}

fn retry_after(r: &mut Problems, written: Option<Keyed<u64>>, ok: &mut bool) -> u32 {
    let Some(k) = written else {
        return 5;
    };
    match u32::try_from(k.value) {
        Ok(v) if v <= 3600 => v,
        _ => {
            r.error(
                &k.key,
                format!(
                    "found {}; write a number of seconds from 0 to 3600, such as 5",
                    k.value
                ),
            );
            *ok = false;
            5
        }
    }
}

/// Names and addresses seen so far, to the key path that used them first.
#[derive(Default)]
struct Seen {
    names: HashMap<String, String>,
    addresses: HashMap<SocketAddr, String>,
}

/// `upstream.replicas`, each entry read and validated in turn. `None` if the list is missing
/// or empty; otherwise the replicas and whether every entry was valid.
fn replicas(
    r: &mut Problems,
    s: &Section<'_>,
    resolver: Resolver<'_>,
) -> Option<(Vec<Replica>, bool)> {
    let example = "[{address: \"127.0.0.1:3000\"}]";
    let list = match s.sections(r, "replicas", example) {
        None => {
            r.error(
                "upstream.replicas",
                format!("missing; write where Ackee listens, such as {example}"),
            );
            return None;
        }
        Some(list) if list.value.is_empty() => {
            r.error(
                &list.key,
                format!("is empty; write where Ackee listens, such as {example}"),
            );
            return None;
        }
        Some(list) => list.value,
    };
    let mut ok = true;
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for entry in list {
        let (replica, valid) = replica(r, entry, resolver, &mut seen);
        ok &= valid;
        out.extend(replica);
    }
    Some((out, ok))
}

/// One replica. The replica is `None` when it cannot be used at all; the flag says whether
/// everything in it was valid.
fn replica(
    r: &mut Problems,
    e: Section<'_>,
    resolver: Resolver<'_>,
    seen: &mut Seen,
) -> (Option<Replica>, bool) {
    let address = e.text(
        r,
        "address",
        "an address in quotes, such as \"127.0.0.1:3000\"",
    );
    let name = e.text(r, "name", "a name in quotes, such as \"ackee-1\"");
    let weight = e.whole(r, "weight", "a whole number such as 1");
    let at = e.path().to_owned();
    e.finish(r);
    let Some(a) = address else {
        r.error(
            &format!("{at}.address"),
            "missing; write where this Ackee listens, such as \"127.0.0.1:3000\"",
        );
        return (None, false);
    };
    let Some(resolved) = resolve(r, &a, resolver) else {
        return (None, false);
    };
    if let Some(first) = seen.addresses.get(&resolved) {
        r.error(
            &a.key,
            format!(
                "\"{}\" is the same address as {first}; list each Ackee once",
                a.value
            ),
        );
        return (None, false);
    }
    seen.addresses.insert(resolved, at.clone());
    let name = non_empty(r, name, "a name").unwrap_or_else(|| a.value.trim().to_owned());
    if let Some(first) = seen.names.get(&name) {
        r.error(
            &format!("{at}.name"),
            format!("\"{name}\" is also the name of {first}; give each replica its own name"),
        );
        return (None, false);
    }
    seen.names.insert(name.clone(), at);
    let (weight, ok) = match weight {
        None => (1, true),
        Some(w) if (1..=1000).contains(&w.value) => (w.value as usize, true),
        Some(w) => {
            r.error(
                &w.key,
                format!("found {}; write a whole number from 1 to 1000 (to stop traffic to a replica, remove it from the list)", w.value),
            );
            (1, false)
        }
    };
    let replica = Replica {
        name,
        written: a.value.trim().to_owned(),
        address: resolved,
        weight,
    };
    (Some(replica), ok)
}

/// Reads `upstream.health_check` now; the returned check validates it when its turn comes.
fn health_check(r: &mut Problems, h: Section<'_>) -> Later<HealthCheckSettings> {
    let kind = h.text(r, "type", "http, tcp or none");
    let path = h.text(
        r,
        "path",
        "a path in quotes, such as \"/.well-known/apollo/server-health\"",
    );
    let interval = h.seconds(
        r,
        "interval_seconds",
        "a number of seconds greater than 0, such as 2",
    );
    let timeout = h.seconds(
        r,
        "timeout_seconds",
        "a number of seconds greater than 0, such as 1",
    );
    let unhealthy_after = h.whole(r, "unhealthy_after", "a whole number such as 3");
    let healthy_after = h.whole(r, "healthy_after", "a whole number such as 2");
    h.finish(r);
    Box::new(move |r: &mut Problems| {
        let mut ok = true;
        let mut out = HealthCheckSettings {
            probe: probe(r, kind, &path, &mut ok),
            ..HealthCheckSettings::default()
        };
        if let (Some(p), false) = (&path, matches!(out.probe, HealthProbe::Http { .. })) {
            r.warning(&p.key, "is used only by type: http");
        }
        let defaults = HealthCheckSettings::default();
        let timeout_key = timeout.as_ref().map(|t| t.key.clone());
        match seconds(r, interval, defaults.interval, MAX_SECONDS) {
            Some(d) => out.interval = d,
            None => ok = false,
        }
        match seconds(r, timeout, defaults.timeout, MAX_SECONDS) {
            Some(d) => out.timeout = d,
            None => ok = false,
        }
        if let Some(key) = timeout_key.filter(|_| ok && out.timeout > out.interval) {
            r.warning(&key, "is longer than interval_seconds, so checks of a slow replica overlap less often than configured");
        }
        for (field, target) in [
            (unhealthy_after, &mut out.unhealthy_after),
            (healthy_after, &mut out.healthy_after),
        ] {
            let Some(n) = field else {
                continue;
            };
            match u32::try_from(n.value) {
                Ok(v) if (1..=100).contains(&v) => *target = v,
                _ => {
                    r.error(
                        &n.key,
                        format!("found {}; write a whole number from 1 to 100", n.value),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    })
}

/// `type` and `path` of a health check.
fn probe(
    r: &mut Problems,
    kind: Option<Keyed<String>>,
    path: &Option<Keyed<String>>,
    ok: &mut bool,
) -> HealthProbe {
    let kind = kind.map(|k| (k.key, k.value.trim().to_owned()));
    match kind.as_ref().map(|(k, v)| (k.as_str(), v.as_str())) {
        None | Some((_, "http")) => {
            let path = match path {
                None => "/.well-known/apollo/server-health".to_owned(),
                Some(p) => match check_request_target(&p.value) {
                    Ok(()) => p.value.clone(),
                    Err(problem) => {
                        r.error(&p.key, problem);
                        *ok = false;
                        String::new()
                    }
                },
            };
            HealthProbe::Http { path }
        }
        Some((_, "tcp")) => HealthProbe::Tcp,
        Some((_, "none")) => HealthProbe::Off,
        Some((key, other)) => {
            r.error(key, format!("found \"{other}\"; write http, tcp or none"));
            *ok = false;
            HealthProbe::Off
        }
    }
}

/// Resolves `HOST:PORT` once, at start-up. An IPv4 address is preferred when a name has both.
fn resolve(r: &mut Problems, a: &Keyed<String>, resolver: Resolver<'_>) -> Option<SocketAddr> {
    let text = a.value.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() == 0 {
            r.error(
                &a.key,
                format!(
                    "found \"{text}\" with port 0; write the port Ackee listens on, such as 3000"
                ),
            );
            return None;
        }
        return Some(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        r.error(
            &a.key,
            format!("found \"{text}\" without a port; write \"{text}:3000\" if Ackee listens on its default port"),
        );
        return None;
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ => {
            r.error(
                &a.key,
                format!("found \"{text}\"; write a port from 1 to 65535 after the host"),
            );
            return None;
        }
    };
    match resolver(host, port) {
        Ok(addrs) => match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
            Some(addr) => Some(*addr),
            None => {
                r.error(
                    &a.key,
                    format!("\"{text}\" resolves to no address; write an IP address and port"),
                );
                None
            }
        },
        Err(e) => {
            r.error(
                &a.key,
                format!("\"{text}\" could not be resolved ({e}); write an IP address and port, or a host name this machine resolves"),
            );
            None
        }
    }
}
