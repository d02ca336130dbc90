//! Ackee's static files answered at the edge: the tracker script (under its own path and the
//! configured aliases) and the dashboard's files, fetched from a replica in the background,
//! compressed once per change and served from memory with validators and a cache policy.
//! Ackee then only sees the visit's writes.
//!
//! No pingora here; one concern per file:
//!
//! | file | owns |
//! |---|---|
//! | this one | which paths are Ackee's static files, the settings, the copy in use and the answer to one request |
//! | [`negotiate`] | the variant `Accept-Encoding` asks for |
//! | [`conditional`] | `If-None-Match`: whether the answer is `304` |
//! | [`copy`] | one consistent copy of every file: its variants, `ETag`s and header values |
//! | [`compress`] | brotli, gzip and zstd |
//! | [`fetch`] | reading the files from a replica, and what is not taken |
//! | [`refresh`] | what each refresh does to the copy, the log and the counts |
//!
//! The background service that refreshes the copy is in [`crate::server`]; the proxy answers
//! from it in `request_filter`.

pub mod compress;
pub mod conditional;
pub mod copy;
pub mod fetch;
pub mod negotiate;
pub mod refresh;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{HeaderMap, HeaderValue, Method, header};

pub use copy::{Copy, FileCopy, Variant};

/// One of Ackee's static files, as Ackee 3.4.2 serves it (`src/server.js`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum File {
    /// `/tracker.js`, the script every tracked page loads.
    Tracker,
    /// `/index.html`, also served at `/`: the dashboard's page. Built from Ackee's environment.
    IndexHtml,
    /// `/index.js`, the dashboard's script.
    IndexJs,
    /// `/index.css`, the dashboard's styles.
    IndexCss,
    /// `/favicon.ico`.
    Favicon,
}

impl File {
    /// Every file, in the order a refresh fetches them.
    pub const ALL: [File; 5] = [
        File::Tracker,
        File::IndexHtml,
        File::IndexJs,
        File::IndexCss,
        File::Favicon,
    ];

    /// Where Ackee serves it.
    pub fn path(self) -> &'static str {
        match self {
            File::Tracker => "/tracker.js",
            File::IndexHtml => "/index.html",
            File::IndexJs => "/index.js",
            File::IndexCss => "/index.css",
            File::Favicon => "/favicon.ico",
        }
    }

    /// Its name in metrics and in the config's `cache_control`.
    pub fn label(self) -> &'static str {
        match self {
            File::Tracker => "tracker",
            File::IndexHtml => "index_html",
            File::IndexJs => "index_js",
            File::IndexCss => "index_css",
            File::Favicon => "favicon",
        }
    }

    /// Its position in [`File::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether `content_type` is what Ackee sends for this file: a copy is taken only then.
    pub fn accepts(self, content_type: &str) -> bool {
        let media = content_type.split(';').next().unwrap_or("").trim();
        let is = |m: &str| media.eq_ignore_ascii_case(m);
        match self {
            File::Tracker | File::IndexJs => {
                is("text/javascript")
                    || is("application/javascript")
                    || is("application/x-javascript")
            }
            File::IndexHtml => is("text/html"),
            File::IndexCss => is("text/css"),
            File::Favicon => media.len() > 6 && media[..6].eq_ignore_ascii_case("image/"),
        }
    }

    /// The default `Cache-Control`: the tracker's URL carries no version, so it is cached for
    /// an hour and may be used stale for a day while it is revalidated, never `immutable`; the
    /// dashboard's files are revalidated on every load (a `304` when unchanged).
    pub fn default_cache_control(self) -> &'static str {
        match self {
            File::Tracker => "public, max-age=3600, stale-while-revalidate=86400",
            _ => "no-cache",
        }
    }
}

/// A content coding the gateway can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// The file as Ackee sent it.
    Identity,
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
    /// `zstd`.
    Zstd,
}

impl Encoding {
    /// Every coding, identity first.
    pub const ALL: [Encoding; 4] = [
        Encoding::Identity,
        Encoding::Brotli,
        Encoding::Gzip,
        Encoding::Zstd,
    ];

    /// Its token in `Accept-Encoding` and `Content-Encoding`, and its metric label.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// The coding a client names (case-insensitive; `x-gzip` is gzip), if the gateway has it.
    pub fn named(token: &[u8]) -> Option<Encoding> {
        let is = |t: &str| token.eq_ignore_ascii_case(t.as_bytes());
        Encoding::ALL
            .into_iter()
            .find(|e| is(e.token()))
            .or_else(|| is("x-gzip").then_some(Encoding::Gzip))
    }

    /// Its position in [`Encoding::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What answers a request path: a file, and whether the path is one of its aliases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The file.
    pub file: File,
    /// Whether the path is a configured tracker alias.
    pub alias: bool,
}

/// The `file` label values of the answers' metric: each file, and `alias` for the tracker
/// under an alias.
pub const ROUTE_LABELS: [&str; 6] = [
    "tracker",
    "alias",
    "index_html",
    "index_js",
    "index_css",
    "favicon",
];

impl Route {
    /// Its position in [`ROUTE_LABELS`].
    pub fn label_index(self) -> usize {
        match (self.alias, self.file) {
            (true, _) => 1,
            (false, File::Tracker) => 0,
            (false, f) => f.index() + 1,
        }
    }
}

/// The default pause between refreshes.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// The default bound on each replica's answers in one refresh.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default largest file taken: index.js is 439,052 bytes in Ackee 3.4.2.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 20;
/// The most aliases: each is compared per request.
pub const MAX_ALIASES: usize = 16;

/// Paths an alias may not take: Ackee's own routes (`/api` and below), the health check, the
/// ACME challenges the gateway answers.
const TAKEN: [&str; 3] = ["/api", "/.well-known/apollo", "/.well-known/acme-challenge"];

/// What is wrong with `path` as a tracker alias, phrased for the config, or `None`.
pub fn alias_problem(path: &str) -> Option<String> {
    let fix = "write a path such as \"/stats.js\"";
    if !path.starts_with('/') {
        return Some(format!("\"{path}\" is not a path; {fix}"));
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b);
    if path.len() > 256 || !path.bytes().all(valid) {
        return Some(format!(
            "\"{path}\" is not a plain path (letters, digits and -._~!$&'()*+,;=:@/% only, no query, at most 256 bytes); {fix}"
        ));
    }
    if path == "/" || File::ALL.iter().any(|f| f.path() == path) {
        return Some(format!(
            "\"{path}\" is already one of Ackee's static files; {fix}"
        ));
    }
    let under = |dir: &&str| {
        path.strip_prefix(*dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if let Some(p) = TAKEN.iter().find(|d| under(d)) {
        return Some(format!(
            "\"{path}\" is under {p}, which Ackee or the gateway answers; {fix}"
        ));
    }
    None
}

/// `assets`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetSettings {
    /// The pause between refreshes.
    pub refresh: Duration,
    /// How long one replica gets to answer every file of a refresh.
    pub timeout: Duration,
    /// A larger file is not taken.
    pub max_file_bytes: u64,
    /// Other paths that serve the tracker.
    pub aliases: Vec<String>,
    /// `Cache-Control` by [`File::index`]; aliases take the tracker's.
    pub cache_control: [HeaderValue; 5],
}

impl Default for AssetSettings {
    fn default() -> Self {
        AssetSettings {
            refresh: DEFAULT_REFRESH,
            timeout: DEFAULT_TIMEOUT,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            aliases: Vec::new(),
            cache_control: File::ALL.map(|f| HeaderValue::from_static(f.default_cache_control())),
        }
    }
}

/// The answer to a `GET` or `HEAD` of a static file, decided from the copy in use.
#[derive(Debug)]
pub struct Answer<'c> {
    /// `304 Not Modified`: the client holds this variant already.
    pub not_modified: bool,
    /// The variant chosen by `Accept-Encoding`.
    pub variant: &'c Variant,
    /// Its file.
    pub file: &'c FileCopy,
    /// The file's `Cache-Control`.
    pub cache_control: &'c HeaderValue,
}

/// The edge copy in use, shared by every listener and swapped whole by the refresh.
#[derive(Debug)]
pub struct Assets {
    settings: AssetSettings,
    current: ArcSwapOption<Copy>,
}

impl Assets {
    /// No copy yet: every path is proxied until the first refresh takes one.
    pub fn new(settings: AssetSettings) -> Assets {
        Assets {
            settings,
            current: ArcSwapOption::empty(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AssetSettings {
        &self.settings
    }

    /// The file a request for `path` (without its query) is for, if any.
    pub fn route(&self, path: &str) -> Option<Route> {
        let file = match path {
            "/tracker.js" => File::Tracker,
            "/" | "/index.html" => File::IndexHtml,
            "/index.js" => File::IndexJs,
            "/index.css" => File::IndexCss,
            "/favicon.ico" => File::Favicon,
            _ => {
                let alias = self.settings.aliases.iter().any(|a| a == path);
                return alias.then_some(Route {
                    file: File::Tracker,
                    alias: true,
                });
            }
        };
        Some(Route { file, alias: false })
    }

    /// The copy in use, if one was taken: one atomic load, and the request keeps this copy to
    /// the end even if a refresh swaps another in meanwhile.
    pub fn current(&self) -> Option<Arc<Copy>> {
        self.current.load_full()
    }

    /// Puts `copy` in use for every request from now on.
    pub fn swap(&self, copy: Copy) {
        self.current.store(Some(Arc::new(copy)));
    }

    /// The answer to `method` on `route` with the request's `headers`, from `copy`; `None`
    /// for a method other than `GET` and `HEAD`, which goes to Ackee.
    pub fn answer<'c>(
        &'c self,
        copy: &'c Copy,
        route: Route,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Answer<'c>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let file = copy.file(route.file);
        let accept = headers.get_all(header::ACCEPT_ENCODING).iter();
        let sizes = file.variants.iter().map(|v| (v.encoding, v.body.len()));
        let chosen = negotiate::choose(accept.map(HeaderValue::as_bytes), sizes).unwrap_or(0);
        let variant = file.variants.get(chosen)?;
        let inm = headers.get_all(header::IF_NONE_MATCH).iter();
        let not_modified =
            conditional::none_match(inm.map(HeaderValue::as_bytes), variant.etag.as_bytes());
        Some(Answer {
            not_modified,
            variant,
            file,
            cache_control: &self.settings.cache_control[route.file.index()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_files_and_aliases_to_the_tracker() {
        let assets = Assets::new(AssetSettings {
            aliases: vec!["/stats.js".into(), "/a/b.js".into()],
            ..AssetSettings::default()
        });
        let file = |f| {
            Some(Route {
                file: f,
                alias: false,
            })
        };
        let alias = Some(Route {
            file: File::Tracker,
            alias: true,
        });
        let cases: &[(&str, Option<Route>)] = &[
            ("/tracker.js", file(File::Tracker)),
            ("/", file(File::IndexHtml)),
            ("/index.html", file(File::IndexHtml)),
            ("/index.js", file(File::IndexJs)),
            ("/index.css", file(File::IndexCss)),
            ("/favicon.ico", file(File::Favicon)),
            ("/stats.js", alias),
            ("/a/b.js", alias),
            ("/api", None),
            ("/Tracker.js", None),
            ("/tracker.js/", None),
            ("//tracker.js", None),
            ("/stats.js/x", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(assets.route(path), *want, "{path}");
        }
        let labels: Vec<&str> = [file(File::Tracker), alias, file(File::Favicon)]
            .iter()
            .map(|r| ROUTE_LABELS[r.unwrap().label_index()])
            .collect();
        assert_eq!(labels, ["tracker", "alias", "favicon"]);
    }

    #[test]
    fn aliases_are_plain_paths_that_clash_with_nothing() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/stats.js", None),
            ("/js/a-b_c.js", None),
            ("/%7Euser.js", None),
            ("stats.js", Some("is not a path")),
            ("/stats.js?v=1", Some("is not a plain path")),
            ("/stats js", Some("is not a plain path")),
            ("/stätś.js", Some("is not a plain path")),
            ("/tracker.js", Some("already one of Ackee's static files")),
            ("/", Some("already one of Ackee's static files")),
            ("/index.html", Some("already one of Ackee's static files")),
            ("/api", Some("is under /api")),
            ("/api/x.js", Some("is under /api")),
            ("/apix.js", None),
            (
                "/.well-known/apollo/server-health",
                Some("is under /.well-known/apollo,"),
            ),
            (
                "/.well-known/acme-challenge/x",
                Some("is under /.well-known/acme-challenge,"),
            ),
        ];
        for (path, want) in cases {
            let got = alias_problem(path);
            match want {
                None => assert_eq!(got, None, "{path}"),
                Some(part) => {
                    let got = got.unwrap_or_else(|| panic!("{path} accepted"));
                    assert!(got.contains(part), "{path}: {got}");
                    assert!(got.ends_with("write a path such as \"/stats.js\""), "{got}");
                }
            }
        }
    }

    #[test]
    fn content_types_are_ackees_own() {
        let cases: &[(File, &str, bool)] = &[
            (File::Tracker, "text/javascript; charset=utf-8", true),
            (File::Tracker, "application/javascript", true),
            (File::Tracker, "text/html; charset=utf-8", false),
            (File::IndexJs, "TEXT/JAVASCRIPT", true),
            (File::IndexHtml, "text/html; charset=utf-8", true),
            (File::IndexHtml, "application/json", false),
            (File::IndexCss, "text/css; charset=utf-8", true),
            (File::Favicon, "image/vnd.microsoft.icon", true),
            (File::Favicon, "image/", false),
            (File::Favicon, "text/plain", false),
            (File::Tracker, "", false),
        ];
        for (file, ct, want) in cases {
            assert_eq!(file.accepts(ct), *want, "{file:?} {ct}");
        }
    }
}
