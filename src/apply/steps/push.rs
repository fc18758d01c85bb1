//! Push: move a pool (schedule-push-image) or farm (immediate maintenance) to the base VM and
//! snapshot of a version at its site, and follow Horizon until the new image is current.
//!
//! **A start time** (the step's `start_time`, epoch ms) goes to Horizon as the push's
//! `start_time` (a farm maintenance's `next_scheduled_time`: an `IMMEDIATE` maintenance runs
//! then, or at once when it is past). Horizon publishes the image at once and holds it as
//! pending `READY` until then; the step waits only for that publish (or its failure) and ends
//! as [`Outcome::Scheduled`], which the executor does not count as done: the later waves wait
//! for the next apply after the start time, whose plan follows the push to its end.
//!
//! **A canary** (`canary = N` on a desktop pool) uses Horizon's selective push (2206 and later):
//! `/inventory/v2/.../schedule-push-image` with `selective_push_image` and the `machine_ids` of
//! N machines, picked by name among those without a session first (then those `AVAILABLE`).
//! Horizon publishes the image, holds it (`READY_HELD`) and recreates only those machines;
//! once each is `AVAILABLE` on the new image (`managed_machine_data.base_vm_id` and
//! `base_vm_snapshot_id` of `/inventory/v2/machines`), `promote-pending-image` gives it to the
//! rest of the pool and the push is followed to its end as any other. A canary machine in
//! `PROVISIONING_ERROR` or `ERROR`, or whose operation is `FAULT`, fails the step, naming the
//! machines and Horizon's error, after cancelling the held image with
//! `cancel-scheduled-push-image`: the reference says a held image stays "unless it is promoted
//! or cancelled" without naming the call for a held one, so golden sends that one, and the lab
//! accepts it for a held image. The pool keeps its image; the later waves are skipped. A
//! server older than 2206 fails the step before anything is sent; a farm with a canary too
//! (Horizon's selective maintenance of farms is not what golden drives).
//!
//! **A lost answer**: a push is sent once (Horizon might act on it twice). When its answer
//! never comes (the connection dropped, maybe after Horizon took it), the pool is read again:
//! showing the image current or pending, the push landed and is followed; otherwise the step
//! fails as before, and the next apply sees whether it landed late.

use super::{PushTarget, StepRun, is_version};
use crate::apply::{Outcome, StepError, Target};
use crate::desired::PoolKind;
use crate::horizon::{HorizonClient, HorizonError, HorizonVersion, Machine, PushSpec};
use crate::ids::VersionRef;
use crate::live::{ImageRef, LivePool, Operation, PendingState};
use crate::plan::render::time;

/// Polls in a row that may show no pending image right after a push was accepted, before
/// golden concludes the push vanished (cancelled, or replaced by an admin).
const PUSH_GRACE_POLLS: u32 = 3;

impl StepRun<'_> {
    pub(super) async fn push(&self, push: &PushTarget<'_>) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let (vc, hz) = (&target.clients.vcenter, &target.clients.horizon);
        let (image, version, kind, name) = (push.image, push.version, push.kind, push.horizon_name);
        let version_ref = VersionRef::new(image, version);
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
        if let (PoolKind::Farm, Some(n)) = (kind, push.canary) {
            return Err(self.failed(format!(
                "farm `{name}` has `canary = {n}`, but golden pushes canaries to desktop pools only (a farm's maintenance replaces all its RDS servers); remove canary from the farm"
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
                self.failed(format!("no base vm with a snapshot of {version_ref} in this site's datacenter"))
            })?;
        let image_text = format!("{version_ref} ({} @ {})", wanted.vm, wanted.snapshot);

        if pool.current.as_ref() == Some(&wanted) {
            return Ok(Outcome::AlreadyDone(format!("{kind} `{name}` runs {image_text}")));
        }
        if pending(&pool, &wanted) {
            self.note(&format!("horizon is already moving {kind} `{name}` to {image_text}; waiting"));
        } else {
            if let (PoolKind::DesktopPool, Some(n)) = (kind, push.canary) {
                self.canaries_supported(target, &pool, n).await?;
            }
            let pool = self.ready_for_push(target, &pool).await?;
            self.check_snapshot(target, &pool, &wanted, &image_text).await?;
            let spec = PushSpec {
                image: wanted.clone(),
                logoff: push.logoff,
                start_time_ms: push.start_time,
                stop_on_first_error: true,
            };
            let when = match push.start_time {
                Some(at) if at > now_ms() => format!(", to start at {}", time(at)),
                _ => String::new(),
            };
            let pushed =
                || self.note(&format!("pushed {image_text} to {kind} `{name}`{when}; waiting for horizon"));
            let sent = match (kind, push.canary) {
                (PoolKind::DesktopPool, Some(n)) => {
                    self.send_canary(target, &pool, &spec, n, &image_text).await
                }
                (PoolKind::DesktopPool, None) => {
                    hz.push_image(&pool.id, &spec).await.map(|()| pushed()).map_err(StepError::from)
                }
                (PoolKind::Farm, _) => {
                    hz.schedule_maintenance(&pool.id, &spec).await.map(|()| pushed()).map_err(StepError::from)
                }
            };
            if let Err(error) = sent {
                self.landed_anyway(hz, &pool, &wanted, &image_text, error).await?;
            }
        }
        self.follow_push(target, &pool, &wanted, &image_text).await
    }

    /// After a push (or maintenance) whose answer never came, whether Horizon has it anyway:
    /// the connection may have closed after the server took the request. The pool is read
    /// again; showing the image as current or as a pending image that has not failed, the push
    /// landed and is followed as any other. Otherwise the step fails with `error`, as before:
    /// the request may yet land, or not at all, and golden never sends a write twice; the
    /// next apply sees which.
    async fn landed_anyway(
        &self,
        hz: &HorizonClient,
        pool: &LivePool,
        wanted: &ImageRef,
        image_text: &str,
        error: StepError,
    ) -> Result<(), StepError> {
        if !matches!(error, StepError::Horizon(HorizonError::Transport { .. })) {
            return Err(error);
        }
        let Ok(now) = reread(hz, pool).await else { return Err(error) };
        if now.current.as_ref() != Some(wanted) && !pending(&now, wanted) {
            return Err(error);
        }
        self.note(&format!(
            "no answer came to the push of {image_text} to {} `{}`, but horizon has it; waiting for horizon",
            pool.kind, pool.name
        ));
        Ok(())
    }

    /// Fails on a connection server older than 2206, which has no selective push: before
    /// anything is sent to the pool.
    async fn canaries_supported(&self, target: &Target, pool: &LivePool, n: u32) -> Result<(), StepError> {
        let hz = &target.clients.horizon;
        match hz.version().await? {
            Some(version) if version < HorizonVersion::SELECTIVE_PUSH => Err(self.failed(format!(
                "desktop pool `{}` has `canary = {n}`, but the connection server runs horizon {version}, which has no selective push image (added in horizon {}); remove canary or upgrade the connection servers",
                pool.name,
                HorizonVersion::SELECTIVE_PUSH
            ))),
            _ => Ok(()),
        }
    }

    /// Sends a canary push: the image to `n` machines of the pool first (see the module
    /// documentation). A pool without machines gets the push whole: there is nothing to try
    /// it on, and nothing to break.
    async fn send_canary(
        &self,
        target: &Target,
        pool: &LivePool,
        spec: &PushSpec,
        n: u32,
        image_text: &str,
    ) -> Result<(), StepError> {
        let hz = &target.clients.horizon;
        let name = &pool.name;
        let machines = hz.machines(&pool.id).await?;
        if machines.is_empty() {
            hz.push_image(&pool.id, spec).await?;
            self.note(&format!(
                "desktop pool `{name}` has no machines to push to first; pushed {image_text} to the whole pool; waiting for horizon"
            ));
            return Ok(());
        }
        // Machines nobody uses first, then ready ones, then by name: deterministic, and the
        // fewest users disturbed.
        let mut order: Vec<&Machine> = machines.iter().collect();
        order.sort_by(|a, b| {
            (a.has_session, a.state != "AVAILABLE", &a.name).cmp(&(
                b.has_session,
                b.state != "AVAILABLE",
                &b.name,
            ))
        });
        order.truncate(n.max(1) as usize);
        let ids: Vec<_> = order.iter().map(|m| m.id.clone()).collect();
        hz.push_image_selective(&pool.id, spec, &ids).await?;
        let names: Vec<String> = order.iter().map(|m| format!("`{}`", m.name)).collect();
        self.note(&format!(
            "pushed {image_text} to {} of desktop pool `{name}` first ({}); the rest follow once they run it",
            crate::plan::render::count(order.len(), "canary machine", "canary machines"),
            names.join(", ")
        ));
        Ok(())
    }

    /// One look at the canary machines of a held image: failed ones fail the step (after the
    /// held image is cancelled), all of them ready promotes the image to the whole pool, a
    /// start time ahead ends the step as scheduled; otherwise they are waited for.
    async fn canaries(
        &self,
        target: &Target,
        pool: &LivePool,
        wanted: &ImageRef,
        image_text: &str,
        start_time: Option<i64>,
        last_note: &mut Option<String>,
    ) -> Result<Canaries, StepError> {
        let hz = &target.clients.horizon;
        let name = &pool.name;
        let machines = hz.machines(&pool.id).await?;
        // The machines the held image is for: marked with it as their pending image, or made
        // from it already.
        let canaries: Vec<&Machine> = machines
            .iter()
            .filter(|m| m.pending.as_ref() == Some(wanted) || m.image.as_ref() == Some(wanted))
            .collect();
        let failures: Vec<String> = canaries.iter().filter_map(|m| m.failure()).collect();
        if !failures.is_empty() {
            let current = pool.current.as_ref().map_or_else(
                || "its current image".to_owned(),
                |c| format!("its current image ({} @ {})", c.vm, c.snapshot),
            );
            let after = match hz.cancel_push(&pool.id).await {
                Ok(()) => format!("the held image was cancelled, and desktop pool `{name}` keeps {current}"),
                Err(e) => format!("cancelling the held image failed too ({e}): cancel it in horizon"),
            };
            return Err(self.failed(format!(
                "canary machines of desktop pool `{name}` failed on {image_text}: {}; {after}; the later waves are not pushed. Fix the image (a new version for the marker) or what made the machines fail, then run apply again",
                failures.join(", ")
            )));
        }
        let names = || canaries.iter().map(|m| format!("`{}`", m.name)).collect::<Vec<_>>().join(", ");
        let ready = canaries.iter().filter(|m| m.ready_on(wanted)).count();
        if !canaries.is_empty() && ready == canaries.len() {
            hz.promote_pending_image(&pool.id).await?;
            self.note(&format!(
                "canary machines {} run {image_text}; promoted it to the rest of desktop pool `{name}`",
                names()
            ));
            return Ok(Canaries::Promoted);
        }
        if let Some(at) = start_time.filter(|t| *t > now_ms()) {
            let message = format!(
                "desktop pool `{name}`: {image_text} is published and held for its canary machines ({}), which horizon recreates at {}; apply again after that to promote it to the whole pool",
                names(),
                time(at)
            );
            return Ok(Canaries::Scheduled(Outcome::Scheduled { message, at: time(at) }));
        }
        let text = format!(
            "waiting for the canary machines of desktop pool `{name}` to run {image_text}: {ready} of {} ready",
            canaries.len()
        );
        if last_note.as_deref() != Some(text.as_str()) {
            self.note(&text);
            *last_note = Some(text);
        }
        Ok(Canaries::Waiting)
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
        let mut canary_note = None;
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
                    PendingState::ReadyHeld => {
                        missing = 0;
                        let look = self
                            .canaries(target, &now, wanted, image_text, p.start_time, &mut canary_note)
                            .await?;
                        match look {
                            Canaries::Scheduled(outcome) => return Ok(outcome),
                            Canaries::Promoted | Canaries::Waiting => {}
                        }
                    }
                    // Published, and held by Horizon until its start time: the push is
                    // scheduled; the rest is Horizon's.
                    PendingState::Ready if p.start_time.is_some_and(|t| t > now_ms()) => {
                        self.progress.percent(self.id(), 100);
                        let at = time(p.start_time.unwrap_or_default());
                        let message = format!(
                            "{kind} `{name}`: {image_text} is published, and horizon replaces the machines at {at}"
                        );
                        return Ok(Outcome::Scheduled { message, at });
                    }
                    PendingState::PendingPublish | PendingState::Publishing | PendingState::Ready => {
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

/// What a look at the canary machines found.
enum Canaries {
    /// Not all of them run the image yet.
    Waiting,
    /// All do: the image was promoted to the whole pool.
    Promoted,
    /// They are recreated at a start time ahead.
    Scheduled(Outcome),
}

/// Now, in epoch milliseconds (Horizon's time unit).
fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Whether Horizon is moving `pool` to `wanted`: its pending image, not failed.
fn pending(pool: &LivePool, wanted: &ImageRef) -> bool {
    pool.pending.as_ref().is_some_and(|p| {
        &p.image == wanted && !matches!(p.state, PendingState::Failed | PendingState::Unpublishing)
    })
}

/// The pool (or farm) as Horizon shows it now.
async fn reread(hz: &HorizonClient, pool: &LivePool) -> Result<LivePool, HorizonError> {
    match pool.kind {
        PoolKind::DesktopPool => hz.desktop_pool(&pool.id).await,
        PoolKind::Farm => hz.farm(&pool.id).await,
    }
}
