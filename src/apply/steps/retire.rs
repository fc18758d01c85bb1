//! Retire: delete golden's copies (library items, base VMs) that nothing needs any more,
//! never an image a pool runs or is moving to.
//!
//! vCenter refuses to delete a running VM (`not_allowed_in_current_state`): a base VM someone
//! powered on is shut down first (the guest is asked, then the VM powered off after
//! `guest_shutdown`). It refuses to delete an item of a subscribed library too
//! (`invalid_element_type`): such an item follows its publisher. So items are deleted in the
//! source library, and every subscribed library golden can reach is synced at once, so that
//! its copies go as well (a library golden did not read this run follows at its next sync).

use std::collections::BTreeSet;

use super::{StepRun, is_version};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, VersionName, VersionRef};
use crate::live::{ItemId, LibraryKind, Moref, PendingState, VcenterId};

impl StepRun<'_> {
    pub(super) async fn retire(
        &self,
        image: &ImageName,
        version: &VersionName,
        items: &[ItemId],
        vms: &[Moref],
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
        let target = self.target(&self.step.site)?;
        let (vc, hz) = (&target.clients.vcenter, &target.clients.horizon);
        let mut deleted = Vec::new();

        for id in items {
            let item = match vc.get_item(id).await {
                Ok(item) => item,
                Err(e) if e.is_not_found() => {
                    self.note(&format!("library item {id} is already gone"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if !is_version(item.meta.as_ref(), image, version) {
                self.note(&format!(
                    "skipping library item `{}` ({id}): it is not golden's {version_ref}",
                    item.name
                ));
                continue;
            }
            let library = vc.get_library(&item.library).await?;
            if let LibraryKind::Subscribed { .. } = library.kind {
                self.note(&format!(
                    "item `{}` ({id}) is in a subscribed library: it goes when its publisher deletes it",
                    item.name
                ));
                continue;
            }
            vc.delete_item(&item.library, id).await?;
            deleted.push(format!("item `{}`", item.name));
        }
        if !deleted.is_empty() {
            self.sync_subscribers(image, version).await?;
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
                    self.note(&format!("skipping vm `{}` ({id}): it is not golden's {version_ref}", vm.name));
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
                if vm.powered_on || vc.is_powered_on(&vm.id).await? {
                    self.note(&format!("vm `{}` ({id}) is running: shutting it down to delete it", vm.name));
                    vc.stop_vm(&vm.id, self.ctx.timeouts.guest_shutdown).await?;
                }
                vc.delete_vm(&vm.id).await?;
                deleted.push(format!("vm `{}`", vm.name));
            }
        }

        if deleted.is_empty() {
            Ok(Outcome::AlreadyDone(format!("nothing of {version_ref} left to delete")))
        } else {
            Ok(Outcome::Done(format!("deleted {}", deleted.join(", "))))
        }
    }

    /// Syncs every subscribed library of golden's name that this run reached, in the vCenters
    /// other than this step's, and waits until none holds `image@version` any more.
    async fn sync_subscribers(&self, image: &ImageName, version: &VersionName) -> Result<(), StepError> {
        let version_ref = VersionRef::new(image, version);
        let here = self.target(&self.step.site)?.clients.vcenter.instance_uuid().await?;
        let name = &self.ctx.desired.settings.library;
        let mut seen: BTreeSet<VcenterId> = BTreeSet::from([here]);
        for target in self.ctx.targets.values() {
            let vc = &target.clients.vcenter;
            if !seen.insert(vc.instance_uuid().await?) {
                continue;
            }
            let Some(library) = vc.find_library(name).await? else { continue };
            if !matches!(library.kind, LibraryKind::Subscribed { .. }) {
                continue;
            }
            self.note(&format!("syncing the subscribed library at {} so that its copy goes too", vc.site()));
            vc.sync_library(&library.id).await?;
            let limit = self.ctx.timeouts.replication;
            let waiting = crate::wait::Waiting::new(limit, self.ctx.timeouts.poll);
            while super::find_version_item(vc, &library.id, image, version).await?.is_some() {
                self.wait(&waiting, limit, &format!("the sync at {} removing {version_ref}", vc.site()))
                    .await?;
            }
        }
        Ok(())
    }
}
