//! Serving certbot's HTTP-01 challenge files from a webroot, so `certbot --webroot` keeps
//! renewing certificates once nginx is gone.
//!
//! Only `/.well-known/acme-challenge/<token>` is served, and only when `<token>` is a plain
//! ACME token (base64url characters) naming a regular file that really lies inside the webroot's
//! challenge directory. Traversal (`..`, encoded or not), sub-paths, and symlinks that lead out
//! of the webroot are all answered 404.

use std::fs;
use std::path::{Path, PathBuf};

/// The URL path prefix of HTTP-01 challenges.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The longest token served. ACME tokens are 43 characters; this leaves room.
pub const MAX_TOKEN: usize = 255;

/// The largest challenge file served. A key authorisation is under 200 bytes.
pub const MAX_FILE: u64 = 4096;

/// The webroot `written` in the config, canonicalised: an existing directory. Otherwise what
/// is wrong with it.
pub(crate) fn webroot(written: &str) -> Result<PathBuf, String> {
    match fs::canonicalize(written.trim()) {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(format!(
            "\"{written}\" is not a directory; write the directory certbot's --webroot-path uses"
        )),
        Err(e) => Err(format!(
            "\"{written}\" cannot be used ({e}); create it (mkdir -p {written}) or write the directory certbot's --webroot-path uses"
        )),
    }
}

/// What a request under the challenge prefix gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// The file's contents.
    Found(Vec<u8>),
    /// 404: not a token, not a file, or not inside the webroot.
    NotFound,
}

/// A webroot whose challenge directory is served.
#[derive(Clone, Debug)]
pub struct Webroot {
    root: PathBuf,
}

impl Webroot {
    /// A canonical webroot directory, as config validation produces it.
    pub fn new(root: PathBuf) -> Webroot {
        Webroot { root }
    }

    /// Whether a URL path is under the challenge prefix (then the webroot answers it, 200 or 404).
    pub fn claims(path: &str) -> bool {
        path.starts_with(PREFIX) || path == PREFIX.trim_end_matches('/')
    }

    /// Answers a path under [`PREFIX`].
    pub fn serve(&self, path: &str) -> Challenge {
        let Some(token) = path.strip_prefix(PREFIX).filter(|t| is_token(t)) else {
            return Challenge::NotFound;
        };
        match self.read(token) {
            Some(bytes) => Challenge::Found(bytes),
            None => Challenge::NotFound,
        }
    }

    fn read(&self, token: &str) -> Option<Vec<u8>> {
        let dir = self.root.join(".well-known").join("acme-challenge");
        let real = fs::canonicalize(dir.join(token)).ok()?;
        // Symlinks are resolved: the target must still be inside the webroot.
        if !real.starts_with(&self.root) || !is_regular_small_file(&real) {
            return None;
        }
        fs::read(&real).ok()
    }
}

fn is_regular_small_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_FILE)
}

/// ACME tokens are base64url: letters, digits, `-` and `_`.
pub fn is_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn webroot() -> (tempfile::TempDir, Webroot) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap().join("www");
        let challenges = root.join(".well-known/acme-challenge");
        fs::create_dir_all(&challenges).unwrap();
        fs::write(challenges.join("tok3n_-AZ"), b"tok3n_-AZ.thumbprint").unwrap();
        fs::write(root.join("secret.txt"), b"not for you").unwrap();
        fs::write(dir.path().join("outside.txt"), b"outside").unwrap();
        symlink(dir.path().join("outside.txt"), challenges.join("escape")).unwrap();
        symlink(root.join("secret.txt"), challenges.join("inside")).unwrap();
        fs::create_dir(challenges.join("subdir")).unwrap();
        (dir, Webroot::new(root))
    }

    #[test]
    fn only_plain_tokens_naming_files_inside_the_webroot_are_served() {
        let (_dir, w) = webroot();
        let cases: &[(&str, Option<&[u8]>)] = &[
            (
                "/.well-known/acme-challenge/tok3n_-AZ",
                Some(b"tok3n_-AZ.thumbprint"),
            ),
            ("/.well-known/acme-challenge/missing", None),
            ("/.well-known/acme-challenge/", None),
            ("/.well-known/acme-challenge/../../secret.txt", None),
            ("/.well-known/acme-challenge/..%2F..%2Fsecret.txt", None),
            ("/.well-known/acme-challenge/%2e%2e", None),
            ("/.well-known/acme-challenge/tok3n_-AZ/x", None),
            ("/.well-known/acme-challenge/tok.en", None),
            ("/.well-known/acme-challenge/escape", None),
            ("/.well-known/acme-challenge/subdir", None),
        ];
        for (path, want) in cases {
            let got = w.serve(path);
            match want {
                Some(bytes) => assert_eq!(got, Challenge::Found(bytes.to_vec()), "{path}"),
                None => assert_eq!(got, Challenge::NotFound, "{path}"),
            }
        }
    }

    #[test]
    fn a_symlink_that_stays_inside_the_webroot_is_followed() {
        let (_dir, w) = webroot();
        assert_eq!(
            w.serve("/.well-known/acme-challenge/inside"),
            Challenge::Found(b"not for you".to_vec())
        );
    }

    #[test]
    fn the_prefix_is_claimed_and_nothing_else() {
        assert!(Webroot::claims("/.well-known/acme-challenge/x"));
        assert!(Webroot::claims("/.well-known/acme-challenge"));
        assert!(!Webroot::claims("/.well-known/apollo/server-health"));
        assert!(!Webroot::claims("/api"));
    }
}
