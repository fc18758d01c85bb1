//! Apply: carry out a plan against the sites, step by step.
//!
//! [`steps::run_step`] makes one step so, idempotently: it looks at the live objects first,
//! adopts work already done or in progress, starts what is missing and waits for vCenter tasks,
//! library syncs and Horizon's push state machine to finish. The executor (next to it) decides
//! when each step may run: dependencies, waves, the parallelism limit, one step per object.

pub mod display;
pub mod executor;
pub mod steps;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::desired::{DesiredState, Site};
use crate::gather::SiteClients;
use crate::horizon::HorizonError;
use crate::ids::SiteName;
use crate::live::VcenterId;
use crate::plan::StepId;
use crate::vcenter::{Placement, VcenterError};

/// What the steps need at one site.
#[derive(Debug)]
pub struct Target {
    pub site: Site,
    pub clients: SiteClients,
    /// The site's placement (datacenter, folder, resource pool, datastore) as morefs, resolved
    /// from its inventory when apply starts.
    pub placement: Placement,
}

impl Target {
    pub fn new(site: Site, clients: SiteClients, placement: Placement) -> Target {
        Target { site, clients, placement }
    }
}

/// One lock per vCenter, held while a step finds or creates golden's library there, so that
/// steps running at once (at any of the vCenter's sites) never create it twice.
#[derive(Debug, Default)]
pub struct LibraryLocks(std::sync::Mutex<BTreeMap<VcenterId, Arc<tokio::sync::Mutex<()>>>>);

impl LibraryLocks {
    pub async fn lock(&self, vcenter: &VcenterId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.0.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(vcenter.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

/// How long to wait for the slow things before a step gives up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// A vCenter task (snapshot, deploy).
    pub task: Duration,
    /// A library sync or file transfer between sites.
    pub replication: Duration,
    /// A Horizon push or farm maintenance, from scheduling to the new image being current.
    pub push: Duration,
    /// The longest pause between two looks while waiting (the first looks come sooner).
    pub poll: Duration,
    /// How long a guest may take to shut down before its VM is powered off (to delete it).
    pub guest_shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            task: crate::vcenter::TASK_TIMEOUT,
            replication: Duration::from_secs(4 * 60 * 60),
            push: Duration::from_secs(8 * 60 * 60),
            poll: Duration::from_secs(5),
            guest_shutdown: Duration::from_secs(5 * 60),
        }
    }
}

/// Everything a run of apply works with.
#[derive(Debug)]
pub struct Context {
    pub desired: DesiredState,
    pub targets: BTreeMap<SiteName, Target>,
    pub timeouts: Timeouts,
    pub libraries: LibraryLocks,
}

/// Receives what a running step reports; the terminal display and the journal subscribe.
pub trait Progress: Send + Sync {
    /// A sentence about what the step is doing now ("waiting for the library sync").
    fn note(&self, step: &StepId, message: &str);
    /// Progress of the step, 0 to 100, when it is known (a Horizon publish).
    fn percent(&self, step: &StepId, percent: u8);
}

/// How a step ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The step did its work; the text says what it made.
    Done(String),
    /// Nothing was needed: the live state already was as the step wants it.
    AlreadyDone(String),
    /// The step did its part and Horizon carries out the rest at a time ahead: a push with a
    /// start time, its image published and waiting. Not done: the steps that depend on it (the
    /// later waves, the retirement of the image it replaces) wait for the next apply after
    /// `at`, the start time in UTC as people read it (`2026-12-03 02:00 UTC`).
    Scheduled { message: String, at: String },
}

/// The apply did not finish: some steps failed or were skipped (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error(
    "apply did not finish: {} failed, {skipped} skipped; plan again to see what is left",
    crate::plan::render::count(*.failed, "step", "steps")
)]
pub struct ApplyFailed {
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Vcenter(#[from] VcenterError),
    #[error(transparent)]
    Horizon(#[from] HorizonError),
    #[error("timed out after {}s waiting for {what}", timeout.as_secs())]
    Timeout { what: String, timeout: Duration },
    #[error("{0}")]
    Failed(String),
    #[error("site `{0}` is not part of this apply")]
    UnknownSite(SiteName),
}
