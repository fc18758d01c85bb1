//! Push: move a pool (schedule-push-image) or farm (immediate maintenance) to the base VM and
//! snapshot of a version at its site, and follow Horizon until the new image is current.

use super::{PushTarget, StepRun, is_version};
use crate::apply::{Outcome, StepError, Target};
use crate::desired::PoolKind;
use crate::horizon::{HorizonClient, HorizonError, PushSpec};
use crate::live::{ImageRef, LivePool, Operation, PendingState};

/// Polls in a row that may show no pending image right after a push was accepted, before
/// golden concludes the push vanished (cancelled, or replaced by an admin).
const PUSH_GRACE_POLLS: u32 = 3;

impl StepRun<'_> {
    pub(super) async fn push(&self, push: &PushTarget<'_>) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let (vc, hz) = (&target.clients.vcenter, &target.clients.horizon);
        let (image, version, kind, name) = (push.image, push.version, push.kind, push.horizon_name);
        let (pools, inventory) = tokio::join!(hz.pools(), vc.inventory());
        let pool = pools?
            .into_iter()
            .find(|p| &p.name == name && p.kind == kind)
            .ok_or_else(|| self.failed(format!("horizon has no {kind} named `{name}`")))?;
        if !pool.instant_clone {
            return Err(self.failed(format!(
                "{kind} `{name}` is not an automated instant-clone {kind}; golden can only push images to those"
            )));
        }
        let inventory = inventory?;
        // The snapshot golden took for the version, not whatever was taken after it.
        let wanted = inventory
            .vms_in(&target.placement.datacenter)
            .filter(|v| is_version(v.meta.as_ref(), image, version))
            .find_map(|v| {
                v.base_snapshot(version).map(|s| ImageRef { vm: v.id.clone(), snapshot: s.id.clone() })
            })
            .ok_or_else(|| {
                self.failed(format!(
                    "no base vm with a snapshot of {image}@{version} in this site's datacenter"
                ))
            })?;
        let image_text = format!("{image}@{version} ({} @ {})", wanted.vm, wanted.snapshot);

        if pool.current.as_ref() == Some(&wanted) {
            return Ok(Outcome::AlreadyDone(format!("{kind} `{name}` runs {image_text}")));
        }
        let underway = pool.pending.as_ref().is_some_and(|p| {
            p.image == wanted && !matches!(p.state, PendingState::Failed | PendingState::Unpublishing)
        });
        if underway {
            self.note(&format!("horizon is already moving {kind} `{name}` to {image_text}; waiting"));
        } else {
            let pool = self.ready_for_push(target, &pool).await?;
            self.check_snapshot(target, &pool, &wanted, &image_text).await?;
            let spec = PushSpec {
                image: wanted.clone(),
                logoff: push.logoff,
                start_time_ms: None,
                stop_on_first_error: true,
            };
            match kind {
                PoolKind::DesktopPool => hz.push_image(&pool.id, &spec).await?,
                PoolKind::Farm => hz.schedule_maintenance(&pool.id, &spec).await?,
            }
            self.note(&format!("pushed {image_text} to {kind} `{name}`; waiting for horizon"));
        }
        self.follow_push(target, &pool, &wanted, &image_text).await
    }

    /// Makes sure Horizon will take a push: provisioning on, a pending image whose publish
    /// failed cancelled, and no other operation under way (waited for, within the push
    /// timeout). Returns the pool as it is then.
    async fn ready_for_push(&self, target: &Target, pool: &LivePool) -> Result<LivePool, StepError> {
        let hz = &target.clients.horizon;
        let (kind, name) = (pool.kind, &pool.name);
        if !pool.provisioning {
            return Err(self.failed(format!(
                "provisioning is disabled on {kind} `{name}`, so Horizon would never move it to a new image; enable provisioning on it in Horizon, then run apply again"
            )));
        }
        if let Some(failed) = pool.pending.as_ref().filter(|p| p.state == PendingState::Failed) {
            let error = failed.error.as_deref().unwrap_or("no message");
            self.note(&format!(
                "cancelling the failed pending image ({} @ {}) of {kind} `{name}` first: {error}",
                failed.image.vm, failed.image.snapshot
            ));
            match kind {
                PoolKind::DesktopPool => hz.cancel_push(&pool.id).await?,
                PoolKind::Farm => hz.cancel_maintenance(&pool.id).await?,
            }
        }
        let limit = self.ctx.timeouts.push;
        let waiting = self.waiting(limit);
        loop {
            let now = reread(hz, pool).await?;
            if now.operation == Operation::None {
                return Ok(now);
            }
            self.note(&format!(
                "horizon has another operation under way on {kind} `{name}` ({:?}); waiting for it to end",
                now.operation
            ));
            self.wait(&waiting, limit, &format!("the operation under way on {kind} `{name}`")).await?;
        }
    }

    /// Refuses a snapshot Horizon says it cannot use (`incompatible_reasons` of
    /// `/external/v1/base-snapshots`: a powered-on snapshot, hardware too old), so the push
    /// fails here with the reason rather than later in Horizon's publish.
    async fn check_snapshot(
        &self,
        target: &Target,
        pool: &LivePool,
        wanted: &ImageRef,
        image_text: &str,
    ) -> Result<(), StepError> {
        let hz = &target.clients.horizon;
        let vcenter = match &pool.vcenter {
            Some(id) => id.clone(),
            None => {
                match hz.virtual_centers().await?.as_slice() {
                    [only] => only.id.clone(),
                    _ => {
                        self.note("horizon does not say which vcenter the pool uses; not checking the snapshot first");
                        return Ok(());
                    }
                }
            }
        };
        let snapshots = hz.base_snapshots(&vcenter, &wanted.vm).await?;
        let Some(snapshot) = snapshots.iter().find(|s| s.id == wanted.snapshot) else {
            return Err(self.failed(format!(
                "horizon does not list snapshot {} of base vm {} ({image_text}); check that the vm is in the vcenter horizon uses",
                wanted.snapshot, wanted.vm
            )));
        };
        if !snapshot.incompatible_reasons.is_empty() {
            return Err(self.failed(format!(
                "horizon cannot use snapshot `{}` of {image_text}: {}; take the snapshot again with the vm powered off and a supported hardware version",
                snapshot.name,
                snapshot.incompatible_reasons.join(", ")
            )));
        }
        Ok(())
    }

    /// Polls the pool until the wanted image is current, or Horizon reports its failure.
    async fn follow_push(
        &self,
        target: &Target,
        pool: &LivePool,
        wanted: &ImageRef,
        image_text: &str,
    ) -> Result<Outcome, StepError> {
        let hz = &target.clients.horizon;
        let (kind, name) = (pool.kind, &pool.name);
        let limit = self.ctx.timeouts.push;
        let waiting = self.waiting(limit);
        let mut missing = 0;
        let mut last_percent = None;
        loop {
            let now = reread(hz, pool).await?;
            if now.current.as_ref() == Some(wanted) {
                self.progress.percent(self.id(), 100);
                return Ok(Outcome::Done(format!("{kind} `{name}` runs {image_text}")));
            }
            match &now.pending {
                Some(p) if &p.image == wanted => match p.state {
                    PendingState::Failed | PendingState::Unpublishing => {
                        let error = p.error.as_deref().or(now.last_error.as_deref()).unwrap_or("no message");
                        return Err(self.failed(format!(
                            "horizon failed to push {image_text} to {kind} `{name}`: {error}"
                        )));
                    }
                    PendingState::PendingPublish
                    | PendingState::Publishing
                    | PendingState::Ready
                    | PendingState::ReadyHeld => {
                        missing = 0;
                        if let Some(percent) = p.progress {
                            if last_percent != Some(percent) {
                                self.progress.percent(self.id(), percent);
                                last_percent = Some(percent);
                            }
                        }
                    }
                },
                Some(p) => {
                    return Err(self.failed(format!(
                        "{kind} `{name}` is now being moved to another image ({} @ {}), not {image_text}",
                        p.image.vm, p.image.snapshot
                    )));
                }
                None => {
                    missing += 1;
                    if missing > PUSH_GRACE_POLLS {
                        return Err(self.failed(format!(
                            "the push of {image_text} to {kind} `{name}` vanished before it finished (cancelled in horizon?)"
                        )));
                    }
                }
            }
            self.wait(&waiting, limit, &format!("{kind} `{name}` to run {image_text}")).await?;
        }
    }
}

/// The pool (or farm) as Horizon shows it now.
async fn reread(hz: &HorizonClient, pool: &LivePool) -> Result<LivePool, HorizonError> {
    match pool.kind {
        PoolKind::DesktopPool => hz.desktop_pool(&pool.id).await,
        PoolKind::Farm => hz.farm(&pool.id).await,
    }
}
