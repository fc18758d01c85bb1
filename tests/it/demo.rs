//! `golden demo`, the README's main command, end to end.

use super::common::{golden, repo_root, run};

#[test]
fn the_demo_walks_the_whole_workflow_and_ends_with_no_changes() {
    let out = run(golden(&repo_root()).arg("demo"));
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    for step in 1..=10 {
        assert!(out.stdout.contains(&format!("==> {step}. ")), "step {step} missing:\n{}", out.stdout);
    }
    // First deploy, marker move, rollback: three applies, each complete.
    assert_eq!(out.stdout.matches("Apply: ").count(), 3, "{}", out.stdout);
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
    let rollback = out.stdout.split("==> 8.").nth(1).and_then(|s| s.split("==> 9.").next()).expect("step 8");
    assert!(rollback.contains("Plan: 4 push (4 steps)."), "the rollback only pushes:\n{rollback}");
    assert!(out.stdout.trim_end().ends_with("then plan and apply against it."), "{}", out.stdout);
    assert!(out.stdout.contains("No changes: the live state matches the desired state."));
}
