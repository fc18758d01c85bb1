//! Tagging: golden's tag category, its tags, and their attachments to VMs, which mark the VMs
//! golden owns (`/rest/com/vmware/cis/tagging/category`, `.../tagging/tag`,
//! `.../tagging/tag-association`); and the plain named tags the apply lock is made of
//! ([`VcenterClient::create_unique_tag`]).
//!
//! vCenter keeps tag names unique within a category: creating a tag whose name the category
//! holds already answers 400 `already_exists` and changes nothing (vcsim does the same, and
//! serialises its REST calls, so the create is atomic there too). A tag's description can be
//! changed in place (`PATCH .../tag/id:{id}` with `update_spec.description`), and deleting a tag
//! drops its attachments.

use std::collections::BTreeMap;

use crate::connect::fan_out;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::{is_already_exists, seg};
use crate::ids::VersionRef;
use crate::live::{GoldenMeta, Moref};
use crate::vcenter::{VcenterClient, VcenterError, meta_from_description, meta_to_description};

#[derive(Deserialize)]
struct WireTag {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct WireCategory {
    id: String,
    name: String,
    associable_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ObjectId {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct TagObjects {
    tag_id: String,
    object_ids: Option<Vec<ObjectId>>,
}

/// A tag as read: its id and description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTag {
    pub id: String,
    pub description: String,
}

/// What golden's ownership category is for, written into it when golden creates it.
const OWNER_CATEGORY_DESCRIPTION: &str = "golden: base VMs golden owns, one tag per image version";

impl VcenterClient {
    /// The category `name`; one that cannot hold tags of VMs is someone else's when `for_vms`.
    async fn find_category(&self, name: &str, for_vms: bool) -> Result<Option<String>, VcenterError> {
        let op = format!("find tag category `{name}`");
        let ids = self.ids(&op, Method::GET, "/com/vmware/cis/tagging/category", None).await?;
        let paths: Vec<String> =
            ids.iter().map(|id| format!("/com/vmware/cis/tagging/category/id:{}", seg(id))).collect();
        let reads = paths.iter().map(|path| self.call_as::<WireCategory>(&op, Method::GET, path, None));
        for category in fan_out(reads).await {
            let category = category?;
            if category.name != name {
                continue;
            }
            let types = category.associable_types.unwrap_or_default();
            let holds_vms = types.is_empty() || types.iter().any(|t| t == "VirtualMachine");
            if for_vms && !holds_vms {
                return Err(self.err_failed(
                    &op,
                    format!(
                        "a tag category `{name}` exists for {} only, not for virtual machines; it is not golden's: rename it, or let golden's category be created",
                        types.join(", ")
                    ),
                ));
            }
            return Ok(Some(category.id));
        }
        Ok(None)
    }

    /// golden's tag category `name`, created when missing with `description`, for VMs when
    /// `for_vms` (and attached to nothing otherwise). A category of that name that cannot hold
    /// tags of VMs, when golden needs it to, is someone else's: an error rather than a guess.
    async fn ensure_category(
        &self,
        name: &str,
        description: &str,
        for_vms: bool,
    ) -> Result<String, VcenterError> {
        if let Some(id) = self.find_category(name, for_vms).await? {
            return Ok(id);
        }
        let types: &[&str] = if for_vms { &["VirtualMachine"] } else { &[] };
        let body = json!({"create_spec": {
            "name": name,
            "description": description,
            "cardinality": "SINGLE",
            "associable_types": types,
        }});
        let op = format!("create tag category `{name}`");
        match self.created_unique_id(&op, "/com/vmware/cis/tagging/category", body).await {
            // Created at the same moment by another step or run: use that one.
            Err(e) if is_already_exists(&e) => self.find_category(name, for_vms).await?.ok_or(e),
            other => other,
        }
    }

    /// Creates the tag `name` with `description` in the category `category` (made when missing,
    /// described by `category_description`). `None` when the category holds a tag of that name
    /// already: the create is refused and nothing changes, which makes it a lock.
    pub async fn create_unique_tag(
        &self,
        category: &str,
        category_description: &str,
        name: &str,
        description: &str,
    ) -> Result<Option<String>, VcenterError> {
        let category = self.ensure_category(category, category_description, false).await?;
        let body =
            json!({"create_spec": {"name": name, "description": description, "category_id": category}});
        // A create whose answer was lost is sent again and refused with `already_exists`: the
        // lock then reads the tag and finds it holds this run.
        match self
            .created_unique_id(&format!("create tag `{name}`"), "/com/vmware/cis/tagging/tag", body)
            .await
        {
            Ok(id) => Ok(Some(id)),
            Err(e) if is_already_exists(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The tag `name` of the category `category`, when both exist.
    pub async fn find_named_tag(&self, category: &str, name: &str) -> Result<Option<NamedTag>, VcenterError> {
        let Some(category) = self.find_category(category, false).await? else { return Ok(None) };
        let tags = self.category_tags(&category).await?;
        Ok(tags
            .into_iter()
            .find(|t| t.name == name)
            .map(|t| NamedTag { id: t.id, description: t.description }))
    }

    /// Replaces the description of the tag `id`.
    pub async fn set_tag_description(&self, id: &str, description: &str) -> Result<(), VcenterError> {
        let path = format!("/com/vmware/cis/tagging/tag/id:{}", seg(id));
        let body = json!({"update_spec": {"description": description}});
        self.call(&format!("update tag {id}"), Method::PATCH, &path, Some(body)).await.map(drop)
    }

    /// Deletes the tag `id` (and its attachments).
    pub async fn delete_tag(&self, id: &str) -> Result<(), VcenterError> {
        let path = format!("/com/vmware/cis/tagging/tag/id:{}", seg(id));
        self.call(&format!("delete tag {id}"), Method::DELETE, &path, None).await.map(drop)
    }

    async fn category_tags(&self, category: &str) -> Result<Vec<WireTag>, VcenterError> {
        let ids = self.category_tag_ids(category).await?;
        self.get_tags(ids.iter()).await
    }

    /// The ids of the tags in `category`.
    async fn category_tag_ids(&self, category: &str) -> Result<Vec<String>, VcenterError> {
        let op = format!("list the tags of category {category}");
        let path = format!("/com/vmware/cis/tagging/tag/id:{}?~action=list-tags-for-category", seg(category));
        self.ids(&op, Method::POST, &path, None).await
    }

    /// The tags `ids`: one request per tag (the API has no bulk read), a few at a time.
    async fn get_tags<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<WireTag>, VcenterError> {
        let paths: Vec<String> =
            ids.into_iter().map(|id| format!("/com/vmware/cis/tagging/tag/id:{}", seg(id))).collect();
        fan_out(paths.iter().map(|path| self.call_as::<WireTag>("read a tag", Method::GET, path, None)))
            .await
            .into_iter()
            .collect()
    }

    /// Marks `vm` as golden's base VM of `meta`'s version: attaches the version's tag in the
    /// [`crate::vcenter::OWNER_CATEGORY`] category, creating category and tag when missing.
    pub async fn tag_vm(&self, vm: &Moref, meta: &GoldenMeta) -> Result<(), VcenterError> {
        let category =
            self.ensure_category(crate::vcenter::OWNER_CATEGORY, OWNER_CATEGORY_DESCRIPTION, true).await?;
        let name = VersionRef::new(&meta.image, &meta.version).to_string();
        let tag = match self.find_tag(&category, &name, meta).await? {
            Some(id) => id,
            None => {
                let body = json!({"create_spec": {
                    "name": name,
                    "description": meta_to_description(meta),
                    "category_id": category,
                }});
                match self
                    .created_unique_id(&format!("create tag `{name}`"), "/com/vmware/cis/tagging/tag", body)
                    .await
                {
                    // Created at the same moment by another step or run: use that one.
                    Err(e) if is_already_exists(&e) => {
                        self.find_tag(&category, &name, meta).await?.ok_or(e)?
                    }
                    other => other?,
                }
            }
        };
        let path = format!("/com/vmware/cis/tagging/tag-association/id:{}?~action=attach", seg(&tag));
        let body = json!({"object_id": {"type": "VirtualMachine", "id": vm.as_str()}});
        // Attaching a tag that is attached already does nothing: safe to repeat.
        let op = format!("tag vm {vm} as `{name}`");
        self.call_safe(&op, &path, Some(body)).await.map(drop)
    }

    /// The tag `name` of golden's category, checked to hold `meta`: a tag of that name with
    /// other content is not golden's to attach.
    async fn find_tag(
        &self,
        category: &str,
        name: &str,
        meta: &GoldenMeta,
    ) -> Result<Option<String>, VcenterError> {
        let Some(tag) = self.category_tags(category).await?.into_iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        if meta_from_description(&tag.description).as_ref() != Some(meta) {
            return Err(self.err_failed(
                &format!("tag vms as `{name}`"),
                format!(
                    "the tag `{name}` ({}) in category `{}` does not hold golden's metadata for {name}; delete it so that golden can make its own",
                    tag.id,
                    crate::vcenter::OWNER_CATEGORY
                ),
            ));
        }
        Ok(Some(tag.id))
    }

    /// golden's ownership tags and the VMs each is attached to, by tag id. A fixed handful of
    /// requests however many tags there are: the category, its tag ids, and one bulk read of
    /// their attachments. The tags' names and metadata are read by [`Self::tag_metas`], only for
    /// the tags that are needed.
    pub async fn tag_attachments(&self) -> Result<BTreeMap<String, Vec<Moref>>, VcenterError> {
        let Some(category) = self.find_category(crate::vcenter::OWNER_CATEGORY, true).await? else {
            return Ok(BTreeMap::new());
        };
        let tags = self.category_tag_ids(&category).await?;
        if tags.is_empty() {
            return Ok(BTreeMap::new());
        }
        let body = json!({ "tag_ids": tags });
        let op = "list the vms golden owns";
        let path = "/com/vmware/cis/tagging/tag-association?~action=list-attached-objects-on-tags";
        let value = self.call_safe(op, path, Some(body)).await?;
        let attached: Option<Vec<TagObjects>> =
            serde_json::from_value(value).map_err(|e| self.err_protocol(op, e.to_string()))?;
        let mut vms: BTreeMap<String, Vec<Moref>> = BTreeMap::new();
        for entry in attached.unwrap_or_default() {
            let objects = entry.object_ids.unwrap_or_default().into_iter();
            let on = objects.filter(|o| o.kind == "VirtualMachine").map(|o| Moref::new(o.id));
            vms.entry(entry.tag_id).or_default().extend(on);
        }
        Ok(vms)
    }

    /// The golden metadata of each of the tags `ids`, one request per tag, all at once; tags
    /// without golden metadata in their description are left out.
    pub async fn tag_metas<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, GoldenMeta>, VcenterError> {
        let tags = self.get_tags(ids).await?;
        Ok(tags.into_iter().filter_map(|t| Some((t.id, meta_from_description(&t.description)?))).collect())
    }
}

/// Each VM of `attached` (tag id → VMs) with the metadata of its tag, for the tags in `metas`.
pub(in crate::vcenter) fn owners(
    attached: &BTreeMap<String, Vec<Moref>>,
    metas: &BTreeMap<String, GoldenMeta>,
) -> BTreeMap<Moref, GoldenMeta> {
    attached
        .iter()
        .filter_map(|(tag, vms)| Some((metas.get(tag)?, vms)))
        .flat_map(|(meta, vms)| vms.iter().map(move |vm| (vm.clone(), meta.clone())))
        .collect()
}
