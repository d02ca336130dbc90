//! `cors`: the allowed origins (from the file, `ACKEE_ALLOW_ORIGIN` or Ackee's domain list),
//! credentials, methods, headers and what happens to other origins.

use std::collections::HashMap;

use super::diag::Source;
use super::section::{Keyed, Later, Problems, Section};
use super::validate::{ENV_ALLOW_ORIGIN, MAX_SECONDS, seconds};
use crate::ackee_origins::Settings as FromAckee;
use crate::cors::{
    ACKEE_HEADERS, ACKEE_MAX_AGE_SECONDS, ACKEE_METHODS, CorsSettings, DisallowedOrigin,
};
use crate::origin::{Entry, OriginSet, parse_entry};

type Texts = Option<Keyed<Vec<Keyed<String>>>>;

/// One origin entry with the key it came from, for messages.
struct Written {
    key: String,
    text: String,
}

/// The allow list, normalised: entries with their keys, and the key of `"*"` if listed.
struct Origins {
    source: Source,
    entries: Vec<(String, Entry)>,
    star: Option<String>,
    ok: bool,
}

impl Origins {
    /// Where `"*"` was written, for messages: `ACKEE_ALLOW_ORIGIN is "*"` or a key path.
    fn star_place(&self, default: &str) -> String {
        match &self.source {
            Source::Env(var) => format!("{var} is \"*\""),
            Source::File(_) => format!("{} is \"*\"", self.star.as_deref().unwrap_or(default)),
        }
    }
}

/// Reads and validates `cors`, with `env` the value of `ACKEE_ALLOW_ORIGIN`. Also says whether
/// the origins came from the environment.
pub(super) fn cors(
    r: &mut Problems,
    root: &Section<'_>,
    env: Option<&str>,
) -> (Option<CorsSettings>, bool) {
    let s = root.section(
        r,
        "cors",
        "a mapping with allowed_origins and the other CORS keys",
    );
    let text = |r: &mut Problems, key, example| s.as_ref().and_then(|s| s.texts(r, key, example));
    let allowed_origins = text(r, "allowed_origins", "[\"https://example.com\"]");
    let allow_credentials = s.as_ref().and_then(|s| s.flag(r, "allow_credentials"));
    let methods = text(r, "allowed_methods", "[GET, POST, PATCH, OPTIONS]");
    let headers = text(
        r,
        "allowed_headers",
        "[Content-Type, Authorization, Time-Zone]",
    );
    let max_age = s.as_ref().and_then(|s| {
        s.whole(
            r,
            "max_age_seconds",
            "a whole number of seconds such as 3600",
        )
    });
    let disallowed = s
        .as_ref()
        .and_then(|s| s.text(r, "disallowed_origin", "forward or reject"));
    let from_ackee = s.as_ref().and_then(|s| origins_from_ackee(r, s));
    if let Some(s) = s {
        s.finish(r);
    }

    let written = written_origins(r, env, allowed_origins, from_ackee.is_some());
    let from_env = matches!(written.0, Source::Env(_));
    let origins = normalise(r, written);
    let mut ok = origins.ok;
    let allow_credentials = credentials(r, &origins, allow_credentials, &mut ok);
    let allowed_methods = self::methods(r, methods, &mut ok);
    let allowed_headers = self::headers(r, headers, &mut ok);
    let max_age_seconds = self::max_age(r, max_age, &mut ok);
    let disallowed_origin = self::disallowed(r, disallowed, &mut ok);
    let from_ackee = from_ackee.and_then(|(key, check)| {
        if origins.star.is_some() {
            r.error(
                &key,
                format!(
                    "is set, but {}, which already allows every origin; remove origins_from_ackee, or list the origins instead of \"*\"",
                    origins.star_place("")
                ),
            );
            ok = false;
        }
        let settings = check(r);
        ok &= settings.is_some();
        settings
    });
    if !ok {
        return (None, from_env);
    }
    let settings = CorsSettings {
        from_ackee,
        origins: OriginSet::new(origins.entries.into_iter().map(|(_, e)| e)),
        allow_credentials,
        allowed_methods,
        allowed_headers,
        max_age_seconds,
        disallowed_origin,
    };
    (Some(settings), from_env)
}

/// Where the origins come from, and the entries as written: `None` if there are none to use.
fn written_origins(
    r: &mut Problems,
    env: Option<&str>,
    file: Texts,
    from_ackee: bool,
) -> (Source, Option<Vec<Written>>) {
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
        return (env_source, None);
    }
    let items = value
        .split(',')
        .enumerate()
        .map(|(i, t)| Written {
            key: format!("[{i}]"),
            text: t.to_owned(),
        })
        .collect();
    (env_source, Some(items))
}

/// `cors.allowed_origins` as written; with origins from Ackee it may be missing or empty.
fn file_origins(r: &mut Problems, file: Texts, from_ackee: bool) -> Option<Vec<Written>> {
    match file {
        None if from_ackee => Some(Vec::new()),
        Some(list) if list.value.is_empty() && from_ackee => Some(Vec::new()),
        None => {
            r.error(
                "cors.allowed_origins",
                format!(
                    "missing; list the origins of the sites that embed the tracker, such as [\"https://example.com\"], or set {ENV_ALLOW_ORIGIN}"
                ),
            );
            None
        }
        Some(list) if list.value.is_empty() => {
            r.error(
                &list.key,
                "is empty, so no site could send visits; list the origins of the sites that embed the tracker, such as [\"https://example.com\"]",
            );
            None
        }
        Some(list) => Some(
            list.value
                .into_iter()
                .map(|k| Written {
                    key: k.key,
                    text: k.value,
                })
                .collect(),
        ),
    }
}

/// Normalises every entry, reporting each bad one, `"*"` among others, and duplicates.
fn normalise(r: &mut Problems, (source, written): (Source, Option<Vec<Written>>)) -> Origins {
    let mut entries: Vec<(String, Entry)> = Vec::new();
    let mut ok = written.is_some();
    for w in written.unwrap_or_default() {
        match parse_entry(&w.text) {
            Ok(e) => entries.push((w.key, e)),
            Err(e) => {
                r.error_in(&source, &w.key, e.to_string());
                ok = false;
            }
        }
    }
    let star = entries
        .iter()
        .find(|(_, e)| *e == Entry::Any)
        .map(|(k, _)| k.clone());
    if let Some(star) = &star {
        if entries.len() > 1 {
            r.error_in(
                &source,
                star,
                "is \"*\", which allows every origin, so the other entries do nothing; keep only \"*\", or remove it and list the origins",
            );
            ok = false;
        }
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for (key, e) in &entries {
        let text = e.to_string();
        if let Some(first) = seen.get(&text) {
            r.warning_in(
                &source,
                key,
                format!("\"{text}\" is the same origin as {first}; remove one"),
            );
        } else {
            seen.insert(text, key.clone());
        }
    }
    Origins {
        source,
        entries,
        star,
        ok,
    }
}

/// Credentials: on by default, off with `"*"`, and never both.
fn credentials(
    r: &mut Problems,
    origins: &Origins,
    written: Option<Keyed<bool>>,
    ok: &mut bool,
) -> bool {
    let any = origins.star.is_some();
    match written {
        None => !any,
        Some(c) if c.value && any => {
            r.error(
                &c.key,
                format!(
                    "is true, but {}; browsers refuse credentials together with \"*\", so write cors.allow_credentials: false, or list the origins instead of \"*\"",
                    origins.star_place("cors.allowed_origins")
                ),
            );
            *ok = false;
            false
        }
        Some(c) => c.value,
    }
}

fn methods(r: &mut Problems, written: Texts, ok: &mut bool) -> Vec<String> {
    let Some(list) = written else {
        return ACKEE_METHODS.iter().map(|s| s.to_string()).collect();
    };
    if list.value.is_empty() {
        r.error(&list.key, "is empty, so every preflight would be refused; write at least POST, such as [GET, POST, PATCH, OPTIONS]");
        *ok = false;
    }
    let mut out: Vec<String> = Vec::new();
    for m in list.value {
        let text = m.value.trim();
        if text == "*" {
            r.error(
                &m.key,
                "is \"*\"; write the methods by name, such as GET, POST, PATCH, OPTIONS",
            );
            *ok = false;
        } else if !is_token(text) {
            r.error(
                &m.key,
                format!(
                    "found \"{}\", which is not an HTTP method; write a method such as POST",
                    m.value
                ),
            );
            *ok = false;
        } else {
            let upper = text.to_ascii_uppercase();
            if !out.contains(&upper) {
                out.push(upper);
            }
        }
    }
    out
}

fn headers(r: &mut Problems, written: Texts, ok: &mut bool) -> Vec<String> {
    let Some(list) = written else {
        return ACKEE_HEADERS.iter().map(|s| s.to_string()).collect();
    };
    let mut out: Vec<String> = Vec::new();
    for h in list.value {
        let text = h.value.trim();
        if text == "*" {
            r.error(
                &h.key,
                "is \"*\"; browsers ignore \"*\" when credentials are on, so write the header names, such as Content-Type",
            );
            *ok = false;
        } else if !is_token(text) {
            r.error(
                &h.key,
                format!(
                    "found \"{}\", which is not a header name; write a name such as Content-Type",
                    h.value
                ),
            );
            *ok = false;
        } else if !out.iter().any(|o| o.eq_ignore_ascii_case(text)) {
            out.push(text.to_owned());
        }
    }
    out
}

fn max_age(r: &mut Problems, written: Option<Keyed<u64>>, ok: &mut bool) -> Option<u32> {
    let Some(m) = written else {
        return Some(ACKEE_MAX_AGE_SECONDS);
    };
    match u32::try_from(m.value) {
        Ok(v) => Some(v),
        Err(_) => {
            r.error(&m.key, format!("found {}; write a number of seconds such as 3600 (browsers cap it at 7200 or 86400)", m.value));
            *ok = false;
            None
        }
    }
}

fn disallowed(r: &mut Problems, written: Option<Keyed<String>>, ok: &mut bool) -> DisallowedOrigin {
    let Some(d) = written else {
        return DisallowedOrigin::Forward;
    };
    match d.value.trim() {
        "forward" => DisallowedOrigin::Forward,
        "reject" => DisallowedOrigin::Reject,
        other => {
            r.error(
                &d.key,
                format!("found \"{other}\"; write forward or reject"),
            );
            *ok = false;
            DisallowedOrigin::Forward
        }
    }
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    let token_file = a.text(
        r,
        "token_file",
        "a file path in quotes, such as \"/etc/ackee-gateway/ackee-token\"",
    );
    let interval = a.seconds(
        r,
        "interval_seconds",
        "a number of seconds greater than 0, such as 60",
    );
    let timeout = a.seconds(
        r,
        "timeout_seconds",
        "a number of seconds greater than 0, such as 5",
    );
    let schemes = a.texts(r, "schemes", "[https]");
    let www = a.flag(r, "www").is_some_and(|w| w.value);
    a.finish(r);
    let key = at.clone();
    let check = move |r: &mut Problems| {
        use crate::ackee_origins::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT, TitleRules};
        let token_file = self::token_file(r, &at, token_file);
        let interval = seconds(r, interval, DEFAULT_INTERVAL, 24.0 * MAX_SECONDS);
        let timeout = seconds(r, timeout, DEFAULT_TIMEOUT, 60.0);
        let schemes = self::schemes(r, schemes);
        Some(FromAckee {
            token_file: token_file?,
            interval: interval?,
            timeout: timeout?,
            rules: TitleRules {
                schemes: schemes?,
                www,
            },
        })
    };
    Some((key, Box::new(check)))
}

/// The token file, read now so that `-t` proves it can be; world-readable is a warning.
fn token_file(
    r: &mut Problems,
    at: &str,
    written: Option<Keyed<String>>,
) -> Option<std::path::PathBuf> {
    let Some(t) = written else {
        r.error(
            &format!("{at}.token_file"),
            "missing; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), such as \"/etc/ackee-gateway/ackee-token\"",
        );
        return None;
    };
    let path = std::path::PathBuf::from(t.value.trim());
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
fn schemes(r: &mut Problems, written: Texts) -> Option<Vec<crate::origin::Scheme>> {
    use crate::origin::Scheme;
    let Some(list) = written else {
        return Some(vec![Scheme::Https]);
    };
    let mut ok = true;
    if list.value.is_empty() {
        r.error(
            &list.key,
            "is empty, so no title would give an origin; write [https], or [https, http]",
        );
        ok = false;
    }
    let mut schemes: Vec<Scheme> = Vec::new();
    for item in list.value {
        let scheme = match item.value.trim().to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => {
                r.error(
                    &item.key,
                    format!("found \"{}\"; write https or http", item.value),
                );
                ok = false;
                continue;
            }
        };
        if !schemes.contains(&scheme) {
            schemes.push(scheme);
        }
    }
    ok.then_some(schemes)
}
