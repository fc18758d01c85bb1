//! Push: move a pool (schedule-push-image) or farm (immediate maintenance) to the base VM and
//! snapshot of a version at its site, and follow Horizon until the new image is current.

use super::{PushTarget, StepRun, is_version};
use crate::apply::{Outcome, StepError, Target};
use crate::desired::PoolKind;
use crate::horizon::PushSpec;
use crate::live::{ImageRef, LivePool, PendingState};

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
        let wanted = inventory
            .vms_in(&target.placement.datacenter)
            .filter(|v| is_version(v.meta.as_ref(), image, version))
            .find_map(|v| v.snapshots.last().map(|s| ImageRef { vm: v.id.clone(), snapshot: s.id.clone() }))
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
            let now = match kind {
                PoolKind::DesktopPool => hz.desktop_pool(&pool.id).await?,
                PoolKind::Farm => hz.farm(&pool.id).await?,
            };
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
