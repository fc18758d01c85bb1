//! The command-line surface: every command of SPEC.md exists with its flags; commands a later
//! milestone implements fail clearly instead of printing anything that looks like a result.

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
        (&["plan"], &["--dir", "--ref", "--site", "--out", "--format", "--detailed-exitcode"]),
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
fn unimplemented_commands_fail_without_fake_output() {
    let quickstart = ["-C", "examples/quickstart"];
    let cases: &[&[&str]] = &[&["demo"]];
    for args in cases {
        let mut cmd = golden(&repo_root());
        cmd.args(*args);
        if args[0] != "demo" {
            cmd.args(quickstart);
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", out.stdout);
        assert!(out.stderr.contains("is not implemented yet"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn an_invalid_repository_is_reported_before_a_missing_feature() {
    let case = repo_root().join("tests/fixtures/invalid/pool-unknown-site");
    let out = run(golden(&case).arg("plan"));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("pools/main.toml:2:8: pool `hq-office` names site `hq2`"), "{}", out.stderr);
    assert!(!out.stderr.contains("not implemented"), "{}", out.stderr);
}

#[test]
fn verbosity_flags_conflict_and_unknown_flags_are_usage_errors() {
    let out = run(golden(&repo_root()).args(["validate", "-v", "-q"]));
    assert_eq!(out.code, 2, "clap reports usage errors with 2: {}", out.stderr);
    let out = run(golden(&repo_root()).args(["validate", "--no-such-flag"]));
    assert_ne!(out.code, 0);
}
