//! `golden status` against a lab seeded from the quickstart: `--site`, `--ref` and its JSON.

use super::common::{golden_with, json_matching_schema, quickstart_lab, quickstart_repo};

/// `golden status --format json` output, checked against its schema.
fn json(stdout: &str) -> serde_json::Value {
    json_matching_schema("status.schema.json", stdout)
}

/// The desired version of one Horizon pool in `golden status --format json`.
fn desired_of(status: &serde_json::Value, horizon_name: &str) -> serde_json::Value {
    let pools = status["pools"].as_array().expect("pools");
    pools.iter().find(|p| p["horizon_name"] == horizon_name).expect("the pool")["desired"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_only_the_sites_named_with_site() {
    let lab = quickstart_lab().await;
    let repo = quickstart_repo();
    let out = golden_with(&lab, repo.path(), &["status", "--site", "eu", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = json(&out.stdout);
    let pools = status["pools"].as_array().expect("pools");
    assert!(!pools.is_empty());
    assert!(pools.iter().all(|p| p["site"] == "eu"), "{pools:#?}");
    for version in status["versions"].as_array().expect("versions") {
        let sites: Vec<&String> = version["sites"].as_object().expect("sites").keys().collect();
        assert_eq!(sites, ["eu"], "{version}");
    }
    assert_eq!(lab.requests("hq", golden::lab::Product::Horizon), 0, "hq's Horizon was read");

    let out = golden_with(&lab, repo.path(), &["status", "--site", "mars"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--site mars: no such site in golden.toml (known sites: eu, hq, us)"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_desired_state_at_ref() {
    let lab = quickstart_lab().await;
    let repo = quickstart_repo();
    // An uncommitted marker move: the working tree wants 2026.11, HEAD still 2026.10.
    let image = repo.path().join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&image).expect("image file");
    std::fs::write(&image, text.replace("prod = \"2026.10\"", "prod = \"2026.11\"")).expect("edit");

    let out = golden_with(&lab, repo.path(), &["status", "--site", "eu", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desired_of(&json(&out.stdout), "Office-IC"), "win11-ent@2026.11");

    let out =
        golden_with(&lab, repo.path(), &["status", "--site", "eu", "--ref", "HEAD", "--format", "json"])
            .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(desired_of(&json(&out.stdout), "Office-IC"), "win11-ent@2026.10");

    let out = golden_with(&lab, repo.path(), &["status", "--ref", "no-such-branch"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no-such-branch"), "{}", out.stderr);
}

/// `golden apply --format json` ends with the closing summary as data; the plan goes to stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_json_summary_matches_its_schema() {
    let lab = quickstart_lab().await;
    let repo = quickstart_repo();
    let out = golden_with(&lab, repo.path(), &["apply", "--auto-approve", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary = json_matching_schema("apply.schema.json", &out.stdout);
    assert_eq!(summary["succeeded"], true);
    assert!(summary["done"].as_array().is_some_and(|d| !d.is_empty()), "{summary}");
    assert!(out.stderr.contains("Plan: "), "the plan is on stderr: {}", out.stderr);

    let out = golden_with(&lab, repo.path(), &["apply", "--auto-approve", "--format", "json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary = json_matching_schema("apply.schema.json", &out.stdout);
    assert_eq!(summary["done"], serde_json::json!([]), "nothing left to do: {summary}");
}
