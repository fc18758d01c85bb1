//! Adopt: take a VM pools already run (an adopted version's own VM and snapshot, from before
//! golden) as golden's base VM of the version at the site. Only golden's tag is written: no
//! VM, snapshot or library item is made, no pool is pushed.

use super::{StepRun, is_version};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, VersionName, VersionRef};
use crate::live::Moref;

impl StepRun<'_> {
    pub(super) async fn adopt(
        &self,
        image: &ImageName,
        version: &VersionName,
        vm: &Moref,
        snapshot: &Moref,
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
        let target = self.target(&self.step.site)?;
        let vc = &target.clients.vcenter;
        let meta = self.meta(image, version)?;
        let inventory = vc.inventory().await?;
        let Some(found) = inventory.vms.get(vm) else {
            return Err(self.failed(format!("vm {vm} is gone; plan again")));
        };
        if is_version(found.meta.as_ref(), image, version) {
            return Ok(Outcome::AlreadyDone(format!(
                "vm `{}` ({vm}) is golden's base VM of {version_ref}",
                found.name
            )));
        }
        if let Some(other) = &found.meta {
            return Err(self.failed(format!(
                "vm `{}` ({vm}) is golden's base VM of {}, not of {version_ref}; plan again",
                found.name,
                VersionRef::new(&other.image, &other.version)
            )));
        }
        if !found.snapshots.iter().any(|s| &s.id == snapshot) {
            return Err(self.failed(format!(
                "vm `{}` ({vm}) has no snapshot {snapshot} any more; plan again",
                found.name
            )));
        }
        vc.tag_vm(vm, &meta).await?;
        Ok(Outcome::Done(format!("vm `{}` ({vm}) is now golden's base VM of {version_ref}", found.name)))
    }
}
