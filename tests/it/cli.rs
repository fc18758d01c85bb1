//! The command-line surface: every command the README lists exists with its flags.

use super::common::{golden, repo_root, run};

#[test]
fn help_lists_every_command() {
    let out = run(golden(&repo_root()).arg("--help"));
    assert_eq!(out.code, 0);
    for command in ["validate", "plan", "apply", "status", "history", "lab", "demo"] {
        assert!(out.stdout.contains(&format!("  {command} ")), "--help lacks {command}:\n{}", out.stdout);
    }
    for flag in ["--verbose", "--quiet", "--color"] {
        assert!(out.stdout.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn each_command_has_the_flags_of_the_spec() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["validate"], &["--dir", "--ref"]),
        (
            &["plan"],
            &["--dir", "--ref", "--site", "--out", "--format", "--detailed-exitcode", "--trusted-ref"],
        ),
        (&["apply"], &["[PLANFILE]", "--dir", "--auto-approve", "--parallelism"]),
        (&["status"], &["--dir", "--format"]),
        (&["history"], &["[IMAGE]", "--format"]),
        (&["lab", "serve"], &["--state", "--latency", "--seed", "--free-ports", "--env-file"]),
        (&["demo"], &[]),
    ];
    for (command, flags) in cases {
        let out = run(golden(&repo_root()).args(*command).arg("--help"));
        assert_eq!(out.code, 0, "{command:?} --help");
        for flag in *flags {
            assert!(out.stdout.contains(flag), "{command:?} --help lacks {flag}:\n{}", out.stdout);
        }
    }
}

#[test]
fn an_invalid_repository_is_reported_before_any_network_call() {
    let case = repo_root().join("tests/fixtures/invalid/pool-unknown-site");
    for command in ["plan", "apply", "status"] {
        let out = run(golden(&case).args([command, "--auto-approve"].iter().take(if command == "apply" {
            2
        } else {
            1
        })));
        assert_eq!(out.code, 1, "{command}");
        assert!(
            out.stderr.contains("pools/main.toml:2:8: pool `hq-office` names site `hq2`"),
            "{command}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("is not set"), "{command} looked for credentials: {}", out.stderr);
    }
}

#[test]
fn verbosity_flags_conflict_and_unknown_flags_are_usage_errors() {
    let out = run(golden(&repo_root()).args(["validate", "-v", "-q"]));
    assert_eq!(out.code, 2, "clap reports usage errors with 2: {}", out.stderr);
    let out = run(golden(&repo_root()).args(["validate", "--no-such-flag"]));
    assert_ne!(out.code, 0);
}
