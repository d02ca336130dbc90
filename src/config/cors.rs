//! `cors`: the allowed origins (from the file, `ACKEE_ALLOW_ORIGIN` or Ackee's domain list),
//! credentials, methods, headers and what happens to other origins.

use std::path::PathBuf;

use super::diag::{Severity, Source};
use super::section::{Keyed, Problems, Section, Seen, Texts, Wanted};
use super::values::{MAX_SECONDS, each, seconds};
use crate::ackee_origins::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Settings as FromAckee, TitleRules};
use crate::cors::{CorsSettings, DisallowedOrigin, allow_headers, allow_methods, distinct};
use crate::origin::{Entry, OriginSet, Scheme, parse_entry};

/// The environment variable that, as in Ackee, lists the allowed origins.
pub const ENV_ALLOW_ORIGIN: &str = "ACKEE_ALLOW_ORIGIN";

/// Reads and validates `cors`, with `env` the value of `ACKEE_ALLOW_ORIGIN`. Also says whether
/// the origins came from the environment.
pub(super) fn cors(
    problems: &mut Problems,
    root: &Section<'_>,
    env: Option<&str>,
) -> (CorsSettings, bool) {
    let example = "a mapping with allowed_origins and the other CORS keys";
    let cors = root.section_or_empty(problems, "cors", example);
    let example = "[\"https://example.com\"]";
    let allowed_origins = cors.wanted(problems, "allowed_origins", example, Section::texts);
    let allow_credentials = cors.flag(problems, "allow_credentials");
    let methods = cors.texts(problems, "allowed_methods", "[GET, POST, PATCH, OPTIONS]");
    let example = "[Content-Type, Authorization, Time-Zone]";
    let headers = cors.texts(problems, "allowed_headers", example);
    let example = "a whole number of seconds such as 3600";
    let max_age = cors.whole(problems, "max_age_seconds", example);
    let disallowed = cors.text(problems, "disallowed_origin", "forward or reject");
    let example = "a mapping with token_file, such as {token_file: /etc/ackee-gateway/ackee-token}";
    // Its keys are read last, when its turn comes: nothing else in `cors` is read after it.
    let from_ackee = cors.section(problems, "origins_from_ackee", example);
    cors.finish(problems);

    let (source, written) = written_origins(problems, env, allowed_origins, from_ackee.is_some());
    let (entries, star) = normalise(problems, source.as_ref(), written);
    // Ackee's defaults, `*` without credentials, for each key that is not written.
    let mut out = CorsSettings::ackee_defaults(OriginSet::new(entries));
    // Where `"*"` was written, for messages: `ACKEE_ALLOW_ORIGIN is "*"` or its key path.
    let star_place = |star_key: &str| match &source {
        Some(_) => format!("{ENV_ALLOW_ORIGIN} is \"*\""),
        None => format!("{star_key} is \"*\""),
    };
    match (allow_credentials, &star) {
        (Some(credentials), Some(star)) if credentials.value => problems.error(
            &credentials.key,
            format!(
                "is true, but {}; browsers refuse credentials together with \"*\", so write {}: false, or list the origins instead of \"*\"",
                star_place(star),
                credentials.key
            ),
        ),
        (Some(credentials), _) => out.allow_credentials = credentials.value,
        (None, _) => {}
    }
    if let Some(list) = methods {
        if list.value.is_empty() {
            problems.error(&list.key, "is empty, so every preflight would be refused; write at least POST, such as [GET, POST, PATCH, OPTIONS]");
        }
        out.allowed_methods = distinct(each(problems, Some(list), allow_methods::method));
    }
    if let Some(list) = headers {
        out.allowed_headers = distinct(each(problems, Some(list), allow_headers::header));
    }
    if let Some(max_age) = max_age {
        let write = "a number of seconds such as 3600 (browsers cap it at 7200 or 86400)";
        out.max_age_seconds = problems
            .within(&max_age, 0..=u32::MAX.into(), write)
            .map(|seconds| seconds as u32);
    }
    let choices = [
        ("forward", DisallowedOrigin::Forward),
        ("reject", DisallowedOrigin::Reject),
    ];
    if let Some(choice) = disallowed.and_then(|written| problems.choice(&written, &choices)) {
        out.disallowed_origin = choice;
    }
    out.from_ackee = from_ackee.and_then(|from_ackee| {
        if let Some(star) = &star {
            problems.error(
                from_ackee.path(),
                format!(
                    "is set, but {}, which already allows every origin; remove origins_from_ackee, or list the origins instead of \"*\"",
                    star_place(star)
                ),
            );
        }
        origins_from_ackee(problems, from_ackee)
    });
    (out, source.is_some())
}

/// Where the origins come from (the environment variable, or else the file), and the entries
/// as written with their keys.
fn written_origins(
    problems: &mut Problems,
    env: Option<&str>,
    file: Wanted<Vec<Keyed<String>>>,
    from_ackee: bool,
) -> (Option<Source>, Vec<Keyed<String>>) {
    let Some(value) = env else {
        return (None, file_origins(problems, file, from_ackee));
    };
    let env_source = Source::Env(ENV_ALLOW_ORIGIN);
    if file.value.is_some() {
        problems.warning(
            &file.key,
            format!("is replaced by the environment variable {ENV_ALLOW_ORIGIN}"),
        );
    }
    if value.trim().is_empty() {
        problems.add(
            Severity::Error,
            Some(&env_source),
            "",
            "is set but empty; set it to an origin such as \"https://example.com\", to a comma-separated list, or to \"*\", or unset it".to_owned(),
        );
        return (Some(env_source), Vec::new());
    }
    let items = value.split(',').enumerate();
    let items = items.map(|(i, item)| Keyed {
        key: format!("[{i}]"),
        value: item.to_owned(),
    });
    (Some(env_source), items.collect())
}

/// `cors.allowed_origins` as written; with origins from Ackee it may be missing or empty.
fn file_origins(
    problems: &mut Problems,
    file: Wanted<Vec<Keyed<String>>>,
    from_ackee: bool,
) -> Vec<Keyed<String>> {
    match file.value {
        Some(list) if !list.is_empty() => list,
        _ if from_ackee => Vec::new(),
        None => {
            problems.error(
                &file.key,
                format!(
                    "missing; list the origins of the sites that embed the tracker, such as [\"https://example.com\"], or set {ENV_ALLOW_ORIGIN}"
                ),
            );
            Vec::new()
        }
        Some(_) => {
            problems.error(
                &file.key,
                "is empty, so no site could send visits; list the origins of the sites that embed the tracker, such as [\"https://example.com\"]",
            );
            Vec::new()
        }
    }
}

/// Normalises every entry, reporting each bad one, `"*"` among others, and duplicates. Returns
/// the entries with their keys, and the key of `"*"` if it is listed.
fn normalise(
    problems: &mut Problems,
    source: Option<&Source>,
    written: Vec<Keyed<String>>,
) -> (Vec<Entry>, Option<String>) {
    let mut entries: Vec<(String, Entry)> = Vec::new();
    for origin in written {
        match parse_entry(&origin.value) {
            Ok(entry) => entries.push((origin.key, entry)),
            Err(entry) => problems.add(Severity::Error, source, &origin.key, entry.to_string()),
        }
    }
    let star = entries.iter().find(|(_, entry)| *entry == Entry::Any);
    let star = star.map(|(key, _)| key.clone());
    if let Some(star) = star.as_ref().filter(|_| entries.len() > 1) {
        problems.add(
            Severity::Error,
            source,
            star,
            "is \"*\", which allows every origin, so the other entries do nothing; keep only \"*\", or remove it and list the origins".to_owned(),
        );
    }
    let mut seen = Seen::default();
    for (key, entry) in &entries {
        let text = entry.to_string();
        if let Some(first) = seen.first_use(text.clone(), key) {
            let message = format!("\"{text}\" is the same origin as {first}; remove one");
            problems.add(Severity::Warning, source, key, message);
        }
    }
    (entries.into_iter().map(|(_, entry)| entry).collect(), star)
}

/// `cors.origins_from_ackee`: the token file must be readable (so `-t` proves it), the
/// durations bounded, the schemes known.
fn origins_from_ackee(problems: &mut Problems, from_ackee: Section<'_>) -> Option<FromAckee> {
    let example = "a file path in quotes, such as \"/etc/ackee-gateway/ackee-token\"";
    let token_file = from_ackee.wanted(problems, "token_file", example, Section::text);
    let interval = from_ackee.duration(problems, "interval_seconds", DEFAULT_INTERVAL);
    let timeout = from_ackee.duration(problems, "timeout_seconds", DEFAULT_TIMEOUT);
    let schemes = from_ackee.texts(problems, "schemes", "[https]");
    let www = from_ackee
        .flag(problems, "www")
        .is_some_and(|flag| flag.value);
    from_ackee.finish(problems);
    let token_file = self::token_file(problems, token_file);
    let interval = seconds(problems, interval, DEFAULT_INTERVAL, 24.0 * MAX_SECONDS);
    let timeout = seconds(problems, timeout, DEFAULT_TIMEOUT, 60.0);
    let schemes = self::schemes(problems, schemes);
    let rules = TitleRules { schemes, www };
    Some(FromAckee {
        token_file: token_file?,
        interval,
        timeout,
        rules,
    })
}

/// The token file, read now so that `-t` proves it can be; world-readable is a warning.
fn token_file(problems: &mut Problems, written: Wanted<String>) -> Option<PathBuf> {
    let write = "the file that holds a permanent token from Ackee (Settings, Permanent tokens), such as \"/etc/ackee-gateway/ackee-token\"";
    let token = problems.needed(written, write)?;
    let (path, warning) =
        problems.ok(&token.key, crate::ackee_origins::token_file(&token.value))?;
    if let Some(warning) = warning {
        problems.warning(&token.key, warning);
    }
    Some(path)
}

/// `schemes`: https (the default), http, each once.
fn schemes(problems: &mut Problems, written: Option<Texts>) -> Vec<Scheme> {
    let Some(list) = written else {
        return vec![Scheme::Https];
    };
    if list.value.is_empty() {
        problems.error(
            &list.key,
            "is empty, so no title would give an origin; write [https], or [https, http]",
        );
    }
    let mut schemes: Vec<Scheme> = Vec::new();
    let parse = |name: &str| {
        Scheme::named(name.trim()).ok_or_else(|| format!("found \"{name}\"; write https or http"))
    };
    for scheme in each(problems, Some(list), parse) {
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    schemes
}
