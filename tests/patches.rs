//! Pingora's patches: every copy under patches/ is its crate as crates.io publishes it, trimmed
//! to what Cargo builds, plus the diff next to it (patches/README.md). `patches/check` proves it;
//! these tests run it, and show that it catches a copy edited without its diff.
//!
//! The published crate comes from cargo's registry (`~/.cargo/registry/src/*/NAME-VERSION`);
//! the build never downloads a crate that `[patch.crates-io]` replaces, so when it is missing
//! (CI starts with an empty registry) the script has `cargo info NAME@VERSION` download it,
//! checked against the registry's checksum like any other download.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `patches/check` of the tree at `root` with `args`.
fn check(root: &Path, args: &[&str]) -> Output {
    Command::new(root.join("patches/check"))
        .args(args)
        .env("CARGO", env!("CARGO"))
        .stdin(Stdio::null())
        .output()
        .expect("run patches/check (POSIX sh, GNU diff and patch)")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_copy_is_its_crate_plus_its_diff() {
    let out = check(&root(), &[]);
    assert!(
        out.status.success(),
        "patches/check failed:\n{}",
        text(&out)
    );
}

/// The check on a scratch copy of the repository's Cargo.toml and patches/, with one copy
/// edited by hand: it fails and names the file, and `--write` puts the edit in the diff.
#[test]
fn a_copy_edited_without_its_diff_fails_the_check_naming_the_file() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("Cargo.toml"), scratch.path().join("Cargo.toml")).unwrap();
    let copied = Command::new("cp")
        .arg("-R")
        .arg(root().join("patches"))
        .arg(scratch.path())
        .status()
        .unwrap();
    assert!(copied.success(), "cp -R patches");
    let edited = scratch
        .path()
        .join("patches/pingora-proxy/src/proxy_trait.rs");
    let mut source = std::fs::read_to_string(&edited).unwrap();
    source.push_str("\n// an edit made by hand\n");
    std::fs::write(&edited, source).unwrap();

    let out = check(scratch.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let named = text(&out).lines().any(|line| {
        line.starts_with("patches/pingora-proxy/src/proxy_trait.rs: differs from pingora-proxy ")
            && line.ends_with(" plus patches/pingora-proxy.diff")
    });
    assert!(named, "{}", text(&out));
    assert!(
        !text(&out).contains("patches/pingora-core/"),
        "only the edited file is named:\n{}",
        text(&out)
    );

    let written = check(scratch.path(), &["--write"]);
    assert!(written.status.success(), "{}", text(&written));
    let diff = std::fs::read_to_string(scratch.path().join("patches/pingora-proxy.diff")).unwrap();
    assert!(diff.contains("+// an edit made by hand"), "{diff}");
    let again = check(scratch.path(), &[]);
    assert!(again.status.success(), "{}", text(&again));
}
