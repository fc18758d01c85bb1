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
        (&["validate"], &["--dir", "--ref", "--format"]),
        (
            &["plan"],
            &["--dir", "--ref", "--site", "--out", "--format", "--detailed-exitcode", "--trusted-ref"],
        ),
        (&["apply"], &["[PLANFILE]", "--dir", "--auto-approve", "--parallelism", "--format"]),
        (&["status"], &["--dir", "--ref", "--site", "--format"]),
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

/// Every command and sub-command, as `["lab", "serve"]`, read from the argument types so a new
/// command is covered without editing the tests.
fn every_command() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            let mut here = path.to_vec();
            here.push(sub.get_name().to_owned());
            out.push(here.clone());
            walk(sub, &here, out);
        }
    }
    let mut out = Vec::new();
    walk(&<golden::cli::Cli as clap::CommandFactory>::command(), &[], &mut out);
    out
}

#[test]
fn completions_cover_every_command() {
    let commands = every_command();
    assert!(commands.len() > 10, "{commands:?}");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = run(golden(&repo_root()).args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for command in &commands {
            let name = command.last().expect("a name");
            assert!(out.stdout.contains(name.as_str()), "{shell} completions lack `{}`", command.join(" "));
        }
        // Flags are completed too, not only command names.
        assert!(out.stdout.contains("detailed-exitcode"), "{shell} completions lack plan's flags");
    }
    let out = run(golden(&repo_root()).args(["completions", "tcsh"]));
    assert_eq!(out.code, 2, "an unknown shell is a usage error: {}", out.stderr);
}

#[test]
fn man_pages_cover_every_command() {
    let out = run(golden(&repo_root()).arg("man"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(".ie \\n(.g .ds Aq"),
        "not roff:\n{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    assert!(out.stdout.contains(".TH golden 1"), "{}", out.stdout);
    for command in every_command().iter().filter(|c| c.len() == 1) {
        assert!(out.stdout.contains(&command[0]), "golden(1) does not list `{}`", command[0]);
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let pages = dir.path().join("man1");
    let out = run(golden(&repo_root()).arg("man").arg("--dir").arg(&pages));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(pages.join("golden.1").is_file());
    for command in every_command() {
        let page = pages.join(format!("golden-{}.1", command.join("-")));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(&format!(".TH golden-{} 1", command.join("-"))), "{}:\n{text}", page.display());
    }
}
