//! The planner: a pure function of (desired state, live state, options) to a [`Plan`].
//!
//! No I/O, no clock, no randomness: the same inputs give the same plan, byte for byte, which is
//! what makes its snapshot tests and saved plans trustworthy. Everything here works on golden's
//! domain types; API types never reach it.
//!
//! What a site needs: the version each of its pools' markers points at. What it keeps besides:
//! copies a pool still runs (until pushed away), and the `keep_previous` versions each bound
//! marker pointed at before (the warm rollback window, from git history in `marker_history`),
//! which the plan replicates and deploys where a copy is missing, as long as the version is
//! published: it never publishes a version only to keep it warm.
//! Everything else golden owns at the site is retired, after the pushes that move its pools
//! away. The source site also keeps the library item of every version some site needs or keeps,
//! planned or not, since every site replicates from it: what an unplanned site needs and keeps
//! for rollback follows from the desired state and git history, but not what its pools still
//! run, so while a site is unread no item leaves the source library.
//!
//! The passes, each a function of named inputs to named outputs, in the order they run:
//! [`inputs`] gathers what every pass reads (pools with their targets, rollback windows,
//! libraries per vCenter, base VMs per site) and what each planned site needs; [`publish`]
//! publishes what is needed and not in the source library; [`copies`] replicates and deploys
//! what sites lack; [`pushes`] moves pools in waves; [`retire`] removes what nothing holds.

mod copies;
mod inputs;
mod policy;
mod publish;
mod pushes;
mod retire;
mod words;

use super::history::PlanOptions;
use super::{Action, FORMAT_VERSION, Plan, Step, StepId};
use crate::desired::DesiredState;
use crate::ids::{ImageName, SiteName, VersionName};
use crate::live::LiveState;
use inputs::Inputs;

/// Problems that make a plan impossible; the user must fix the repository or the site.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "version {image}@{version} is already published from `{published}`, but the repository now says `{desired}`; published versions are immutable"
    )]
    SourceChanged { image: ImageName, version: VersionName, published: String, desired: String },
    #[error("the source of {image}@{version} is missing at source site `{site}`: {what}")]
    SourceMissing { image: ImageName, version: VersionName, site: SiteName, what: String },
    #[error("site `{site}` was not read, but the plan needs it")]
    SiteNotRead { site: SiteName },
}

impl PlanError {
    pub fn hint(&self) -> String {
        match self {
            PlanError::SourceChanged { image, .. } => {
                format!(
                    "add a new version to images/{image}.toml with the new source, and move the marker to it"
                )
            }
            PlanError::SourceMissing { .. } => {
                "create the VM and snapshot (or library item) at the source site, or fix the version's source"
                    .to_owned()
            }
            PlanError::SiteNotRead { .. } => {
                "check the site's credentials and that it is reachable".to_owned()
            }
        }
    }
}

/// Computes the plan. Errors list every reason the plan is impossible.
pub fn plan(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> Result<Plan, Vec<PlanError>> {
    let inputs = Inputs::new(desired, live, options);
    let mut errors: Vec<PlanError> = inputs
        .read
        .iter()
        .filter(|s| !live.sites.contains_key(**s))
        .map(|s| PlanError::SiteNotRead { site: (*s).clone() })
        .collect();
    let mut warnings = Vec::new();
    let dirty = desired.revision.as_ref().is_some_and(|r| r.dirty);
    if let Some(r) = desired.revision.as_ref().filter(|r| r.dirty) {
        warnings.push(format!(
            "the desired-state files have uncommitted edits: this plan is of the working tree, not of commit {}; commit them so that apply runs what was reviewed",
            r.commit.short()
        ));
    }

    let needs = inputs::needs(&inputs);
    let published = publish::publish(&inputs, &needs, &mut errors);
    let copies = copies::copies(&inputs, &needs, &published, &mut warnings);
    let pushes = pushes::pushes(&inputs, &copies, &mut warnings);
    let retirements = retire::retirements(&inputs, &pushes, &mut warnings);
    if !errors.is_empty() {
        return Err(errors);
    }

    let (held, checks) = (pushes.held, pushes.checks);
    let passes = [published.steps, copies.steps, pushes.steps, retirements];
    let mut steps: Vec<Step> = passes.into_iter().flatten().collect();
    // Step ids are unique, so an unstable sort is as deterministic as a stable one.
    steps.sort_unstable_by(|a, b| {
        (a.action.rank(), wave_of(a), &a.site, &a.id).cmp(&(b.action.rank(), wave_of(b), &b.site, &b.id))
    });
    Ok(Plan {
        format_version: FORMAT_VERSION,
        golden_version: env!("CARGO_PKG_VERSION").to_owned(),
        desired_commit: desired.revision.as_ref().map(|r| r.commit.clone()),
        desired_dirty: dirty,
        desired_digest: desired.digest.clone(),
        fingerprints: live.fingerprints(&inputs.read),
        sites: inputs.scope.iter().map(|s| (*s).clone()).collect(),
        blast_radius: super::BlastRadius::of(&steps),
        steps,
        warnings,
        policy: checks,
        held,
    })
}

/// Whether `site` is in the plan's scope (every site is without `--site`).
fn in_scope(options: &PlanOptions, site: &SiteName) -> bool {
    options.sites.is_empty() || options.sites.contains(site)
}

/// A step id from its parts: `deploy/eu/win11-ent/2026.10`.
fn step_id(parts: &[&str]) -> StepId {
    StepId::new(parts.join("/"))
}

fn wave_of(step: &Step) -> u32 {
    match &step.action {
        Action::Push { wave, .. } => *wave,
        Action::Publish { .. }
        | Action::Replicate { .. }
        | Action::Deploy { .. }
        | Action::Adopt { .. }
        | Action::Retire { .. } => 0,
    }
}
