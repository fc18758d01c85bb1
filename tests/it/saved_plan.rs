//! Saved plans go stale safely: `golden apply PLANFILE` refuses (exit 3) when the desired commit
//! or files, any live object the plan read, or its steps are not what golden plans now, and
//! refuses plans of another format or version.

use super::common::{golden, golden_with, lab_for, quickstart_repo, repo_root, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_goes_stale_when_a_pool_is_pushed_outside_golden() {
    let repo = quickstart_repo();
    let lab = lab_for(repo.path()).await;
    let plan = repo.path().join("plan.json");
    let planned = golden_with(&lab, repo.path(), &["plan", "--out", &plan.display().to_string()]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);

    // Someone pushes Office-IC at eu to another image by hand.
    {
        let shared = lab.state();
        let mut state = shared.lock();
        let eu = state.sites.get_mut("eu").expect("eu");
        let id = eu.horizon.pool_id("Office-IC").expect("pool");
        let other =
            eu.horizon.pools.values().find(|p| p.name == "SAP-Farm").expect("farm").parent_vm_id.clone();
        eu.horizon.pools.get_mut(&id).expect("pool").parent_vm_id = other;
    }
    let applied =
        golden_with(&lab, repo.path(), &["apply", &plan.display().to_string(), "--auto-approve"]).await;
    assert_eq!(applied.code, 3, "stale: {}", applied.stderr);
    assert!(
        applied.stderr.contains("the saved plan is stale: eu/pool/Office-IC changed"),
        "{}",
        applied.stderr
    );
    assert!(applied.stderr.contains("hint: the world moved since the plan was made"), "{}", applied.stderr);
    assert!(applied.stdout.is_empty(), "nothing was applied: {}", applied.stdout);

    // Plan again, apply that plan: it succeeds.
    let replanned = golden_with(&lab, repo.path(), &["plan", "--out", &plan.display().to_string()]).await;
    assert_eq!(replanned.code, 0, "{}", replanned.stderr);
    let applied =
        golden_with(&lab, repo.path(), &["apply", &plan.display().to_string(), "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let last = golden_with(&lab, repo.path(), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(last.code, 0, "no changes left: {}", last.stdout);
}

/// A plan of uncommitted edits says so (JSON and a warning) and is tied to those files: edited
/// again, it is stale. A plan file whose steps were edited runs nothing: its steps are not the
/// plan golden makes now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_is_of_the_files_it_read_and_an_edited_plan_runs_nothing() {
    let repo = quickstart_repo();
    let lab = lab_for(repo.path()).await;
    let image = repo.path().join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&image).expect("image");
    std::fs::write(&image, format!("{text}\n# not committed\n")).expect("write");
    let plan = repo.path().join("plan.json");
    let out = plan.display().to_string();
    let planned = golden_with(&lab, repo.path(), &["plan", "--format", "json", "--out", &out]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let json: serde_json::Value = serde_json::from_str(&planned.stdout).expect("JSON");
    assert_eq!(json["desired_dirty"], true, "uncommitted edits are recorded");
    let warned = json["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .any(|w| w.as_str().is_some_and(|w| w.contains("uncommitted edits")));
    assert!(warned, "{}", json["warnings"]);

    // Edited again after the plan: the plan is of other files.
    std::fs::write(&image, format!("{text}\n# edited again\n")).expect("write");
    let applied = golden_with(&lab, repo.path(), &["apply", &out, "--auto-approve"]).await;
    assert_eq!(applied.code, 3, "{}", applied.stderr);
    assert!(applied.stderr.contains("the desired-state files changed"), "{}", applied.stderr);

    // A fresh plan, then its file edited: a step's reason and its dependencies changed.
    let planned = golden_with(&lab, repo.path(), &["plan", "--format", "json", "--out", &out]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let mut json: serde_json::Value = serde_json::from_str(&planned.stdout).expect("JSON");
    let first = json["steps"][0]["id"].as_str().expect("a step").to_owned();
    json["steps"][0]["depends_on"] = serde_json::json!([]);
    json["steps"][0]["reason"] = serde_json::json!("trust me");
    std::fs::write(&plan, serde_json::to_string(&json).expect("JSON")).expect("write");
    let applied = golden_with(&lab, repo.path(), &["apply", &out, "--auto-approve"]).await;
    assert_eq!(applied.code, 3, "{}", applied.stderr);
    assert!(
        applied.stderr.contains(&format!("step {first} is not what golden plans now")),
        "{}",
        applied.stderr
    );
    assert!(applied.stdout.is_empty(), "nothing was applied: {}", applied.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_goes_stale_after_a_commit() {
    let repo = quickstart_repo();
    let lab = lab_for(repo.path()).await;
    let plan = repo.path().join("plan.json");
    let planned = golden_with(&lab, repo.path(), &["plan", "--out", &plan.display().to_string()]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let image = repo.path().join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&image).expect("image");
    std::fs::write(&image, text.replacen("prod = \"2026.10\"", "prod = \"2026.11\"", 1)).expect("write");
    repo.commit("Promote 2026.11");
    let applied =
        golden_with(&lab, repo.path(), &["apply", &plan.display().to_string(), "--auto-approve"]).await;
    assert_eq!(applied.code, 3, "{}", applied.stderr);
    assert!(applied.stderr.contains("the desired state is now at commit"), "{}", applied.stderr);
}

#[test]
fn a_plan_of_another_golden_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, r#"{"format_version": 1, "golden_version": "0.0.1", "steps": []}"#).expect("write");
    let out =
        run(golden(&repo_root()).args(["apply", &plan.display().to_string(), "-C", "examples/quickstart"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("was written by golden 0.0.1 (plan format 1)"), "{}", out.stderr);
    std::fs::write(&plan, "not json").expect("write");
    let out =
        run(golden(&repo_root()).args(["apply", &plan.display().to_string(), "-C", "examples/quickstart"]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not a plan (not JSON)"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_without_a_terminal_needs_auto_approve() {
    let repo = quickstart_repo();
    let lab = lab_for(repo.path()).await;
    let out = golden_with(&lab, repo.path(), &["apply"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve"),
        "{}",
        out.stderr
    );
}
