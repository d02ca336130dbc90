//! `assets`: Ackee's static files served from the edge ([`crate::assets`]), or `off`.

use http::HeaderValue;
use serde_yaml::Value;

use super::section::{Problems, Section, Seen};
use super::values::{MAX_SECONDS, seconds};
use crate::assets::{self, AssetSettings, File, MAX_ALIASES};

const EXAMPLE: &str = "off, or a mapping with refresh_seconds, tracker_aliases and cache_control";

/// `assets`: on with the defaults when absent, `None` when `off` (or `false`).
pub(super) fn assets(r: &mut Problems, root: &Section<'_>) -> Option<AssetSettings> {
    let mut out = AssetSettings::default();
    match root.get("assets").map(|(_, v)| v) {
        None | Some(Value::Bool(true)) => return Some(out),
        Some(Value::Bool(false)) => return None,
        Some(Value::String(word)) if word.trim().eq_ignore_ascii_case("off") => return None,
        Some(Value::String(word)) if word.trim().eq_ignore_ascii_case("on") => return Some(out),
        Some(_) => {}
    }
    let Some(s) = root.section(r, "assets", EXAMPLE) else {
        return Some(out);
    };
    let refresh = s.duration(r, "refresh_seconds", assets::DEFAULT_REFRESH);
    let timeout = s.duration(r, "timeout_seconds", assets::DEFAULT_TIMEOUT);
    let max = s.whole(
        r,
        "max_file_bytes",
        "a whole number of bytes such as 4194304",
    );
    let aliases = s.texts(r, "tracker_aliases", "[\"/stats.js\"]");
    let cache = s.section(
        r,
        "cache_control",
        "a mapping such as {tracker: \"public, max-age=3600\"}",
    );
    let written: Vec<_> = cache
        .as_ref()
        .map(|c| {
            File::ALL
                .iter()
                .filter_map(|f| {
                    Some((
                        *f,
                        c.text(r, f.label(), "text in quotes, such as \"no-cache\"")?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(c) = cache {
        c.finish(r);
    }
    s.finish(r);
    out.refresh = seconds(r, refresh, assets::DEFAULT_REFRESH, 24.0 * MAX_SECONDS);
    out.timeout = seconds(r, timeout, assets::DEFAULT_TIMEOUT, 60.0);
    if let Some(m) = max {
        let write =
            "a number of bytes from 1024 to 67108864, such as 4194304 (index.js is about 440 kB)";
        out.max_file_bytes = r
            .within(&m, 1024..=64 << 20, write)
            .unwrap_or(out.max_file_bytes);
    }
    if let Some(list) = aliases {
        if list.value.len() > MAX_ALIASES {
            let message = format!(
                "has {} paths; write at most {MAX_ALIASES}",
                list.value.len()
            );
            r.error(&list.key, message);
        }
        let mut seen = Seen::default();
        for alias in list.value {
            let path = alias.value.trim().to_owned();
            if let Some(problem) = assets::alias_problem(&path) {
                r.error(&alias.key, problem);
            } else if let Some(first) = seen.first_use(path.clone(), &alias.key) {
                r.error(
                    &alias.key,
                    format!("\"{path}\" is also {first}; remove one"),
                );
            } else {
                out.aliases.push(path);
            }
        }
    }
    for (file, k) in written {
        let text = k.value.trim();
        match HeaderValue::from_str(text) {
            Ok(v) if !text.is_empty() => {
                if file == File::Tracker && text.to_ascii_lowercase().contains("immutable") {
                    r.warning(&k.key, "says immutable, but /tracker.js carries no version in its URL, so browsers would keep an old tracker after Ackee is upgraded; leave immutable out");
                }
                out.cache_control[file.index()] = v;
            }
            _ => r.found(
                &k.key,
                format!("\"{}\"", k.value),
                format!(
                    "a Cache-Control value such as \"{}\"",
                    file.default_cache_control()
                ),
            ),
        }
    }
    Some(out)
}
