//! Safe rollouts through the binary, on a git repository and the lab: a promotion rule holds a
//! prod move back until pilot has soaked, counting from the commit that moved pilot; an
//! override is recorded in the saved plan, which apply then carries out.

use serde_json::Value;

use super::common::{TempRepo, copy_dir, golden_with, json_matching_schema, lab_for, repo_root};

fn edit(repo: &TempRepo, from: &str, to: &str) {
    let path = repo.path().join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&path).expect("image file");
    assert!(text.contains(from), "{from} not in the image file");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

fn pushes(plan: &Value) -> Vec<String> {
    let steps = plan["steps"].as_array().expect("steps");
    steps
        .iter()
        .filter(|s| s["kind"] == "push")
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_rule_holds_prod_until_pilot_has_soaked_and_an_override_is_recorded() {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
            as i64;
    let hours = 3600;
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), repo.path());
    // pilot starts on 2026.10 with prod; the quickstart's [policy.prod] wants 72h on pilot.
    edit(&repo, "pilot = \"2026.11\"", "pilot = \"2026.10\"");
    repo.commit_at("Import golden images", "Ada Admin", now - 240 * hours);
    let lab = lab_for(repo.path()).await;
    let first = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);

    // Pilot moved a day ago and rolled out; prod moves now.
    edit(&repo, "pilot = \"2026.10\"", "pilot = \"2026.11\"");
    let pilot_moved = now - 24 * hours;
    repo.commit_at("Pilot 2026.11", "Bo Builder", pilot_moved);
    let piloted = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(piloted.code, 0, "{}\n{}", piloted.stdout, piloted.stderr);
    edit(&repo, "prod = \"2026.10\"", "prod = \"2026.11\"");
    repo.commit_at("Promote 2026.11 to prod", "Bo Builder", now - hours);

    let planned = golden_with(&lab, repo.path(), &["plan", "--format", "json"]).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let plan = json_matching_schema("plan.schema.json", &planned.stdout);
    assert!(pushes(&plan).is_empty(), "the rule lets no prod push through: {:?}", pushes(&plan));
    let check = &plan["policy"][0];
    assert_eq!(check["marker"], "prod");
    assert_eq!(check["holds"], false);
    // It holds 72 hours after the commit that moved pilot, not after this plan.
    let holds_at = (pilot_moved + 72 * hours) * 1000;
    assert_eq!(check["holds_at"], holds_at, "{check:#}");
    let held = plan["held"].as_array().expect("held pushes");
    let pools: Vec<&str> = held.iter().filter_map(|h| h["pool"].as_str()).collect();
    assert_eq!(pools, ["eu-office", "hq-office", "us-callcenter", "us-office"], "{held:#?}");
    assert!(held.iter().all(|h| h["cause"] == "policy" && h["until"] == holds_at), "{held:#?}");

    // The text says which rule, what is missing and when it will hold.
    let text = golden_with(&lab, repo.path(), &["plan"]).await;
    assert!(text.stdout.contains("pilot has pointed at 2026.11 for 1d of 3d"), "{}", text.stdout);
    assert!(text.stdout.contains("4 pushes held back"), "{}", text.stdout);

    // An override: planned, recorded in the saved plan, and applied from it (not stale,
    // although a plan without the override would hold the pushes back).
    let saved = repo.path().join("plan.json");
    let reason = "CVE-2026-4242: cannot wait for the soak (CAB-1234)";
    let overridden = golden_with(
        &lab,
        repo.path(),
        &["plan", "--override-policy", reason, "--out", &saved.display().to_string()],
    )
    .await;
    assert_eq!(overridden.code, 0, "{}", overridden.stderr);
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&saved).expect("saved")).expect("JSON");
    assert_eq!(pushes(&plan).len(), 4, "{:?}", pushes(&plan));
    assert_eq!(plan["policy"][0]["overridden"], reason);
    let applied =
        golden_with(&lab, repo.path(), &["apply", &saved.display().to_string(), "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let after = golden_with(&lab, repo.path(), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(after.code, 0, "every prod pool runs 2026.11 now:\n{}", after.stdout);

    let blank = golden_with(&lab, repo.path(), &["plan", "--override-policy", " "]).await;
    assert_eq!(blank.code, 2, "clap refuses a blank reason: {}", blank.stderr);
    assert!(blank.stderr.contains("give the reason"), "{}", blank.stderr);
}
