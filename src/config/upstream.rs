//! `upstream`: the Ackee replicas, how one is chosen, active health checks, and timeouts.

use std::net::SocketAddr;

use super::section::{Keyed, Problems, Section, Seen};
use super::types::{
    HealthCheckSettings, HealthProbe, NODE_KEEP_ALIVE_SECONDS, Replica, Selection, UpstreamSettings,
};
use super::values::{MAX_SECONDS, non_empty, seconds};
use crate::health::check_request_target;
use crate::replicas::{MAX_REPLICAS, Resolver};

/// Reads and validates `upstream`. `None` if it is missing, or its replicas are.
pub(super) fn upstream(
    r: &mut Problems,
    root: &Section<'_>,
    resolver: Resolver<'_>,
) -> Option<UpstreamSettings> {
    let example = "a mapping with replicas and timeouts";
    let write =
        "where Ackee listens, such as upstream: {replicas: [{address: \"127.0.0.1:3000\"}]}";
    let s = root.required_section(r, "upstream", example, write)?;
    let example = "[{address: \"127.0.0.1:3000\"}]";
    let write = "where Ackee listens";
    let replicas = s.required_sections(r, "replicas", write, example, example);
    // Addresses and names, each unique.
    let (mut addresses, mut names) = (Seen::default(), Seen::default());
    let replicas = replicas.map(|Keyed { key, value }| {
        let replicas = value.into_iter();
        let replicas = replicas.filter_map(|e| replica(r, e, resolver, &mut addresses, &mut names));
        let value = replicas.collect::<Vec<_>>();
        Keyed { key, value }
    });
    let selection = s.text(r, "selection", "round_robin, random or consistent_hash");
    let example = "a mapping with type, path, interval_seconds and the other health-check keys";
    let health_check = s.section(r, "health_check", example);
    let health_check = health_check.map(|h| self::health_check(r, h));
    let example = "a whole number of seconds such as 5";
    let retry_after = s.whole(r, "retry_after_seconds", example);
    let timeouts = [
        ("connect_timeout_seconds", UpstreamSettings::CONNECT_TIMEOUT),
        ("read_timeout_seconds", UpstreamSettings::READ_TIMEOUT),
        ("write_timeout_seconds", UpstreamSettings::WRITE_TIMEOUT),
        ("idle_timeout_seconds", UpstreamSettings::IDLE_TIMEOUT),
    ]
    .map(|(key, default)| (s.duration(r, key, default), default));
    s.finish(r);

    let replicas = replicas?;
    let idle = timeouts[3].0.as_ref();
    // An idle timeout at or above Node's keep-alive lets a request meet a closing connection.
    if let Some(idle) = idle.filter(|i| (NODE_KEEP_ALIVE_SECONDS..=MAX_SECONDS).contains(&i.value))
    {
        r.warning(
            &idle.key,
            format!(
                "is {} seconds, but Node (and so Ackee) closes idle connections after 5, so a request can meet a closing connection; write 4",
                idle.value
            ),
        );
    }
    let max = MAX_REPLICAS;
    if replicas.value.len() > max {
        let message = format!(
            "lists {} replicas; write at most {max}",
            replicas.value.len()
        );
        r.error(&replicas.key, message);
    }
    let choices = [
        ("round_robin", Selection::RoundRobin),
        ("random", Selection::Random),
        ("consistent_hash", Selection::ConsistentHash),
    ];
    let selection = selection.and_then(|k| r.choice(&k, &choices));
    let health_check = health_check.map(|check| check(r));
    let write = "a number of seconds from 0 to 3600, such as 5";
    let retry_after = retry_after.map_or(Some(5), |k| r.within(&k, 0..=3600, write));
    let [connect, read, write, idle] =
        timeouts.map(|(written, default)| seconds(r, written, default, MAX_SECONDS));
    Some(UpstreamSettings {
        replicas: replicas.value,
        selection: selection.unwrap_or(Selection::RoundRobin),
        health_check: health_check.unwrap_or_default(),
        retry_after_seconds: retry_after.unwrap_or(5) as u32,
        connect_timeout: connect,
        read_timeout: read,
        write_timeout: write,
        idle_timeout: idle,
    })
}

/// One replica, `None` when it cannot be used at all (a bad weight is an error, but the replica
/// still counts).
fn replica(
    r: &mut Problems,
    e: Section<'_>,
    resolver: Resolver<'_>,
    addresses: &mut Seen<SocketAddr>,
    names: &mut Seen<String>,
) -> Option<Replica> {
    let example = "an address in quotes, such as \"127.0.0.1:3000\"";
    let address = e.wanted(r, "address", example, Section::text);
    let example = "a name in quotes, such as \"ackee-1\"";
    let name = e.wanted(r, "name", example, Section::text);
    let weight = e.whole(r, "weight", "a whole number such as 1");
    let at = e.path().to_owned();
    e.finish(r);
    let write = "where this Ackee listens, such as \"127.0.0.1:3000\"";
    let a = r.needed(address, write)?;
    let resolved = r.ok(&a.key, Replica::resolve(&a.value, resolver))?;
    if let Some(first) = addresses.first_use(resolved, &at) {
        let message = format!(
            "\"{}\" is the same address as {first}; list each Ackee once",
            a.value
        );
        return r.fail(&a.key, message);
    }
    let name_key = name.key.clone();
    let name = non_empty(r, name.written(), "a name");
    let name = name.unwrap_or_else(|| a.value.trim().to_owned());
    if let Some(first) = names.first_use(name.clone(), &at) {
        let message =
            format!("\"{name}\" is also the name of {first}; give each replica its own name");
        return r.fail(&name_key, message);
    }
    let write =
        "a whole number from 1 to 1000 (to stop traffic to a replica, remove it from the list)";
    let weight = weight.map_or(Some(1), |w| r.within(&w, 1..=1000, write));
    Some(Replica {
        name,
        written: a.value.trim().to_owned(),
        address: resolved,
        weight: weight.unwrap_or(1) as usize,
    })
}

/// Reads `upstream.health_check` now; the returned check validates it when its turn comes.
fn health_check(
    r: &mut Problems,
    h: Section<'_>,
) -> impl FnOnce(&mut Problems) -> HealthCheckSettings + use<> {
    let defaults = HealthCheckSettings::default();
    let kind = h.text(r, "type", "http, tcp or none");
    let example = "a path in quotes, such as \"/.well-known/apollo/server-health\"";
    let path = h.text(r, "path", example);
    let interval = h.duration(r, "interval_seconds", defaults.interval);
    let timeout = h.duration(r, "timeout_seconds", defaults.timeout);
    let unhealthy_after = h.whole(r, "unhealthy_after", "a whole number such as 3");
    let healthy_after = h.whole(r, "healthy_after", "a whole number such as 2");
    h.finish(r);
    move |r: &mut Problems| {
        let before = r.errors();
        let mut out = HealthCheckSettings {
            probe: probe(r, kind, &path, defaults.probe.clone()),
            ..defaults
        };
        if let (Some(p), false) = (&path, matches!(out.probe, HealthProbe::Http { .. })) {
            r.warning(&p.key, "is used only by type: http");
        }
        let timeout_key = timeout.as_ref().map(|t| t.key.clone());
        out.interval = seconds(r, interval, out.interval, MAX_SECONDS);
        out.timeout = seconds(r, timeout, out.timeout, MAX_SECONDS);
        let valid = r.errors() == before;
        if let Some(key) = timeout_key.filter(|_| valid && out.timeout > out.interval) {
            r.warning(&key, "is longer than interval_seconds, so checks of a slow replica overlap less often than configured");
        }
        let thresholds = [
            (unhealthy_after, &mut out.unhealthy_after),
            (healthy_after, &mut out.healthy_after),
        ];
        for (written, target) in thresholds {
            let n = written.and_then(|n| r.within(&n, 1..=100, "a whole number from 1 to 100"));
            *target = n.map_or(*target, |n| n as u32);
        }
        out
    }
}

/// `type` and `path` of a health check, with `http` the default probe.
fn probe(
    r: &mut Problems,
    kind: Option<Keyed<String>>,
    path: &Option<Keyed<String>>,
    http: HealthProbe,
) -> HealthProbe {
    let choices = [
        ("http", http.clone()),
        ("tcp", HealthProbe::Tcp),
        ("none", HealthProbe::Off),
    ];
    let probe = kind.map_or(Some(http), |k| r.choice(&k, &choices));
    match (probe, path) {
        (Some(HealthProbe::Http { .. }), Some(p)) => {
            let checked = r.ok(&p.key, check_request_target(&p.value));
            let path = checked.map(|()| p.value.clone()).unwrap_or_default();
            HealthProbe::Http { path }
        }
        (probe, _) => probe.unwrap_or(HealthProbe::Off),
    }
}
