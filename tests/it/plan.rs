//! `golden plan` end to end: the CLI against a lab seeded from the quickstart.

use std::collections::BTreeMap;
use std::path::Path;

use golden::desired::{Location, load};
use golden::lab::{Lab, LabOptions, Product, Timings};

use super::common::{golden, golden_with, quickstart_lab, repo_root, run};

/// The plan text with the desired commit, which changes with every commit of this repository,
/// redacted.
fn redacted(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("commit ") {
            Some(i) => format!("{}commit [commit]", &l[..i]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_deploy_plan_of_the_quickstart() {
    let lab = quickstart_lab().await;
    let out =
        golden_with(&lab, &repo_root().join("examples/quickstart"), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(out.code, 2, "changes present: {}", out.stderr);
    assert!(
        out.stdout.ends_with("Plan: 5 publish, 3 replicate, 7 deploy, 8 push (23 steps).\n"),
        "{}",
        out.stdout
    );
    insta::assert_snapshot!(redacted(&out.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_plan_validates_against_the_schema_and_saves() {
    let lab = quickstart_lab().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let saved = dir.path().join("plan.json");
    let out = golden_with(
        &lab,
        &repo_root().join("examples/quickstart"),
        &["plan", "--format", "json", "--out", &saved.display().to_string()],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("schema/plan.schema.json")).expect("schema"),
    )
    .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> =
        validator.iter_errors(&plan).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "plan does not match schema/plan.schema.json: {errors:#?}");
    assert_eq!(plan["format_version"], golden::plan::FORMAT_VERSION);
    assert!(plan["desired_dirty"].is_boolean(), "{}", plan["desired_dirty"]);
    assert!(plan["desired_digest"].as_str().is_some_and(|d| d.len() == 64), "{}", plan["desired_digest"]);
    assert_eq!(plan["steps"].as_array().map(Vec::len), Some(23));
    assert!(plan["fingerprints"].as_object().is_some_and(|f| f.keys().any(|k| k.starts_with("eu/pool/"))));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).expect("--out wrote the plan")).expect("JSON");
    assert_eq!(on_disk, plan);
    // The schema rejects what is not a plan.
    assert!(!validator.is_valid(&serde_json::json!({"format_version": 1, "steps": [{"kind": "explode"}]})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_plan_for_one_site_is_a_table() {
    let lab = quickstart_lab().await;
    let out = golden_with(
        &lab,
        &repo_root().join("examples/quickstart"),
        &["plan", "--site", "us", "--format", "markdown"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(
        "| site | publish | replicate | deploy | push | retire |\n|---|---:|---:|---:|---:|---:|\n"
    ));
    assert!(out.stdout.contains("| us | 0 | 1 | 1 | 2 | 0 |"), "{}", out.stdout);
    assert!(
        out.stdout.contains("| hq | 1 | 0 | 0 | 0 | 0 |"),
        "the publish at the source site is a prerequisite"
    );
    assert!(!out.stdout.contains("| eu |"), "eu is out of scope");
    // The version tree of each image whose pools it pushes, after the plan.
    let tree = out.stdout.find("#### Version tree of `win11-ent`\n\n```mermaid\ngraph LR\n");
    assert!(tree.is_some_and(|at| at > out.stdout.find("| us |").unwrap_or(usize::MAX)), "{}", out.stdout);
}

#[test]
fn missing_credentials_are_named_before_any_request() {
    let out = run(golden(&repo_root()).args(["plan", "-C", "examples/quickstart"]));
    assert_eq!(out.code, 1);
    for site in ["EU", "HQ", "US"] {
        assert!(out.stderr.contains(&format!("GOLDEN_{site}_VCENTER_USER is not set")), "{}", out.stderr);
    }
    assert!(out.stderr.contains("hint: export GOLDEN_EU_VCENTER_USER=..."), "{}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_site_is_refused() {
    let out = run(golden(&repo_root()).args(["plan", "-C", "examples/quickstart", "--site", "apac"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("--site apac: no such site in golden.toml (known sites: eu, hq, us)"),
        "{}",
        out.stderr
    );
}

/// A repository of `sites` sites with `pools` pools each, all following one marker.
fn big_repo(dir: &Path, sites: usize, pools: usize) {
    let mut golden = String::from("[settings]\nsource_site = \"s0\"\n");
    for s in 0..sites {
        golden.push_str(&format!(
            "\n[sites.s{s}]\nvcenter = \"http://127.0.0.1:{}\"\nhorizon = \"http://127.0.0.1:1\"\ndatacenter = \"DC{s}\"\ncluster = \"C{s}\"\nfolder = \"golden\"\ndatastore = \"ds{s}\"\n",
            10000 + s
        ));
    }
    std::fs::write(dir.join("golden.toml"), golden).expect("write");
    std::fs::create_dir_all(dir.join("images")).expect("mkdir");
    std::fs::write(
        dir.join("images/win.toml"),
        "[versions.\"v1\"]\nsource = { vm = \"build\", snapshot = \"s1\" }\n\n[markers]\nprod = \"v1\"\n",
    )
    .expect("write");
    std::fs::create_dir_all(dir.join("pools")).expect("mkdir");
    let mut text = String::new();
    for s in 0..sites {
        for p in 0..pools {
            text.push_str(&format!(
                "[pools.s{s}-p{p}]\nsite = \"s{s}\"\nimage = \"win\"\nmarker = \"prod\"\n\n"
            ));
        }
    }
    std::fs::write(dir.join("pools/all.toml"), text).expect("write");
}

/// Requests per site endpoint for reading the live state of a `sites` × `pools` lab.
async fn requests_to_read(sites: usize, pools: usize) -> BTreeMap<(String, Product), u64> {
    let dir = tempfile::tempdir().expect("temp dir");
    big_repo(dir.path(), sites, pools);
    let desired = load(&Location::WorkTree { dir: dir.path().to_owned() }).expect("generated repo is valid");
    let mut state = golden::lab::seed::from_desired(&desired, Timings::instant());
    // Machines and sessions are read 1,000 per page too, and grow with the machines, not the
    // pools: one page each here.
    for site in state.sites.values_mut() {
        for pool in site.horizon.pools.values_mut() {
            pool.machines.clear();
        }
    }
    let lab = Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() }).await.expect("lab");
    let env: BTreeMap<String, String> = lab.env().into_iter().collect();
    let lookup = |name: &str| env.get(name).cloned();
    let read = desired.sites.keys().cloned().collect();
    let clients = golden::gather::connect_all(
        &desired,
        &read,
        dir.path(),
        &lookup,
        &golden::connect::RetryPolicy::none(),
    )
    .expect("clients");
    let live = golden::gather::read_all(&desired, &clients).await.expect("live state").live;
    assert_eq!(live.sites.len(), sites);
    assert!(live.sites.values().all(|s| s.pools.len() == pools));
    let mut counts = BTreeMap::new();
    for e in lab.endpoints() {
        counts.insert((e.name.clone(), e.product), lab.requests(&e.name, e.product));
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_site_do_not_grow_with_the_number_of_pools() {
    let small = requests_to_read(20, 10).await;
    let large = requests_to_read(20, 250).await;
    assert_eq!(small.len(), 40);
    for (key, n) in &large {
        // Horizon: login + the version + one page of desktop pools + one page of farms + one
        // page each of machines, RDS servers and sessions. vCenter: REST and SOAP
        // login, service content, a view, one property read, the ownership tags, the library.
        assert!(*n <= 12, "{key:?} took {n} requests");
        assert_eq!(Some(n), small.get(key), "{key:?}: 250 pools cost more requests than 10");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_copies_pools_and_drift() {
    let lab = quickstart_lab().await;
    // A pool Horizon has that the repository does not bind.
    {
        let shared = lab.state();
        let mut state = shared.lock();
        let eu = state.sites.get_mut("eu").expect("eu");
        let (vm, snap) = {
            let p = eu.horizon.pools.values().next().expect("a pool");
            (p.parent_vm_id.clone(), p.base_snapshot_id.clone())
        };
        eu.horizon.add_pool(
            golden::lab::horizon::PoolKind::DesktopPool,
            "Kiosk-IC",
            "datacenter-2",
            &vm,
            &snap,
        );
    }
    let dir = repo_root().join("examples/quickstart");
    let out = golden_with(&lab, &dir, &["status"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Before golden's first apply every bound pool runs an image golden does not own: behind,
    // not drifted.
    assert!(
        out.stdout
            .ends_with("9 pools: 0 in sync, 0 pushing, 0 scheduled, 8 behind, 0 drifted, 1 not managed\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("eu    Kiosk-IC       (not managed)"), "{}", out.stdout);
    let json = golden_with(&lab, &dir, &["status", "--format", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["versions"][1]["markers"], serde_json::json!(["prod"]));
    let pools = v["pools"].as_array().expect("pools");
    assert!(pools.iter().all(|p| p["pool"].is_null() || (p["state"] == "behind" && p["drift"] == false)));
    assert!(pools.iter().any(|p| p["pool"].is_null() && p["state"] == "unmanaged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_status_end_their_sessions() {
    let lab = quickstart_lab().await;
    let dir = repo_root().join("examples/quickstart");
    let open = |lab: &Lab| -> Vec<String> {
        let shared = lab.state();
        let state = shared.lock();
        let mut open = Vec::new();
        for (name, vcenter) in &state.vcenters {
            open.extend(vcenter.sim.sessions.iter().map(|_| format!("{name}: a vCenter session")));
        }
        for (name, site) in &state.sites {
            open.extend(site.horizon.sessions.keys().map(|_| format!("{name}: a Horizon session")));
        }
        open
    };
    for args in [&["plan"][..], &["status"][..]] {
        let out = golden_with(&lab, &dir, args).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(lab.requests("hq", Product::Vcenter) > 0, "{args:?} read the lab");
        assert_eq!(open(&lab), Vec::<String>::new(), "golden {args:?} left sessions open");
    }
}

/// A pod on Horizon 2012 (8.1) is planned while it has no farms (us), and is a clear error
/// naming its version and the minimum when it has one (eu): the farm listing that shows a
/// farm's image came with 2103.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2012_pod_is_planned_without_farms_and_named_with_them() {
    let lab = quickstart_lab().await;
    {
        let shared = lab.state();
        let mut state = shared.lock();
        for site in ["us", "eu"] {
            state.sites.get_mut(site).expect("site").horizon.version = "8.1.0".into();
        }
    }
    let dir = repo_root().join("examples/quickstart");
    let us = golden_with(&lab, &dir, &["plan", "--site", "us", "--detailed-exitcode"]).await;
    assert_eq!(us.code, 2, "a plan with changes: {}", us.stderr);
    assert!(us.stdout.contains("push      desktop pool Office-IC (us-office)"), "{}", us.stdout);

    let eu = golden_with(&lab, &dir, &["plan", "--site", "eu"]).await;
    assert_eq!(eu.code, 1, "{}", eu.stdout);
    assert!(
        eu.stderr.contains("site `eu`")
            && eu.stderr.contains("8.1 (2012)")
            && eu.stderr.contains("8.2 (2103)"),
        "{}",
        eu.stderr
    );
}
