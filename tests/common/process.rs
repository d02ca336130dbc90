//! The binary under test as a process: where it is, running it to its exit, and waiting with a
//! deadline for something it should do.

use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test: this build's, or the one `ACKEE_GATEWAY_BIN` names (to show that a
/// test fails against an older build).
pub fn binary() -> String {
    std::env::var("ACKEE_GATEWAY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ackee-gateway").to_owned())
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub fn eventually<T>(limit: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_or_else(limit, check, || {
        format!("timed out after {limit:?} waiting for {what}")
    })
}

/// Polls `check` until it returns `Some`, or panics after `limit` with what `explain` says then
/// (for a message that carries what the gateway logged by the time it gave up).
pub fn eventually_or_else<T>(
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{}", explain());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ackee-gateway` with arguments and an environment, returning (exit code, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("ACKEE_ALLOW_ORIGIN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ackee-gateway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
