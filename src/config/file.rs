//! The config file as written: every key the YAML may hold, read with its key path, shape-checked
//! but not yet validated. [`super::validate`] turns this into the internal [`super::Config`].

use serde_yaml::Value;

use super::reader::{Keyed, KeyedPairs, Problems, Section};

/// Pingora's own server keys that the gateway accepts at the top level.
pub const PINGORA_KEYS: &[&str] = &[
    "version",
    "daemon",
    "error_log",
    "pid_file",
    "upgrade_sock",
    "user",
    "group",
    "threads",
    "work_stealing",
    "grace_period_seconds",
    "graceful_shutdown_timeout_seconds",
    "upstream_keepalive_pool_size",
    "daemon_wait_for_ready",
];

/// The gateway's own top-level sections.
pub const GATEWAY_KEYS: &[&str] = &[
    "listeners",
    "cors",
    "upstream",
    "metrics",
    "limits",
    "trusted_proxies",
    "access_log",
    "rate_limits",
];

/// Keys of one entry of `listeners`.
pub const LISTENER_KEYS: &[&str] = &[
    "name",
    "address",
    "tls",
    "redirect_to_https",
    "https_port",
    "acme_webroot",
    "response_headers",
];
/// Keys of `listeners[].tls`.
pub const TLS_KEYS: &[&str] = &[
    "certificates",
    "default_certificate",
    "watch",
    "watch_interval_seconds",
];
/// Keys of one entry of `listeners[].tls.certificates`.
pub const CERTIFICATE_KEYS: &[&str] = &["name", "cert", "key", "server_names"];

/// Pingora's server keys as written.
#[derive(Debug, Default)]
pub struct FileServer {
    /// `version`: accepted and ignored, as pingora does.
    pub version: Option<Keyed<u64>>,
    /// `daemon`: fork into the background.
    pub daemon: Option<Keyed<bool>>,
    /// `error_log`: a file for the log instead of stderr.
    pub error_log: Option<Keyed<String>>,
    /// `pid_file`.
    pub pid_file: Option<Keyed<String>>,
    /// `upgrade_sock`: the socket the graceful upgrade hands listeners over.
    pub upgrade_sock: Option<Keyed<String>>,
    /// `user` to drop privileges to after binding.
    pub user: Option<Keyed<String>>,
    /// `group` to drop privileges to after binding.
    pub group: Option<Keyed<String>>,
    /// `threads` per service.
    pub threads: Option<Keyed<u64>>,
    /// `work_stealing` between threads.
    pub work_stealing: Option<Keyed<bool>>,
    /// `grace_period_seconds` before shutting down after SIGTERM or SIGQUIT.
    pub grace_period_seconds: Option<Keyed<u64>>,
    /// `graceful_shutdown_timeout_seconds` for runtimes to finish.
    pub graceful_shutdown_timeout_seconds: Option<Keyed<u64>>,
    /// `upstream_keepalive_pool_size`.
    pub upstream_keepalive_pool_size: Option<Keyed<u64>>,
    /// `daemon_wait_for_ready`: the daemonising parent waits until the child is ready.
    pub daemon_wait_for_ready: Option<Keyed<bool>>,
}

/// One `listeners` entry as written.
#[derive(Debug)]
pub struct FileListener {
    /// The entry's path, such as `listeners[0]`.
    pub key: String,
    /// `name`, used in logs.
    pub name: Option<Keyed<String>>,
    /// `address`, `IP:PORT`.
    pub address: Option<Keyed<String>>,
    /// `tls`, making this an HTTPS listener.
    pub tls: Option<FileTls>,
    /// `redirect_to_https`: answer 301 to the HTTPS URL.
    pub redirect_to_https: Option<Keyed<bool>>,
    /// `https_port`: the port in redirect URLs.
    pub https_port: Option<Keyed<u64>>,
    /// `acme_webroot`: certbot's webroot, served under `/.well-known/acme-challenge/`.
    pub acme_webroot: Option<Keyed<String>>,
    /// `response_headers`: added to every response.
    pub response_headers: Option<KeyedPairs>,
}

/// `listeners[].tls` as written.
#[derive(Debug)]
pub struct FileTls {
    /// The section's path, such as `listeners[0].tls`.
    pub key: String,
    /// `certificates`.
    pub certificates: Option<Keyed<Vec<FileCertificate>>>,
    /// `default_certificate`: a certificate name.
    pub default_certificate: Option<Keyed<String>>,
    /// `watch`: reload when the files change.
    pub watch: Option<Keyed<bool>>,
    /// `watch_interval_seconds`: how often to look.
    pub watch_interval_seconds: Option<Keyed<f64>>,
}

/// One certificate as written.
#[derive(Debug)]
pub struct FileCertificate {
    /// The entry's path, such as `listeners[0].tls.certificates[0]`.
    pub key: String,
    /// `name`, used in metrics and logs.
    pub name: Option<Keyed<String>>,
    /// `cert`: the PEM chain.
    pub cert: Option<Keyed<String>>,
    /// `key`: the PEM private key.
    pub key_file: Option<Keyed<String>>,
    /// `server_names`: the SNI names to serve it for.
    pub server_names: Option<Keyed<Vec<Keyed<String>>>>,
}

/// The whole file as written.
#[derive(Debug, Default)]
pub struct FileConfig {
    /// Pingora's keys.
    pub server: FileServer,
    /// `listeners`.
    pub listeners: Option<Keyed<Vec<FileListener>>>,
}

fn known_all<'v>(
    r: &mut Problems,
    list: Keyed<Vec<Section<'v>>>,
    keys: &[&'static str],
) -> Keyed<Vec<Section<'v>>> {
    Keyed {
        key: list.key,
        value: list.value.into_iter().map(|s| s.known(r, keys)).collect(),
    }
}

const WHOLE: &str = "a whole number";
const ADDR_EXAMPLE: &str = "an address in quotes, such as \"127.0.0.1:8080\"";

fn read_tls(r: &mut Problems, t: &Section<'_>) -> FileTls {
    FileTls {
        key: t.path().to_owned(),
        certificates: t
            .sections(r, "certificates", "[{cert: \"/etc/letsencrypt/live/NAME/fullchain.pem\", key: \"/etc/letsencrypt/live/NAME/privkey.pem\"}]",
            ).map(|l| known_all(r, l, CERTIFICATE_KEYS))
            .map(|list| Keyed {
                key: list.key,
                value: list
                    .value
                    .into_iter()
                    .map(|c| FileCertificate {
                        key: c.path().to_owned(),
                        name: c.text(r, "name", "a name in quotes, such as \"stats\""),
                        cert: c.text(r, "cert", "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/fullchain.pem\""),
                        key_file: c.text(r, "key", "a file path in quotes, such as \"/etc/letsencrypt/live/NAME/privkey.pem\""),
                        server_names: c.texts(r, "server_names", "[\"stats.example.com\"]"),
                    })
                    .collect(),
            }),
        default_certificate: t.text(r, "default_certificate", "the name of one of the certificates"),
        watch: t.flag(r, "watch"),
        watch_interval_seconds: t.seconds(r, "watch_interval_seconds", "a number of seconds greater than 0, such as 5"),
    }
}

/// Opens the document, which must be a mapping of keys.
pub fn open<'v>(r: &mut Problems, doc: &'v Value) -> Option<Section<'v>> {
    let mut known: Vec<&'static str> = GATEWAY_KEYS.to_vec();
    known.extend_from_slice(PINGORA_KEYS);
    Section::open(
        r,
        "",
        doc,
        "a mapping of keys such as \"listeners:\" and \"cors:\"",
    )
    .map(|s| s.known(r, &known))
}

/// Reads the document, reporting every shape problem.
pub fn read(r: &mut Problems, root: &Section<'_>) -> FileConfig {
    let server = FileServer {
        version: root.whole(r, "version", "1"),
        daemon: root.flag(r, "daemon"),
        error_log: root.text(r, "error_log", "a file path in quotes"),
        pid_file: root.text(
            r,
            "pid_file",
            "a file path in quotes, such as \"/run/ackee-gateway/ackee-gateway.pid\"",
        ),
        upgrade_sock: root.text(
            r,
            "upgrade_sock",
            "a file path in quotes, such as \"/run/ackee-gateway/upgrade.sock\"",
        ),
        user: root.text(r, "user", "a user name in quotes"),
        group: root.text(r, "group", "a group name in quotes"),
        threads: root.whole(r, "threads", "a whole number such as 2"),
        work_stealing: root.flag(r, "work_stealing"),
        grace_period_seconds: root.whole(
            r,
            "grace_period_seconds",
            "a whole number of seconds such as 3",
        ),
        graceful_shutdown_timeout_seconds: root.whole(
            r,
            "graceful_shutdown_timeout_seconds",
            "a whole number of seconds such as 2",
        ),
        upstream_keepalive_pool_size: root.whole(r, "upstream_keepalive_pool_size", WHOLE),
        daemon_wait_for_ready: root.flag(r, "daemon_wait_for_ready"),
    };

    let listeners = root
        .sections(r, "listeners", "[{address: \"127.0.0.1:8080\"}]")
        .map(|l| known_all(r, l, LISTENER_KEYS))
        .map(|list| Keyed {
            key: list.key,
            value: list
                .value
                .into_iter()
                .map(|s| FileListener {
                    key: s.path().to_owned(),
                    name: s.text(r, "name", "a name in quotes, such as \"public\""),
                    address: s.text(r, "address", ADDR_EXAMPLE),
                    tls: s
                        .section(r, "tls", "a mapping with certificates")
                        .map(|s| s.known(r, TLS_KEYS))
                        .map(|t| read_tls(r, &t)),
                    redirect_to_https: s.flag(r, "redirect_to_https"),
                    https_port: s.whole(r, "https_port", "a port number such as 443"),
                    acme_webroot: s.text(
                        r,
                        "acme_webroot",
                        "a directory path in quotes, such as \"/var/www/letsencrypt\"",
                    ),
                    response_headers: s.text_map(
                        r,
                        "response_headers",
                        "{Strict-Transport-Security: \"max-age=31536000\", X-Frame-Options: deny}",
                    ),
                })
                .collect(),
        });

    FileConfig { server, listeners }
}
