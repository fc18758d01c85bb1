//! `golden validate` on the example and on a malformed repository. Every rule is checked on
//! its own fixture (tests/fixtures/invalid/<case>/) by golden-core's library tests.

use super::common::{TempRepo, copy_dir, golden, json_matching_schema, repo_root, run};

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

#[test]
fn validate_json_matches_its_schema() {
    let out = run(golden(&repo_root()).args(["validate", "-C", "examples/quickstart", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = json_matching_schema("validate.schema.json", &out.stdout);
    assert_eq!(report["valid"], true);
    assert_eq!(report["summary"], "3 sites, 2 images, 7 versions, 6 markers, 8 pools");

    let case = repo_root().join("tests/fixtures/invalid/many-problems-in-many-files");
    let out = run(golden(&case).args(["validate", "--format", "json"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr, "error: the desired state has 3 problems\n");
    let report = json_matching_schema("validate.schema.json", &out.stdout);
    assert_eq!(report["valid"], false);
    let first = &report["diagnostics"][0];
    assert_eq!(first["file"], "golden.toml");
    assert_eq!(first["position"], serde_json::json!({"line": 4, "column": 1}));
    assert_eq!(first["hint"], "did you mean `parallelism`?");
    assert_eq!(report["diagnostics"].as_array().map(Vec::len), Some(3));
}

/// `--format github` writes one workflow command per problem (GitHub's `::error` syntax), with
/// paths from the repository root, so the problems show as annotations on a pull request.
#[test]
fn validate_github_writes_workflow_commands() {
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), &repo.path().join("infra"));
    // A key with `%`, `,` and `:` in it, and a pools file with a comma in its name.
    let golden_toml = repo.path().join("infra/golden.toml");
    let text = std::fs::read_to_string(&golden_toml).expect("golden.toml");
    let text = text.replacen("[settings]", "[settings]\n\"50%,a:b\" = 1", 1);
    std::fs::write(&golden_toml, text).expect("write");
    std::fs::rename(repo.path().join("infra/pools/eu.toml"), repo.path().join("infra/pools/eu,1.toml"))
        .expect("rename");
    let pools = repo.path().join("infra/pools/eu,1.toml");
    let text = std::fs::read_to_string(&pools).expect("pools");
    std::fs::write(&pools, text.replacen("marker = \"prod\"", "marker = \"nope\"", 1)).expect("write");
    repo.commit("broken");

    let line = regex::Regex::new(r"^::error file=[^,:\s]+(,line=\d+,col=\d+)?,title=[^,:]+::[^\r\n]*$")
        .expect("regex");
    for args in [
        &["validate", "-C", "infra", "--format", "github"][..],
        &["validate", "-C", "infra", "--ref", "HEAD", "--format", "github"],
    ] {
        let out = run(golden(repo.path()).args(args));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 2, "{args:?}:\n{}", out.stdout);
        for l in out.stdout.lines() {
            assert!(line.is_match(l), "{args:?}: not a workflow command: {l}");
        }
        assert!(
            out.stdout.contains(
                "::error file=infra/golden.toml,line=9,col=1,title=golden validate::unknown key `50%25,a:b` in [settings]%0Ahint: "
            ),
            "{args:?}:\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("::error file=infra/pools/eu%2C1.toml,line="),
            "{args:?}:\n{}",
            out.stdout
        );
    }
    // A valid repository: no annotation.
    let out = run(golden(&repo_root()).args(["validate", "-C", "examples/quickstart", "--format", "github"]));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
}
