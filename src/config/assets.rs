//! `assets`: Ackee's static files served from the edge ([`crate::assets`]), or `off`.

use http::HeaderValue;
use serde_yaml::Value;

use super::section::{Problems, Section, Seen};
use super::values::{MAX_SECONDS, seconds};
use crate::assets::{self, AssetSettings, File, MAX_ALIASES};

const EXAMPLE: &str = "off, or a mapping with refresh_seconds, tracker_aliases and cache_control";

/// `assets`: on with the defaults when absent, `None` when `off` (or `false`).
pub(super) fn assets(problems: &mut Problems, root: &Section<'_>) -> Option<AssetSettings> {
    let mut out = AssetSettings::default();
    match root.get("assets").map(|(_, value)| value) {
        None | Some(Value::Bool(true)) => return Some(out),
        Some(Value::Bool(false)) => return None,
        Some(Value::String(word)) if word.trim().eq_ignore_ascii_case("off") => return None,
        Some(Value::String(word)) if word.trim().eq_ignore_ascii_case("on") => return Some(out),
        Some(_) => {}
    }
    let Some(section) = root.section(problems, "assets", EXAMPLE) else {
        return Some(out);
    };
    let refresh = section.duration(problems, "refresh_seconds", assets::DEFAULT_REFRESH);
    let timeout = section.duration(problems, "timeout_seconds", assets::DEFAULT_TIMEOUT);
    let max = section.whole(
        problems,
        "max_file_bytes",
        "a whole number of bytes such as 4194304",
    );
    let aliases = section.texts(problems, "tracker_aliases", "[\"/stats.js\"]");
    let cache = section.section(
        problems,
        "cache_control",
        "a mapping such as {tracker: \"public, max-age=3600\"}",
    );
    let cache_controls: Vec<_> = cache
        .as_ref()
        .map(|cache| {
            File::ALL
                .iter()
                .filter_map(|file| {
                    Some((
                        *file,
                        cache.text(
                            problems,
                            file.label(),
                            "text in quotes, such as \"no-cache\"",
                        )?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(cache) = cache {
        cache.finish(problems);
    }
    section.finish(problems);
    out.refresh = seconds(
        problems,
        refresh,
        assets::DEFAULT_REFRESH,
        24.0 * MAX_SECONDS,
    );
    out.timeout = seconds(problems, timeout, assets::DEFAULT_TIMEOUT, 60.0);
    if let Some(max_file_bytes) = max {
        let write =
            "a number of bytes from 1024 to 67108864, such as 4194304 (index.js is about 440 kB)";
        out.max_file_bytes = problems
            .within(&max_file_bytes, 1024..=64 << 20, write)
            .unwrap_or(out.max_file_bytes);
    }
    if let Some(list) = aliases {
        if list.value.len() > MAX_ALIASES {
            let message = format!(
                "has {} paths; write at most {MAX_ALIASES}",
                list.value.len()
            );
            problems.error(&list.key, message);
        }
        let mut seen = Seen::default();
        for alias in list.value {
            let path = alias.value.trim().to_owned();
            if let Some(problem) = assets::alias_problem(&path) {
                problems.error(&alias.key, problem);
            } else if let Some(first) = seen.first_use(path.clone(), &alias.key) {
                problems.error(
                    &alias.key,
                    format!("\"{path}\" is also {first}; remove one"),
                );
            } else {
                out.aliases.push(path);
            }
        }
    }
    for (file, written) in cache_controls {
        let text = written.value.trim();
        match HeaderValue::from_str(text) {
            Ok(value) if !text.is_empty() => {
                if file == File::Tracker && text.to_ascii_lowercase().contains("immutable") {
                    problems.warning(&written.key, "says immutable, but /tracker.js carries no version in its URL, so browsers would keep an old tracker after Ackee is upgraded; leave immutable out");
                }
                out.cache_control[file.index()] = value;
            }
            _ => problems.found(
                &written.key,
                format!("\"{}\"", written.value),
                format!(
                    "a Cache-Control value such as \"{}\"",
                    file.default_cache_control()
                ),
            ),
        }
    }
    Some(out)
}
