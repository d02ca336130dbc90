//! The Debian package: a stripped binary, its debug info in a separate -dbgsym package, and the
//! README saying how to get a symbolized backtrace. Checked on Cargo.toml's metadata, so no
//! release build is needed.

use std::fs;

fn deb_metadata() -> Vec<(String, String)> {
    let toml = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let start = toml
        .find("[package.metadata.deb]")
        .expect("a [package.metadata.deb] section");
    let section = &toml[start + 1..];
    let end = section.find("\n[").map_or(section.len(), |i| i + 1);
    section[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_package_ships_a_stripped_binary_and_its_symbols_separately() {
    let meta = deb_metadata();
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    // cargo-deb strips the packaged binary and moves its debug info into
    // ackee-gateway-dbgsym_*.ddeb; zlib compression keeps it readable by Rust's backtraces.
    assert_eq!(get("dbgsym"), Some("true"), "{meta:?}");
    assert_eq!(get("compress-debug-symbols"), Some("true"), "{meta:?}");
    assert_ne!(get("separate-debug-symbols"), Some("false"));
    let toml = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        toml.contains("[\"target/release/ackee-gateway\", \"usr/bin/\", \"755\"]"),
        "the packaged binary is the release build"
    );
}

#[test]
fn the_readme_says_how_to_get_a_symbolized_backtrace() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("### Symbolized backtraces")
        .expect("a Symbolized backtraces section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n#").map_or(section.len(), |i| i + 4)];
    for want in [
        "dbgsym",
        "RUST_BACKTRACE=1",
        "addr2line",
        "/usr/lib/debug/.build-id",
    ] {
        assert!(section.contains(want), "{want} missing from:\n{section}");
    }
}
