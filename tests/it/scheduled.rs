//! Scheduled pushes on the lab: a push with a start time ahead ends once Horizon has
//! published the image (the pool keeps its image until then), the later waves wait for the
//! next apply, and that apply, once the lab's clock passed the start time (`fast-forward`,
//! never a sleep), finishes the rollout.

use golden::plan::{Action, HeldCause};
use serde_json::json;

use super::rollout::{Harness, now_ms, pushes_but, step_mut};

const HOUR: i64 = 3_600_000;

/// The start time as the step reports it.
fn utc(ms: i64) -> String {
    golden::plan::render::time(ms)
}

/// Every pool and farm of the quickstart that is not in `except`, by site and Horizon name.
fn later_pools(except: &[&str]) -> Vec<(&'static str, &'static str)> {
    [
        ("eu", "Finance-IC"),
        ("hq", "IT-Pilot-IC"),
        ("eu", "Office-IC"),
        ("hq", "Office-IC"),
        ("hq", "Apps-Farm"),
        ("us", "Office-IC"),
        ("eu", "SAP-Farm"),
        ("us", "CallCenter-IC"),
    ]
    .into_iter()
    .filter(|(_, name)| !except.contains(name))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_push_waits_for_its_start_time_and_holds_back_the_later_waves() {
    let h = Harness::start(|_| {}).await;
    let legacy: Vec<_> = later_pools(&[]).into_iter().map(|(site, name)| h.images(site, name)).collect();
    let mut plan = h.plan().await;
    let start = now_ms() + HOUR;
    if let Action::Push { start_time, .. } = step_mut(&mut plan, "push/hq/hq-it") {
        *start_time = Some(start);
    }
    let summary = h.execute(&plan).await;
    assert!(summary.succeeded(), "a scheduled push is no failure: {summary:?}");
    let scheduled: Vec<(&str, &str)> =
        summary.scheduled.iter().map(|(s, m)| (s.as_str(), m.as_str())).collect();
    assert_eq!(scheduled.len(), 1, "{summary:?}");
    assert_eq!(scheduled[0].0, "push/hq/hq-it");
    assert!(
        scheduled[0].1.contains(&format!("horizon replaces the machines at {}", utc(start))),
        "{scheduled:?}"
    );
    assert!(
        summary.done.iter().any(|s| s.as_str() == "push/eu/eu-finance"),
        "wave 1 elsewhere goes: {summary:?}"
    );
    let reason =
        format!("waits for wave 1 (push/hq/hq-it), scheduled for {}; run apply again after it", utc(start));
    let waiting: Vec<_> = summary.waiting.iter().map(|(s, _)| s.clone()).collect();
    assert_eq!(
        waiting.iter().cloned().collect::<std::collections::BTreeSet<_>>(),
        pushes_but(&plan, &["push/hq/hq-it", "push/eu/eu-finance"]),
        "every push of waves 2 and 3 waits"
    );
    assert!(summary.waiting.iter().all(|(_, r)| *r == reason), "{:?}", summary.waiting);

    // Horizon published the image and holds it: the pool and its machines keep the old one;
    // no later-wave pool was touched.
    let pool = h.pool_id("hq", "IT-Pilot-IC");
    let live = h.live().await;
    let it = &live.sites[&golden::ids::SiteName::new("hq")].pools["IT-Pilot-IC"];
    let pending = it.pending.as_ref().expect("a pending image");
    assert_eq!((pending.state, pending.start_time), (golden::live::PendingState::Ready, Some(start)));
    assert_eq!(h.images("hq", "IT-Pilot-IC"), legacy[1], "the old image until the start time");
    for ((site, name), before) in later_pools(&["Finance-IC", "IT-Pilot-IC"]).into_iter().zip(&legacy[2..]) {
        assert_eq!(&h.images(site, name), before, "{site} {name} was pushed");
        let id = h.pool_id(site, name);
        assert!(h.sim(site, |s| s.pools[&id].push.is_none()), "{site} {name} has a push");
    }

    // Planning again before the start time leaves the push to Horizon and holds the later
    // waves; and should a plan still carry the push (one saved before), apply follows it
    // without sending it again and reports it scheduled still.
    let again = h.plan().await;
    assert!(!again.steps.iter().any(|s| matches!(s.action, Action::Push { .. })), "{:?}", again.steps);
    let held: Vec<(&str, HeldCause, Option<i64>)> =
        again.held.iter().map(|held| (held.pool.as_str(), held.cause, held.until)).collect();
    assert!(held.contains(&("hq-it", HeldCause::Scheduled, Some(start))), "{held:?}");
    assert_eq!(held.len(), 7, "hq-it and every later wave: {held:?}");
    let summary = h.execute(&plan).await;
    assert!(summary.succeeded(), "{summary:?}");
    let scheduled: Vec<&str> = summary.scheduled.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(scheduled, ["push/hq/hq-it"]);
    assert!(!summary.waiting.is_empty(), "{summary:?}");
    assert_eq!(h.route("hq", "POST /rest/inventory/v1/desktop-pools/{id}/action/schedule-push-image"), 1);

    // The lab's clock passes the start time: Horizon recreates the machines on the new image
    // (IT-Pilot-IC forces logoff, so all of them).
    h.control("hq", "/__lab/horizon/fast-forward", json!({"ms": HOUR + 1_000})).await;
    let live = h.live().await;
    let it = &live.sites[&golden::ids::SiteName::new("hq")].pools["IT-Pilot-IC"];
    let current = it.current.clone().expect("an image");
    let (now, machines) = h.images("hq", "IT-Pilot-IC");
    assert_eq!((current.vm.as_str(), current.snapshot.as_str()), (now.0.as_str(), now.1.as_str()));
    assert_ne!(now, legacy[1].0, "the new image is current");
    assert!(!machines.is_empty() && machines.iter().all(|m| *m == now), "{machines:?}");
    assert!(h.sim("hq", |s| s.pools[&pool].push.is_none()));

    // The next apply finishes the rollout.
    let last = h.plan().await;
    assert!(!last.steps.iter().any(|s| s.id.as_str() == "push/hq/hq-it"), "hq-it is done");
    let summary = h.execute(&last).await;
    assert!(summary.succeeded() && summary.scheduled.is_empty() && summary.waiting.is_empty(), "{summary:?}");
    assert!(!h.plan().await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_maintenance_is_scheduled_too() {
    let h = Harness::start(|_| {}).await;
    let mut plan = h.plan().await;
    let start = now_ms() + 2 * HOUR;
    if let Action::Push { start_time, .. } = step_mut(&mut plan, "push/hq/hq-apps") {
        *start_time = Some(start);
    }
    let (before, _) = h.images("hq", "Apps-Farm");
    let summary = h.execute(&plan).await;
    assert!(summary.succeeded(), "{summary:?}");
    let scheduled: Vec<&str> = summary.scheduled.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(scheduled, ["push/hq/hq-apps"]);
    // Wave 3 waits; the rest of wave 2 went.
    let mut waiting: Vec<&str> = summary.waiting.iter().map(|(s, _)| s.as_str()).collect();
    waiting.sort_unstable();
    assert_eq!(waiting, ["push/eu/eu-sap", "push/us/us-callcenter"]);
    assert!(summary.done.iter().any(|s| s.as_str() == "push/us/us-office"), "{summary:?}");
    // The maintenance went out with its start time (`next_scheduled_time`).
    let farm = h.pool_id("hq", "Apps-Farm");
    assert_eq!(h.sim("hq", |s| s.pools[&farm].push.as_ref().and_then(|p| p.start_time)), Some(start));
    assert_eq!(h.images("hq", "Apps-Farm").0, before);

    h.control("hq", "/__lab/horizon/fast-forward", json!({"ms": 2 * HOUR + 1_000})).await;
    h.live().await;
    let (after, servers) = h.images("hq", "Apps-Farm");
    assert_ne!(after, before);
    // The farm waits for logoff: a server with sessions keeps its image until they end.
    let (busy, idle): (Vec<_>, Vec<_>) = h.sim("hq", |s| {
        s.pools[&farm]
            .machines
            .iter()
            .map(|m| (!m.sessions.is_empty(), m.pending.clone()))
            .partition(|(b, _)| *b)
    });
    assert_eq!(servers.iter().filter(|m| **m == after).count(), idle.len(), "{servers:?}");
    assert!(busy.iter().all(|(_, pending)| pending.as_ref() == Some(&after)), "{busy:?}");
    let summary = h.execute(&h.plan().await).await;
    assert!(summary.succeeded() && summary.waiting.is_empty(), "{summary:?}");
    assert!(!h.plan().await.has_changes());
}
