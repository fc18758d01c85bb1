//! A push whose answer never came, on the lab: the connection to Horizon drops after the
//! server took the request (the push landed) or before (it did not). golden never sends a
//! write twice; it reads the pool again and follows the push when Horizon has it, and fails
//! the step otherwise, leaving the rest to the next apply. Counted in the lab: one push
//! accepted per pool either way.

use golden::lab::Product;
use golden::lab::server::{Cut, FaultRule};

use super::rollout::{Harness, notes_of};

/// The route that pushes to a desktop pool or farm: schedule-push-image, or a farm's
/// maintenance.
fn push_route(h: &Harness, site: &str, pool: &str) -> String {
    let id = h.pool_id(site, pool);
    match pool.ends_with("-Farm") {
        true => format!("/rest/inventory/v1/farms/{id}/action/schedule-maintenance"),
        false => format!("/rest/inventory/v1/desktop-pools/{id}/action/schedule-push-image"),
    }
}

/// Drops the connection of the next push to `pool` at `site`, before or after Horizon acts.
fn cut_next_push(h: &Harness, site: &str, pool: &str, cut: Cut) {
    let rule = FaultRule {
        method: "POST".into(),
        path_prefix: push_route(h, site, pool),
        count: 1,
        cut: Some(cut),
        ..FaultRule::default()
    };
    h.lab.add_fault(site, Product::Horizon, rule);
}

/// Pushes to `pool` at `site` that the lab's Horizon accepted (whatever became of the answer).
fn accepted_pushes(h: &Harness, site: &str, pool: &str) -> u64 {
    let route = format!("POST {}", push_route(h, site, pool));
    h.lab.accepted_by_route(site, Product::Horizon).get(&route).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_answer_was_lost_is_followed_when_horizon_has_it() {
    let h = Harness::start(|_| {}).await;
    // A desktop pool's push image and a farm's maintenance.
    cut_next_push(&h, "eu", "Office-IC", Cut::After);
    cut_next_push(&h, "eu", "SAP-Farm", Cut::After);
    let plan = h.plan().await;
    let (summary, events) = h.execute_logged(&plan).await;
    assert!(summary.succeeded(), "failed: {:?}, skipped: {:?}", summary.failed, summary.skipped);
    for (step, pool) in [("push/eu/eu-office", "Office-IC"), ("push/eu/eu-sap", "SAP-Farm")] {
        let notes = notes_of(&events, step);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("no answer came to the push of") && n.contains("but horizon has it")),
            "{step}: {notes:#?}"
        );
        assert_eq!(accepted_pushes(&h, "eu", pool), 1, "{step}: pushed once, not sent again");
    }
    let after = h.plan().await;
    assert!(after.steps.is_empty(), "the apply converged: {:#?}", after.steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_never_reached_horizon_fails_its_step_and_the_next_apply_sends_it() {
    let h = Harness::start(|_| {}).await;
    cut_next_push(&h, "eu", "Office-IC", Cut::Before);
    let plan = h.plan().await;
    let summary = h.execute(&plan).await;
    let failed: Vec<&str> = summary.failed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(failed, ["push/eu/eu-office"], "{:?}", summary.failed);
    assert!(summary.failed[0].1.contains("no answer from horizon"), "{}", summary.failed[0].1);
    assert_eq!(accepted_pushes(&h, "eu", "Office-IC"), 0, "Horizon never took it");

    let next = h.plan().await;
    let summary = h.execute(&next).await;
    assert!(summary.succeeded(), "failed: {:?}, skipped: {:?}", summary.failed, summary.skipped);
    assert_eq!(accepted_pushes(&h, "eu", "Office-IC"), 1);
    assert!(h.plan().await.steps.is_empty(), "the second apply converged");
}
