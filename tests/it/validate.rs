//! `golden validate` on the example and on a malformed repository. Every rule is checked on
//! its own fixture (tests/fixtures/invalid/<case>/) by golden-core's library tests.

use super::common::{golden, repo_root, run};

#[test]
fn quickstart_example_is_valid() {
    let out = run(golden(&repo_root()).args(["validate", "-C", "examples/quickstart"]));
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "valid: 3 sites, 2 images, 7 versions, 6 markers, 8 pools\n");
}

/// Every rule is checked on its fixture by the core's tests; the binary is run on one
/// repository with several problems in several files: each is reported, then the summary.
#[test]
fn a_malformed_repository_fails_naming_file_line_and_problem() {
    let case = repo_root().join("tests/fixtures/invalid/many-problems-in-many-files");
    let expect = std::fs::read_to_string(case.join("EXPECT")).expect("the case has EXPECT");
    let out = run(golden(&case).arg("validate"));
    assert_eq!(out.code, 1, "exit code; stderr:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout, got {}", out.stdout);
    for line in expect.lines().filter(|l| !l.trim().is_empty()) {
        assert!(out.stderr.contains(line), "stderr lacks {line:?}:\n{}", out.stderr);
    }
    assert!(
        out.stderr.trim_end().ends_with("nothing was contacted"),
        "ends with the summary:\n{}",
        out.stderr
    );
    insta::with_settings!({ prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("invalid@many-problems-in-many-files", out.stderr);
    });
}

#[test]
fn errors_are_coloured_only_when_asked() {
    let case = repo_root().join("tests/fixtures/invalid/many-problems-in-many-files");
    let plain = run(golden(&case).arg("validate"));
    assert!(!plain.stderr.contains('\u{1b}'), "NO_COLOR and a pipe give plain text");
    let forced = run(golden(&case).args(["validate", "--color", "always"]));
    assert!(forced.stderr.contains("\u{1b}["), "--color always colours: {:?}", forced.stderr);
    let never = run(golden(&case).env_remove("NO_COLOR").args(["validate", "--color", "never"]));
    assert!(!never.stderr.contains('\u{1b}'));
}

#[test]
fn validation_reads_only_the_toml_layout() {
    // Non-TOML files in images/ are ignored with a warning rather than silently.
    let dir = tempfile::tempdir().expect("temp dir");
    super::common::copy_dir(&repo_root().join("examples/quickstart"), dir.path());
    std::fs::write(dir.path().join("images/notes.txt"), "not an image").expect("write");
    let out = run(golden(dir.path()).arg("validate"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("ignoring images/notes.txt"), "{}", out.stderr);
}
