//! Promotion rules: whether a marker may roll its pools out to the version it points at.
//!
//! `[policy.prod] after = "pilot", soak = "72h"` holds when, as of the plan's clock:
//! - git history shows `pilot` pointing at the version for at least 72 hours (from the commit
//!   on the first-parent line that moved it there, so a pull request counts from its merge, to
//!   now or to the commit that moved it on), and
//! - while `pilot` still points there, every pilot pool the plan read runs the version, and
//!   none has a failed push of it.
//!
//! The rule guards moves. A move back to a version the marker itself pointed at before is a
//! rollback and always holds: a rule must never stand between an admin and the last good
//! image. A marker that has pointed at one version since it was created has not moved (a first
//! deploy, a pool bound anew): the rule holds too. A rule that does
//! not hold keeps its marker's pushes out of the plan (listed as held), unless the plan is
//! made with `--override-policy REASON`, which the plan records.

use jiff::{SignedDuration, Timestamp};

use super::inputs::Inputs;
use crate::desired::{Image, Policy};
use crate::ids::{MarkerName, VersionName, VersionRef};
use crate::live::PendingState;
use crate::plan::PolicyCheck;

/// Checks `policy` of `marker` of `image` against `version`, the version the marker points at.
pub(super) fn check(
    inputs: &Inputs<'_>,
    image: &Image,
    marker: &MarkerName,
    policy: &Policy,
    version: &VersionName,
) -> PolicyCheck {
    let options = inputs.options;
    let now = options.now;
    let after = &policy.after;
    let mut check = PolicyCheck {
        image: image.name.clone(),
        marker: marker.clone(),
        version: version.clone(),
        after: after.clone(),
        soak: policy.soak.to_string(),
        holds: false,
        evidence: Vec::new(),
        missing: Vec::new(),
        holds_at: None,
        overridden: None,
        pools: Vec::new(),
    };
    let Some(stints) = &options.marker_stints else {
        check.missing.push(format!(
            "no git history to show when {after} pointed at {version}; plan from a git repository"
        ));
        return check;
    };
    let of = |m: &MarkerName| stints.get(&(image.name.clone(), m.clone())).map_or(&[][..], Vec::as_slice);

    // A rollback: the marker pointed at the version before.
    if let Some(earlier) = of(marker).iter().rev().find(|s| s.version == *version && s.until.is_some()) {
        check.holds = true;
        check
            .evidence
            .push(format!("rollback: {marker} pointed at {version} before (from {})", when(earlier.since)));
        return check;
    }

    // Not a promotion: the marker has pointed at the version since it was created (a first
    // deploy, a pool bound anew). The rule guards moves.
    if let [only] = of(marker) {
        if only.version == *version && only.until.is_none() {
            check.holds = true;
            check.evidence.push(format!(
                "{marker} has pointed at {version} since it was created ({}): no move to check",
                when(only.since)
            ));
            return check;
        }
    }

    let points_now = image.markers.get(after) == Some(version);
    match of(after).iter().rev().find(|s| s.version == *version) {
        None => {
            if points_now {
                check.missing.push(format!(
                    "{after} points at {version} only in this change, not in git history yet; the soak starts once it is merged"
                ));
            } else {
                let at =
                    image.markers.get(after).map_or_else(String::new, |v| format!(" (it points at {v})"));
                check
                    .missing
                    .push(format!("{after} has never pointed at {version}{at}; move {after} there first"));
            }
        }
        Some(stint) => {
            let end = stint.until.unwrap_or(now);
            let soaked = end.duration_since(stint.since);
            let wanted = policy.soak.duration();
            let span = match stint.until {
                Some(until) => format!("from {} to {}", when(stint.since), when(until)),
                None => format!("since {}", when(stint.since)),
            };
            if soaked >= wanted {
                check
                    .evidence
                    .push(format!("{after} has pointed at {version} for {} ({span})", hours(soaked)));
            } else if stint.until.is_none() {
                check.missing.push(format!(
                    "{after} has pointed at {version} for {} of {} ({span})",
                    hours(soaked.max(SignedDuration::ZERO)),
                    policy.soak
                ));
                check.holds_at = stint.since.checked_add(wanted).ok().map(Timestamp::as_millisecond);
            } else {
                check.missing.push(format!(
                    "{after} pointed at {version} for only {} ({span}), short of {}",
                    hours(soaked),
                    policy.soak
                ));
            }
        }
    }

    // The live half, while the after-marker still points at the version: its pools run it.
    if points_now {
        let key = VersionRef::new(&image.name, version);
        let (mut running, mut pools) = (0, 0);
        for site in &inputs.read {
            let Some(live) = inputs.site(site) else { continue };
            for (pool, _) in inputs.pools_of(site) {
                if pool.image != image.name || pool.marker != *after {
                    continue;
                }
                let Some(lp) = live.pools.get(&pool.horizon_name) else { continue };
                pools += 1;
                let failed = lp.pending.as_ref().filter(|p| {
                    p.state == PendingState::Failed && live.version_of(&p.image).as_ref() == Some(&key)
                });
                if let Some(p) = failed {
                    let err = p.error.as_deref().or(lp.last_error.as_deref()).unwrap_or("no message");
                    check.missing.push(format!(
                        "the push of {version} to {after} pool {} at {site} failed ({err})",
                        pool.name
                    ));
                } else if lp.current.is_some() && lp.current.as_ref() == inputs.base(site, &key) {
                    running += 1;
                } else {
                    check
                        .missing
                        .push(format!("{after} pool {} at {site} does not run {version} yet", pool.name));
                }
            }
        }
        if pools > 0 && running == pools {
            let pools = if running == 1 {
                "its pool runs".to_owned()
            } else {
                format!("all {running} of its pools run")
            };
            check.evidence.push(format!("{after}: {pools} {version}, no failed push"));
        }
        if running < pools {
            // Time alone will not do it: the pools must get there first.
            check.holds_at = None;
        }
    }
    check.holds = check.missing.is_empty();
    check
}

pub(super) use crate::desired::rollout::utc as when;

/// `20h`, `3d 4h`: a duration to the hour, as a soak is read.
fn hours(d: SignedDuration) -> String {
    let h = d.as_secs() / 3600;
    match (h / 24, h % 24) {
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}
