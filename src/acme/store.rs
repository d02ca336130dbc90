//! The ACME state directory: what a restart, a graceful upgrade or a second gateway process
//! needs to find, so that none of them orders a certificate that is already there.
//!
//! ```text
//! STATE/acme/accounts/<directory>.json             the account key and URL, per CA (0600)
//! STATE/acme/certificates/<name>/certificate.pem   the chain, leaf first, and its key (0600)
//! STATE/acme/certificates/<name>/order.json        the directory it came from
//! STATE/acme/certificates/<name>/status.json       next renewal, failures, the last error
//! STATE/acme/certificates/<name>/lock              flock'ed while an order runs
//! STATE/acme/challenges/http-01/<token>            pending HTTP-01 answers
//! STATE/acme/challenges/tls-alpn-01/<name>.pem     pending TLS-ALPN-01 certificates (0600)
//! ```
//!
//! Every file is written whole to a new file in the same directory (created 0600), synced,
//! renamed over the old one and the directory synced: a crash leaves the old file or the new,
//! never half of one. The chain and its key share one file so that they are replaced together.
//! Directories are created 0700.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::settings::AcmeSettings;
use crate::certs::{self, LoadedCert};

/// The mode of every file the store writes: keys are secrets, and the rest is nobody else's.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its parents, each new one 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically, mode 0600, creating the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The state directory's `acme/` part.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The ACME part of `state_directory`.
    pub fn new(state_directory: &Path) -> Store {
        Store {
            root: state_directory.join("acme"),
        }
    }

    /// Where the account for a directory URL is kept: the URL with every character but
    /// letters, digits, `.` and `-` made `_`, readable in a listing.
    pub fn account_file(&self, directory: &str) -> PathBuf {
        let url = directory
            .strip_prefix("https://")
            .unwrap_or(directory)
            .trim_end_matches('/');
        let slug: String = url
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("accounts").join(format!("{slug}.json"))
    }

    /// A certificate's directory.
    pub fn certificate(&self, name: &str) -> CertDir {
        CertDir {
            dir: self.root.join("certificates").join(name),
        }
    }

    /// The pending HTTP-01 answers.
    pub fn http_challenges(&self) -> PathBuf {
        self.root.join("challenges").join("http-01")
    }

    /// The pending TLS-ALPN-01 certificates.
    pub fn alpn_challenges(&self) -> PathBuf {
        self.root.join("challenges").join("tls-alpn-01")
    }
}

/// What a certificate was ordered for, kept beside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The CA's directory URL.
    pub directory: String,
}

/// A stored certificate, as read back.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The chain and key, checked to belong together.
    pub loaded: LoadedCert,
    /// The leaf's notBefore, Unix seconds.
    pub not_before: i64,
    /// The leaf's issuer, as a distinguished name.
    pub issuer: String,
    /// The PEM file's contents, to notice another process's renewal.
    pub fingerprint: Vec<u8>,
}

/// Why a stored certificate is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// Nothing stored yet.
    Missing,
    /// It is there but cannot be read or does not parse; the reason.
    Broken(String),
    /// It came from another CA directory than the one configured.
    OtherDirectory(String),
    /// It does not cover exactly the configured names; the names it covers.
    OtherNames(Vec<String>),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing => f.write_str("none is stored yet"),
            Unusable::Broken(why) => write!(f, "the stored one cannot be used ({why})"),
            Unusable::OtherDirectory(d) => {
                write!(f, "the stored one came from another CA ({d})")
            }
            Unusable::OtherNames(n) => {
                write!(f, "the stored one is for other names ({})", n.join(", "))
            }
        }
    }
}

/// Whether a stored certificate fits the settings: the same directory, and exactly the
/// configured names (in any order).
pub fn fits(
    settings: &AcmeSettings,
    record: Option<&OrderRecord>,
    names: &[String],
) -> Result<(), Unusable> {
    if let Some(r) = record
        && r.directory != settings.directory
    {
        return Err(Unusable::OtherDirectory(r.directory.clone()));
    }
    let mut want: Vec<&str> = settings.domains.iter().map(String::as_str).collect();
    let mut have: Vec<&str> = names.iter().map(String::as_str).collect();
    want.sort_unstable();
    want.dedup();
    have.sort_unstable();
    have.dedup();
    if want != have {
        return Err(Unusable::OtherNames(names.to_vec()));
    }
    Ok(())
}

/// One managed certificate's directory.
#[derive(Clone, Debug)]
pub struct CertDir {
    dir: PathBuf,
}

impl CertDir {
    /// The file with the chain and key.
    pub fn pem(&self) -> PathBuf {
        self.dir.join("certificate.pem")
    }

    fn order(&self) -> PathBuf {
        self.dir.join("order.json")
    }

    fn status_file(&self) -> PathBuf {
        self.dir.join("status.json")
    }

    /// The stored certificate, if it fits `settings`.
    pub fn load(&self, settings: &AcmeSettings) -> Result<Stored, Unusable> {
        let pem = self.pem();
        let bytes = match crate::files::read_regular(&pem) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
            Err(e) => return Err(Unusable::Broken(format!("{}: {e}", pem.display()))),
        };
        let loaded = certs::load(&pem, &pem).map_err(|e| Unusable::Broken(e.message))?;
        let record = fs::read(self.order())
            .ok()
            .and_then(|b| serde_json::from_slice::<OrderRecord>(&b).ok());
        fits(settings, record.as_ref(), &loaded.dns_names)?;
        let (not_before, issuer) = loaded
            .certified
            .cert
            .first()
            .and_then(|leaf| leaf_facts(leaf.as_ref()))
            .unwrap_or((loaded.not_after, String::new()));
        Ok(Stored {
            loaded,
            not_before,
            issuer,
            fingerprint: bytes,
        })
    }

    /// Stores a new certificate (chain PEM, leaf first) and its key (PEM), replacing the old.
    pub fn save(&self, directory: &str, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let record = OrderRecord {
            directory: directory.to_owned(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        write_atomic(&self.order(), &json)?;
        let mut pem = String::with_capacity(chain_pem.len() + key_pem.len() + 1);
        pem.push_str(key_pem.trim_end());
        pem.push('\n');
        pem.push_str(chain_pem.trim_end());
        pem.push('\n');
        write_atomic(&self.pem(), pem.as_bytes())
    }

    /// The last status written, if any.
    pub fn status(&self) -> Option<super::record::Status> {
        let bytes = fs::read(self.status_file()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the status.
    pub fn write_status(&self, status: &super::record::Status) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
        write_atomic(&self.status_file(), &json)
    }

    /// Takes the order lock if no other process holds it: `None` if one does.
    pub fn try_lock(&self) -> io::Result<Option<OrderLock>> {
        create_dir(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(self.dir.join("lock"))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(OrderLock { _file: file }));
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

/// The order lock of one certificate: while it is held no other process (an old one during a
/// graceful upgrade, a second gateway on the same state directory) orders that certificate.
/// Closing the file releases it, also when the process dies.
#[derive(Debug)]
pub struct OrderLock {
    _file: File,
}

/// The notBefore (Unix seconds) and issuer of a DER certificate.
pub fn leaf_facts(der: &[u8]) -> Option<(i64, String)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        cert.validity().not_before.timestamp(),
        cert.issuer().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::settings::ChallengeKind;
    use std::os::unix::fs::PermissionsExt;

    fn settings(domains: &[&str]) -> AcmeSettings {
        AcmeSettings {
            name: "stats".to_owned(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            contact: Vec::new(),
            directory: "https://ca.example/dir".to_owned(),
            directory_ca: None,
            challenge: ChallengeKind::Http01,
            external_account: None,
        }
    }

    #[test]
    fn a_stored_certificate_fits_only_the_same_ca_and_names() {
        let s = settings(&["a.example.com", "b.example.com"]);
        let same = OrderRecord {
            directory: s.directory.clone(),
        };
        let other = OrderRecord {
            directory: "https://staging.example/dir".to_owned(),
        };
        let names = |n: &[&str]| n.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        let cases: &[(Option<&OrderRecord>, Vec<String>, bool)] = &[
            (
                Some(&same),
                names(&["a.example.com", "b.example.com"]),
                true,
            ),
            (
                Some(&same),
                names(&["b.example.com", "a.example.com"]),
                true,
            ),
            (None, names(&["a.example.com", "b.example.com"]), true),
            (
                Some(&other),
                names(&["a.example.com", "b.example.com"]),
                false,
            ),
            (Some(&same), names(&["a.example.com"]), false),
            (
                Some(&same),
                names(&["a.example.com", "b.example.com", "c.example.com"]),
                false,
            ),
        ];
        for (record, have, ok) in cases {
            assert_eq!(fits(&s, *record, have).is_ok(), *ok, "{record:?} {have:?}");
        }
    }

    #[test]
    fn writes_are_atomic_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/file.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.json")]);
    }

    #[test]
    fn the_order_lock_is_held_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let cert = store.certificate("stats");
        let first = cert.try_lock().unwrap();
        assert!(first.is_some());
        // Another open file description: what another process would have.
        assert!(cert.try_lock().unwrap().is_none());
        drop(first);
        assert!(cert.try_lock().unwrap().is_some());
    }

    #[test]
    fn account_files_are_named_after_the_directory() {
        let store = Store::new(Path::new("/state"));
        assert_eq!(
            store.account_file("https://acme-v02.api.letsencrypt.org/directory"),
            Path::new("/state/acme/accounts/acme-v02.api.letsencrypt.org_directory.json")
        );
        assert_eq!(
            store.account_file("https://127.0.0.1:14000/dir"),
            Path::new("/state/acme/accounts/127.0.0.1_14000_dir.json")
        );
    }

    #[test]
    fn nothing_stored_is_missing_and_garbage_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let cert = Store::new(dir.path()).certificate("stats");
        let s = settings(&["a.example.com"]);
        assert_eq!(cert.load(&s).unwrap_err(), Unusable::Missing);
        write_atomic(&cert.pem(), b"not pem").unwrap();
        assert!(matches!(cert.load(&s).unwrap_err(), Unusable::Broken(_)));
    }
}
