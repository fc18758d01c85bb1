//! Publish: capture the source VM, or adopt the library item it names, into the source site's
//! library, carrying golden's metadata.

use super::{StepRun, find_version_item, item_name};
use crate::apply::{Outcome, StepError, Target};
use crate::desired::Source;
use crate::ids::{ImageName, VersionName, VersionRef};
use crate::live::{GoldenMeta, Library, LibraryItem, LibraryKind, Moref, Vm};

/// The temporary VM a publication captures: a snapshot's clone, or a VM template's deployment.
fn publish_vm_name(image: &ImageName, version: &VersionName) -> String {
    format!("golden-publish-{image}-{version}")
}

impl StepRun<'_> {
    pub(super) async fn publish(
        &self,
        image: &ImageName,
        version: &VersionName,
        source: &Source,
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
        let target = self.target(&self.step.site)?;
        let vc = &target.clients.vcenter;
        let meta = GoldenMeta { image: image.clone(), version: version.clone(), source: source.identity() };
        let library = self.ensure_published_library(target).await?;

        if let Some(item) = find_version_item(vc, &library.id, image, version).await? {
            let published = item.meta.as_ref().map(|m| m.source.as_str()).unwrap_or_default();
            if published != meta.source {
                return Err(self.failed(format!(
                    "{version_ref} is already published from `{published}` (item {}), not from `{}`",
                    item.id, meta.source
                )));
            }
            // vCenter lists a captured item as soon as the export starts, and its files when it
            // is done: an item without files is a capture under way (a run cut short left it),
            // to wait for rather than to start again.
            let mut outcome = Outcome::AlreadyDone(format!("{version_ref} is published as item {}", item.id));
            if vc.list_files(&item.id).await?.is_empty() {
                self.note(&format!(
                    "item {} of {version_ref} is still being captured; waiting for it",
                    item.id
                ));
                let limit = self.ctx.timeouts.task;
                let waiting = crate::wait::Waiting::new(limit, self.ctx.timeouts.poll);
                while vc.list_files(&item.id).await?.is_empty() {
                    self.wait(&waiting, limit, &format!("the capture of {version_ref}")).await?;
                }
                outcome = Outcome::Done(format!("{version_ref} was captured as item {}", item.id));
            }
            // A publication deletes its temporary VM last: a run cut short after the capture
            // leaves it behind.
            if let Some(vm) = self.publish_vm(target, image, version).await? {
                self.note(&format!("deleting vm {vm}, left by an earlier publication of {version_ref}"));
                self.remove_temporary(target, &vm).await?;
                outcome = Outcome::Done(format!("{version_ref} is published as item {}", item.id));
            }
            return Ok(outcome);
        }

        match source {
            Source::Vm { vm, snapshot } => {
                let inventory = vc.inventory().await?;
                let candidates: Vec<&Vm> = inventory
                    .vms_in(&target.placement.datacenter)
                    .filter(|v| &v.name == vm && (v.meta.is_none() || v.is_source_vm()))
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
                let name = item_name(image, version);
                if let Some(other) = vc.find_item(&library.id, &name).await? {
                    return Err(self.failed(format!(
                        "library `{}` already holds an item named `{name}` ({}) that golden does not own",
                        library.name, other.id
                    )));
                }
                let Some(snapshot) = snapshot else {
                    // No snapshot named: the VM as it is, which only a stopped VM pins down (and
                    // vCenter exports only a stopped VM).
                    if found.powered_on || vc.is_powered_on(&found.id).await? {
                        return Err(self.failed(format!(
                            "vm `{vm}` is running and version {version} names no snapshot of it: name the snapshot to publish (source = \"vm:{vm}@<snapshot>\"), or power the VM off"
                        )));
                    }
                    self.note(&format!("capturing vm `{vm}` as item `{name}` in library `{}`", library.name));
                    let id = vc.create_ovf_from_vm(&library.id, &found.id, &name, &meta).await?;
                    return Ok(Outcome::Done(format!("captured vm `{vm}` as item `{name}` ({id})")));
                };
                let Some(at) = found.snapshots.iter().find(|x| &x.name == snapshot) else {
                    return Err(self.failed(format!("vm `{vm}` has no snapshot named `{snapshot}`")));
                };
                // An export reads a VM's current state, and the API cannot export at a snapshot:
                // the snapshot is cloned into a temporary stopped VM, which is captured, then
                // deleted. A run cut short finds the VM by its name and goes on from it.
                let temporary = match self.publish_vm(target, image, version).await? {
                    Some(vm) => vm,
                    None => {
                        self.note(&format!("cloning snapshot `{snapshot}` of vm `{vm}` to capture it"));
                        let spec = target.placement.deploy(&publish_vm_name(image, version));
                        vc.clone_vm(&found.id, Some(&at.id), &spec).await?
                    }
                };
                self.note(&format!(
                    "capturing snapshot `{snapshot}` of vm `{vm}` as item `{name}` in library `{}`",
                    library.name
                ));
                let id = vc.create_ovf_from_vm(&library.id, &temporary, &name, &meta).await?;
                self.remove_temporary(target, &temporary).await?;
                Ok(Outcome::Done(format!(
                    "captured snapshot `{snapshot}` of vm `{vm}` as item `{name}` ({id})"
                )))
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
                if item.kind == "vm-template" {
                    return self.publish_template_copy(target, &library, &item, &meta).await;
                }
                self.note(&format!("adopting item `{name}` ({}) as {version_ref}", item.id));
                vc.set_item_meta(&item.id, &meta).await?;
                Ok(Outcome::Done(format!("adopted item `{name}` ({}) as {version_ref}", item.id)))
            }
        }
    }

    /// Publishes a version built as a VM template (Packer's vSphere plugin makes one by
    /// default) as an OVF copy: libraries do not replicate VM templates between vCenters (a
    /// subscription does not copy them, a file transfer cannot move one). The template is
    /// deployed to a temporary powered-off VM, which is captured as the version's item and then
    /// deleted; the template item itself stays as it is. The temporary VM is named after the
    /// version in golden's folder, so a run cut short finds it and goes on from it.
    async fn publish_template_copy(
        &self,
        target: &Target,
        library: &Library,
        template: &LibraryItem,
        meta: &GoldenMeta,
    ) -> Result<Outcome, StepError> {
        let vc = &target.clients.vcenter;
        let (image, version) = (&meta.image, &meta.version);
        let name = item_name(image, version);
        self.note(&format!(
            "item `{}` is a VM template, which libraries do not replicate between vCenters: publishing an OVF copy `{name}`",
            template.name
        ));
        let temporary = match self.publish_vm(target, image, version).await? {
            Some(vm) => vm,
            None => {
                let spec = target.placement.deploy(&publish_vm_name(image, version));
                vc.deploy_vm_template(&template.id, &spec).await?
            }
        };
        let id = vc.create_ovf_from_vm(&library.id, &temporary, &name, meta).await?;
        self.remove_temporary(target, &temporary).await?;
        Ok(Outcome::Done(format!("published VM template `{}` as OVF item `{name}` ({id})", template.name)))
    }

    /// Deletes a publication's temporary VM once captured (stopped first: vCenter deletes no
    /// running VM).
    async fn remove_temporary(&self, target: &Target, vm: &Moref) -> Result<(), StepError> {
        let vc = &target.clients.vcenter;
        vc.stop_vm(vm, self.ctx.timeouts.guest_shutdown).await?;
        vc.delete_vm(vm).await?;
        Ok(())
    }

    /// The temporary VM of a publication, if a run left one.
    async fn publish_vm(
        &self,
        target: &Target,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Option<Moref>, StepError> {
        let inventory = target.clients.vcenter.inventory().await?;
        let name = publish_vm_name(image, version);
        let here = &target.placement;
        Ok(inventory
            .vms_in(&here.datacenter)
            .find(|v| v.name == name && v.meta.is_none() && inventory.folder_of(&v.id) == Some(&here.folder))
            .map(|v| v.id.clone()))
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
}
