//! Pushes: move every planned pool that does not run its marker's version, wave after wave; a
//! pool Horizon is already moving there gets a step that follows that push.

use std::collections::{BTreeMap, BTreeSet};

use super::copies::Copies;
use super::inputs::Inputs;
use super::{Action, Step, StepId, step_id};
use crate::desired::Pool;
use crate::ids::{SiteName, VersionRef};
use crate::live::{LivePool, Operation, PendingState, SiteLive};
use crate::plan::history::{PlanOptions, Provenance, provenance};

/// The push steps, and the pushes moving each site's pools away from each version.
pub(super) struct Pushes<'a> {
    pub(super) steps: Vec<Step>,
    pub(super) away: BTreeMap<(&'a SiteName, VersionRef), Vec<StepId>>,
}

/// Pushes every planned pool that does not run its marker's version (or follows the push under
/// way towards it).
pub(super) fn pushes<'a>(inputs: &Inputs<'a>, copies: &Copies<'a>, warnings: &mut Vec<String>) -> Pushes<'a> {
    let mut pushes: Vec<(u32, Step)> = Vec::new();
    let mut away: BTreeMap<(&SiteName, VersionRef), Vec<StepId>> = BTreeMap::new();
    for site in &inputs.scope {
        let Some(s_live) = inputs.site(site) else { continue };
        for (pool, key) in inputs.pools_of(site) {
            let Some(key) = key else { continue };
            let VersionRef { image, version } = key;
            let Some(lp) = s_live.pools.get(&pool.horizon_name) else {
                warnings.push(format!(
                    "pool {}: Horizon at {site} has no {} named `{}`; create it, or fix horizon_name",
                    pool.name, pool.kind, pool.horizon_name
                ));
                continue;
            };
            let runs_target = lp.current.is_some() && lp.current.as_ref() == inputs.base(site, key);
            if runs_target {
                continue;
            }
            let current = lp.current.as_ref().and_then(|c| s_live.version_of(c));
            // A push under way towards the version (sent by a run that stopped, or by hand) is
            // work in progress: a step that follows it to the end, in its wave, so that apply
            // ends only when the pool runs its image and no later wave starts before it.
            let reason = if pending_towards(lp, s_live, key) {
                format!("Horizon is already moving pool {} to {key}; apply follows it to the end", pool.name)
            } else {
                push_reason(pool, lp, current.as_ref(), key, s_live, inputs.options)
            };
            let id = step_id(&["push", site.as_str(), pool.name.as_str()]);
            if let Some(c) = current {
                away.entry((*site, c)).or_default().push(id.clone());
            }
            pushes.push((
                pool.wave,
                Step {
                    id,
                    site: (*site).clone(),
                    action: Action::Push {
                        pool: pool.name.clone(),
                        horizon_name: pool.horizon_name.clone(),
                        pool_kind: pool.kind,
                        image: image.clone(),
                        marker: pool.marker.clone(),
                        version: version.clone(),
                        wave: pool.wave,
                        logoff: pool.logoff,
                        start_time: None,
                        canary: None,
                        blast: s_live.occupancy.get(&pool.horizon_name).copied(),
                    },
                    reason,
                    depends_on: copies.deploy_of.get(&(*site, key.clone())).cloned().into_iter().collect(),
                },
            ));
        }
    }
    // Waves are global: a wave starts when every push of every earlier wave succeeded. A push
    // depends on the previous wave as a group (`wave/N`), which covers the waves before it,
    // rather than on each of its pushes: thousands of pools must not mean millions of edges.
    let waves: BTreeSet<u32> = pushes.iter().map(|(w, _)| *w).collect();
    for (wave, step) in &mut pushes {
        if let Some(previous) = waves.range(..*wave).next_back() {
            step.depends_on.push(StepId::wave(*previous));
        }
    }
    Pushes { steps: pushes.into_iter().map(|(_, s)| s).collect(), away }
}

/// True when Horizon is already moving the pool to this version and has not failed.
pub(super) fn pending_towards(pool: &LivePool, site: &SiteLive, key: &VersionRef) -> bool {
    let Some(pending) = &pool.pending else { return false };
    let towards = site.version_of(&pending.image).as_ref() == Some(key);
    let alive = !matches!(pending.state, PendingState::Failed | PendingState::Unpublishing);
    towards && alive && pool.operation != Operation::None
}

pub(super) fn push_reason(
    pool: &Pool,
    live: &LivePool,
    current: Option<&VersionRef>,
    target: &VersionRef,
    site: &SiteLive,
    options: &PlanOptions,
) -> String {
    let VersionRef { image, version } = target;
    let marker = &pool.marker;
    if let Some(p) = &live.pending {
        if p.state == PendingState::Failed && site.version_of(&p.image).as_ref() == Some(target) {
            let err = p.error.as_deref().or(live.last_error.as_deref()).unwrap_or("no message");
            return format!("last push of {target} to {} failed ({err}); trying again", pool.name);
        }
    }
    let Some(VersionRef { image: ci, version: cv }) = current else {
        return match &live.current {
            Some(c) => format!(
                "pool {} runs an image golden does not own ({} @ {}); marker {marker} of {image} is {version}",
                pool.name, c.vm, c.snapshot
            ),
            None => format!("pool {} has no image yet; marker {marker} of {image} is {version}", pool.name),
        };
    };
    let runs = if ci == image { cv.to_string() } else { format!("{ci}@{cv}") };
    match provenance(pool, &VersionRef::new(ci, cv), options) {
        Provenance::LastTarget => format!("marker {marker} of {image} moved {cv} → {version}"),
        Provenance::EarlierTarget => format!(
            "pool {} runs {cv}, an earlier target of marker {marker} of {image}, which points at {version}",
            pool.name
        ),
        // Without git history a marker move, a new binding and a push by hand look the same.
        Provenance::Unknown => {
            format!("pool {} runs {runs}; marker {marker} of {image} points at {version}", pool.name)
        }
        Provenance::Rebound(b) => {
            let was = if b.image == *image {
                b.marker.to_string()
            } else {
                format!("marker {} of {}", b.marker, b.image)
            };
            let to = if ci == image { version.to_string() } else { target.to_string() };
            format!(
                "pool {} is now bound to marker {marker} of {image} instead of {was}: {runs} → {to}",
                pool.name
            )
        }
        Provenance::Drift => format!(
            "pool {} drifted (set outside golden): runs {runs}, which no marker it was ever bound to pointed at in git history; marker {marker} of {image} points at {version}",
            pool.name
        ),
    }
}
