//! Retire: delete golden's copies (library items, base VMs) that nothing needs any more,
//! never an image a pool runs or is moving to.

use super::{StepRun, is_not_found, is_subscribed_item_refusal, is_version};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, VersionName};
use crate::live::{ItemId, Moref, PendingState};

impl StepRun<'_> {
    pub(super) async fn retire(
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
