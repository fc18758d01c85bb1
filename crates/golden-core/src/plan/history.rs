//! What git history tells the planner: earlier targets of each marker (the rollback window) and
//! earlier bindings of each pool, and from them where a version a pool runs came from.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::desired::Pool;
use crate::ids::{HorizonName, ImageName, MarkerName, SiteName, VersionName, VersionRef};

/// Inputs of a plan besides the two states.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Plan only these sites (their prerequisites at the source site included); empty = all.
    pub sites: BTreeSet<SiteName>,
    /// Earlier versions of each marker, most recent first, from git history: the rollback
    /// window. Without git history nothing beyond current use is kept warm.
    pub marker_history: BTreeMap<(ImageName, MarkerName), Vec<VersionName>>,
    /// The markers each pool or farm was bound to before, from git history; `None` when the
    /// desired state has no git history. A pool without an entry was always bound as it is.
    /// golden pushes a pool only to what its marker points at, so with this history a pool that
    /// runs a version none of its markers ever pointed at was pushed outside golden: drift.
    /// Without it, the planner cannot tell drift from a marker move or a new binding.
    pub pool_history: Option<BTreeMap<PoolKey, Vec<EarlierBinding>>>,
    /// When each marker pointed at which version, from git history (the commit that moved it
    /// on the first-parent line, so a pull request counts from its merge): the evidence
    /// promotion rules need. `None` when the desired state has no git history.
    pub marker_stints: Option<BTreeMap<(ImageName, MarkerName), Vec<Stint>>>,
    /// The planner's clock: promotion rules and maintenance windows are judged at this
    /// instant. The default is the Unix epoch; `golden plan` passes the time it runs.
    pub now: Timestamp,
    /// `--override-policy REASON`: roll out what promotion rules would hold back, recording
    /// the reason in the plan.
    pub override_policy: Option<String>,
}

/// A span of time during which a marker pointed at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stint {
    pub version: VersionName,
    /// The commit time of the change that moved the marker there.
    pub since: Timestamp,
    /// The commit time of the change that moved it away; `None` while it still points there.
    pub until: Option<Timestamp>,
}

/// A pool or farm as Horizon knows it: its site and its Horizon name.
pub type PoolKey = (SiteName, HorizonName);

/// A marker a pool was bound to before its current binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlierBinding {
    pub image: ImageName,
    pub marker: MarkerName,
    /// Every version the marker pointed at in git history.
    pub versions: BTreeSet<VersionName>,
}

/// How a bound pool came to run a golden version other than its target, as far as git history
/// tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance<'a> {
    /// The version its marker pointed at just before: the marker moved.
    LastTarget,
    /// An earlier target of its marker.
    EarlierTarget,
    /// A target of a marker it was bound to before.
    Rebound(&'a EarlierBinding),
    /// No git history to tell.
    Unknown,
    /// No marker it was ever bound to pointed at it: it was pushed outside golden.
    Drift,
}

/// Where the version `current` that `pool` runs came from. golden pushes a pool only to what
/// its marker points at, so a version none of its markers ever pointed at is drift.
pub fn provenance<'a>(pool: &Pool, current: &VersionRef, options: &'a PlanOptions) -> Provenance<'a> {
    let VersionRef { image: ci, version: cv } = current;
    let earlier =
        options.marker_history.get(&(pool.image.clone(), pool.marker.clone())).map_or(&[][..], Vec::as_slice);
    if *ci == pool.image {
        if earlier.first() == Some(cv) {
            return Provenance::LastTarget;
        }
        if earlier.contains(cv) {
            return Provenance::EarlierTarget;
        }
    }
    let Some(pools) = &options.pool_history else { return Provenance::Unknown };
    let bindings = pools.get(&(pool.site.clone(), pool.horizon_name.clone())).map_or(&[][..], Vec::as_slice);
    match bindings.iter().find(|b| b.image == *ci && b.versions.contains(cv)) {
        Some(b) => Provenance::Rebound(b),
        None => Provenance::Drift,
    }
}
