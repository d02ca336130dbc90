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
    problems: &mut Problems,
    root: &Section<'_>,
    resolver: Resolver<'_>,
) -> Option<UpstreamSettings> {
    let example = "a mapping with replicas and timeouts";
    let write =
        "where Ackee listens, such as upstream: {replicas: [{address: \"127.0.0.1:3000\"}]}";
    let upstream = root.required_section(problems, "upstream", example, write)?;
    let example = "[{address: \"127.0.0.1:3000\"}]";
    let write = "where Ackee listens";
    let replicas = upstream.required_sections(problems, "replicas", write, example, example);
    // Addresses and names, each unique.
    let (mut addresses, mut names) = (Seen::default(), Seen::default());
    let replicas = replicas.map(|Keyed { key, value }| {
        let replicas = value.into_iter();
        let replicas = replicas
            .filter_map(|section| replica(problems, section, resolver, &mut addresses, &mut names));
        let value = replicas.collect::<Vec<_>>();
        Keyed { key, value }
    });
    let selection = upstream.text(
        problems,
        "selection",
        "round_robin, random or consistent_hash",
    );
    let example = "a mapping with type, path, interval_seconds and the other health-check keys";
    let health_check = upstream.section(problems, "health_check", example);
    let health_check = health_check.map(|check| self::health_check(problems, check));
    let example = "a whole number of seconds such as 5";
    let retry_after = upstream.whole(problems, "retry_after_seconds", example);
    let timeouts = [
        ("connect_timeout_seconds", UpstreamSettings::CONNECT_TIMEOUT),
        ("read_timeout_seconds", UpstreamSettings::READ_TIMEOUT),
        ("write_timeout_seconds", UpstreamSettings::WRITE_TIMEOUT),
        ("idle_timeout_seconds", UpstreamSettings::IDLE_TIMEOUT),
    ]
    .map(|(key, default)| (upstream.duration(problems, key, default), default));
    upstream.finish(problems);

    let replicas = replicas?;
    let idle = timeouts[3].0.as_ref();
    // An idle timeout at or above Node's keep-alive lets a request meet a closing connection.
    if let Some(idle) =
        idle.filter(|idle| (NODE_KEEP_ALIVE_SECONDS..=MAX_SECONDS).contains(&idle.value))
    {
        problems.warning(
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
        problems.error(&replicas.key, message);
    }
    let choices = [
        ("round_robin", Selection::RoundRobin),
        ("random", Selection::Random),
        ("consistent_hash", Selection::ConsistentHash),
    ];
    let selection = selection.and_then(|written| problems.choice(&written, &choices));
    let health_check = health_check.map(|check| check(problems));
    let write = "a number of seconds from 0 to 3600, such as 5";
    let retry_after = retry_after.map_or(Some(5), |written| {
        problems.within(&written, 0..=3600, write)
    });
    let [connect, read, write, idle] =
        timeouts.map(|(written, default)| seconds(problems, written, default, MAX_SECONDS));
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
    problems: &mut Problems,
    replica: Section<'_>,
    resolver: Resolver<'_>,
    addresses: &mut Seen<SocketAddr>,
    names: &mut Seen<String>,
) -> Option<Replica> {
    let example = "an address in quotes, such as \"127.0.0.1:3000\"";
    let address = replica.wanted(problems, "address", example, Section::text);
    let example = "a name in quotes, such as \"ackee-1\"";
    let name = replica.wanted(problems, "name", example, Section::text);
    let weight = replica.whole(problems, "weight", "a whole number such as 1");
    let at = replica.path().to_owned();
    replica.finish(problems);
    let write = "where this Ackee listens, such as \"127.0.0.1:3000\"";
    let address = problems.needed(address, write)?;
    let resolved = problems.ok(&address.key, Replica::resolve(&address.value, resolver))?;
    if let Some(first) = addresses.first_use(resolved, &at) {
        let message = format!(
            "\"{}\" is the same address as {first}; list each Ackee once",
            address.value
        );
        return problems.fail(&address.key, message);
    }
    let name_key = name.key.clone();
    let name = non_empty(problems, name.written(), "a name");
    let name = name.unwrap_or_else(|| address.value.trim().to_owned());
    if let Some(first) = names.first_use(name.clone(), &at) {
        let message =
            format!("\"{name}\" is also the name of {first}; give each replica its own name");
        return problems.fail(&name_key, message);
    }
    let write =
        "a whole number from 1 to 1000 (to stop traffic to a replica, remove it from the list)";
    let weight = weight.map_or(Some(1), |weight| problems.within(&weight, 1..=1000, write));
    Some(Replica {
        name,
        written: address.value.trim().to_owned(),
        address: resolved,
        weight: weight.unwrap_or(1) as usize,
    })
}

/// Reads `upstream.health_check` now; the returned check validates it when its turn comes.
fn health_check(
    problems: &mut Problems,
    check: Section<'_>,
) -> impl FnOnce(&mut Problems) -> HealthCheckSettings + use<> {
    let defaults = HealthCheckSettings::default();
    let kind = check.text(problems, "type", "http, tcp or none");
    let example = "a path in quotes, such as \"/.well-known/apollo/server-health\"";
    let path = check.text(problems, "path", example);
    let interval = check.duration(problems, "interval_seconds", defaults.interval);
    let timeout = check.duration(problems, "timeout_seconds", defaults.timeout);
    let unhealthy_after = check.whole(problems, "unhealthy_after", "a whole number such as 3");
    let healthy_after = check.whole(problems, "healthy_after", "a whole number such as 2");
    check.finish(problems);
    move |problems: &mut Problems| {
        let before = problems.errors();
        let mut out = HealthCheckSettings {
            probe: probe(problems, kind, &path, defaults.probe.clone()),
            ..defaults
        };
        if let (Some(path), false) = (&path, matches!(out.probe, HealthProbe::Http { .. })) {
            problems.warning(&path.key, "is used only by type: http");
        }
        let timeout_key = timeout.as_ref().map(|timeout| timeout.key.clone());
        out.interval = seconds(problems, interval, out.interval, MAX_SECONDS);
        out.timeout = seconds(problems, timeout, out.timeout, MAX_SECONDS);
        let valid = problems.errors() == before;
        if let Some(key) = timeout_key.filter(|_| valid && out.timeout > out.interval) {
            problems.warning(&key, "is longer than interval_seconds, so checks of a slow replica overlap less often than configured");
        }
        let thresholds = [
            (unhealthy_after, &mut out.unhealthy_after),
            (healthy_after, &mut out.healthy_after),
        ];
        for (written, target) in thresholds {
            let number = written.and_then(|number| {
                problems.within(&number, 1..=100, "a whole number from 1 to 100")
            });
            *target = number.map_or(*target, |number| number as u32);
        }
        out
    }
}

/// `type` and `path` of a health check, with `http` the default probe.
fn probe(
    problems: &mut Problems,
    kind: Option<Keyed<String>>,
    path: &Option<Keyed<String>>,
    http: HealthProbe,
) -> HealthProbe {
    let choices = [
        ("http", http.clone()),
        ("tcp", HealthProbe::Tcp),
        ("none", HealthProbe::Off),
    ];
    let probe = kind.map_or(Some(http), |written| problems.choice(&written, &choices));
    match (probe, path) {
        (Some(HealthProbe::Http { .. }), Some(path)) => {
            let checked = problems.ok(&path.key, check_request_target(&path.value));
            let path = checked.map(|()| path.value.clone()).unwrap_or_default();
            HealthProbe::Http { path }
        }
        (probe, _) => probe.unwrap_or(HealthProbe::Off),
    }
}
