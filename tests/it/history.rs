//! `golden history`: version trees and marker moves read from git, as text and Mermaid.

use super::common::{TempRepo, copy_dir, golden, json_matching_schema, repo_root, run};

const DAY: i64 = 86_400;
const START: i64 = 1_790_000_000; // 2026-09-21

fn edit(repo: &TempRepo, rel: &str, from: &str, to: &str) {
    let path = repo.path().join(rel);
    let text = std::fs::read_to_string(&path).expect("file exists");
    assert!(text.contains(from), "{rel} lacks {from:?}");
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// The quickstart, then: prod of win11-ent moved to 2026.11, a new branch version, and the move
/// reverted. Fixed authors and times make commit ids stable.
fn repo_with_history() -> TempRepo {
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), repo.path());
    repo.commit_at("Import golden images", "Ada Admin", START);
    edit(&repo, "images/win11-ent.toml", "prod = \"2026.10\"", "prod = \"2026.11\"");
    repo.commit_at("Promote November build to prod", "Bo Builder", START + DAY);
    edit(
        &repo,
        "images/win11-ent.toml",
        "[markers]",
        "[versions.\"2026.11-hotfix\"]\nparent = \"2026.11\"\nsource = { vm = \"win11-build\", snapshot = \"sealed-2026-11-hf\" }\n\n[markers]",
    );
    edit(&repo, "images/win11-ent.toml", "pilot = \"2026.11\"", "pilot = \"2026.11-hotfix\"");
    repo.commit_at("Pilot the November hotfix", "Bo Builder", START + 2 * DAY);
    edit(&repo, "images/win11-ent.toml", "prod = \"2026.11\"", "prod = \"2026.10\"");
    repo.commit_at("Revert \"Promote November build to prod\"", "Ada Admin", START + 3 * DAY);
    repo
}

#[test]
fn history_shows_the_tree_and_every_marker_move() {
    let repo = repo_with_history();
    let out = run(golden(repo.path()).args(["history", "win11-ent"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("prod     2026.10 → 2026.11   Bo Builder — Promote November build to prod"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("prod     2026.11 → 2026.10   Ada Admin — Revert"), "{}", out.stdout);
    assert!(!out.stdout.contains("ws2022-rds"), "only the image asked for");
    insta::assert_snapshot!("history_text", out.stdout);
}

#[test]
fn history_as_mermaid() {
    let repo = repo_with_history();
    let out = run(golden(repo.path()).args(["history", "win11-ent", "--format", "mermaid"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("```mermaid\nflowchart LR\n"), "{}", out.stdout);
    assert!(out.stdout.contains("v_2026_11 --> v_2026_11_hotfix"), "{}", out.stdout);
    assert!(out.stdout.contains("m_v_prod([prod]) -.-> v_2026_10"), "{}", out.stdout);
    insta::assert_snapshot!("history_mermaid", out.stdout);
}

#[test]
fn the_rollback_window_comes_from_marker_history() {
    let repo = repo_with_history();
    let history = golden::history::read(repo.path(), "HEAD").expect("history reads");
    let window = history.marker_history();
    let get = |i: &str, m: &str| -> Vec<String> {
        window
            .get(&(golden::ids::ImageName::new(i), golden::ids::MarkerName::new(m)))
            .map(|v| v.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    };
    assert_eq!(get("win11-ent", "prod"), ["2026.11"], "prod was 2026.11 before the revert");
    assert_eq!(get("win11-ent", "pilot"), ["2026.11"]);
    assert!(get("ws2022-rds", "prod").is_empty());
}

#[test]
fn earlier_pool_bindings_come_from_git_history_and_the_working_tree() {
    let repo = repo_with_history();
    // Committed: Finance-IC at eu moves from canary to pilot. Not committed: Office-IC at hq
    // moves from prod to pilot.
    let finance = "marker = \"canary\"";
    edit(&repo, "pools/eu.toml", finance, "marker = \"pilot\"");
    repo.commit_at("Finance pilots the hotfix", "Ada Admin", START + 4 * DAY);
    let hq_office = "horizon_name = \"Office-IC\"\nimage = \"win11-ent\"\nmarker = \"prod\"";
    edit(&repo, "pools/hq.toml", hq_office, &hq_office.replace("prod", "pilot"));

    let dir = repo.path().to_owned();
    let desired = golden::desired::load(&golden::desired::Location::WorkTree { dir }).expect("repo loads");
    let history = golden::history::read(repo.path(), "HEAD").expect("history reads");
    let pools = history.pool_history_for(&desired);
    let earlier = |site: &str, name: &str| -> Vec<(String, Vec<String>)> {
        let key = (golden::ids::SiteName::new(site), golden::ids::HorizonName::new(name));
        let bindings = pools.get(&key).map(Vec::as_slice).unwrap_or_default();
        bindings
            .iter()
            .map(|b| (b.marker.to_string(), b.versions.iter().map(ToString::to_string).collect()))
            .collect()
    };
    assert_eq!(earlier("eu", "Finance-IC"), [("canary".to_owned(), vec!["2026.10-vpn".to_owned()])]);
    // prod pointed at 2026.10, then 2026.11, then 2026.10 again.
    assert_eq!(
        earlier("hq", "Office-IC"),
        [("prod".to_owned(), vec!["2026.10".to_owned(), "2026.11".to_owned()])]
    );
    assert!(earlier("eu", "Office-IC").is_empty(), "always bound to prod: {pools:?}");
}

#[test]
fn an_unknown_image_is_a_clear_error() {
    let repo = repo_with_history();
    let out = run(golden(repo.path()).args(["history", "win10"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("image `win10` has no history"), "{}", out.stderr);
}

#[test]
fn diff_between_two_commits_in_domain_terms() {
    let repo = repo_with_history();
    let out = run(golden(repo.path()).args(["diff", "HEAD~3", "HEAD~1"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!("diff_text", out.stdout);
    let md = run(golden(repo.path()).args(["diff", "HEAD~1", "HEAD", "--format", "markdown"]));
    assert!(
        md.stdout.starts_with("#### marker moves\n- win11-ent prod: 2026.11 → 2026.10\n"),
        "{}",
        md.stdout
    );
    let none = run(golden(repo.path()).args(["diff", "HEAD", "HEAD"]));
    assert_eq!(none.stdout, "No change to the desired state.\n");
    let bad = run(golden(repo.path()).args(["diff", "no-such-ref"]));
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("git ref `no-such-ref` does not name a commit"), "{}", bad.stderr);
}

#[test]
fn history_and_diff_as_json_match_their_schemas() {
    let repo = repo_with_history();
    let out = run(golden(repo.path()).args(["history", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let history = json_matching_schema("history.schema.json", &out.stdout);
    let win11 = &history["images"]["win11-ent"];
    assert_eq!(win11["versions"]["2026.11-hotfix"]["parent"], "2026.11");
    assert_eq!(win11["versions"]["2026.11-hotfix"]["added"]["author"], "Bo Builder");
    assert_eq!(win11["markers"]["prod"], "2026.10");
    let moves = win11["moves"].as_array().expect("moves");
    assert!(moves.iter().any(|m| m["marker"] == "prod" && m["from"] == "2026.10" && m["to"] == "2026.11"));

    let out = run(golden(repo.path()).args(["diff", "HEAD~3", "HEAD~1", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let diff = json_matching_schema("diff.schema.json", &out.stdout);
    assert!(
        diff["marker_moves"]
            .as_array()
            .expect("moves")
            .iter()
            .any(|m| m["marker"] == "prod" && m["to"] == "2026.11"),
        "{diff}"
    );
}

/// The evidence of promotion rules: each marker's stints, from the commit that moved it there
/// to the one that moved it on.
#[test]
fn marker_stints_run_from_move_to_move() {
    let repo = repo_with_history();
    let history = golden::history::read(repo.path(), "HEAD").expect("history");
    let stints = history.marker_stints();
    let of = |marker: &str| -> Vec<(String, i64, Option<i64>)> {
        let key = (golden::ids::ImageName::new("win11-ent"), golden::ids::MarkerName::new(marker));
        stints[&key]
            .iter()
            .map(|s| (s.version.to_string(), s.since.as_second(), s.until.map(|t| t.as_second())))
            .collect()
    };
    assert_eq!(
        of("prod"),
        [
            ("2026.10".to_owned(), START, Some(START + DAY)),
            ("2026.11".to_owned(), START + DAY, Some(START + 3 * DAY)),
            ("2026.10".to_owned(), START + 3 * DAY, None),
        ]
    );
    assert_eq!(
        of("pilot"),
        [
            ("2026.11".to_owned(), START, Some(START + 2 * DAY)),
            ("2026.11-hotfix".to_owned(), START + 2 * DAY, None)
        ]
    );
}
