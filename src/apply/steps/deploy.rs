//! Deploy: the version's base VM in the site's datacenter and folder, tagged as golden's, and
//! its snapshot.
//!
//! The tag is what makes the VM golden's (see [`crate::vcenter::Inventory`]); the deployment
//! also writes golden's metadata and the item into the VM's annotation, and tags right after.
//! A VM left untagged by a run stopped in between is adopted only when it is exactly what that
//! deploy made: named `golden-<image>-<version>` in the site's folder, its annotation naming
//! the version and golden's item of it in this vCenter's library, and no snapshot yet.

use super::{StepRun, find_version_item, is_version};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, VersionName, VersionRef};
use crate::live::{ItemId, ItemRef, Vm, base_snapshot_name};

impl StepRun<'_> {
    pub(super) async fn deploy(
        &self,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
        let target = self.target(&self.step.site)?;
        let vc = &target.clients.vcenter;
        let snapshot_name = base_snapshot_name(version);
        let inventory = vc.inventory().await?;
        // Only this site's datacenter: another site of the same vCenter has copies of its own.
        let here = &target.placement;
        let owned: Vec<&Vm> = inventory
            .vms_in(&here.datacenter)
            .filter(|v| is_version(v.meta.as_ref(), image, version))
            .collect();
        if let Some(vm) = owned.iter().find(|v| !v.snapshots.is_empty()) {
            return Ok(Outcome::AlreadyDone(format!(
                "base vm `{}` ({}) of {version_ref} has snapshot `{}`",
                vm.name,
                vm.id,
                vm.base_snapshot(version).map(|s| s.name.as_str()).unwrap_or_default()
            )));
        }
        let (vm_id, meta) = match owned.first() {
            Some(vm) => {
                self.note(&format!("adopting base vm `{}` ({}), which has no snapshot yet", vm.name, vm.id));
                let meta = vm.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
                (vm.id.clone(), meta)
            }
            None => {
                let name = format!("golden-{image}-{version}");
                let library =
                    vc.find_library(&self.ctx.desired.settings.library).await?.ok_or_else(|| {
                        self.failed(format!(
                            "no library `{}` to deploy from",
                            self.ctx.desired.settings.library
                        ))
                    })?;
                let item = find_version_item(vc, &library.id, image, version).await?.ok_or_else(|| {
                    self.failed(format!("no item of {version_ref} in library `{}`", library.name))
                })?;
                let meta = item.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
                // vCenter keeps VM names unique per folder.
                let taken = inventory
                    .vms_in(&here.datacenter)
                    .find(|v| v.name == name && inventory.folder_of(&v.id) == Some(&here.folder));
                match taken {
                    // A run stopped between the deploy and the tag leaves a VM golden made with
                    // the metadata in its annotation only. An annotation is copied by a clone and
                    // writable by anyone who edits the VM, so it is adopted only when all that
                    // golden wrote is there: the name in the site's folder, the version, the item
                    // it names being golden's item of that version here, and no snapshot yet.
                    Some(other) if is_deployed_untagged(other, image, version, &item.id) => {
                        self.note(&format!(
                            "adopting vm `{name}` ({}), deployed from item {} but not tagged yet",
                            other.id, item.id
                        ));
                        vc.tag_vm(&other.id, &meta).await?;
                        (other.id.clone(), meta)
                    }
                    Some(other) => {
                        return Err(self.failed(format!(
                            "a vm named `{name}` ({}) exists but golden does not own it (no tag of category `golden`, or not deployed from golden's item {} of {version_ref}); delete or rename it",
                            other.id, item.id
                        )));
                    }
                    None => {
                        self.note(&format!("deploying item {} as vm `{name}`", item.id));
                        // Not under the task timeout: giving up on a deployment vCenter still
                        // finishes would leave a VM without golden's tag.
                        // The metadata travels in the deployment itself (the VM's annotation), so
                        // that a run that stops before the tag can adopt the VM (above).
                        let mut spec = target.placement.deploy(&name);
                        let from =
                            ItemRef { id: item.id.clone(), name: item.name.clone(), kind: item.kind.clone() };
                        spec.annotation = Some(crate::vcenter::deployment_annotation(&meta, &from));
                        // A VM template (what Packer's vSphere plugin makes) deploys through the VM
                        // template API, which takes no annotation: the tag right after marks the VM.
                        let vm = match item.kind.as_str() {
                            "vm-template" => vc.deploy_vm_template(&item.id, &spec).await?,
                            _ => vc.deploy_ovf(&item.id, &spec).await?,
                        };
                        // Tag first: a run that stops before the snapshot adopts the VM next time.
                        vc.tag_vm(&vm, &meta).await?;
                        (vm, meta)
                    }
                }
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
        Ok(Outcome::Done(format!("base vm {vm_id} of {version_ref} with snapshot {snapshot}")))
    }
}

/// Whether `vm` is a base VM of `image@version` that golden deployed from `item` and did not
/// get to tag: its annotation claims the version and names the item, and it has no snapshot.
fn is_deployed_untagged(vm: &Vm, image: &ImageName, version: &VersionName, item: &ItemId) -> bool {
    vm.meta.is_none()
        && is_version(vm.claim.as_ref(), image, version)
        && vm.deployed_from.as_ref().is_some_and(|from| &from.id == item)
        && vm.snapshots.is_empty()
}
