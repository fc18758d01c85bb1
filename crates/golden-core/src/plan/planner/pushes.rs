//! Pushes: move every planned pool that does not run its marker's version, wave after wave; a
//! pool Horizon is already moving there gets a step that follows that push.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::copies::Copies;
use super::inputs::Inputs;
use super::{Action, Step, StepId, policy, step_id};
use crate::desired::Pool;
use crate::desired::rollout::Opening;
use crate::ids::{ImageName, MarkerName, SiteName, VersionRef};
use crate::live::{LivePool, Operation, PendingState, SiteLive};
use crate::plan::history::{PlanOptions, Provenance, provenance};
use crate::plan::{Held, HeldCause, PolicyCheck};

/// The push steps, the pushes held back, the promotion rules checked, and the pushes moving
/// each site's pools away from each version.
pub(super) struct Pushes<'a> {
    pub(super) steps: Vec<Step>,
    pub(super) held: Vec<Held>,
    pub(super) checks: Vec<PolicyCheck>,
    pub(super) away: BTreeMap<(&'a SiteName, VersionRef), Vec<StepId>>,
}

/// A push the plan would make, before waves are ordered.
struct Candidate<'a> {
    pool: &'a Pool,
    site: &'a SiteName,
    key: VersionRef,
    /// `None` for a push held for a window (a canary's, or Horizon's schedule): it orders the
    /// waves after it without being a step.
    step: Option<Step>,
    /// When its push starts, when that is a window start.
    waits_until: Option<Timestamp>,
}

impl<'a> Candidate<'a> {
    /// A push held for a window that opens `at`: no step, but later waves wait for it.
    fn waiting(pool: &'a Pool, site: &'a SiteName, key: &VersionRef, at: Timestamp) -> Candidate<'a> {
        Candidate { pool, site, key: key.clone(), step: None, waits_until: Some(at) }
    }
}

/// Pushes every planned pool that does not run its marker's version (or follows the push under
/// way towards it), unless a promotion rule holds it back; outside a maintenance window the
/// push is scheduled for the next window start.
pub(super) fn pushes<'a>(inputs: &Inputs<'a>, copies: &Copies<'a>, warnings: &mut Vec<String>) -> Pushes<'a> {
    let mut candidates: Vec<Candidate<'a>> = Vec::new();
    let mut held: Vec<Held> = Vec::new();
    let mut checks: BTreeMap<(&ImageName, &MarkerName), PolicyCheck> = BTreeMap::new();
    let now = inputs.options.now;
    for site in &inputs.scope {
        let site: &'a SiteName = site;
        let Some(s_live) = inputs.site(site) else { continue };
        let Some(s_desired) = inputs.desired.sites.get(site) else { continue };
        for (pool, key) in inputs.pools_of(site) {
            let pool: &'a Pool = pool;
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
            let hold = |cause, reason, until| held_push(site, pool, key, cause, reason, until);
            let current = lp.current.as_ref().and_then(|c| s_live.version_of(c));
            // A push under way towards the version (sent by a run that stopped, or by hand) is
            // work in progress: a step that follows it to the end, in its wave, so that apply
            // ends only when the pool runs its image and no later wave starts before it. One
            // Horizon has scheduled for later is left to Horizon, and holds later waves.
            let following = pending_towards(lp, s_live, key);
            let mut waits_until = None;
            let mut start_time = None;
            let reason = if following {
                if let Some(at) = scheduled_start(lp, now) {
                    held.push(hold(
                        HeldCause::Scheduled,
                        format!(
                            "Horizon has the push of {key} to pool {} scheduled for {}; to change the time, cancel it in Horizon and plan again",
                            pool.name,
                            policy::when(at)
                        ),
                        Some(at),
                    ));
                    candidates.push(Candidate::waiting(pool, site, key, at));
                    continue;
                }
                format!("Horizon is already moving pool {} to {key}; apply follows it to the end", pool.name)
            } else {
                let rule = inputs
                    .desired
                    .images
                    .get(image)
                    .and_then(|img| Some((img, img.policies.get(&pool.marker)?)));
                if let Some((img, rule)) = rule {
                    let check = checks
                        .entry((image, &pool.marker))
                        .or_insert_with(|| policy::check(inputs, img, &pool.marker, rule, version));
                    check.pools.push(format!("{site}/{}", pool.name));
                    if !check.holds && inputs.options.override_policy.is_none() {
                        let until = check.holds_at.and_then(|ms| Timestamp::from_millisecond(ms).ok());
                        let when = until.map_or_else(
                            || "it will not hold by waiting alone".to_owned(),
                            |t| format!("it holds from {}", policy::when(t)),
                        );
                        held.push(hold(
                            HeldCause::Policy,
                            format!(
                                "[policy.{}] (after {}, soak {}) does not hold yet: {}; {when}",
                                pool.marker,
                                rule.after,
                                rule.soak,
                                check.missing.join("; ")
                            ),
                            until,
                        ));
                        continue;
                    }
                }
                let mut reason = push_reason(pool, lp, current.as_ref(), key, s_live, inputs.options);
                let window = pool.window.as_ref().or(s_desired.window.as_ref());
                if let Some(window) = window {
                    let zone = &s_desired.timezone;
                    if let Opening::At(at) = window.opening(now, zone) {
                        let local = at.to_zoned_datetime(zone.tz().clone()).strftime("%a %H:%M %Z");
                        if let Some(canaries) = pool.canary {
                            held.push(hold(
                                HeldCause::Window,
                                format!(
                                    "pool {} pushes to {canaries} canary machine(s) first, which golden watches, so it runs inside its window `{window}`; the window opens {} ({local} {})",
                                    pool.name,
                                    policy::when(at),
                                    zone.name()
                                ),
                                Some(at),
                            ));
                            candidates.push(Candidate::waiting(pool, site, key, at));
                            continue;
                        }
                        start_time = Some(at.as_millisecond());
                        waits_until = Some(at);
                        reason = format!(
                            "{reason}; outside window `{window}` ({}), so Horizon starts it at {} ({local})",
                            zone.name(),
                            policy::when(at)
                        );
                    }
                }
                reason
            };
            let id = step_id(&["push", site.as_str(), pool.name.as_str()]);
            candidates.push(Candidate {
                pool,
                site,
                key: key.clone(),
                step: Some(Step {
                    id,
                    site: site.clone(),
                    action: Action::Push {
                        pool: pool.name.clone(),
                        horizon_name: pool.horizon_name.clone(),
                        pool_kind: pool.kind,
                        image: image.clone(),
                        marker: pool.marker.clone(),
                        version: version.clone(),
                        wave: pool.wave,
                        logoff: pool.logoff,
                        start_time,
                        canary: pool.canary,
                        // Read after planning, for the sites the plan pushes at.
                        blast: None,
                    },
                    reason,
                    depends_on: copies.deploy_of.get(&(site, key.clone())).cloned().into_iter().collect(),
                }),
                waits_until,
            });
        }
    }
    let mut checks: Vec<PolicyCheck> = checks.into_values().collect();
    if let Some(reason) = &inputs.options.override_policy {
        for check in checks.iter_mut().filter(|c| !c.holds) {
            check.overridden = Some(reason.clone());
        }
    }

    // Waves are global: a wave starts when every push of every earlier wave succeeded. A push
    // depends on the previous wave as a group (`wave/N`), which covers the waves before it,
    // rather than on each of its pushes: thousands of pools must not mean millions of edges.
    // While an earlier wave waits for a window (scheduled by Horizon, or a canary held for its
    // window), later waves are held: they go once it has run.
    // A push scheduled by this plan holds later waves too, but in apply: a scheduled push is
    // not done, so the pushes that depend on its wave wait for the next run.
    let waves: BTreeSet<u32> = candidates.iter().filter(|c| c.step.is_some()).map(|c| c.pool.wave).collect();
    let first_wait: Option<(u32, Timestamp, &Pool, &SiteName)> = candidates
        .iter()
        .filter(|c| c.step.is_none())
        .filter_map(|c| Some((c.pool.wave, c.waits_until?, c.pool, c.site)))
        .min_by_key(|(w, t, _, _)| (*w, *t));
    let mut steps = Vec::new();
    let mut away: BTreeMap<(&SiteName, VersionRef), Vec<StepId>> = BTreeMap::new();
    for c in candidates {
        let Some(mut step) = c.step else { continue };
        let wave = c.pool.wave;
        if let Some((w, at, first, first_site)) = first_wait.filter(|(w, ..)| *w < wave) {
            let reason = format!(
                "waits for wave {w}: pool {} at {} goes at {}; run apply again after it",
                first.name,
                first_site,
                policy::when(at)
            );
            held.push(held_push(c.site, c.pool, &c.key, HeldCause::EarlierWave, reason, Some(at)));
            continue;
        }
        if let Some(previous) = waves.range(..wave).next_back() {
            step.depends_on.push(StepId::wave(*previous));
        }
        if let Some(current) = inputs.site(c.site).and_then(|s| {
            let lp = s.pools.get(&c.pool.horizon_name)?;
            s.version_of(lp.current.as_ref()?)
        }) {
            away.entry((c.site, current)).or_default().push(step.id.clone());
        }
        steps.push(step);
    }
    Pushes { steps, held, checks, away }
}

/// The push of `pool` at `site` to `key`, held for `cause`, until `until` when known.
fn held_push(
    site: &SiteName,
    pool: &Pool,
    key: &VersionRef,
    cause: HeldCause,
    reason: String,
    until: Option<Timestamp>,
) -> Held {
    Held {
        site: site.clone(),
        pool: pool.name.clone(),
        image: key.image.clone(),
        marker: pool.marker.clone(),
        version: key.version.clone(),
        wave: pool.wave,
        cause,
        reason,
        until: until.map(Timestamp::as_millisecond),
    }
}

/// When Horizon will start a push it holds for later (its `start_time` is after `now`).
fn scheduled_start(pool: &LivePool, now: Timestamp) -> Option<Timestamp> {
    let ms = pool.pending.as_ref()?.start_time?;
    Timestamp::from_millisecond(ms).ok().filter(|t| *t > now)
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
