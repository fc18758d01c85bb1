//! Canaries on the lab: a push with `canary = N` goes to N machines of the pool first
//! (Horizon's selective push, 2206 and later) and to the rest only once they run the new
//! image; a canary that fails stops the pool (its held image cancelled, the pool on its old
//! image) and the later waves.

use golden::apply::StepError;
use golden::apply::steps::run_step;
use golden::plan::{Action, Plan};
use serde_json::json;

use super::rollout::{Harness, notes_of, pushes_but, step_mut};

const POOL: &str = "push/eu/eu-finance";
const V2_PUSH: &str = "POST /rest/inventory/v2/desktop-pools/{id}/action/schedule-push-image";
const V1_PUSH: &str = "POST /rest/inventory/v1/desktop-pools/{id}/action/schedule-push-image";
const PROMOTE: &str = "POST /rest/inventory/v1/desktop-pools/{id}/action/promote-pending-image";
const CANCEL: &str = "POST /rest/inventory/v1/desktop-pools/{id}/action/cancel-scheduled-push-image";

/// The first-deploy plan of the quickstart, eu-finance (wave 1) with `canary = 2`.
async fn canary_plan(h: &Harness) -> Plan {
    let mut plan = h.plan().await;
    if let Action::Push { canary, .. } = step_mut(&mut plan, POOL) {
        *canary = Some(2);
    }
    plan
}

/// The machines golden should pick as canaries of Finance-IC: without a session first, by name.
fn expected_canaries(h: &Harness) -> Vec<String> {
    let id = h.pool_id("eu", "Finance-IC");
    let mut machines: Vec<(bool, String)> = h.sim("eu", |s| {
        s.pools[&id].machines.iter().map(|m| (!m.sessions.is_empty(), m.name.clone())).collect()
    });
    machines.sort();
    machines.into_iter().take(2).map(|(_, name)| name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_succeeds_goes_on_to_the_whole_pool_and_the_later_waves() {
    let h = Harness::start(|_| {}).await;
    let canaries = expected_canaries(&h);
    let (old, _) = h.images("eu", "Finance-IC");
    let plan = canary_plan(&h).await;
    let (summary, events) = h.execute_logged(&plan).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert!(summary.done.iter().any(|s| s.as_str() == POOL));

    // The canaries first, then the rest: one selective push, one promotion, no plain push
    // of Finance-IC (eu's one plain push is Office-IC's, in wave 2).
    let notes = notes_of(&events, POOL);
    let first = notes.iter().position(|n| n.contains("canary machines of desktop pool `Finance-IC` first"));
    let promoted =
        notes.iter().position(|n| n.contains("promoted it to the rest of desktop pool `Finance-IC`"));
    assert!(first.is_some() && promoted.is_some() && first < promoted, "{notes:?}");
    let named = format!("(`{}`, `{}`)", canaries[0], canaries[1]);
    assert!(
        notes.iter().any(|n| n.contains(&named)),
        "machines without a session, by name: {named} in {notes:?}"
    );
    assert_eq!((h.route("eu", V2_PUSH), h.route("eu", PROMOTE), h.route("eu", V1_PUSH)), (1, 1, 1));

    // The whole pool runs the new image; machines whose users are still on (the pool waits
    // for logoff) have it as their pending image.
    let id = h.pool_id("eu", "Finance-IC");
    let (now, _) = h.images("eu", "Finance-IC");
    assert_ne!(now, old);
    let machines = h.sim("eu", |s| s.pools[&id].machines.clone());
    for m in &machines {
        let on_new = (m.base_vm_id.clone(), m.base_snapshot_id.clone()) == now;
        if m.sessions.is_empty() {
            assert!(on_new, "{} is not on the new image", m.name);
        } else {
            assert_eq!(m.pending.as_ref(), Some(&now), "{} does not wait for its user", m.name);
        }
    }
    assert!(machines.iter().filter(|m| canaries.contains(&m.name)).all(|m| m.error.is_none()));
    // The later waves went, and nothing is left to do.
    let later = pushes_but(&plan, &[POOL, "push/hq/hq-it"]);
    assert!(later.iter().all(|s| summary.done.contains(s)), "{summary:?}");
    assert!(!h.plan().await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_that_fails_stops_the_pool_and_the_later_waves() {
    let h = Harness::start(|_| {}).await;
    let canaries = expected_canaries(&h);
    let before = h.images("eu", "Finance-IC");
    let id = h.pool_id("eu", "Finance-IC");
    let error = "Customization failed: the Horizon agent did not start";
    h.control("eu", &format!("/__lab/horizon/pools/{id}/fail-next-canary"), json!({"error": error})).await;
    let plan = canary_plan(&h).await;
    let summary = h.execute(&plan).await;
    assert!(!summary.succeeded());
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    let (step, text) = &summary.failed[0];
    assert_eq!(step.as_str(), POOL);
    for name in &canaries {
        assert!(text.contains(&format!("`{name}` is provisioning error ({error})")), "{name}: {text}");
    }
    assert!(text.contains("the held image was cancelled, and desktop pool `Finance-IC` keeps"), "{text}");
    // Every push of the later waves is skipped because of it; wave 1 elsewhere went.
    let skipped: std::collections::BTreeSet<_> = summary.skipped.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(skipped, pushes_but(&plan, &[POOL, "push/hq/hq-it"]));
    assert!(summary.done.iter().any(|s| s.as_str() == "push/hq/hq-it"));

    // The pool and its machines keep the old image, and its push is gone.
    h.live().await;
    assert_eq!(h.images("eu", "Finance-IC"), before);
    assert!(h.sim("eu", |s| s.pools[&id].push.is_none()
        && s.pools[&id].machines.iter().all(|m| m.error.is_none())));
    assert_eq!((h.route("eu", V2_PUSH), h.route("eu", CANCEL), h.route("eu", PROMOTE)), (1, 1, 0));
    // No later-wave pool was pushed at any site.
    assert_eq!(h.route("eu", V1_PUSH) + h.route("us", V1_PUSH), 0);
    assert_eq!(h.route("hq", V1_PUSH), 1, "only hq-it, in wave 1");
    let maintenance = "POST /rest/inventory/v1/farms/{id}/action/schedule-maintenance";
    assert_eq!(h.route("eu", maintenance) + h.route("hq", maintenance), 0);

    // Once the cause is fixed (the lab fails only the next canary), apply again finishes.
    let summary = h.execute(&canary_plan(&h).await).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert!(!h.plan().await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_on_a_server_before_2206_fails_before_anything_is_sent() {
    let h = Harness::start(|state| {
        state.sites.get_mut("eu").expect("eu").horizon.version = "8.5.0".into();
    })
    .await;
    let before = h.images("eu", "Finance-IC");
    let plan = canary_plan(&h).await;
    let summary = h.execute(&plan).await;
    let failed: Vec<(&str, &str)> = summary.failed.iter().map(|(s, e)| (s.as_str(), e.as_str())).collect();
    assert_eq!(failed.len(), 1, "{summary:?}");
    let (step, text) = failed[0];
    assert_eq!(step, POOL);
    assert!(text.contains("horizon 8.5 (2203)") && text.contains("remove canary or upgrade"), "{text}");
    assert_eq!(
        h.route("eu", V2_PUSH) + h.route("eu", V1_PUSH) + h.route("eu", "GET /rest/inventory/v2/machines"),
        0
    );
    assert_eq!(h.images("eu", "Finance-IC"), before);
    assert_eq!(summary.skipped.len(), pushes_but(&plan, &[POOL, "push/hq/hq-it"]).len(), "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_with_a_canary_is_refused() {
    let h = Harness::start(|_| {}).await;
    let mut plan = h.plan().await;
    if let Action::Push { canary, .. } = step_mut(&mut plan, "push/eu/eu-sap") {
        *canary = Some(1);
    }
    let step = plan.steps.iter().find(|s| s.id.as_str() == "push/eu/eu-sap").expect("the farm's push");
    let progress = golden::apply::executor::Events::new(Vec::new());
    let err = run_step(&h.ctx, step, &progress).await.expect_err("refused");
    let StepError::Failed(text) = &err else { panic!("not a step failure: {err:?}") };
    assert!(
        text.contains("farm `SAP-Farm` has `canary = 1`") && text.contains("remove canary from the farm"),
        "{text}"
    );
    assert_eq!(h.route("eu", "POST /rest/inventory/v1/farms/{id}/action/schedule-maintenance"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_with_a_start_time_are_promoted_by_the_apply_after_it() {
    let h = Harness::start(|_| {}).await;
    let canaries = expected_canaries(&h);
    let before = h.images("eu", "Finance-IC");
    let mut plan = canary_plan(&h).await;
    let start = super::rollout::now_ms() + 3_600_000;
    if let Action::Push { start_time, .. } = step_mut(&mut plan, POOL) {
        *start_time = Some(start);
    }
    let summary = h.execute(&plan).await;
    assert!(summary.succeeded(), "{summary:?}");
    let scheduled: Vec<(&str, &str)> =
        summary.scheduled.iter().map(|(s, m)| (s.as_str(), m.as_str())).collect();
    assert_eq!(scheduled.len(), 1, "{summary:?}");
    assert_eq!(scheduled[0].0, POOL);
    assert!(scheduled[0].1.contains("held for its canary machines"), "{scheduled:?}");
    assert!(!summary.waiting.is_empty(), "the later waves wait: {summary:?}");
    // Held, not applied: every machine keeps the old image until the start time.
    h.live().await;
    assert_eq!(h.images("eu", "Finance-IC"), before);
    assert_eq!(h.route("eu", PROMOTE), 0);

    // Past the start time Horizon recreates the canaries; the next apply promotes the image
    // and finishes the rollout.
    h.control("eu", "/__lab/horizon/fast-forward", json!({"ms": 3_600_000 + 1_000})).await;
    h.live().await;
    let id = h.pool_id("eu", "Finance-IC");
    let on_new: Vec<String> = h.sim("eu", |s| {
        let pool = &s.pools[&id];
        let held = pool.push.as_ref().and_then(|p| p.snapshot_id.clone());
        pool.machines
            .iter()
            .filter(|m| Some(&m.base_snapshot_id) == held.as_ref())
            .map(|m| m.name.clone())
            .collect()
    });
    assert_eq!(on_new, canaries, "only the canaries run the held image");
    let summary = h.execute(&h.plan().await).await;
    assert!(summary.succeeded() && summary.scheduled.is_empty() && summary.waiting.is_empty(), "{summary:?}");
    assert_eq!((h.route("eu", V2_PUSH), h.route("eu", PROMOTE)), (1, 1));
    assert_ne!(h.images("eu", "Finance-IC").0, before.0);
    assert!(!h.plan().await.has_changes());
}
