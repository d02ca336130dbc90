//! The graceful upgrade's hand-over, made safe to repeat: a lock that lets one new process at a
//! time take the listening sockets, a marker file that a daemon writes once it serves on every
//! listener, and the wait on that marker that `systemctl start` and `systemctl reload` end
//! with (`ackee-gateway --wait-ready`). No pingora here.
//!
//! Why: pingora's daemonising parent returns as soon as the new process *waits* for the
//! sockets, so systemd's reload job ended before the hand-over had happened. A second reload
//! then read a PID file naming a process that held no socket yet, or sent SIGQUIT to a process
//! without its handler, or unlinked the upgrade socket the first hand-over was using (pingora
//! then panics on ENOENT in `transfer_fd`). With the wait as the last step of the reload, and
//! systemd running one reload job of a unit at a time, the next reload starts only when the
//! previous new process serves on every listener. The lock keeps two `-u` processes started
//! by other means (by hand, a second unit) from meeting on the upgrade socket.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procnet;

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(10);

/// The lock file of an upgrade socket: `UPGRADE_SOCK.lock`, next to it.
pub fn lock_path(upgrade_sock: &str) -> PathBuf {
    PathBuf::from(format!("{upgrade_sock}.lock"))
}

/// The ready marker of a PID file: `PID_FILE.ready`, next to it. It holds the PID of the last
/// daemon that served on every listener.
pub(crate) fn ready_path(pid_file: &str) -> PathBuf {
    PathBuf::from(format!("{pid_file}.ready"))
}

/// An exclusive `flock` on the upgrade lock file, held from before a new process (`-u`) looks
/// at the running gateway until it serves on every listener. Forked children share it; it is
/// released when the last of them drops it or exits.
#[derive(Debug)]
pub struct UpgradeLock {
    file: File,
}

impl UpgradeLock {
    /// Takes the lock at `path`, waiting up to `limit` for another holder to let go.
    pub fn acquire(path: &Path, limit: Duration) -> Result<UpgradeLock, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open the upgrade lock {}: {e}", path.display()))?;
        let deadline = Instant::now() + limit;
        loop {
            // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(UpgradeLock { file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "another upgrade still holds {} after {limit:?}",
                    path.display()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether a lock at `path` is free now (it is taken and released at once).
    #[cfg(test)]
    fn is_free(path: &Path) -> bool {
        UpgradeLock::acquire(path, Duration::ZERO).is_ok()
    }
}

impl Drop for UpgradeLock {
    fn drop(&mut self) {
        // SAFETY: as above. Closing the file would release it too, but a forked child keeps
        // a copy of the descriptor: unlocking releases the lock for every copy at once.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Whether process `pid` serves on every address in `addresses`: it holds a listening socket
/// on each, and it handles SIGQUIT and SIGTERM (pingora installs both once it runs), so the
/// next upgrade's SIGQUIT or a stop's SIGTERM does not kill it outright.
pub(crate) fn serves_on_all(pid: u32, addresses: &[SocketAddr]) -> bool {
    let listening = procnet::listening(pid);
    addresses.iter().all(|a| listening.contains(a))
        && procnet::catches(pid, libc::SIGQUIT) == Some(true)
        && procnet::catches(pid, libc::SIGTERM) == Some(true)
}

/// Writes `pid` to the ready marker at `path`, atomically (a new file renamed over the old).
pub(crate) fn mark_ready(path: &Path, pid: u32) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    std::fs::write(&tmp, format!("{pid}\n"))?;
    std::fs::rename(&tmp, path)
}

/// A PID read from a file, if it holds one.
fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What [`wait_ready`] found when it gave up.
#[derive(Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The process in the PID file exited before it was ready.
    Exited(u32),
    /// `limit` passed; the PID file named this process (if any).
    TimedOut(Option<u32>),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(pid) => write!(
                f,
                "the gateway (PID {pid}) exited before it served on every listener"
            ),
            NotReady::TimedOut(Some(pid)) => write!(
                f,
                "the gateway (PID {pid}) does not serve on every listener yet"
            ),
            NotReady::TimedOut(None) => write!(f, "the PID file names no running gateway"),
        }
    }
}

/// Waits until the process named in `pid_file` has written its PID to the ready marker
/// (`ready_path`), up to `limit`. Returns that PID. The PID file is read again on every
/// look, so a reload that replaces the process is followed.
pub fn wait_ready(pid_file: &str, limit: Duration) -> Result<u32, NotReady> {
    let marker = ready_path(pid_file);
    let deadline = Instant::now() + limit;
    loop {
        let pid = read_pid(Path::new(pid_file));
        if let Some(pid) = pid {
            if read_pid(&marker) == Some(pid) {
                return Ok(pid);
            }
            if !Path::new(&format!("/proc/{pid}")).exists() {
                // The PID file may have been rewritten in between: look once more.
                if read_pid(Path::new(pid_file)) == Some(pid) {
                    return Err(NotReady::Exited(pid));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(NotReady::TimedOut(pid));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("upgrade.sock").display().to_string());
        assert!(path.ends_with("upgrade.sock.lock"));
        let held = UpgradeLock::acquire(&path, Duration::ZERO).unwrap();
        // flock locks belong to open files, so a second open in this process conflicts too.
        let err = UpgradeLock::acquire(&path, Duration::from_millis(30)).unwrap_err();
        assert!(err.contains("another upgrade still holds"), "{err}");
        assert!(!UpgradeLock::is_free(&path));
        drop(held);
        assert!(UpgradeLock::is_free(&path));
    }

    #[test]
    fn the_wait_ends_when_the_pid_files_process_is_marked_ready() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("gw.pid").display().to_string();
        let me = std::process::id();
        // No PID file: nothing to wait for.
        assert_eq!(
            wait_ready(&pid_file, Duration::ZERO),
            Err(NotReady::TimedOut(None))
        );
        std::fs::write(&pid_file, format!("{me}\n")).unwrap();
        // An older process's marker does not count.
        mark_ready(&ready_path(&pid_file), me + 1).unwrap();
        assert_eq!(
            wait_ready(&pid_file, Duration::ZERO),
            Err(NotReady::TimedOut(Some(me)))
        );
        mark_ready(&ready_path(&pid_file), me).unwrap();
        assert_eq!(wait_ready(&pid_file, Duration::ZERO), Ok(me));
    }

    #[test]
    fn the_wait_fails_at_once_when_the_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("gw.pid").display().to_string();
        // A PID above the kernel's pid_max never runs.
        std::fs::write(&pid_file, "4194305\n").unwrap();
        assert_eq!(
            wait_ready(&pid_file, Duration::from_secs(60)),
            Err(NotReady::Exited(4_194_305))
        );
    }

    #[test]
    fn a_test_process_does_not_serve() {
        // It handles neither SIGQUIT nor SIGTERM, and listens on nothing asked for.
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!serves_on_all(std::process::id(), &[addr]));
    }
}
