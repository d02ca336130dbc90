//! Which TCP addresses a process listens on, from Linux's `/proc`: its socket inodes from
//! `/proc/PID/fd`, matched against the listening rows of `/proc/net/tcp` and `/proc/net/tcp6`;
//! and which signals it handles, from `/proc/PID/status`. No pingora here.
//!
//! A graceful upgrade (`-u`) takes the listening sockets the old process holds; any other
//! address in the new config is bound anew. Knowing what the old process holds lets the new
//! one refuse to start, before the old one hands over, when an added address cannot be bound.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The state column of a listening socket in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// Parses a `/proc/net/tcp{,6}` address such as `0100007F:1F90` (127.0.0.1:8080): the address
/// in the kernel's byte order, 32-bit word by 32-bit word, then the port in hex.
pub(crate) fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<u32>> = (0..ip.len() / 8)
        .map(|i| {
            ip.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect();
    let words = words?;
    let ip = match (ip.len(), words.as_slice()) {
        (8, [w]) => IpAddr::V4(Ipv4Addr::from(w.swap_bytes())),
        (32, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The listening addresses of the rows of a `/proc/net/tcp{,6}` table whose inode is in
/// `inodes`.
pub(crate) fn listening_in_table(table: &str, inodes: &HashSet<String>) -> Vec<SocketAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != LISTEN || !inodes.contains(cols[9]) {
                return None;
            }
            parse_address(cols[1])
        })
        .collect()
}

/// The TCP addresses process `pid` listens on; empty if it cannot be read.
pub fn listening(pid: u32) -> Vec<SocketAddr> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .flat_map(|t| listening_in_table(&t, &inodes))
        .collect()
}

/// The processes named `name` (their `/proc/PID/comm`), but this one.
pub fn processes_named(name: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// Whether process `pid` catches `signal` (it has a handler installed), from the `SigCgt` mask
/// of `/proc/PID/status`; `None` if that cannot be read (the process is gone, or not Linux).
pub(crate) fn catches(pid: u32, signal: i32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    let bit = u32::try_from(signal).ok()?.checked_sub(1)?;
    Some(mask.checked_shr(bit).is_some_and(|m| m & 1 == 1))
}

/// The PID written in a PID file, if it names a running process.
pub fn running_pid(pid_file: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_addresses_parse() {
        let cases = [
            ("0100007F:1F90", Some("127.0.0.1:8080")),
            ("00000000:01BB", Some("0.0.0.0:443")),
            ("00000000000000000000000000000000:01BB", Some("[::]:443")),
            ("00000000000000000000000001000000:0050", Some("[::1]:80")),
            (
                "0000000000000000FFFF00000100007F:1F90",
                Some("[::ffff:127.0.0.1]:8080"),
            ),
            (
                "B80D0120000000000000000001000000:0050",
                Some("[2001:db8::1]:80"),
            ),
            ("0100007F", None),
            ("01007F:1F90", None),
            ("0100007G:1F90", None),
            ("0100007F:XYZ", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_address(text).map(|a| a.to_string()),
                want.map(str::to_owned),
                "{text}"
            );
        }
    }

    #[test]
    fn the_signal_mask_is_read_from_proc() {
        // This test process does not catch SIGUSR1; a process that does not exist is unknown.
        assert_eq!(catches(std::process::id(), libc::SIGUSR1), Some(false));
        assert_eq!(catches(u32::MAX, libc::SIGUSR1), None);
        assert_eq!(catches(std::process::id(), 0), None);
    }

    #[test]
    fn only_listening_rows_of_the_process_count() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:1F92 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
";
        let inodes: HashSet<String> = ["111".to_owned()].into();
        let got = listening_in_table(table, &inodes);
        assert_eq!(got, ["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
    }
}
