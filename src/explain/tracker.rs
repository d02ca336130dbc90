//! The tracker script in `explain`'s report: whether it is served from the edge, its size in
//! each encoding, and its cache policy. Offline from the config (the files fetched from Ackee and
//! compressed as the gateway does); online from the server's own answers to `GET /tracker.js`.

use std::sync::Arc;
use std::time::Duration;

use super::browser::Answer;
use super::online::{Target, exchange};
use crate::assets::fetch::fetch;
use crate::assets::{AssetSettings, Copy, File};
use crate::config::{self, Config};

/// The paths that serve the tracker, as a list for a sentence.
fn paths(s: &AssetSettings) -> String {
    let mut all = vec![File::Tracker.path().to_owned()];
    all.extend(s.aliases.iter().cloned());
    all.join(" and ")
}

/// Offline: what the gateway with `cfg` does with the tracker, its sizes read from Ackee now.
pub(crate) fn offline_lines(cfg: &Config) -> Vec<String> {
    let Some(s) = &cfg.assets else {
        return vec![
            "Tracker script: proxied to Ackee as Ackee sends it (assets: off): uncompressed, no cache policy, downloaded whole on every page view".to_owned(),
        ];
    };
    let policy = s.cache_control[File::Tracker.index()]
        .to_str()
        .unwrap_or("")
        .to_owned();
    let targets: Vec<_> = cfg
        .upstream
        .replicas
        .iter()
        .map(config::Replica::domains_target)
        .collect();
    let sizes = match fetch(&targets, s) {
        Ok(fetched) => {
            let copy = Copy::build(&fetched, None, std::time::SystemTime::now());
            format!(
                "from replica \"{}\" now: {}",
                fetched.replica,
                copy.summary(File::Tracker)
            )
        }
        Err(f) => format!(
            "once the gateway can read it from Ackee (now it cannot: {}: {}; until then it is proxied)",
            f.reason.as_str(),
            f.detail
        ),
    };
    vec![format!(
        "Tracker script: served from the edge at {}, {sizes}; Cache-Control: {policy}, revalidated with its ETag",
        paths(s)
    )]
}

/// Online: `GET /tracker.js` on the server of `target`, once per encoding a browser accepts,
/// and what the answers say.
pub(crate) fn online_lines(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Vec<String> {
    let tracker = Target {
        path: File::Tracker.path().to_owned(),
        ..target.clone()
    };
    let url = format!(
        "{}://{}{}",
        if target.https { "https" } else { "http" },
        tracker.authority(),
        tracker.path
    );
    let mut sizes = Vec::new();
    let mut first: Option<Answer> = None;
    for coding in ["identity", "br", "gzip", "zstd"] {
        let headers = [("Accept-Encoding".to_owned(), coding.to_owned())];
        let answer = match exchange(&tracker, tls, "GET", &headers, b"", timeout) {
            Ok(a) => a,
            Err(e) => return vec![format!("Tracker script at {url}: {e}")],
        };
        if answer.status != 200 {
            return vec![format!(
                "Tracker script at {url}: answered {}",
                answer.status
            )];
        }
        let sent = answer
            .all("content-encoding")
            .first()
            .copied()
            .unwrap_or("identity")
            .to_owned();
        let length = answer
            .all("content-length")
            .first()
            .copied()
            .unwrap_or("?")
            .to_owned();
        if coding == "identity" || sent == coding {
            sizes.push(format!("{sent} {length} B"));
        }
        first.get_or_insert(answer);
    }
    let Some(a) = first else {
        return Vec::new();
    };
    let one = |name: &str| a.all(name).first().map(|v| (*v).to_owned());
    let cache = one("cache-control");
    let etag = one("etag");
    let verdict = match (&cache, &etag, sizes.len() > 1) {
        (Some(_), Some(_), true) => {
            "compressed, cacheable and revalidated: served as the gateway's edge copy serves it"
        }
        (None, None, false) => {
            "uncompressed, no cache policy, no validator: as Ackee itself sends it, so every page view downloads it whole"
        }
        _ => "partly compressed or cacheable",
    };
    vec![format!(
        "Tracker script at {url}: {}; Cache-Control: {}; ETag: {}; {verdict}",
        sizes.join(", "),
        cache.as_deref().unwrap_or("none"),
        etag.as_deref().unwrap_or("none"),
    )]
}
