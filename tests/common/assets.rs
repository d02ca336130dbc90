//! The repository's operations assets (the systemd unit, the Prometheus scrape job and alert
//! rules, the Grafana dashboard) read as files, and the real tools that check them run on them.
//! A tool that is not installed fails the test with the package to install; it is never skipped.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_yaml::{Mapping, Value};

/// A file of the repository, by its path from the repository's root.
pub fn path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A file of the repository, as text.
pub fn read(rel: &str) -> String {
    fs::read_to_string(path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// A YAML (or JSON) file of the repository.
pub fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Runs an external tool; a tool that is not installed fails the test with the package to
/// install.
pub fn run_tool<S: AsRef<OsStr>>(tool: &str, package: &str, args: &[S]) -> Output {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` is not installed, so the operations assets cannot be checked; \
             install it with `apt-get install {package}` (CI installs it)"
        ),
        Err(e) => panic!("running {tool}: {e}"),
    }
}

/// Prometheus's `promtool`.
pub fn promtool<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_tool("promtool", "prometheus", args)
}

/// `systemd-analyze`.
pub fn systemd_analyze<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_tool("systemd-analyze", "systemd", args)
}

/// What a tool printed, standard output then standard error.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails the test with what the tool printed, unless it succeeded.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(out)
    );
}

/// Writes a YAML file.
pub fn write_yaml(file: &Path, value: &Value) {
    fs::write(file, serde_yaml::to_string(value).unwrap()).unwrap();
}

/// A YAML mapping of these entries, in order.
pub fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(Value::from(k), v);
    }
    Value::Mapping(m)
}
