//! The README's quick start is exactly two commands, and CI runs the second one verbatim.

use std::fs;

fn quick_start_commands() -> Vec<String> {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("## Quick start")
        .expect("a Quick start section");
    let rest = &readme[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let section = &rest[..end];
    // The commands are the one-line ```sh blocks before the first curl example.
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut block: Vec<String> = Vec::new();
    for line in section.lines() {
        if line.starts_with("```sh") {
            in_block = true;
            block.clear();
        } else if line.starts_with("```") && in_block {
            in_block = false;
            if block.len() == 1 && !block[0].starts_with('#') {
                commands.push(block[0].clone());
            }
        } else if in_block {
            block.push(line.to_owned());
        }
    }
    commands
}

#[test]
fn the_quick_start_is_exactly_two_commands_that_run_and_test() {
    let commands = quick_start_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(
        commands[0].contains("cargo run") && commands[0].contains("-c conf/ackee-gateway.yaml")
    );
    assert!(commands[1].contains("cargo test"));
    for c in &commands {
        assert!(c.contains("apt-get install") && c.contains("cmake"), "{c}");
        // Root in a Debian container has no sudo: every sudo must be `$(command -v sudo)`,
        // which is empty there.
        assert_eq!(
            c.matches("sudo").count(),
            c.matches("$(command -v sudo)").count(),
            "a bare sudo stops at once where sudo is not installed: {c}"
        );
    }
}

#[test]
fn ci_does_not_install_sudo_for_the_commands() {
    let ci = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        !ci.contains("install -y sudo"),
        "the README's commands must work without sudo, so CI must not paper over it"
    );
}

#[test]
fn ci_runs_the_readme_test_command_verbatim() {
    let commands = quick_start_commands();
    let ci = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run must contain the line\n{}",
        commands[1]
    );
}
