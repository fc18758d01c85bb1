//! `--ref`: the desired state of any commit, read from git objects without touching the
//! working tree or the index.

use super::common::{TempRepo, copy_dir, golden, repo_root, run};

/// A repo whose previous commit is valid and whose HEAD has a marker on a missing version.
fn repo_with_broken_head(subdir: &str) -> TempRepo {
    let repo = TempRepo::new();
    let base = repo.path().join(subdir);
    copy_dir(&repo_root().join("examples/quickstart"), &base);
    repo.commit("quickstart");
    let image = base.join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&image).expect("image file");
    std::fs::write(&image, text.replace("prod = \"2026.10\"", "prod = \"2026.12\"")).expect("write");
    repo.commit("move prod to a version that does not exist");
    repo
}

fn snapshot_of_tree(repo: &TempRepo) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![repo.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.display().to_string(), std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn an_older_commit_validates_without_touching_the_work_tree() {
    let repo = repo_with_broken_head("");
    // An uncommitted edit in the working tree must survive untouched.
    repo.write("pools/scratch.toml", "# work in progress\n");
    let before = snapshot_of_tree(&repo);

    let old = run(golden(repo.path()).args(["validate", "--ref", "HEAD~1"]));
    assert_eq!(old.code, 0, "HEAD~1 is valid: {}", old.stderr);
    assert!(old.stdout.starts_with("valid at HEAD~1 ("), "{}", old.stdout);
    assert!(old.stdout.ends_with(": 3 sites, 2 images, 7 versions, 6 markers, 8 pools\n"), "{}", old.stdout);

    let head = run(golden(repo.path()).args(["validate", "--ref", "HEAD"]));
    assert_eq!(head.code, 1);
    assert!(
        head.stderr.contains("HEAD:images/win11-ent.toml:25:8: marker `prod` points at version `2026.12`"),
        "{}",
        head.stderr
    );

    assert_eq!(snapshot_of_tree(&repo), before, "the working tree and .git are unchanged");
}

#[test]
fn a_subdirectory_of_the_repository_is_read_at_a_ref() {
    let repo = repo_with_broken_head("infra/golden");
    let out = run(golden(repo.path()).args(["validate", "-C", "infra/golden", "--ref", "HEAD~1"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let head = run(golden(&repo.path().join("infra/golden")).args(["validate", "--ref", "HEAD"]));
    assert_eq!(head.code, 1);
    assert!(head.stderr.contains("HEAD:infra/golden/images/win11-ent.toml:25:8:"), "{}", head.stderr);
}

#[test]
fn a_ref_that_does_not_exist_is_a_clear_error() {
    let repo = repo_with_broken_head("");
    let out = run(golden(repo.path()).args(["validate", "--ref", "release-2027"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: git ref `release-2027` does not name a commit in"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: give a branch, tag, commit id"), "{}", out.stderr);
}

#[test]
fn a_ref_outside_any_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&repo_root().join("examples/quickstart"), dir.path());
    let out = run(golden(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().expect("parent"))
        .args(["validate", "--ref", "HEAD"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not inside a git repository"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: run `git init`, or drop `--ref`"), "{}", out.stderr);
}
