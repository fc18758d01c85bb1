//! The apply lock: two applies at once on the lab (one runs, the other is refused naming the
//! holder, nothing is done twice), expired locks taken over, `--lock-timeout`'s wait, and
//! `golden unlock`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use golden::connect::RetryPolicy;
use golden::desired::DesiredState;
use golden::gather::{SiteClients, connect_all};
use golden::ids::SiteName;
use golden::lab::{Lab, Timings};
use golden::lock::{self, Holder, LockError, LockOptions};

use super::common::{golden_with, pushes_sent, quickstart_with_lab, repo_root};

fn clients(desired: &DesiredState, lab: &Lab) -> BTreeMap<SiteName, SiteClients> {
    let env: BTreeMap<String, String> = lab.env().into_iter().collect();
    let lookup = |name: &str| env.get(name).cloned();
    let sites: BTreeSet<SiteName> = desired.sites.keys().cloned().collect();
    connect_all(desired, &sites, &repo_root(), &lookup, &RetryPolicy::none()).expect("clients")
}

fn other_run(expires_in: Duration) -> Holder {
    Holder { owner: "ci@runner-7".into(), run: "run-of-another-job".into(), expires_at: String::new() }
        .until(SystemTime::now() + expires_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_at_once_one_runs_and_the_other_names_the_holder() {
    // Slow enough that the first apply still holds its locks when the second asks for them.
    let timings =
        Timings { library_sync_ms: 200, push_publish_ms: 200, push_apply_ms: 200, ..Timings::default() };
    let (repo, _desired, lab) = quickstart_with_lab(timings).await;
    let args = ["apply", "--auto-approve"];
    let (first, second) =
        tokio::join!(golden_with(&lab, repo.path(), &args), golden_with(&lab, repo.path(), &args));
    let (ran, refused) = if first.code == 0 { (first, second) } else { (second, first) };
    assert_eq!(ran.code, 0, "one apply runs: {}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("0 failed, 0 skipped"), "{}", ran.stdout);
    assert_eq!(refused.code, 1, "the other is refused: {}\n{}", refused.stdout, refused.stderr);
    // Sites are locked in name order, so both asked for `eu` first.
    assert!(refused.stderr.contains("site `eu` is locked by "), "{}", refused.stderr);
    assert!(refused.stderr.contains("(run "), "names the run: {}", refused.stderr);
    assert!(refused.stderr.contains("golden unlock eu"), "says how to break it: {}", refused.stderr);
    assert!(refused.stdout.is_empty(), "the refused apply planned nothing: {}", refused.stdout);

    // The world is what the repository says, every push was sent once, and no lock is left.
    let plan = golden_with(&lab, repo.path(), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "converged: {}\n{}", plan.stdout, plan.stderr);
    assert_eq!(pushes_sent(&lab), 8, "one push per pool and farm");
    let state = lab.state();
    let state = state.lock();
    for (name, vc) in &state.vcenters {
        let locks: Vec<&str> = vc.sim.tagging.tags.values().map(|t| t.name.as_str()).collect();
        assert!(locks.iter().all(|t| t.contains('@')), "{name}: only ownership tags are left: {locks:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_refused_an_expired_one_taken_over_and_a_released_one_waited_for() {
    let (_repo, desired, lab) = quickstart_with_lab(Timings::instant()).await;
    let clients = clients(&desired, &lab);
    let eu = SiteName::new("eu");
    let vc = &clients[&eu].vcenter;
    let me = Holder::this_run(SystemTime::now(), lock::TTL);
    let quick =
        LockOptions { wait: Duration::ZERO, poll: Duration::from_millis(50), ..LockOptions::default() };

    // Held by another run: refused at once, naming it, and no other site stays locked.
    let theirs = lock::acquire_one(vc, &eu, &other_run(Duration::from_secs(600))).await.expect("locked");
    let err = lock::acquire_all(&clients, &me, &quick).await.expect_err("eu is held");
    match &err {
        LockError::Held { site, holder, waited: None } => {
            assert_eq!(site, &eu);
            assert_eq!(holder.run, "run-of-another-job");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().starts_with("site `eu` is locked by ci@runner-7 (run run-of-another-job) until ")
    );
    for site in ["hq", "us"] {
        let held = lock::holder(&clients[&SiteName::new(site)].vcenter, &SiteName::new(site)).await;
        assert_eq!(held.expect("read"), None, "{site} was released when eu was refused");
    }

    // Released while this run waits: taken.
    let waiting = LockOptions { wait: Duration::from_secs(10), ..quick.clone() };
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        vc.delete_tag(&theirs).await.expect("the other run ends");
    };
    let (locks, ()) = tokio::join!(lock::acquire_all(&clients, &me, &waiting), release);
    let mut locks = locks.expect("taken once released");
    assert_eq!(locks.sites().count(), 3);
    assert_eq!(lock::holder(vc, &eu).await.expect("read"), Some(Ok(me.clone())));
    locks.release().await.expect("released");
    assert_eq!(lock::holder(vc, &eu).await.expect("read"), None);

    // Expired: taken over.
    lock::acquire_one(vc, &eu, &other_run(Duration::ZERO)).await.expect("an old lock");
    let mut locks = lock::acquire_all(&clients, &me, &quick).await.expect("the expired lock is taken over");
    assert_eq!(lock::holder(vc, &eu).await.expect("read"), Some(Ok(me.clone())));
    locks.release().await.expect("released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_breaks_a_lock_and_names_its_holder_then_apply_runs() {
    let (repo, desired, lab) = quickstart_with_lab(Timings::instant()).await;
    let clients = clients(&desired, &lab);
    let eu = SiteName::new("eu");
    lock::acquire_one(&clients[&eu].vcenter, &eu, &other_run(Duration::from_secs(600)))
        .await
        .expect("locked");

    let refused = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("site `eu` is locked by ci@runner-7 (run run-of-another-job)"),
        "{}",
        refused.stderr
    );

    let unlocked = golden_with(&lab, repo.path(), &["unlock", "eu"]).await;
    assert_eq!(unlocked.code, 0, "{}", unlocked.stderr);
    assert!(
        unlocked
            .stdout
            .starts_with("removed the lock of site `eu` held by ci@runner-7 (run run-of-another-job) until "),
        "{}",
        unlocked.stdout
    );
    let again = golden_with(&lab, repo.path(), &["unlock", "eu"]).await;
    assert_eq!(again.stdout, "site `eu` is not locked; nothing removed\n");

    let applied = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_takes_no_lock() {
    let (repo, desired, lab) = quickstart_with_lab(Timings::instant()).await;
    let clients = clients(&desired, &lab);
    let eu = SiteName::new("eu");
    lock::acquire_one(&clients[&eu].vcenter, &eu, &other_run(Duration::from_secs(600)))
        .await
        .expect("locked");
    let plan = golden_with(&lab, repo.path(), &["plan"]).await;
    assert_eq!(plan.code, 0, "plan reads a locked site: {}", plan.stderr);
    assert!(plan.stdout.contains("push"), "{}", plan.stdout);
}
