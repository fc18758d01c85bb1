//! Adopting an existing estate: `golden init --from-live` writes the repository of pools that
//! run images golden does not own; the first plan only adopts (tags) the VMs they run, and the
//! world is otherwise untouched: no VM, snapshot or library item made, no pool pushed. Moving a
//! marker afterwards plans the pushes of exactly the pools bound to it.

use std::collections::BTreeMap;

use golden::desired::{Location, load};
use golden::lab::{Lab, LabOptions, Timings};

use super::common::{TempRepo, golden_with, pushes_sent, repo_root};

/// Per vCenter: VMs, snapshots and library items.
fn objects(lab: &Lab) -> BTreeMap<String, (usize, usize, usize)> {
    let shared = lab.state();
    let state = shared.lock();
    state
        .vcenters
        .iter()
        .map(|(name, v)| {
            let snapshots = v.sim.vms.values().map(|vm| vm.snapshots.len()).sum();
            (name.clone(), (v.sim.vms.len(), snapshots, v.sim.content.items.len()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_estate_plans_no_change_and_a_marker_move_pushes_its_pools() {
    // The lab: the quickstart's sites, each pool running a legacy image golden does not own.
    let quickstart =
        load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") }).expect("quickstart");
    let lab = Lab::start(
        golden::lab::seed::from_desired(&quickstart, Timings::instant()),
        LabOptions { free_ports: true, ..LabOptions::default() },
    )
    .await
    .expect("lab");
    // The repository: settings and sites only.
    let repo = TempRepo::new();
    let golden_toml =
        std::fs::read_to_string(repo_root().join("examples/quickstart/golden.toml")).expect("golden.toml");
    repo.write("golden.toml", &golden_toml);
    repo.commit("Sites");
    let dir = repo.path();

    let dry = golden_with(&lab, dir, &["init", "--from-live", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("==> images/legacy-win11-ent.toml <=="), "{}", dry.stdout);
    assert!(!dir.join("images").exists(), "a dry run writes nothing");
    let init = golden_with(&lab, dir, &["init", "--from-live"]).await;
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(init.stdout.contains("wrote pools/eu.toml"), "{}", init.stdout);
    let validate = golden_with(&lab, dir, &["validate"]).await;
    assert_eq!(validate.code, 0, "{}\n{}", validate.stdout, validate.stderr);
    repo.commit("Adopt the estate");

    // The first plan adopts, and nothing else.
    let before = objects(&lab);
    let plan = golden_with(&lab, dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let summary = plan.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("Plan: ") && summary.contains(" adopt (") && !summary.contains(','),
        "{}",
        plan.stdout
    );
    let apply = golden_with(&lab, dir, &["apply", "--auto-approve"]).await;
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    let after = golden_with(&lab, dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(after.code, 0, "no change left: {}", after.stdout);
    assert_eq!(objects(&lab), before, "no VM, snapshot or library item made");
    assert_eq!(pushes_sent(&lab), 0, "no pool pushed");

    // A new version of one image, and its marker moved: exactly its pools are pushed.
    let image = dir.join("images/legacy-win11-ent.toml");
    let text = std::fs::read_to_string(&image).expect("image");
    let moved = text.replace("\"prod\" = \"initial\"", "\"prod\" = \"2026.10\"")
        + "\n[versions.\"2026.10\"]\nparent = \"initial\"\nsource = { vm = \"win11-build\", snapshot = \"sealed-2026-10\" }\n";
    assert!(moved.contains("\"prod\" = \"2026.10\""), "the marker moved: {moved}");
    std::fs::write(&image, moved).expect("write");
    repo.commit("Promote 2026.10");
    let desired = load(&Location::WorkTree { dir: dir.to_owned() }).expect("valid");
    let mut bound: Vec<String> = desired
        .pools
        .values()
        .filter(|p| p.image.as_str() == "legacy-win11-ent" && p.marker.as_str() == "prod")
        .map(|p| format!("push/{}/{}", p.site, p.name))
        .collect();
    bound.sort();
    assert!(!bound.is_empty());
    let json = golden_with(&lab, dir, &["plan", "--format", "json"]).await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let mut planned: Vec<String> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["kind"] == "push")
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    planned.sort();
    assert_eq!(planned, bound, "the pushes of the pools bound to prod");
}
