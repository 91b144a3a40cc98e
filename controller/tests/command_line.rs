//! The command line's own documentation, generated from its definition:
//! shell completions (valid bash, every command) and the manual page.

mod common;

use common::*;

#[test]
fn completions_cover_every_command_and_parse_as_bash() {
    let output = run_controller(&["completions", "bash"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let script = stdout(&output);
    for command in [
        "validate",
        "policy",
        "diff",
        "apply",
        "rollback",
        "output",
        "releases",
        "destroy",
        "run",
        "completions",
        "man",
    ] {
        assert!(script.contains(command), "{command} missing");
    }
    for option in ["--no-prune", "--plan", "--out", "--no-wait", "--function"] {
        assert!(script.contains(option), "{option} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("controller.bash");
    std::fs::write(&path, &script).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        let output = run_controller(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0));
        assert!(stdout(&output).contains("rollback"), "{shell}");
    }
    let refused = run_controller(&["completions", "tcsh"]);
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn the_manual_page_is_roff_naming_the_commands() {
    let output = run_controller(&["man"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.contains(".TH controller 1"), "{page}");
    for command in ["apply", "rollback", "output", "completions"] {
        assert!(page.contains(command), "{command} missing");
    }
}
