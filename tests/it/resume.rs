//! An apply killed mid-way (the process, not a step) and then re-run converges, with no
//! duplicate library item, VM or push, counted in the lab.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use golden::desired::{Location, load};
use golden::lab::{Lab, LabOptions, Product, Timings};

use super::common::{TempRepo, copy_dir, golden, repo_root, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apply_converges_on_the_next_run_without_duplicates() {
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), repo.path());
    repo.commit("Import golden images");
    let desired = load(&Location::WorkTree { dir: repo.path().to_owned() }).expect("valid");
    // Slow enough that the kill lands in the middle of the run.
    let timings =
        Timings { library_sync_ms: 300, push_publish_ms: 300, push_apply_ms: 300, ..Timings::default() };
    let lab = Lab::start(
        golden::lab::seed::from_desired(&desired, timings),
        LabOptions { free_ports: true, ..LabOptions::default() },
    )
    .await
    .expect("lab");
    let env = lab.env();
    let dir = repo.path().to_owned();

    // First run: kill it once a few steps are done.
    let killed_after = {
        let (env, dir) = (env.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(assert_cmd::cargo::cargo_bin("golden"))
                .args(["apply", "--auto-approve"])
                .current_dir(&dir)
                .env_clear()
                .envs(env)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("apply starts");
            let stderr = child.stderr.take().expect("piped");
            let mut done = 0;
            for line in BufReader::new(stderr).lines() {
                let line = line.expect("a line");
                if line.starts_with("done ") {
                    done += 1;
                    if done == 8 {
                        break;
                    }
                }
            }
            child.kill().expect("kill the apply");
            child.wait().expect("reaped");
            done
        })
        .await
        .expect("first run")
    };
    assert_eq!(killed_after, 8, "the first run was killed mid-way");

    // The killed run left its site locks behind (they would expire in 10 minutes): break them
    // on purpose, as the error tells an operator to.
    for site in ["eu", "hq", "us"] {
        let (env, dir) = (env.clone(), dir.clone());
        let unlocked =
            tokio::task::spawn_blocking(move || run(golden(&dir).envs(env).args(["unlock", site])))
                .await
                .expect("run");
        assert_eq!(unlocked.code, 0, "{}", unlocked.stderr);
        assert!(
            unlocked.stdout.starts_with(&format!("removed the lock of site `{site}` held by ")),
            "{}",
            unlocked.stdout
        );
    }

    // Second run: to the end.
    let report = dir.join("apply-report.jsonl");
    let second = {
        let (env, dir, report) = (env.clone(), dir.clone(), report.display().to_string());
        tokio::task::spawn_blocking(move || {
            run(golden(&dir).envs(env).args(["apply", "--auto-approve", "--report", &report]))
        })
        .await
        .expect("run")
    };
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("0 failed, 0 skipped"), "{}", second.stdout);
    // The journal: one JSON object per event, with a time, and no credential.
    let journal = std::fs::read_to_string(&report).expect("--report wrote the journal");
    let events: Vec<serde_json::Value> =
        journal.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(events.iter().any(|e| e["event"] == "finished"), "{journal}");
    assert!(events.iter().all(|e| e["time_ms"].is_i64()));
    assert!(!journal.contains(golden::lab::LAB_PASSWORD));
    let last = {
        let (env, dir) = (env.clone(), dir.clone());
        tokio::task::spawn_blocking(move || run(golden(&dir).envs(env).args(["plan", "--detailed-exitcode"])))
            .await
            .expect("run")
    };
    assert_eq!(
        last.code, 0,
        "converged: {}\n--- second run:\n{}\n{}",
        last.stdout, second.stdout, second.stderr
    );

    // No duplicates: one library per vCenter, one item per version and library, one base VM
    // per version and site (a folder each), one push per pool.
    let shared = lab.state();
    let state = shared.lock();
    for (name, vcenter) in &state.vcenters {
        let libraries = vcenter.sim.content.libraries.len();
        assert_eq!(libraries, 1, "{name} has {libraries} libraries");
        let mut items: BTreeMap<&str, usize> = BTreeMap::new();
        for item in vcenter.sim.content.items.values() {
            *items.entry(item.name.as_str()).or_default() += 1;
        }
        assert!(items.values().all(|n| *n == 1), "{name}: duplicate items {items:?}");
        let mut vms: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for vm in vcenter.sim.vms.values() {
            *vms.entry((vm.folder.as_str(), vm.name.as_str())).or_default() += 1;
        }
        assert!(vms.values().all(|n| *n == 1), "{name}: duplicate VMs {vms:?}");
    }
    drop(state);
    let pushes: u64 = lab
        .endpoints()
        .iter()
        .filter(|e| e.product == Product::Horizon)
        .flat_map(|e| lab.requests_by_route(&e.name, e.product))
        .filter(|(route, _)| {
            route.ends_with("/action/schedule-push-image") || route.ends_with("/action/schedule-maintenance")
        })
        .map(|(_, n)| n)
        .sum();
    assert_eq!(pushes, 8, "one push per pool and farm across both runs");
}
