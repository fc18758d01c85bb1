//! The steps, each "make it so" against one site.
//!
//! Every step looks at the live objects first and adopts what it finds: an item or VM that
//! already carries golden's metadata for the version is the work done (or half done, and then
//! finished), a push Horizon is already running towards the version is waited for, never
//! started twice. Nothing is created before golden's metadata can be written on it at once or
//! right after (a deployed VM is tagged before it is snapshotted), so a re-run after a crash
//! finds and adopts it. Nothing without golden's metadata is ever changed or deleted, except a
//! `library_item` source, which publishing adopts by writing the metadata on it.
//!
//! Image bytes never pass through golden: replication is a subscription sync, or a PULL that
//! the target vCenter runs against the source's download endpoint.

use std::time::{Duration, Instant};

use futures::future::join_all;

use super::{Context, Outcome, Progress, StepError, Target};
use crate::desired::{Logoff, PoolKind, Source};
use crate::horizon::PushSpec;
use crate::ids::{ImageName, SiteName, VersionName};
use crate::live::{
    GoldenMeta, ImageRef, ItemId, ItemRef, Library, LibraryId, LibraryItem, LibraryKind, LivePool, Moref,
    PendingState, Vm,
};
use crate::plan::{Action, Step, StepId};
use crate::vcenter::{VcenterClient, VcenterError};

/// Polls in a row that may show no pending image right after a push was accepted, before
/// golden concludes the push vanished (cancelled, or replaced by an admin).
const PUSH_GRACE_POLLS: u32 = 3;

/// Runs one step. Safe to repeat: a step that finds its work done reports `AlreadyDone`.
pub async fn run_step(ctx: &Context, step: &Step, progress: &dyn Progress) -> Result<Outcome, StepError> {
    let run = StepRun { ctx, step, progress };
    match &step.action {
        Action::Publish { image, version, source } => run.publish(image, version, source).await,
        Action::Replicate { image, version, from } => run.replicate(image, version, from).await,
        Action::Deploy { image, version } => run.deploy(image, version).await,
        Action::Push { horizon_name, pool_kind, image, version, logoff, .. } => {
            let spec = PushTarget { horizon_name, kind: *pool_kind, image, version, logoff: *logoff };
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
    horizon_name: &'a str,
    kind: PoolKind,
    image: &'a ImageName,
    version: &'a VersionName,
    logoff: Logoff,
}

/// True when `meta` names this image and version.
fn is_version(meta: Option<&GoldenMeta>, image: &ImageName, version: &VersionName) -> bool {
    meta.is_some_and(|m| &m.image == image && &m.version == version)
}

/// The name of a version's library item, at every site.
fn item_name(image: &ImageName, version: &VersionName) -> String {
    format!("{image}-{version}")
}

/// vCenter's answer to deleting an item of a subscribed library.
fn is_subscribed_item_refusal(e: &VcenterError) -> bool {
    matches!(e, VcenterError::Http { status: 400, kind: Some(k), .. } if k.ends_with("invalid_element_type"))
}

fn is_not_found(e: &VcenterError) -> bool {
    matches!(e, VcenterError::Http { status: 404, .. } | VcenterError::NotFound { .. })
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
            .ok_or_else(|| self.failed(format!("{image}@{version} is not in the repository")))?;
        Ok(GoldenMeta { image: image.clone(), version: version.clone(), source })
    }

    async fn wait(&self, started: Instant, limit: Duration, what: &str) -> Result<(), StepError> {
        if started.elapsed() >= limit {
            return Err(StepError::Timeout {
                what: format!("{what} (step {}, site `{}`)", self.step.id, self.step.site),
                timeout: limit,
            });
        }
        // Look again soon at first, then less often: quick operations finish quickly, and a
        // long wait does not flood the server.
        let elapsed = started.elapsed();
        let poll = self.ctx.timeouts.poll;
        let interval = (elapsed / 4).min(poll).max(poll.min(Duration::from_millis(50)));
        tokio::time::sleep(interval).await;
        Ok(())
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

    // ---- publish -----------------------------------------------------------------------------

    async fn publish(
        &self,
        image: &ImageName,
        version: &VersionName,
        source: &Source,
    ) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let vc = &target.clients.vcenter;
        let meta = GoldenMeta { image: image.clone(), version: version.clone(), source: source.identity() };
        let library = self.ensure_published_library(target).await?;

        if let Some(item) = find_version_item(vc, &library.id, image, version).await? {
            let published = item.meta.as_ref().map(|m| m.source.as_str()).unwrap_or_default();
            if published != meta.source {
                return Err(self.failed(format!(
                    "{image}@{version} is already published from `{published}` (item {}), not from `{}`",
                    item.id, meta.source
                )));
            }
            return Ok(Outcome::AlreadyDone(format!("{image}@{version} is published as item {}", item.id)));
        }

        match source {
            Source::Vm { vm, snapshot } => {
                let inventory = vc.inventory().await?;
                let candidates: Vec<&Vm> = inventory
                    .vms_in(&target.placement.datacenter)
                    .filter(|v| &v.name == vm && v.meta.is_none())
                    .collect();
                let found = match candidates.as_slice() {
                    [one] => *one,
                    [] => return Err(self.failed(format!("no vm named `{vm}` to capture"))),
                    many => {
                        return Err(
                            self.failed(format!("{} vms are named `{vm}`; rename all but one", many.len()))
                        );
                    }
                };
                if let Some(s) = snapshot {
                    if !found.snapshots.iter().any(|x| &x.name == s) {
                        return Err(self.failed(format!("vm `{vm}` has no snapshot named `{s}`")));
                    }
                }
                let name = item_name(image, version);
                if let Some(other) = vc.find_item(&library.id, &name).await? {
                    return Err(self.failed(format!(
                        "library `{}` already holds an item named `{name}` ({}) that golden does not own",
                        library.name, other.id
                    )));
                }
                // The OVF export captures the VM's current state: the API cannot export at a
                // snapshot. The snapshot is part of the source identity recorded in the item,
                // so the build pipeline must leave the VM at (reverted to) that snapshot.
                self.note(&format!("capturing vm `{vm}` as item `{name}` in library `{}`", library.name));
                let id = vc.create_ovf_from_vm(&library.id, &found.id, &name, &meta).await?;
                Ok(Outcome::Done(format!("captured vm `{vm}` as item `{name}` ({id})")))
            }
            Source::LibraryItem { name } => {
                let Some(item) = vc.find_item(&library.id, name).await? else {
                    return Err(self.failed(format!("no item named `{name}` in library `{}`", library.name)));
                };
                if let Some(other) = &item.meta {
                    return Err(self.failed(format!(
                        "item `{name}` ({}) already holds {}@{}; a library item is one version",
                        item.id, other.image, other.version
                    )));
                }
                self.note(&format!("adopting item `{name}` ({}) as {image}@{version}", item.id));
                vc.set_item_meta(&item.id, &meta).await?;
                Ok(Outcome::Done(format!("adopted item `{name}` ({}) as {image}@{version}", item.id)))
            }
        }
    }

    /// The source library, created published on the site's datastore when missing.
    async fn ensure_published_library(&self, target: &Target) -> Result<Library, StepError> {
        let vc = &target.clients.vcenter;
        let _creating = self.ctx.libraries.lock(&vc.instance_uuid().await?).await;
        let name = &self.ctx.desired.settings.library;
        let library = match vc.find_library(name).await? {
            Some(library) => library,
            None => {
                self.note(&format!("creating published library `{name}`"));
                let id = vc.create_published_library(name, &target.placement.datastore).await?;
                // Another run may have created it first: go by what it is.
                vc.get_library(&id).await?
            }
        };
        if let LibraryKind::Subscribed { subscription_url, .. } = &library.kind {
            return Err(self.failed(format!(
                "library `{name}` of the source site is subscribed (to {subscription_url}); it must be a local, published library"
            )));
        }
        Ok(library)
    }

    // ---- replicate ---------------------------------------------------------------------------

    async fn replicate(
        &self,
        image: &ImageName,
        version: &VersionName,
        from: &SiteName,
    ) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let source = self.target(from)?;
        let (dst, src) = (&target.clients.vcenter, &source.clients.vcenter);
        let name = &self.ctx.desired.settings.library;

        // One replicate at a time per vCenter: they share the vCenter's library, which the
        // first may have to create. With a subscription, one sync brings every version, so the
        // steps queued behind it find their copy already there.
        let _library = self.ctx.libraries.lock(&dst.instance_uuid().await?).await;
        let existing = dst.find_library(name).await?;
        if let Some(library) = &existing {
            if let Some(item) = find_version_item(dst, &library.id, image, version).await? {
                let complete = match &library.kind {
                    LibraryKind::Subscribed { .. } => true,
                    // A pulled copy is complete once every file of the source is there.
                    LibraryKind::Local { .. } => {
                        self.missing_files(src, dst, image, version, &item).await?.is_empty()
                    }
                };
                if complete {
                    return Ok(Outcome::AlreadyDone(format!(
                        "{image}@{version} is in library `{name}` as item {}",
                        item.id
                    )));
                }
            }
        }

        let src_library = src
            .find_library(name)
            .await?
            .ok_or_else(|| self.failed(format!("source site `{from}` has no library `{name}`")))?;
        let src_item = find_version_item(src, &src_library.id, image, version).await?.ok_or_else(|| {
            self.failed(format!("{image}@{version} is not published in library `{name}` at `{from}`"))
        })?;
        let publish_url = match &src_library.kind {
            LibraryKind::Local { publish_url } => publish_url.clone(),
            LibraryKind::Subscribed { .. } => None,
        };

        let library = match existing {
            Some(library) => library,
            None => {
                let datastore = &target.placement.datastore;
                let id = match &publish_url {
                    Some(url) => {
                        self.note(&format!("subscribing library `{name}` to the source library at `{from}`"));
                        dst.create_subscribed_library(name, datastore, url).await?
                    }
                    None => {
                        // The source library is not published: nothing to subscribe to, but
                        // vCenter can still pull the files from its download endpoint.
                        self.note(&format!(
                            "library `{name}` at `{from}` is not published; creating a local library to pull into"
                        ));
                        dst.create_published_library(name, datastore).await?
                    }
                };
                // Another run may have created it first, of either kind: go by what it is.
                dst.get_library(&id).await?
            }
        };
        match &library.kind {
            LibraryKind::Subscribed { subscription_url, .. } => {
                if let Some(url) = publish_url.as_ref().filter(|u| *u != subscription_url) {
                    return Err(self.failed(format!(
                        "library `{name}` subscribes to {subscription_url}, not to the source library {url}; fix or remove its subscription"
                    )));
                }
                self.sync_and_wait(dst, &library.id, image, version).await
            }
            // A local library cannot subscribe: fall back to a PULL.
            LibraryKind::Local { .. } => self.pull(src, dst, &library, &src_item, image, version).await,
        }
    }

    async fn sync_and_wait(
        &self,
        dst: &VcenterClient,
        library: &LibraryId,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Outcome, StepError> {
        dst.sync_library(library).await?;
        self.note(&format!("waiting for library {library} to sync {image}@{version}"));
        let started = Instant::now();
        loop {
            if let Some(item) = find_version_item(dst, library, image, version).await? {
                return Ok(Outcome::Done(format!(
                    "synced {image}@{version} into library {library} as item {}",
                    item.id
                )));
            }
            self.wait(started, self.ctx.timeouts.replication, &format!("the sync of {image}@{version}"))
                .await?;
        }
    }

    /// Source files of the version missing from `item`.
    async fn missing_files(
        &self,
        src: &VcenterClient,
        dst: &VcenterClient,
        image: &ImageName,
        version: &VersionName,
        item: &LibraryItem,
    ) -> Result<Vec<String>, StepError> {
        let name = &self.ctx.desired.settings.library;
        let Some(src_library) = src.find_library(name).await? else { return Ok(Vec::new()) };
        let Some(src_item) = find_version_item(src, &src_library.id, image, version).await? else {
            return Ok(Vec::new());
        };
        let have = dst.list_files(&item.id).await?;
        Ok(src.list_files(&src_item.id).await?.into_iter().filter(|f| !have.contains(f)).collect())
    }

    /// The fallback for a site whose library cannot subscribe: the target vCenter pulls each
    /// file from the source's download endpoint into an item carrying the metadata.
    async fn pull(
        &self,
        src: &VcenterClient,
        dst: &VcenterClient,
        library: &Library,
        src_item: &LibraryItem,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Outcome, StepError> {
        let meta = src_item.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
        let item = match find_version_item(dst, &library.id, image, version).await? {
            Some(item) => {
                self.note(&format!("resuming the copy of {image}@{version} into item {}", item.id));
                item.id
            }
            None => {
                let name = item_name(image, version);
                if let Some(other) = dst.find_item(&library.id, &name).await? {
                    return Err(self.failed(format!(
                        "library `{}` already holds an item named `{name}` ({}) that golden does not own",
                        library.name, other.id
                    )));
                }
                dst.create_item(&library.id, &name, &src_item.kind, &meta).await?
            }
        };
        let have = dst.list_files(&item).await?;
        let files = src.list_files(&src_item.id).await?;
        let mut pulled = 0;
        for file in files.iter().filter(|f| !have.contains(f)) {
            let url = src.download_url(&src_item.id, file).await?;
            self.note(&format!("waiting for vcenter to pull `{file}` of {image}@{version} into item {item}"));
            dst.pull_file(&item, file, &url, self.ctx.timeouts.replication).await?;
            pulled += 1;
        }
        Ok(Outcome::Done(format!(
            "pulled {pulled} file(s) of {image}@{version} into item {item} of local library `{}`",
            library.name
        )))
    }

    // ---- deploy ------------------------------------------------------------------------------

    async fn deploy(&self, image: &ImageName, version: &VersionName) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let vc = &target.clients.vcenter;
        let snapshot_name = format!("golden-{version}");
        let inventory = vc.inventory().await?;
        // Only this site's datacenter: another site of the same vCenter has copies of its own.
        let here = &target.placement;
        let owned: Vec<&Vm> = inventory
            .vms_in(&here.datacenter)
            .filter(|v| is_version(v.meta.as_ref(), image, version))
            .collect();
        if let Some(vm) = owned.iter().find(|v| !v.snapshots.is_empty()) {
            return Ok(Outcome::AlreadyDone(format!(
                "base vm `{}` ({}) of {image}@{version} has snapshot `{}`",
                vm.name,
                vm.id,
                vm.snapshots.last().map(|s| s.name.as_str()).unwrap_or_default()
            )));
        }
        let (vm_id, meta) = match owned.first() {
            Some(vm) => {
                self.note(&format!("adopting base vm `{}` ({}), which has no snapshot yet", vm.name, vm.id));
                let meta = vm.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
                // A run stopped between deploy and tag leaves the metadata in the annotation
                // only; tagging again is harmless.
                vc.tag_vm(&vm.id, &meta).await?;
                (vm.id.clone(), meta)
            }
            None => {
                let name = format!("golden-{image}-{version}");
                // vCenter keeps VM names unique per folder.
                let taken = inventory
                    .vms_in(&here.datacenter)
                    .find(|v| v.name == name && inventory.folder_of(&v.id) == Some(&here.folder));
                if let Some(other) = taken {
                    return Err(self.failed(format!(
                        "a vm named `{name}` ({}) exists but golden does not own it; delete it, or tag it in category `golden`",
                        other.id
                    )));
                }
                let library =
                    vc.find_library(&self.ctx.desired.settings.library).await?.ok_or_else(|| {
                        self.failed(format!(
                            "no library `{}` to deploy from",
                            self.ctx.desired.settings.library
                        ))
                    })?;
                let item = find_version_item(vc, &library.id, image, version).await?.ok_or_else(|| {
                    self.failed(format!("no item of {image}@{version} in library `{}`", library.name))
                })?;
                let meta = item.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
                self.note(&format!("deploying item {} as vm `{name}`", item.id));
                // Not under the task timeout: giving up on a deployment vCenter still finishes would
                // leave a VM without golden's tag, which no later run may adopt.
                // The metadata travels in the deployment itself (the VM's annotation), so the VM
                // is golden's from the moment it exists, even if this run stops right after.
                let mut spec = target.placement.deploy(&name);
                let from = ItemRef { id: item.id.clone(), name: item.name.clone(), kind: item.kind.clone() };
                spec.annotation = Some(crate::vcenter::deployment_annotation(&meta, &from));
                let vm = vc.deploy_ovf(&item.id, &spec).await?;
                // Tag first: a run that stops before the snapshot adopts the VM next time.
                vc.tag_vm(&vm, &meta).await?;
                (vm, meta)
            }
        };
        self.note(&format!("waiting for the snapshot `{snapshot_name}` of vm {vm_id}"));
        let description = crate::vcenter::meta_to_description(&meta);
        let snapshot = self
            .within_task(
                &format!("the snapshot of vm {vm_id}"),
                vc.create_snapshot(&vm_id, &snapshot_name, &description),
            )
            .await?;
        Ok(Outcome::Done(format!("base vm {vm_id} of {image}@{version} with snapshot {snapshot}")))
    }

    // ---- push --------------------------------------------------------------------------------

    async fn push(&self, push: &PushTarget<'_>) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let (vc, hz) = (&target.clients.vcenter, &target.clients.horizon);
        let (image, version, kind, name) = (push.image, push.version, push.kind, push.horizon_name);
        let (pools, inventory) = tokio::join!(hz.pools(), vc.inventory());
        let pool = pools?
            .into_iter()
            .find(|p| p.name == name && p.kind == kind)
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
        let started = Instant::now();
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
            self.wait(started, self.ctx.timeouts.push, &format!("{kind} `{name}` to run {image_text}"))
                .await?;
        }
    }

    // ---- retire ------------------------------------------------------------------------------

    async fn retire(
        &self,
        image: &ImageName,
        version: &VersionName,
        items: &[ItemId],
        vms: &[Moref],
    ) -> Result<Outcome, StepError> {
        let target = self.target(&self.step.site)?;
        let (vc, hz) = (&target.clients.vcenter, &target.clients.horizon);
        let mut deleted = Vec::new();

        for id in items {
            let item = match vc.get_item(id).await {
                Ok(item) => item,
                Err(e) if is_not_found(&e) => {
                    self.note(&format!("library item {id} is already gone"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if !is_version(item.meta.as_ref(), image, version) {
                self.note(&format!(
                    "skipping library item `{}` ({id}): it is not golden's {image}@{version}",
                    item.name
                ));
                continue;
            }
            match vc.delete_item(&item.library, id).await {
                Ok(()) => deleted.push(format!("item `{}`", item.name)),
                // vCenter refuses to delete an item of a subscribed library: it follows the
                // publisher. Its content (the disk space) can be evicted, which is what a
                // retirement at this site is for.
                Err(e) if is_subscribed_item_refusal(&e) => {
                    self.note(&format!(
                        "item `{}` ({id}) is in a subscribed library and cannot be deleted; evicting its content",
                        item.name
                    ));
                    vc.evict_item(id).await?;
                    deleted.push(format!("the content of item `{}`", item.name));
                }
                Err(e) => return Err(e.into()),
            }
        }

        if !vms.is_empty() {
            let (inventory, pools) = tokio::join!(vc.inventory(), hz.pools());
            let (inventory, pools) = (inventory?, pools?);
            for id in vms {
                let here = &target.placement.datacenter;
                let Some(vm) = inventory.vms_in(here).find(|v| &v.id == id) else {
                    self.note(&format!("vm {id} is already gone (or not in this site's datacenter)"));
                    continue;
                };
                if !is_version(vm.meta.as_ref(), image, version) {
                    self.note(&format!(
                        "skipping vm `{}` ({id}): it is not golden's {image}@{version}",
                        vm.name
                    ));
                    continue;
                }
                // The plan orders retirements after the pushes away; a pool still on the VM
                // means someone pushed it back since: never pull an image from under a pool.
                let user = pools.iter().find(|p| {
                    p.current.as_ref().is_some_and(|c| c.vm == vm.id)
                        || p.pending
                            .as_ref()
                            .is_some_and(|x| x.image.vm == vm.id && x.state != PendingState::Failed)
                });
                if let Some(p) = user {
                    return Err(self.failed(format!(
                        "vm `{}` ({id}) is still the image of {} `{}`; plan again",
                        vm.name, p.kind, p.name
                    )));
                }
                vc.delete_vm(&vm.id).await?;
                deleted.push(format!("vm `{}`", vm.name));
            }
        }

        if deleted.is_empty() {
            Ok(Outcome::AlreadyDone(format!("nothing of {image}@{version} left to delete")))
        } else {
            Ok(Outcome::Done(format!("deleted {}", deleted.join(", "))))
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
    for item in join_all(ids.iter().map(|id| vc.get_item(id))).await {
        let item = match item {
            Ok(item) => item,
            // Deleted between the list and the read.
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        if is_version(item.meta.as_ref(), image, version) {
            found.get_or_insert(item);
        }
    }
    Ok(found)
}
