//! Deploy: the version's base VM in the site's datacenter and folder, tagged as golden's, and
//! its snapshot.

use super::{StepRun, find_version_item, is_version};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, VersionName};
use crate::live::{ItemRef, Vm, base_snapshot_name};

impl StepRun<'_> {
    pub(super) async fn deploy(
        &self,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Outcome, StepError> {
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
                "base vm `{}` ({}) of {image}@{version} has snapshot `{}`",
                vm.name,
                vm.id,
                vm.base_snapshot(version).map(|s| s.name.as_str()).unwrap_or_default()
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
}
