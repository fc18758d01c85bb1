//! Library items: list, find, read, create, update, delete, their files, and the items of
//! subscribed libraries (`/rest/com/vmware/content/library/item`, `.../item/file`,
//! `.../library/subscribed-item`).

use std::collections::BTreeSet;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{q, seg};
use crate::live::{GoldenMeta, ItemId, LibraryId, LibraryItem};
use crate::vcenter::{VcenterClient, VcenterError, meta_from_description, meta_to_description};

#[derive(Deserialize)]
struct WireItem {
    id: String,
    library_id: String,
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    description: Option<String>,
    #[serde(default)]
    cached: bool,
}

#[derive(Deserialize)]
struct WireFile {
    name: String,
    #[serde(default)]
    cached: bool,
}

impl VcenterClient {
    pub async fn list_items(&self, library: &LibraryId) -> Result<Vec<ItemId>, VcenterError> {
        let path = format!("/com/vmware/content/library/item?library_id={}", q(library.as_str()));
        let ids = self.ids(&format!("list items of library {library}"), Method::GET, &path, None).await?;
        Ok(ids.into_iter().map(ItemId::new).collect())
    }

    /// The item named `name` in `library`.
    pub async fn find_item(
        &self,
        library: &LibraryId,
        name: &str,
    ) -> Result<Option<LibraryItem>, VcenterError> {
        let op = format!("find item `{name}` in library {library}");
        let body = json!({"spec": {"name": name, "library_id": library.as_str()}});
        let ids =
            self.ids(&op, Method::POST, "/com/vmware/content/library/item?~action=find", Some(body)).await?;
        let mut found = Vec::new();
        for id in ids {
            let item = self.get_item_in(Some(library), &ItemId::new(id)).await?;
            if item.name == name {
                found.push(item);
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            count => Err(VcenterError::Ambiguous {
                site: self.site.clone(),
                kind: "library item",
                name: name.to_owned(),
                scope: format!("library {library}"),
                count,
            }),
        }
    }

    /// An item, with golden's metadata when its description holds it.
    pub async fn get_item(&self, item: &ItemId) -> Result<LibraryItem, VcenterError> {
        self.get_item_in(None, item).await
    }

    /// An item read through `library` when known: a subscribed library on the same vCenter
    /// shares item ids with its publisher, and vcsim picks either at random without it.
    async fn get_item_in(
        &self,
        library: Option<&LibraryId>,
        item: &ItemId,
    ) -> Result<LibraryItem, VcenterError> {
        let op = format!("read library item {item}");
        let mut path = format!("/com/vmware/content/library/item/id:{}", seg(item.as_str()));
        if let Some(library) = library {
            path.push_str(&format!("?library_id={}", q(library.as_str())));
        }
        let wire: WireItem = self.call_as(&op, Method::GET, &path, None).await?;
        let id = ItemId::new(wire.id);
        // vCenter says `cached` of the whole item; vcsim only of each file, so an item not
        // said to be cached is judged by its files: all there, and at least one.
        let cached = wire.cached || {
            let files = self.files(&id).await?;
            !files.is_empty() && files.iter().all(|f| f.cached)
        };
        Ok(LibraryItem {
            id,
            library: LibraryId::new(wire.library_id),
            name: wire.name,
            kind: wire.kind,
            meta: wire.description.as_deref().and_then(meta_from_description),
            cached,
        })
    }

    /// Creates an empty item of `kind` (`ovf` or `vm-template`) carrying golden's metadata.
    pub async fn create_item(
        &self,
        library: &LibraryId,
        name: &str,
        kind: &str,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let body = json!({"create_spec": {
            "library_id": library.as_str(),
            "name": name,
            "type": kind,
            "description": meta_to_description(meta),
        }});
        let op = format!("create library item `{name}` in library {library}");
        self.created_id(&op, "/com/vmware/content/library/item", body).await.map(ItemId::new)
    }

    /// Rewrites an item's metadata (its description).
    pub async fn set_item_meta(&self, item: &ItemId, meta: &GoldenMeta) -> Result<(), VcenterError> {
        let path = format!("/com/vmware/content/library/item/id:{}", seg(item.as_str()));
        let body = json!({"update_spec": {"description": meta_to_description(meta)}});
        self.call(&format!("update library item {item}"), Method::PATCH, &path, Some(body)).await.map(drop)
    }

    /// Deletes a library item; one that is gone already is deleted (a retried delete whose
    /// first answer was lost).
    pub async fn delete_item(&self, library: &LibraryId, item: &ItemId) -> Result<(), VcenterError> {
        let path = format!(
            "/com/vmware/content/library/item/id:{}?library_id={}",
            seg(item.as_str()),
            q(library.as_str())
        );
        match self.call(&format!("delete library item {item}"), Method::DELETE, &path, None).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// The names of an item's files whose content is there, sorted
    /// (`/com/vmware/content/library/item/file`).
    pub async fn list_files(&self, item: &ItemId) -> Result<Vec<String>, VcenterError> {
        let files = self.files(item).await?;
        let names: BTreeSet<String> = files.into_iter().filter(|f| f.cached).map(|f| f.name).collect();
        Ok(names.into_iter().collect())
    }

    async fn files(&self, item: &ItemId) -> Result<Vec<WireFile>, VcenterError> {
        let op = format!("list the files of library item {item}");
        let path = format!("/com/vmware/content/library/item/file?library_item_id={}", q(item.as_str()));
        let files: Option<Vec<WireFile>> = self.call_as(&op, Method::GET, &path, None).await?;
        Ok(files.unwrap_or_default())
    }
}
