//! An apply killed mid-way (the process, not a step) and then re-run converges, with no
//! duplicate library item, VM or push, counted in the lab.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use golden::lab::{Lab, Timings};

use super::common::{golden_with, pushes_sent, quickstart_with_lab};

/// `golden ARGS` started in `dir` with the lab's environment `env`, and its stderr line by
/// line, for a test to stop it at a moment of its choosing.
fn start(
    env: Vec<(String, String)>,
    dir: &Path,
    args: &[&str],
) -> (Child, impl Iterator<Item = String> + use<>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("golden"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("golden starts");
    let stderr = child.stderr.take().expect("piped");
    (child, BufReader::new(stderr).lines().map(|l| l.expect("a line")))
}

/// Breaks the locks a killed run left at every site, as the error tells an operator to.
async fn unlock_all(lab: &Lab, dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    for site in ["eu", "hq", "us"] {
        let unlocked = golden_with(lab, dir, &["unlock", site]).await;
        assert_eq!(unlocked.code, 0, "{}", unlocked.stderr);
        said.push(unlocked.stdout);
    }
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_apply_converges_on_the_next_run_without_duplicates() {
    // Slow enough that the kill lands in the middle of the run.
    let timings =
        Timings { library_sync_ms: 300, push_publish_ms: 300, push_apply_ms: 300, ..Timings::default() };
    let (repo, _, lab) = quickstart_with_lab(timings).await;
    let (env, dir) = (lab.env(), repo.path().to_owned());

    // First run: kill it once a few steps are done.
    let killed_after = {
        let (env, dir) = (env.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let (mut child, lines) = start(env, &dir, &["apply", "--auto-approve"]);
            let mut done = 0;
            for line in lines {
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
    for (site, said) in ["eu", "hq", "us"].iter().zip(unlock_all(&lab, &dir).await) {
        assert!(said.starts_with(&format!("removed the lock of site `{site}` held by ")), "{said}");
    }

    // Second run: to the end.
    let report = dir.join("apply-report.jsonl");
    let report_arg = report.display().to_string();
    let second = golden_with(&lab, &dir, &["apply", "--auto-approve", "--report", &report_arg]).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("0 failed, 0 skipped"), "{}", second.stdout);
    // The journal: one JSON object per event, with a time, and no credential.
    let journal = std::fs::read_to_string(&report).expect("--report wrote the journal");
    let events: Vec<serde_json::Value> =
        journal.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(events.iter().any(|e| e["event"] == "finished"), "{journal}");
    assert!(events.iter().all(|e| e["time_ms"].is_i64()));
    assert!(!journal.contains(golden::lab::LAB_PASSWORD));
    let last = golden_with(&lab, &dir, &["plan", "--detailed-exitcode"]).await;
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
    assert_eq!(pushes_sent(&lab), 8, "one push per pool and farm across both runs");
}

/// An apply killed right after it sent a push leaves Horizon publishing: the next apply
/// follows that push to its end (it does not send it again), starts no later wave before it
/// is done, and exits only once every pool runs its image, so the plan right after is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_sent_by_a_killed_apply_is_followed_to_the_end_by_the_next() {
    let timings = Timings { push_publish_ms: 1200, push_apply_ms: 300, ..Timings::instant() };
    let (repo, desired, lab) = quickstart_with_lab(timings).await;
    let (env, dir) = (lab.env(), repo.path().to_owned());

    // First run: killed as soon as Horizon has accepted a push.
    let pushed = {
        let (env, dir) = (env.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let (mut child, lines) = start(env, &dir, &["apply", "--auto-approve"]);
            let mut pushed = None;
            for line in lines {
                if line.contains(": pushed ") {
                    pushed = line.split_whitespace().next().map(|s| s.trim_end_matches(':').to_owned());
                    break;
                }
            }
            child.kill().expect("kill the apply");
            child.wait().expect("reaped");
            pushed
        })
        .await
        .expect("first run")
    };
    let pushed = pushed.expect("the first run sent a push before it was killed");
    // Its site locks stay behind: broken on purpose, as the error tells an operator to.
    unlock_all(&lab, &dir).await;

    // The plan says the push is followed, not sent again.
    let plan = golden_with(&lab, &dir, &["plan", "--format", "json"]).await;
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("a JSON plan");
    let steps = plan["steps"].as_array().expect("steps");
    let followed = steps.iter().find(|s| s["id"] == pushed.as_str()).expect("the push under way is a step");
    assert!(followed["reason"].as_str().is_some_and(|r| r.contains("already moving")), "{followed}");
    let wave = followed["wave"].as_u64().expect("a wave");
    let later: Vec<&str> = steps
        .iter()
        .filter(|s| s["kind"] == "push" && s["wave"].as_u64().is_some_and(|w| w > wave))
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(!later.is_empty(), "later waves to hold back");

    // Second run: to the end.
    let report = dir.join("apply-report.jsonl");
    let report_arg = report.display().to_string();
    let second = golden_with(&lab, &dir, &["apply", "--auto-approve", "--report", &report_arg]).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    // Every pool runs its image the moment apply returns: nothing is still being pushed.
    {
        let shared = lab.state();
        let state = shared.lock();
        for (site, pod) in &state.sites {
            for pool in pod.horizon.pools.values() {
                assert!(pool.push.is_none(), "{site}: {} is still being pushed after apply", pool.name);
            }
        }
    }
    let last = golden_with(&lab, &dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(last.code, 0, "converged: {}", last.stdout);

    // The followed push ended before any push of a later wave started.
    let journal = std::fs::read_to_string(&report).expect("--report wrote the journal");
    let events: Vec<serde_json::Value> =
        journal.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let at = |event: &str, step: &str| {
        events.iter().find(|e| e["event"] == event && e["step"] == step).and_then(|e| e["time_ms"].as_i64())
    };
    let followed_end = at("finished", &pushed).expect("the followed push finished in the second run");
    for step in later {
        let started = at("started", step).expect("a later push started");
        assert!(started >= followed_end, "{step} started before {pushed} was done");
    }
    // Sent once in all: each pool got one push.
    assert_eq!(pushes_sent(&lab) as usize, desired.pools.len(), "one push per pool");
}

/// Ctrl-C (SIGINT) stops an apply in order: no step starts after it, the running ones end,
/// the report's last event says the run was interrupted, sessions are logged out and site
/// locks released (the next apply runs at once, without `unlock`), and the exit code is 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_apply_in_order_and_the_next_apply_finishes() {
    let timings = Timings { push_publish_ms: 600, ..Timings::instant() };
    let (repo, _, lab) = quickstart_with_lab(timings).await;
    let (env, dir) = (lab.env(), repo.path().to_owned());
    let report = dir.join("interrupted.jsonl");

    let (code, stderr) = {
        let (env, dir, report) = (env.clone(), dir.clone(), report.display().to_string());
        tokio::task::spawn_blocking(move || {
            let (mut child, mut lines) = start(env, &dir, &["apply", "--auto-approve", "--report", &report]);
            let mut seen = Vec::new();
            // Interrupted once the first push is sent.
            for line in lines.by_ref() {
                seen.push(line.clone());
                if line.contains(": pushed ") {
                    break;
                }
            }
            let pid = child.id().to_string();
            let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT");
            assert!(sent.success(), "SIGINT sent");
            seen.extend(lines);
            let status = child.wait().expect("reaped");
            (status.code(), seen.join("\n"))
        })
        .await
        .expect("first run")
    };
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("INTERRUPTED: no new step starts"), "{stderr}");
    assert!(stderr.contains("apply interrupted:"), "{stderr}");
    let journal = std::fs::read_to_string(&report).expect("--report wrote the journal");
    let last: serde_json::Value =
        serde_json::from_str(journal.lines().last().expect("events")).expect("a JSON line");
    assert_eq!(
        (last["event"].as_str(), last["interrupted"].as_bool()),
        (Some("ended"), Some(true)),
        "{last}"
    );
    // No step started after the interrupt.
    let events: Vec<serde_json::Value> =
        journal.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let interrupted_at = events.iter().position(|e| e["event"] == "interrupted").expect("the interrupt");
    assert!(events[interrupted_at..].iter().all(|e| e["event"] != "started"), "{journal}");
    // Logged out: the lab holds no vCenter session of the run.
    {
        let shared = lab.state();
        let state = shared.lock();
        for (name, vcenter) in &state.vcenters {
            assert!(vcenter.sim.sessions.is_empty(), "{name}: a vCenter session left open");
        }
    }

    // The locks were released: the next apply runs at once and converges.
    let second = golden_with(&lab, &dir, &["apply", "--auto-approve"]).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    let last = golden_with(&lab, &dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(last.code, 0, "converged: {}", last.stdout);
}
