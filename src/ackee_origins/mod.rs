//! Allowed origins from Ackee's own domain list (`cors.origins_from_ackee`).
//!
//! Ackee's `ACKEE_AUTO_ORIGIN` looks its domains up in MongoDB on every request, matches them
//! by substring and echoes a bare title (`example.com`) that no browser accepts. The gateway
//! instead polls Ackee's GraphQL API in the background (`{ domains { id title } }` with a
//! permanent token), turns each title that is a host name into origins, merges them with the
//! static list and swaps the compiled set in atomically. A request never waits for a poll and
//! never causes one.
//!
//! No pingora here:
//!
//! | file | owns |
//! |---|---|
//! | [`titles`] | which titles are host names; the origins a title gives (schemes, `www.`) |
//! | [`answer`] | the query, reading Ackee's answer, GraphQL errors, failure reasons |
//! | [`refresh`] | the state machine: the last good list, what to swap, what to log |
//! | [`client`] | the blocking HTTP/1.1 client that asks each replica in turn |
//!
//! The background service that runs the polls is in [`crate::server`].

pub mod answer;
pub mod client;
pub mod refresh;
pub mod titles;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use answer::{Domain, Failed, Failure};
pub use client::Target;
pub use refresh::{Refresh, State, Step};
pub use titles::TitleRules;

/// The default poll interval.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The default bound on each replica's answer.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `cors.origins_from_ackee`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The file holding the permanent token (read at every poll, whitespace trimmed).
    pub token_file: PathBuf,
    /// How often to poll.
    pub interval: Duration,
    /// How long each replica gets to answer.
    pub timeout: Duration,
    /// How titles become origins.
    pub rules: TitleRules,
}

/// Reads the token: the file's text, trimmed. Errors say why, without the file's name.
pub(crate) fn read_token(path: &Path) -> Result<String, String> {
    let bytes = crate::files::read_regular(path).map_err(|e| format!("cannot be read ({e})"))?;
    let text = String::from_utf8(bytes).map_err(|_| "is not text".to_owned())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("is empty".to_owned());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "holds more than one word or characters a header cannot carry; put only the token in it"
                .to_owned(),
        );
    }
    Ok(token.to_owned())
}

/// The token file `written` in the config, read now so that `-t` proves it can be: its path, and
/// a warning if every user may read it. Otherwise what is wrong with it.
pub(crate) fn token_file(written: &str) -> Result<(PathBuf, Option<String>), String> {
    let path = PathBuf::from(written.trim());
    if let Err(why) = read_token(&path) {
        return Err(format!(
            "\"{written}\" {why}; write the file that holds a permanent token from Ackee (Settings, Permanent tokens), readable by the user the gateway runs as"
        ));
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
    let warning = mode.is_ok_and(|m| m & 0o004 != 0).then(|| {
        format!(
            "\"{written}\" is readable by every user, and the token lets anyone read your Ackee statistics; chmod 640 it (group ackee-gateway) or 600"
        )
    });
    Ok((path, warning))
}

/// One poll: reads the token, then asks the replicas in turn.
pub(crate) fn poll(settings: &Settings, targets: &[Target]) -> Result<Vec<Domain>, Failed> {
    let token = read_token(&settings.token_file).map_err(|e| {
        Failed::new(
            Failure::TokenUnreadable,
            format!("the token file {} {e}", settings.token_file.display()),
        )
    })?;
    client::fetch(targets, &token, settings.timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_must_be_one_word() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("abc-123\n", Ok("abc-123")),
            ("  abc  \r\n", Ok("abc")),
            ("", Err("is empty")),
            ("\n\n", Err("is empty")),
            ("two words", Err("holds more than one word")),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = dir.path().join(format!("t{i}"));
            std::fs::write(&p, text).unwrap();
            let got = read_token(&p);
            match want {
                Ok(t) => assert_eq!(got.as_deref(), Ok(*t), "{text:?}"),
                Err(start) => assert!(got.unwrap_err().starts_with(start), "{text:?}"),
            }
        }
        let missing = read_token(&dir.path().join("nope")).unwrap_err();
        assert!(missing.starts_with("cannot be read"), "{missing}");
    }
}
