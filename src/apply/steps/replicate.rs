//! Replicate: get a version into a vCenter's library, by a subscription sync or a PULL the
//! target vCenter runs against the source's download endpoint.

use super::{StepRun, find_version_item, item_name};
use crate::apply::{Outcome, StepError};
use crate::ids::{ImageName, SiteName, VersionName, VersionRef};
use crate::live::{Library, LibraryId, LibraryItem, LibraryKind};
use crate::vcenter::VcenterClient;

impl StepRun<'_> {
    pub(super) async fn replicate(
        &self,
        image: &ImageName,
        version: &VersionName,
        from: &SiteName,
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
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
                    // A synced copy is complete once its content is there, not its metadata.
                    LibraryKind::Subscribed { .. } => item.cached,
                    // A pulled copy is complete once every file of the source is there.
                    LibraryKind::Local { .. } => {
                        self.missing_files(src, dst, image, version, &item).await?.is_empty()
                    }
                };
                if complete {
                    return Ok(Outcome::AlreadyDone(format!(
                        "{version_ref} is in library `{name}` as item {}",
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
            self.failed(format!("{version_ref} is not published in library `{name}` at `{from}`"))
        })?;
        // A capture a stopped run left running still goes on in vCenter: copy what it makes,
        // not the empty item it starts from.
        let src_item = self.source_content(src, src_item, image, version).await?;
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

    /// The source item once its content is there, waited for within the replication timeout.
    async fn source_content(
        &self,
        src: &VcenterClient,
        mut item: LibraryItem,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<LibraryItem, StepError> {
        let version_ref = VersionRef::new(image, version);
        let limit = self.ctx.timeouts.replication;
        let waiting = self.waiting(limit);
        while !item.cached {
            self.note(&format!("waiting for the capture of {version_ref} (item {}) to finish", item.id));
            self.wait(&waiting, limit, &format!("the capture of {version_ref}")).await?;
            item = src.get_item(&item.id).await?;
        }
        Ok(item)
    }

    async fn sync_and_wait(
        &self,
        dst: &VcenterClient,
        library: &LibraryId,
        image: &ImageName,
        version: &VersionName,
    ) -> Result<Outcome, StepError> {
        let version_ref = VersionRef::new(image, version);
        dst.sync_library(library).await?;
        self.note(&format!("waiting for library {library} to sync {version_ref}"));
        let limit = self.ctx.timeouts.replication;
        let waiting = self.waiting(limit);
        loop {
            // The item is listed as soon as the sync brings its metadata; the copy is there
            // when its content is.
            if let Some(item) = find_version_item(dst, library, image, version).await?.filter(|i| i.cached) {
                return Ok(Outcome::Done(format!(
                    "synced {version_ref} into library {library} as item {}",
                    item.id
                )));
            }
            self.wait(&waiting, limit, &format!("the sync of {version_ref}")).await?;
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
        let version_ref = VersionRef::new(image, version);
        let meta = src_item.meta.clone().map_or_else(|| self.meta(image, version), Ok)?;
        let item = match find_version_item(dst, &library.id, image, version).await? {
            Some(item) => {
                self.note(&format!("resuming the copy of {version_ref} into item {}", item.id));
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
        let wait = self.ctx.timeouts.replication;
        for file in files.iter().filter(|f| !have.contains(f)) {
            let download = src.prepare_download(&src_item.id, file, wait).await?;
            self.note(&format!("waiting for vcenter to pull `{file}` of {version_ref} into item {item}"));
            let pulled_file = dst.pull_file(&item, file, &download.uri, wait).await;
            // The source's download session is ended either way: a later run prepares anew.
            let ended = src.end_download(&download.session).await;
            pulled_file?;
            ended?;
            pulled += 1;
        }
        Ok(Outcome::Done(format!(
            "pulled {pulled} file(s) of {version_ref} into item {item} of local library `{}`",
            library.name
        )))
    }
}
