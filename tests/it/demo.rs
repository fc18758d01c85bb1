//! `golden demo`, the README's main command, end to end.

use super::common::{golden, repo_root, run};

#[test]
fn the_demo_walks_the_whole_workflow_and_ends_with_no_changes() {
    let out = run(golden(&repo_root()).arg("demo"));
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    for step in 1..=11 {
        assert!(out.stdout.contains(&format!("==> {step}. ")), "step {step} missing:\n{}", out.stdout);
    }
    // First deploy, staging held back by the promotion rule, the override, the rollback: four
    // applies, each complete.
    assert_eq!(out.stdout.matches("Apply: ").count(), 4, "{}", out.stdout);
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
    let section = |n: u32| {
        let after = out.stdout.split(&format!("==> {n}.")).nth(1).expect("the step");
        after.split(&format!("==> {}.", n + 1)).next().unwrap_or(after).to_owned()
    };
    let held = section(6);
    assert!(
        held.contains("[policy.prod] of win11-ent → 2026.11 (after pilot, soak 3d): does not hold"),
        "{held}"
    );
    assert!(held.contains("4 pushes held back"), "{held}");
    assert!(!held.contains("~ push"), "the rule lets no prod push through:\n{held}");
    let overridden = section(7);
    assert!(overridden.contains("overridden: demo: a fix that cannot wait"), "{overridden}");
    assert!(overridden.contains("Plan: 4 push (4 steps)."), "{overridden}");
    let rollback = section(9);
    assert!(rollback.contains("Plan: 4 push (4 steps)."), "the rollback only pushes:\n{rollback}");
    assert!(out.stdout.trim_end().ends_with("then plan and apply against it."), "{}", out.stdout);
    assert!(out.stdout.contains("No changes: the live state matches the desired state."));
}
