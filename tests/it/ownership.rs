//! Ownership survives cloning: golden's tag (which vSphere does not copy to a clone) is the
//! proof, the annotation (which it copies, and anyone may edit) only a claim. A clone of a base
//! VM, or a VM whose notes were written by hand, is never pushed, counted as a copy or retired,
//! and `golden status` reports it; two tagged VMs for one copy are an error naming both.

use golden::ids::{ImageName, VersionName};
use golden::lab::Timings;
use golden::live::GoldenMeta;

use super::common::{golden_with, quickstart_with_lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_claim_is_never_pushed_counted_or_retired_and_status_reports_it() {
    let (repo, _, lab) = quickstart_with_lab(Timings::instant()).await;
    let applied = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);

    // An admin clones eu's base VM (the notes come along, the tag and snapshots do not), and
    // writes golden's JSON for a version no one needs into the notes of another VM.
    let original = {
        let shared = lab.state();
        let mut state = shared.lock();
        let dc = state.sites["eu"].datacenter.clone();
        let vc = state.vcenter_of_mut("eu").expect("eu's vCenter");
        let base = vc
            .vms
            .values()
            .find(|v| v.datacenter == dc && v.name.starts_with("golden-win11-ent-"))
            .expect("a base VM at eu")
            .clone();
        let mut clone = base.clone();
        clone.id = "vm-clone".into();
        clone.name = format!("copy of {}", base.name);
        clone.snapshots.clear();
        clone.current_snapshot = None;
        vc.vms.insert(clone.id.clone(), clone.clone());
        let old = GoldenMeta {
            image: ImageName::new("win11-ent"),
            version: VersionName::new("2020.01"),
            source: "library_item:win11-2020.01".into(),
        };
        let mut forged = clone;
        forged.id = "vm-forged".into();
        forged.name = "notes-by-hand".into();
        forged.annotation = golden::vcenter::meta_to_description(&old);
        vc.vms.insert(forged.id.clone(), forged);
        base
    };

    let status = golden_with(&lab, repo.path(), &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let claims = status.stdout.split("untagged claims").nth(1).unwrap_or_else(|| panic!("{}", status.stdout));
    assert!(claims.contains(&format!("copy of {}", original.name)), "{claims}");
    assert!(claims.contains("vm-clone"), "{claims}");
    assert!(claims.contains("notes-by-hand") && claims.contains("win11-ent@2020.01"), "{claims}");
    assert!(claims.contains(golden::status::CLAIM_FIX), "{claims}");
    // Neither counts: no second copy, nothing of 2020.01 to retire.
    let plan = golden_with(&lab, repo.path(), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "no step for a claim: {}\n{}", plan.stdout, plan.stderr);

    // The base VM goes: the clone is not taken for the copy; the next apply deploys one and
    // leaves the clone alone.
    {
        let shared = lab.state();
        let mut state = shared.lock();
        state.vcenter_of_mut("eu").expect("eu's vCenter").vms.remove(&original.id);
    }
    let plan = golden_with(&lab, repo.path(), &["plan"]).await;
    let version = original.name.trim_start_matches("golden-win11-ent-");
    assert!(plan.stdout.contains(&format!("no base VM of win11-ent@{version} at eu")), "{}", plan.stdout);
    assert!(!plan.stdout.contains("vm-clone") && !plan.stdout.contains("vm-forged"), "{}", plan.stdout);
    let applied = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);
    let plan = golden_with(&lab, repo.path(), &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 0, "converged: {}\n{}", plan.stdout, plan.stderr);
    let shared = lab.state();
    let state = shared.lock();
    let vc = state.vcenter_of("eu").expect("eu's vCenter");
    assert!(vc.vms.contains_key("vm-clone") && vc.vms.contains_key("vm-forged"), "claims are never deleted");
    let horizon = serde_json::to_string(&state.sites["eu"].horizon).expect("json");
    assert!(!horizon.contains("vm-clone"), "no pool runs the clone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tagged_vms_for_one_copy_are_an_error_naming_both() {
    let (repo, _, lab) = quickstart_with_lab(Timings::instant()).await;
    let applied = golden_with(&lab, repo.path(), &["apply", "--auto-approve"]).await;
    assert_eq!(applied.code, 0, "{}\n{}", applied.stdout, applied.stderr);

    // A clone of eu's base VM, then tagged with its version's tag by hand.
    let base_name = {
        let shared = lab.state();
        let mut state = shared.lock();
        let dc = state.sites["eu"].datacenter.clone();
        let vc = state.vcenter_of_mut("eu").expect("eu's vCenter");
        let base = vc
            .vms
            .values()
            .find(|v| v.datacenter == dc && v.name.starts_with("golden-win11-ent-"))
            .expect("a base VM at eu")
            .clone();
        let mut clone = base.clone();
        clone.id = "vm-clone".into();
        clone.name = "tagged-copy".into();
        clone.snapshots.clear();
        clone.current_snapshot = None;
        vc.vms.insert(clone.id.clone(), clone);
        let tag = vc
            .tagging
            .attached
            .iter()
            .find(|(_, on)| on.contains(&("VirtualMachine".to_owned(), base.id.clone())))
            .map(|(tag, _)| tag.clone())
            .expect("the base VM is tagged");
        vc.tagging.attached.entry(tag).or_default().insert(("VirtualMachine".into(), "vm-clone".into()));
        base.name
    };
    let plan = golden_with(&lab, repo.path(), &["plan"]).await;
    assert_eq!(plan.code, 1, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stderr.contains("site `eu`: 2 vms are tagged as golden's copy of win11-ent@"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains(&format!("`{base_name}`")) && plan.stderr.contains("`tagged-copy` (vm-clone)"),
        "{}",
        plan.stderr
    );
}
