//! The steps, each "make it so" against one site.
//!
//! Every step looks at the live objects first and adopts what it finds: an item or VM that
//! already carries golden's metadata for the version is the work done (or half done, and then
//! finished), a push Horizon is already running towards the version is waited for, never
//! started twice. Nothing is created before golden's metadata can be written on it at once or
//! right after (a deployed VM is tagged before it is snapshotted), so a re-run after a crash
//! finds and adopts it. Nothing without golden's metadata is ever changed or deleted, except a
//! `library_item` source, which publishing adopts by writing the metadata on it, and the VM an
//! adopted version's pools already run, which the `adopt` step tags.
//!
//! Image bytes never pass through golden: replication is a subscription sync, or a PULL that
//! the target vCenter runs against the source's download endpoint.
//!
//! One file per step kind: [`publish`], [`replicate`], [`adopt`], [`deploy`], [`push`],
//! [`retire`]; this
//! module holds what they share (the step being run, waits, ownership checks).

mod adopt;
mod deploy;
mod publish;
mod push;
mod replicate;
mod retire;

use std::time::Duration;

use crate::connect::fan_out;

use super::{Context, Outcome, Progress, StepError, Target};
use crate::desired::{Logoff, PoolKind};
use crate::ids::{HorizonName, ImageName, SiteName, VersionName, VersionRef};
use crate::live::{GoldenMeta, LibraryId, LibraryItem};
use crate::plan::{Action, Step, StepId};
use crate::vcenter::{VcenterClient, VcenterError};
use crate::wait::Waiting;

/// Runs one step. Safe to repeat: a step that finds its work done reports `AlreadyDone`.
pub async fn run_step(ctx: &Context, step: &Step, progress: &dyn Progress) -> Result<Outcome, StepError> {
    let run = StepRun { ctx, step, progress };
    match &step.action {
        Action::Publish { image, version, source } => run.publish(image, version, source).await,
        Action::Replicate { image, version, from } => run.replicate(image, version, from).await,
        Action::Deploy { image, version } => run.deploy(image, version).await,
        Action::Adopt { image, version, vm, snapshot } => run.adopt(image, version, vm, snapshot).await,
        Action::Push { horizon_name, pool_kind, image, version, logoff, start_time, canary, .. } => {
            let spec = PushTarget {
                horizon_name,
                kind: *pool_kind,
                image,
                version,
                logoff: *logoff,
                start_time: *start_time,
                canary: *canary,
            };
            run.push(&spec).await
        }
        Action::Retire { image, version, items, vms } => run.retire(image, version, items, vms).await,
    }
}

/// One step being run: what every part of it needs.
struct StepRun<'a> {
    ctx: &'a Context,
    step: &'a Step,
    progress: &'a dyn Progress,
}

struct PushTarget<'a> {
    horizon_name: &'a HorizonName,
    kind: PoolKind,
    image: &'a ImageName,
    version: &'a VersionName,
    logoff: Logoff,
    /// When Horizon may start replacing machines (epoch ms); `None`: at once.
    start_time: Option<i64>,
    /// Machines to push to first, the rest once they run the image.
    canary: Option<u32>,
}

/// True when `meta` names this image and version.
fn is_version(meta: Option<&GoldenMeta>, image: &ImageName, version: &VersionName) -> bool {
    meta.is_some_and(|m| &m.image == image && &m.version == version)
}

/// The name of a version's library item, at every site.
fn item_name(image: &ImageName, version: &VersionName) -> String {
    format!("{image}-{version}")
}

impl StepRun<'_> {
    fn id(&self) -> &StepId {
        &self.step.id
    }

    fn note(&self, message: &str) {
        self.progress.note(self.id(), message);
    }

    fn target(&self, site: &SiteName) -> Result<&Target, StepError> {
        self.ctx.targets.get(site).ok_or_else(|| StepError::UnknownSite(site.clone()))
    }

    /// A failure naming the step and its site.
    fn failed(&self, message: impl std::fmt::Display) -> StepError {
        StepError::Failed(format!("step {} at site `{}`: {message}", self.step.id, self.step.site))
    }

    /// golden's metadata for a version, from the desired state.
    fn meta(&self, image: &ImageName, version: &VersionName) -> Result<GoldenMeta, StepError> {
        let source = self
            .ctx
            .desired
            .images
            .get(image)
            .and_then(|i| i.versions.get(version))
            .map(|v| v.source.identity())
            .ok_or_else(|| {
                self.failed(format!("{} is not in the repository", VersionRef::new(image, version)))
            })?;
        Ok(GoldenMeta { image: image.clone(), version: version.clone(), source })
    }

    /// A wait of this step for something slow, giving up after `limit`.
    fn waiting(&self, limit: Duration) -> Waiting {
        Waiting::new(limit, self.ctx.timeouts.poll)
    }

    /// Pauses before the next look of `waiting`; a timeout naming `what` once its limit is
    /// reached.
    async fn wait(&self, waiting: &Waiting, limit: Duration, what: &str) -> Result<(), StepError> {
        if waiting.next().await {
            return Ok(());
        }
        Err(StepError::Timeout {
            what: format!("{what} (step {}, site `{}`)", self.step.id, self.step.site),
            timeout: limit,
        })
    }

    /// Runs one vCenter task under `timeouts.task`. A task given up on may still finish in
    /// vCenter; what it makes must be adoptable by the next run (a snapshot of a tagged VM).
    async fn within_task<T>(
        &self,
        what: &str,
        task: impl std::future::Future<Output = Result<T, VcenterError>>,
    ) -> Result<T, StepError> {
        let limit = self.ctx.timeouts.task;
        match tokio::time::timeout(limit, task).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StepError::Timeout {
                what: format!("{what} (step {}, site `{}`)", self.step.id, self.step.site),
                timeout: limit,
            }),
        }
    }
}

/// The item of `library` that carries golden's metadata for the version.
async fn find_version_item(
    vc: &VcenterClient,
    library: &LibraryId,
    image: &ImageName,
    version: &VersionName,
) -> Result<Option<LibraryItem>, VcenterError> {
    let ids = vc.list_items(library).await?;
    let mut found = None;
    for item in fan_out(ids.iter().map(|id| vc.get_item(id))).await {
        let item = match item {
            Ok(item) => item,
            // Deleted between the list and the read.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if is_version(item.meta.as_ref(), image, version) {
            found.get_or_insert(item);
        }
    }
    Ok(found)
}
