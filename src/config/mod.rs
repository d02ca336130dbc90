//! Loading the YAML config. Each section is read and validated in one function, and each key
//! is named once, where it is read:
//!
//! - [`section`] hands out a mapping's values by key, one reader per kind of value (text,
//!   whole number, duration, flag, lists, nested mappings), each with its key path, records
//!   which keys were asked for, and reports the rest as unknown (with a suggestion) when the
//!   section is finished. A value that must be written, or that a later check points at, is
//!   read `wanted`: with its key path even when it is missing, so no key path is ever built
//!   again by hand for a message. It names no key of the gateway's: examples are passed in.
//!   `Problems` collects every problem without stopping at the first, shape problems first, in
//!   document order, and words the common ones (`found X; write Y`, a missing key, a number out
//!   of range, a word that is not one of a few).
//! - [`values`] holds the checks that several sections make on a single value (a list's items
//!   parsed, bounded seconds, text that is not blank, an address to listen on).
//! - [`validate`] reads the top level: pingora's keys, then each section in turn;
//!   [`listener`] (with TLS certificates), [`cors`] and [`upstream`] are the large ones;
//!   [`visits`] reads its own. A config with any error is `None`; a check that needs an earlier
//!   part to be valid asks `Problems` whether that part added errors. Imports flow one way:
//!   [`validate`] uses the sections, the sections use [`values`] and [`section`], never
//!   [`validate`].
//! - [`types`] is the validated [`Config`]; settings that a module of their own acts on live
//!   there (health checks in `health`, replicas in `replicas`, certificates in [`crate::tls`]) and
//!   are re-exported. So do the rules about one value that such a module uses: which names a
//!   certificate covers and whether it expired (`certs`), a valid allowed method or header
//!   ([`crate::cors`]), the access log's file, certbot's webroot (`acme`), the Ackee token file
//!   ([`crate::ackee_origins`]), a replica's address and its resolver (`replicas`). Each returns
//!   what is wrong, phrased for the config; config reports it at the key path (`section`'s
//!   `Problems::ok`). [`diag`] prints problems as `error: FILE: KEY: what was found; what to
//!   write`.
//!
//! No pingora here: the binary maps [`ServerSettings`] onto pingora's `ServerConf`.

mod acme;
mod assets;
mod cors;
pub(crate) mod diag;
mod http3;
mod listener;
mod section;
pub mod types;
mod upstream;
mod validate;
mod values;
mod visits;

pub use diag::{Diagnostic, Diagnostics, Severity, Source};

pub use crate::replicas::Resolver;
pub use cors::ENV_ALLOW_ORIGIN;
pub use types::{
    Config, Limits, Listener, MetricsSettings, Replica, ServerSettings, UpstreamSettings,
};
#[cfg(test)]
pub(crate) use validate::pingora_keys;

/// A valid configuration and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration to run.
    pub config: Config,
    /// Problems that do not stop the gateway.
    pub warnings: Diagnostics,
}

/// Reads and validates a config file. `env_allow_origin` is the value of `ACKEE_ALLOW_ORIGIN`.
///
/// On failure, every problem found (errors and warnings) is returned.
pub fn load(path: &str, env_allow_origin: Option<&str>) -> Result<Loaded, Diagnostics> {
    let text = crate::files::read_regular(std::path::Path::new(path)).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|_| std::io::Error::other("it is not UTF-8 text"))
    });
    match text {
        Ok(text) => parse(path, &text, env_allow_origin),
        Err(error) => {
            let mut problems = section::Problems::new(Source::File(path.to_owned()));
            let message = format!("cannot be read ({error}); pass the config file with -c FILE");
            problems.error("", message);
            Err(problems.into_diagnostics())
        }
    }
}

/// Validates config text. `name` is the file name used in messages.
pub fn parse(
    name: &str,
    text: &str,
    env_allow_origin: Option<&str>,
) -> Result<Loaded, Diagnostics> {
    parse_with(
        name,
        text,
        env_allow_origin,
        &crate::replicas::system_resolver,
    )
}

/// [`parse`] with another resolver for replica host names.
pub fn parse_with(
    name: &str,
    text: &str,
    env_allow_origin: Option<&str>,
    resolver: Resolver<'_>,
) -> Result<Loaded, Diagnostics> {
    let mut problems = section::Problems::new(Source::File(name.to_owned()));
    let config = match serde_yaml::from_str(text) {
        Ok(doc) => validate::validate(&mut problems, &doc, env_allow_origin, resolver),
        Err(error) => problems.fail("", format!("is not valid YAML: {error}")),
    };
    match config {
        Some(config) => Ok(Loaded {
            config,
            warnings: problems.into_diagnostics(),
        }),
        None => Err(problems.into_diagnostics()),
    }
}
