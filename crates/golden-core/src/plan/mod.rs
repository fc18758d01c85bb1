//! The plan: the exact steps that take the live state to the desired state, as versioned data.
//!
//! [`planner::plan`] computes it as a pure function of the desired state, the live state and
//! [`PlanOptions`] (no network, no git, no clock of its own). The plan is what `golden plan`
//! prints and saves and what `golden apply` executes: apply makes no choice the plan did not
//! make. Its JSON form is described by `schema/plan.schema.json`.

pub mod history;
pub mod planner;
pub mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::desired::{Logoff, PoolKind, Source};
use crate::ids::{CommitId, HorizonName, ImageName, MarkerName, PoolName, SiteName, VersionName};
use crate::live::{ItemId, Moref, ObjectKey, Occupancy};

pub use history::{PlanOptions, Stint};
pub use planner::{PlanError, plan};

/// Bumped whenever the plan document changes incompatibly; apply refuses other versions.
pub const FORMAT_VERSION: u32 = 3;

/// A complete plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    /// The golden release that wrote the plan.
    pub golden_version: String,
    /// The desired-state commit, when the repository is in git.
    pub desired_commit: Option<CommitId>,
    /// The working tree had uncommitted edits to the desired-state files: the plan is of those
    /// files, not of `desired_commit` as it is in git.
    pub desired_dirty: bool,
    /// The SHA-256 of the desired-state files the plan was made from (paths and texts).
    pub desired_digest: String,
    /// The sites the plan covers (all sites unless narrowed with `--site`).
    pub sites: Vec<SiteName>,
    /// A fingerprint of every live object the plan relied on, by object key
    /// (`<site>/pool/<name>`, `<site>/vm/<id>`, `vcenter/<uuid>/item/<id>`,
    /// `vcenter/<uuid>/library/<id>`).
    #[schemars(with = "BTreeMap<String, String>")]
    pub fingerprints: BTreeMap<ObjectKey, String>,
    /// Steps in an order that respects every dependency.
    pub steps: Vec<Step>,
    /// Things the user should know that are not steps (a pool missing in Horizon, a rollback
    /// that will not be warm, a source library item kept because a site was not read).
    pub warnings: Vec<String>,
    /// The promotion rules checked: one per marker whose pools the plan would move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<PolicyCheck>,
    /// Pushes the plan does not make now, and why: a promotion rule not met yet, a push
    /// Horizon has scheduled already, an earlier wave still waiting for its window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<Held>,
    /// What the pushes touch: machines and sessions per wave and per site.
    #[serde(default)]
    pub blast_radius: BlastRadius,
}

/// A promotion rule (`[policy.<marker>]`) checked against the version its marker points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyCheck {
    pub image: ImageName,
    pub marker: MarkerName,
    pub version: VersionName,
    /// The rule: the marker that must have pointed at the version first ...
    pub after: MarkerName,
    /// ... and for how long (`72h`).
    pub soak: String,
    pub holds: bool,
    /// What showed the rule holds, or the part of it that does.
    pub evidence: Vec<String>,
    /// What is missing; empty when the rule holds.
    pub missing: Vec<String>,
    /// When the rule will hold if nothing else changes (epoch ms, UTC); absent when waiting
    /// alone will not make it hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds_at: Option<i64>,
    /// The reason given with `--override-policy` for rolling out although the rule does not
    /// hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<String>,
    /// The pools and farms the rule applies to in this plan (`<site>/<pool>`).
    pub pools: Vec<String>,
}

/// A push the plan does not make now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Held {
    pub site: SiteName,
    pub pool: PoolName,
    pub image: ImageName,
    pub marker: MarkerName,
    pub version: VersionName,
    pub wave: u32,
    pub cause: HeldCause,
    pub reason: String,
    /// When it can go ahead (epoch ms, UTC), when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Why a push is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeldCause {
    /// A promotion rule does not hold yet.
    Policy,
    /// Horizon already has the push, scheduled for a window start.
    Scheduled,
    /// A canary pool outside its window: canaries are watched, so they run inside it.
    Window,
    /// An earlier wave has a push that waits for its window.
    EarlierWave,
}

/// Machines and sessions the plan's pushes touch, per wave and per site.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlastRadius {
    pub waves: BTreeMap<u32, Blast>,
    pub sites: BTreeMap<SiteName, Blast>,
}

/// Totals over some pushes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Blast {
    pub pools: u32,
    pub machines: u32,
    pub sessions: u32,
    /// Pools among them Horizon gave no machine or session figures for.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl BlastRadius {
    /// The totals of the push steps among `steps`.
    pub fn of(steps: &[Step]) -> BlastRadius {
        let mut radius = BlastRadius::default();
        for step in steps {
            let Action::Push { wave, blast, .. } = &step.action else { continue };
            for total in
                [radius.waves.entry(*wave).or_default(), radius.sites.entry(step.site.clone()).or_default()]
            {
                total.pools += 1;
                match blast {
                    Some(b) => {
                        total.machines += b.machines;
                        total.sessions += b.sessions;
                    }
                    None => total.unknown += 1,
                }
            }
        }
        radius
    }
}

/// A step id derived from the step's content, e.g. `push/eu/eu-finance`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    pub fn new(id: impl Into<String>) -> Self {
        StepId(id.into())
    }

    /// The group of every push of wave `n`: a dependency on it means "after all of them".
    pub fn wave(n: u32) -> Self {
        StepId(format!("wave/{n}"))
    }

    /// The wave this id names, when it is a wave group.
    pub fn as_wave(&self) -> Option<u32> {
        self.0.strip_prefix("wave/")?.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step: what, where, why, and after what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    pub id: StepId,
    pub site: SiteName,
    #[serde(flatten)]
    pub action: Action,
    /// Why the step exists, in domain words.
    pub reason: String,
    /// Steps that must succeed first. `wave/N` stands for every push of wave N (and so, as
    /// those depend on the wave before, for every push of every earlier wave).
    pub depends_on: Vec<StepId>,
}

/// The closed set of step kinds. Matched without wildcard arms, so a new kind breaks the build
/// wherever it must be handled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Put a version into the source site's library, capturing a VM or adopting an item.
    Publish { image: ImageName, version: VersionName, source: Source },
    /// Copy a version into a site's library from the source site.
    Replicate { image: ImageName, version: VersionName, from: SiteName },
    /// Deploy a version's base VM from the site's library item and snapshot it.
    Deploy { image: ImageName, version: VersionName },
    /// Take a VM pools already run (the adopted version's own VM and snapshot) as golden's
    /// copy of the version at the site: golden's tag on it, nothing else changed.
    Adopt { image: ImageName, version: VersionName, vm: Moref, snapshot: Moref },
    /// Move a pool or farm to a version.
    Push {
        pool: PoolName,
        horizon_name: HorizonName,
        pool_kind: PoolKind,
        image: ImageName,
        marker: MarkerName,
        version: VersionName,
        wave: u32,
        logoff: Logoff,
        /// When Horizon is to start replacing machines (epoch ms, UTC): the next start of the
        /// pool's maintenance window when the plan was made outside it. Absent: at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<i64>,
        /// Push to this many machines first (Horizon's selective push), the rest once they are
        /// available with the new image.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        canary: Option<u32>,
        /// The machines and sessions the push touches, as Horizon reported them when planning.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blast: Option<Occupancy>,
    },
    /// Delete a copy (library item, base VM) no marker, pool or rollback window needs.
    Retire { image: ImageName, version: VersionName, items: Vec<ItemId>, vms: Vec<Moref> },
}

impl Action {
    /// Short verb for displays.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Publish { .. } => "publish",
            Action::Replicate { .. } => "replicate",
            Action::Deploy { .. } => "deploy",
            Action::Adopt { .. } => "adopt",
            Action::Push { .. } => "push",
            Action::Retire { .. } => "retire",
        }
    }

    /// Ordering of kinds in a plan: creation first, pushes, then removal.
    fn rank(&self) -> u8 {
        match self {
            Action::Publish { .. } => 0,
            Action::Replicate { .. } => 1,
            Action::Adopt { .. } => 2,
            Action::Deploy { .. } => 3,
            Action::Push { .. } => 4,
            Action::Retire { .. } => 5,
        }
    }
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty()
    }

    /// The sites the plan pushes at: where its blast radius is read.
    pub fn push_sites(&self) -> BTreeSet<SiteName> {
        let pushes = self.steps.iter().filter(|s| matches!(s.action, Action::Push { .. }));
        pushes.map(|s| s.site.clone()).collect()
    }

    /// Gives each push the machines and sessions Horizon reported for its pool or farm, by
    /// site and Horizon name (one absent stays unknown), and totals them per wave and site.
    /// The planner leaves them unknown: they are read after planning, and only where the plan
    /// pushes, since every pool's machines and sessions are three paged lists of the whole pod.
    pub fn set_blast(&mut self, occupancy: &BTreeMap<SiteName, BTreeMap<HorizonName, Occupancy>>) {
        for step in &mut self.steps {
            if let Action::Push { horizon_name, blast, .. } = &mut step.action {
                *blast = occupancy.get(&step.site).and_then(|pools| pools.get(horizon_name)).copied();
            }
        }
        self.blast_radius = BlastRadius::of(&self.steps);
    }

    /// Counts per step kind, in kind order, for summaries.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: BTreeMap<u8, (&'static str, usize)> = BTreeMap::new();
        for step in &self.steps {
            counts.entry(step.action.rank()).or_insert((step.action.verb(), 0)).1 += 1;
        }
        counts.into_values().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
