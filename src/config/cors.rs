//! `cors`: the allowed origins (from the file, `ACKEE_ALLOW_ORIGIN` or Ackee's domain list),
//! credentials, methods, headers and what happens to other origins.

use std::collections::HashMap;
use std::path::PathBuf;

use super::diag::Source;
use super::section::{Keyed, Later, Problems, Section, Texts};
use super::validate::{ENV_ALLOW_ORIGIN, MAX_SECONDS, each, seconds};
use crate::ackee_origins::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Settings as FromAckee, TitleRules};
use crate::cors::{
    ACKEE_HEADERS, ACKEE_MAX_AGE_SECONDS, ACKEE_METHODS, CorsSettings, DisallowedOrigin,
};
use crate::origin::{Entry, OriginSet, Scheme, parse_entry};

/// Reads and validates `cors`, with `env` the value of `ACKEE_ALLOW_ORIGIN`. Also says whether
/// the origins came from the environment.
pub(super) fn cors(
    r: &mut Problems,
    root: &Section<'_>,
    env: Option<&str>,
) -> (CorsSettings, bool) {
    let example = "a mapping with allowed_origins and the other CORS keys";
    let s = root.section_or_empty(r, "cors", example);
    let allowed_origins = s.texts(r, "allowed_origins", "[\"https://example.com\"]");
    let allow_credentials = s.flag(r, "allow_credentials");
    let methods = s.texts(r, "allowed_methods", "[GET, POST, PATCH, OPTIONS]");
    let example = "[Content-Type, Authorization, Time-Zone]";
    let headers = s.texts(r, "allowed_headers", example);
    let example = "a whole number of seconds such as 3600";
    let max_age = s.whole(r, "max_age_seconds", example);
    let disallowed = s.text(r, "disallowed_origin", "forward or reject");
    let from_ackee = origins_from_ackee(r, &s);
    s.finish(r);

    let (source, written) = written_origins(r, env, allowed_origins, from_ackee.is_some());
    let (entries, star) = normalise(r, &source, written);
    // Where `"*"` was written, for messages: `ACKEE_ALLOW_ORIGIN is "*"` or a key path.
    let star_place = |default: &str| match &source {
        Source::Env(var) => format!("{var} is \"*\""),
        Source::File(_) => format!("{} is \"*\"", star.as_deref().unwrap_or(default)),
    };
    let allow_credentials = match allow_credentials {
        None => star.is_none(),
        Some(c) if c.value && star.is_some() => {
            r.error(
                &c.key,
                format!(
                    "is true, but {}; browsers refuse credentials together with \"*\", so write cors.allow_credentials: false, or list the origins instead of \"*\"",
                    star_place("cors.allowed_origins")
                ),
            );
            false
        }
        Some(c) => c.value,
    };
    let allowed_methods = match methods {
        None => ACKEE_METHODS.iter().map(|s| s.to_string()).collect(),
        Some(list) => self::methods(r, list),
    };
    let allowed_headers = match headers {
        None => ACKEE_HEADERS.iter().map(|s| s.to_string()).collect(),
        Some(list) => self::headers(r, list),
    };
    let max_age_seconds = max_age.map_or(Some(ACKEE_MAX_AGE_SECONDS), |m| {
        let write = "a number of seconds such as 3600 (browsers cap it at 7200 or 86400)";
        r.within(&m, 0..=u32::MAX.into(), write).map(|v| v as u32)
    });
    let choices = [
        ("forward", DisallowedOrigin::Forward),
        ("reject", DisallowedOrigin::Reject),
    ];
    let disallowed_origin = disallowed.and_then(|d| r.choice(&d, &choices));
    let from_ackee = from_ackee.and_then(|(key, check)| {
        if star.is_some() {
            r.error(
                &key,
                format!(
                    "is set, but {}, which already allows every origin; remove origins_from_ackee, or list the origins instead of \"*\"",
                    star_place("")
                ),
            );
        }
        check(r)
    });
    let settings = CorsSettings {
        from_ackee,
        origins: OriginSet::new(entries.into_iter().map(|(_, e)| e)),
        allow_credentials,
        allowed_methods,
        allowed_headers,
        max_age_seconds,
        disallowed_origin: disallowed_origin.unwrap_or(DisallowedOrigin::Forward),
    };
    (settings, matches!(source, Source::Env(_)))
}

/// Where the origins come from, and the entries as written with their keys.
fn written_origins(
    r: &mut Problems,
    env: Option<&str>,
    file: Option<Texts>,
    from_ackee: bool,
) -> (Source, Vec<Keyed<String>>) {
    let Some(value) = env else {
        return (r.source().clone(), file_origins(r, file, from_ackee));
    };
    let env_source = Source::Env(ENV_ALLOW_ORIGIN);
    if let Some(list) = &file {
        r.warning(
            &list.key,
            format!("is replaced by the environment variable {ENV_ALLOW_ORIGIN}"),
        );
    }
    if value.trim().is_empty() {
        r.error_in(
            &env_source,
            "",
            "is set but empty; set it to an origin such as \"https://example.com\", to a comma-separated list, or to \"*\", or unset it",
        );
        return (env_source, Vec::new());
    }
    let items = value.split(',').enumerate();
    let items = items.map(|(i, t)| Keyed {
        key: format!("[{i}]"),
        value: t.to_owned(),
    });
    (env_source, items.collect())
}

/// `cors.allowed_origins` as written; with origins from Ackee it may be missing or empty.
fn file_origins(r: &mut Problems, file: Option<Texts>, from_ackee: bool) -> Vec<Keyed<String>> {
    match file {
        Some(list) if !list.value.is_empty() => list.value,
        _ if from_ackee => Vec::new(),
        None => {
            r.error(
                "cors.allowed_origins",
                format!(
                    "missing; list the origins of the sites that embed the tracker, such as [\"https://example.com\"], or set {ENV_ALLOW_ORIGIN}"
                ),
            );
            Vec::new()
        }
        Some(list) => {
            r.error(
                &list.key,
                "is empty, so no site could send visits; list the origins of the sites that embed the tracker, such as [\"https://example.com\"]",
            );
            Vec::new()
        }
    }
}

/// Normalises every entry, reporting each bad one, `"*"` among others, and duplicates. Returns
/// the entries with their keys, and the key of `"*"` if it is listed.
fn normalise(
    r: &mut Problems,
    source: &Source,
    written: Vec<Keyed<String>>,
) -> (Vec<(String, Entry)>, Option<String>) {
    let mut entries: Vec<(String, Entry)> = Vec::new();
    for w in written {
        match parse_entry(&w.value) {
            Ok(e) => entries.push((w.key, e)),
            Err(e) => r.error_in(source, &w.key, e.to_string()),
        }
    }
    let star = entries.iter().find(|(_, e)| *e == Entry::Any);
    let star = star.map(|(k, _)| k.clone());
    if let Some(star) = star.as_ref().filter(|_| entries.len() > 1) {
        r.error_in(
            source,
            star,
            "is \"*\", which allows every origin, so the other entries do nothing; keep only \"*\", or remove it and list the origins",
        );
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (key, e) in &entries {
        let text = e.to_string();
        if let Some(first) = seen.get(&text) {
            let message = format!("\"{text}\" is the same origin as {first}; remove one");
            r.warning_in(source, key, message);
        } else {
            seen.insert(text, key);
        }
    }
    (entries, star)
}

/// `allowed_methods`: at least one, uppercased.
fn methods(r: &mut Problems, list: Texts) -> Vec<String> {
    if list.value.is_empty() {
        r.error(&list.key, "is empty, so every preflight would be refused; write at least POST, such as [GET, POST, PATCH, OPTIONS]");
    }
    tokens(
        r,
        list.value,
        "is \"*\"; write the methods by name, such as GET, POST, PATCH, OPTIONS",
        "an HTTP method; write a method such as POST",
        true,
    )
}

/// `allowed_headers`, as written.
fn headers(r: &mut Problems, list: Texts) -> Vec<String> {
    tokens(
        r,
        list.value,
        "is \"*\"; browsers ignore \"*\" when credentials are on, so write the header names, such as Content-Type",
        "a header name; write a name such as Content-Type",
        false,
    )
}

/// Method or header names: RFC 9110 tokens, not `"*"`, each once whatever its case.
fn tokens(
    r: &mut Problems,
    list: Vec<Keyed<String>>,
    star: &str,
    not_a: &str,
    upper: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        let text = item.value.trim();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if text == "*" {
            r.error(&item.key, star);
        } else if text.is_empty() || !text.bytes().all(token) {
            let found = format!("found \"{}\", which is not {not_a}", item.value);
            r.error(&item.key, found);
        } else if !out.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            out.push(if upper {
                text.to_ascii_uppercase()
            } else {
                text.to_owned()
            });
        }
    }
    out
}

/// Reads `cors.origins_from_ackee` now, with its key path; the returned check validates it
/// when its turn comes: the token file must be readable (so `-t` proves it), the durations
/// bounded, the schemes known.
fn origins_from_ackee(r: &mut Problems, s: &Section<'_>) -> Option<(String, Later<FromAckee>)> {
    let a = s.section(
        r,
        "origins_from_ackee",
        "a mapping with token_file, such as {token_file: /etc/ackee-gateway/ackee-token}",
    )?;
    let at = a.path().to_owned();
    let example = "a file path in quotes, such as \"/etc/ackee-gateway/ackee-token\"";
    let token_file = a.text(r, "token_file", example);
    let interval = a.duration(r, "interval_seconds", DEFAULT_INTERVAL);
    let timeout = a.duration(r, "timeout_seconds", DEFAULT_TIMEOUT);
    let schemes = a.texts(r, "schemes", "[https]");
    let www = a.flag(r, "www").is_some_and(|w| w.value);
    a.finish(r);
    let key = at.clone();
    let check = move |r: &mut Problems| {
        let token_file = self::token_file(r, &at, token_file);
        let interval = seconds(r, interval, DEFAULT_INTERVAL, 24.0 * MAX_SECONDS);
        let timeout = seconds(r, timeout, DEFAULT_TIMEOUT, 60.0);
        let schemes = self::schemes(r, schemes);
        let rules = TitleRules { schemes, www };
        Some(FromAckee {
            token_file: token_file?,
            interval,
            timeout,
            rules,
        })
    };
    Some((key, Box::new(check)))
}

/// The token file, read now so that `-t` proves it can be; world-readable is a warning.
fn token_file(r: &mut Problems, at: &str, written: Option<Keyed<String>>) -> Option<PathBuf> {
    let Some(t) = written else {
        r.error(
            &format!("{at}.token_file"),
            "missing; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), such as \"/etc/ackee-gateway/ackee-token\"",
        );
        return None;
    };
    let path = PathBuf::from(t.value.trim());
    if let Err(why) = crate::ackee_origins::read_token(&path) {
        r.error(
            &t.key,
            format!(
                "\"{}\" {why}; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), readable by the user the gateway runs as",
                t.value
            ),
        );
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
    if mode.is_ok_and(|m| m & 0o004 != 0) {
        r.warning(
            &t.key,
            format!(
                "\"{}\" is readable by every user, and the token lets anyone read your Ackee statistics; chmod 640 it (group ackee-gateway) or 600",
                t.value
            ),
        );
    }
    Some(path)
}

/// `schemes`: https (the default), http, each once.
fn schemes(r: &mut Problems, written: Option<Texts>) -> Vec<Scheme> {
    let Some(list) = written else {
        return vec![Scheme::Https];
    };
    if list.value.is_empty() {
        r.error(
            &list.key,
            "is empty, so no title would give an origin; write [https], or [https, http]",
        );
    }
    let mut schemes: Vec<Scheme> = Vec::new();
    let parse = |t: &str| match t.trim().to_ascii_lowercase().as_str() {
        "https" => Ok(Scheme::Https),
        "http" => Ok(Scheme::Http),
        _ => Err(format!("found \"{t}\"; write https or http")),
    };
    for scheme in each(r, Some(list), parse) {
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    schemes
}
