//! The inventory of a vCenter, read in one property-collector round trip, and the resolution of
//! golden.toml placement names (datacenter, cluster or resource pool, folder, datastore) to
//! morefs.
//!
//! Names are only unique within a datacenter (vcsim names every datastore `LocalDS_0`), so every
//! lookup below is scoped to the datacenter the site names; two objects of one kind with the
//! same name in that datacenter are an error rather than a guess.

use std::collections::{BTreeMap, BTreeSet};

use super::rest::DeploySpec;
use super::soap::{ObjectContent, PropSpec};
use super::{VcenterClient, VcenterError};
use crate::desired::Compute;
use crate::ids::SiteName;
use crate::live::{GoldenMeta, ItemId, ItemRef, Moref, Snapshot, Vm};
use golden_xml::Element;

/// A named object of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Named {
    pub id: Moref,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub id: Moref,
    pub name: String,
    /// The cluster's root resource pool.
    pub resource_pool: Moref,
}

/// A datacenter and what golden can place things on inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datacenter {
    pub id: Moref,
    pub name: String,
    /// The root VM folder (named `vm`).
    pub vm_folder: Moref,
    /// Every VM folder, the root included, sorted by name.
    pub folders: Vec<Named>,
    pub clusters: Vec<Cluster>,
    /// Resource pools of its clusters (roots are named `Resources`).
    pub resource_pools: Vec<Named>,
    pub datastores: Vec<Named>,
    /// VMs and templates in its VM folders, each with the folder it is in.
    pub vms: BTreeMap<Moref, Moref>,
}

/// Everything golden reads from a vCenter's inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub site: SiteName,
    pub datacenters: BTreeMap<Moref, Datacenter>,
    /// Every VM and template, with its snapshot tree and golden's ownership tag.
    pub vms: BTreeMap<Moref, Vm>,
}

/// Where a site's base VMs go, as morefs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub datacenter: Moref,
    pub folder: Moref,
    pub resource_pool: Moref,
    pub datastore: Moref,
}

impl Placement {
    /// A deployment of a VM named `name` here.
    pub fn deploy(&self, name: &str) -> DeploySpec {
        DeploySpec {
            name: name.to_owned(),
            annotation: None,
            folder: self.folder.clone(),
            resource_pool: self.resource_pool.clone(),
            datastore: self.datastore.clone(),
        }
    }
}

impl Inventory {
    /// The VMs and templates of one datacenter: everything of a site is looked up inside its
    /// own datacenter, since several sites may share a vCenter.
    pub fn vms_in<'a>(&'a self, datacenter: &Moref) -> impl Iterator<Item = &'a Vm> + 'a {
        let ids = self.datacenters.get(datacenter).map(|dc| &dc.vms);
        ids.into_iter().flat_map(|ids| ids.keys()).filter_map(|id| self.vms.get(id))
    }

    /// The folder a VM is in, when it is in a datacenter's VM folders.
    pub fn folder_of(&self, vm: &Moref) -> Option<&Moref> {
        self.datacenters.values().find_map(|dc| dc.vms.get(vm))
    }

    pub fn datacenter(&self, name: &str) -> Result<&Datacenter, VcenterError> {
        let found: Vec<&Datacenter> = self.datacenters.values().filter(|d| d.name == name).collect();
        self.one("datacenter", name, "the vcenter".to_owned(), found)
    }

    /// Resolves a site's placement names; every name is looked up inside `datacenter`.
    /// The folder is a VM folder name anywhere under the datacenter (`vm` is its root).
    pub fn placement(
        &self,
        datacenter: &str,
        compute: &Compute,
        folder: &str,
        datastore: &str,
    ) -> Result<Placement, VcenterError> {
        let dc = self.datacenter(datacenter)?;
        let scope = || format!("datacenter `{datacenter}`");
        let by_name = |list: &[Named], name: &str| -> Vec<Moref> {
            list.iter().filter(|n| n.name == name).map(|n| n.id.clone()).collect()
        };
        let resource_pool = match compute {
            Compute::Cluster(name) => {
                let found: Vec<Moref> =
                    dc.clusters.iter().filter(|c| &c.name == name).map(|c| c.resource_pool.clone()).collect();
                self.one("cluster", name, scope(), found)?
            }
            Compute::ResourcePool(name) => {
                self.one("resource pool", name, scope(), by_name(&dc.resource_pools, name))?
            }
        };
        Ok(Placement {
            datacenter: dc.id.clone(),
            folder: self.one("vm folder", folder, scope(), by_name(&dc.folders, folder))?,
            resource_pool,
            datastore: self.one("datastore", datastore, scope(), by_name(&dc.datastores, datastore))?,
        })
    }

    fn one<T>(
        &self,
        kind: &'static str,
        name: &str,
        scope: String,
        mut found: Vec<T>,
    ) -> Result<T, VcenterError> {
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(VcenterError::NotFound { site: self.site.clone(), kind, name: name.to_owned(), scope }),
            count => Err(VcenterError::Ambiguous {
                site: self.site.clone(),
                kind,
                name: name.to_owned(),
                scope,
                count,
            }),
        }
    }
}

const TYPES: &[PropSpec<'static>] = &[
    PropSpec { kind: "Datacenter", paths: &["name", "vmFolder"] },
    PropSpec { kind: "Folder", paths: &["name", "parent"] },
    PropSpec { kind: "ClusterComputeResource", paths: &["name", "resourcePool", "parent"] },
    PropSpec { kind: "ResourcePool", paths: &["name", "parent", "owner"] },
    PropSpec { kind: "Datastore", paths: &["name", "parent"] },
    PropSpec {
        kind: "VirtualMachine",
        paths: &["name", "parent", "snapshot", "config.template", "config.annotation", "runtime.powerState"],
    },
];

/// What a snapshot tree says of each snapshot besides its moref, name and children: left out
/// when the inventory is read, since a build VM at the source site may have a long history.
const SNAPSHOT_DETAILS: &[&str] =
    &["vm", "description", "id", "createTime", "state", "quiesced", "backupManifest", "replaySupported"];

/// The objects of an inventory read over SOAP, before ownership is settled.
#[derive(Debug)]
pub struct InventoryObjects {
    objects: Vec<ObjectContent>,
    /// golden's metadata in each annotated VM's annotation, and the item it was deployed from.
    annotated: BTreeMap<Moref, (GoldenMeta, Option<ItemRef>)>,
}

impl InventoryObjects {
    fn new(objects: Vec<ObjectContent>) -> InventoryObjects {
        let annotated = objects
            .iter()
            .filter(|o| o.kind == "VirtualMachine")
            .filter_map(|o| Some((o.id.clone(), super::marks_from_annotation(o.text("config.annotation")?)?)))
            .collect();
        InventoryObjects { objects, annotated }
    }

    /// The library items base VMs were deployed from, each with the version's metadata, as
    /// the annotations of the VMs of `attached` (golden's tags: only golden's VMs) record them.
    pub fn deployed_items(
        &self,
        attached: &BTreeMap<String, Vec<Moref>>,
    ) -> BTreeMap<ItemId, (ItemRef, GoldenMeta)> {
        let tagged: BTreeSet<&Moref> = attached.values().flatten().collect();
        self.annotated
            .iter()
            .filter(|(vm, _)| tagged.contains(vm))
            .filter_map(|(_, (meta, item))| Some((item.as_ref()?.id.clone(), (item.clone()?, meta.clone()))))
            .collect()
    }
}

impl VcenterClient {
    /// Reads the inventory: one `RetrievePropertiesEx` walking down from the root folder with a
    /// property set per type, plus golden's ownership tags.
    pub async fn inventory(&self) -> Result<Inventory, VcenterError> {
        // The SOAP read and the ownership tags (REST) do not depend on each other.
        let (objects, attached) = tokio::join!(self.inventory_objects(), self.tag_attachments());
        self.settle_inventory(objects?, &attached?).await
    }

    /// The SOAP half of [`Self::inventory`]: every object of the kinds golden places things
    /// on, with the properties it reads.
    pub async fn inventory_objects(&self) -> Result<InventoryObjects, VcenterError> {
        let service = self.service().await?;
        let objects = Self::inventory_object_set(&service.root_folder);
        self.retrieve("read the inventory", &objects, TYPES, SNAPSHOT_DETAILS)
            .await
            .map(InventoryObjects::new)
    }

    /// The inventory of `objects`, each VM owned when it carries one of golden's tags among
    /// `attached` ([`Self::tag_attachments`]).
    ///
    /// The tag is the proof: vSphere copies a VM's annotation (its notes) to a clone, and
    /// anyone who may edit a VM may write it, but a clone carries no tag. A VM whose
    /// annotation holds golden's metadata without a golden tag is only a claim
    /// ([`crate::live::Vm::claim`]): never pushed, counted as a copy or retired.
    pub async fn settle_inventory(
        &self,
        objects: InventoryObjects,
        attached: &BTreeMap<String, Vec<Moref>>,
    ) -> Result<Inventory, VcenterError> {
        // A tagged base VM's annotation names its version (written at deployment, read above),
        // so a tag's own metadata is read only when the tag is the sole record of the version: a
        // VM tagged by golden whose annotation says nothing (a VM template deploy, which takes no
        // annotation; an admin who cleared the notes). Which of golden's tags a VM carries is
        // not compared with its annotation: the tag proves that golden made the VM.
        let needed =
            attached.iter().filter(|(_, vms)| vms.iter().any(|vm| !objects.annotated.contains_key(vm)));
        let metas = self.tag_metas(needed.map(|(tag, _)| tag)).await?;
        let tagged = attached.values().flatten().cloned().collect();
        Ok(build(self.site.clone(), objects, &super::rest::owners(attached, &metas), &tagged))
    }
}

fn build(
    site: SiteName,
    objects: InventoryObjects,
    owned: &BTreeMap<Moref, GoldenMeta>,
    tagged: &BTreeSet<Moref>,
) -> Inventory {
    let InventoryObjects { objects, mut annotated } = objects;
    let by_id: BTreeMap<&Moref, &ObjectContent> = objects.iter().map(|o| (&o.id, o)).collect();
    // Walks parents up to the datacenter an object is in.
    let datacenter_of = |id: &Moref| -> Option<Moref> {
        let mut at = by_id.get(id)?.moref("parent");
        for _ in 0..64 {
            let object = by_id.get(at.as_ref()?)?;
            if object.kind == "Datacenter" {
                return Some(object.id.clone());
            }
            at = object.moref("parent");
        }
        None
    };
    let mut datacenters: BTreeMap<Moref, Datacenter> = objects
        .iter()
        .filter(|o| o.kind == "Datacenter")
        .map(|o| {
            let dc = Datacenter {
                id: o.id.clone(),
                name: o.text("name").unwrap_or_default().to_owned(),
                vm_folder: o.moref("vmFolder").unwrap_or_else(|| Moref::new("")),
                folders: Vec::new(),
                clusters: Vec::new(),
                resource_pools: Vec::new(),
                datastores: Vec::new(),
                vms: BTreeMap::new(),
            };
            (o.id.clone(), dc)
        })
        .collect();
    // A VM folder is the datacenter's vmFolder or below it.
    let in_vm_tree = |id: &Moref, dc: &Datacenter| -> bool {
        let mut at = Some(id.clone());
        for _ in 0..64 {
            let Some(current) = at else { return false };
            if current == dc.vm_folder {
                return true;
            }
            at = by_id.get(&current).and_then(|o| o.moref("parent"));
        }
        false
    };
    let mut vms = BTreeMap::new();
    for o in &objects {
        let name = || o.text("name").unwrap_or_default().to_owned();
        let named = || Named { id: o.id.clone(), name: name() };
        if o.kind == "VirtualMachine" {
            // golden's metadata in the annotation written at deploy time, or in its tag; only
            // a tagged VM is golden's, an annotation alone is a claim.
            let marks = annotated.remove(&o.id);
            let annotation = marks.as_ref().map(|(meta, _)| meta.clone());
            let (meta, claim) = match tagged.contains(&o.id) {
                true => (annotation.or_else(|| owned.get(&o.id).cloned()), None),
                false => (None, annotation),
            };
            vms.insert(
                o.id.clone(),
                Vm {
                    id: o.id.clone(),
                    name: name(),
                    template: o.text("config.template") == Some("true"),
                    powered_on: o.text("runtime.powerState") == Some("poweredOn"),
                    meta,
                    claim,
                    deployed_from: marks.and_then(|(_, item)| item),
                    snapshots: o.props.get("snapshot").map(snapshots).unwrap_or_default(),
                },
            );
        }
        // Resource pools hang below their cluster; the rest below folders.
        let dc_id = if o.kind == "ResourcePool" {
            o.moref("owner").and_then(|owner| datacenter_of(&owner).or_else(|| datacenter_of(&o.id)))
        } else {
            datacenter_of(&o.id)
        };
        let Some(dc) = dc_id.and_then(|id| datacenters.get_mut(&id)) else { continue };
        match o.kind.as_str() {
            "Folder" if in_vm_tree(&o.id, dc) => dc.folders.push(named()),
            "ClusterComputeResource" => dc.clusters.push(Cluster {
                id: o.id.clone(),
                name: name(),
                resource_pool: o.moref("resourcePool").unwrap_or_else(|| Moref::new("")),
            }),
            "ResourcePool" => dc.resource_pools.push(named()),
            "Datastore" => dc.datastores.push(named()),
            "VirtualMachine" => {
                dc.vms.insert(o.id.clone(), o.moref("parent").unwrap_or_else(|| Moref::new("")));
            }
            _ => {}
        }
    }
    for dc in datacenters.values_mut() {
        if let Some(root) = by_id.get(&dc.vm_folder).filter(|o| o.kind == "Folder") {
            if !dc.folders.iter().any(|f| f.id == root.id) {
                dc.folders.push(Named {
                    id: root.id.clone(),
                    name: root.text("name").unwrap_or_default().to_owned(),
                });
            }
        }
        dc.folders.sort();
        dc.resource_pools.sort();
        dc.datastores.sort();
        dc.clusters.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    }
    Inventory { site, datacenters, vms }
}

/// A VM's `snapshot` (VirtualMachineSnapshotInfo) flattened in tree order, parents first.
/// Only `rootSnapshotList` is read: vcsim leaves `rootSnapshot` empty.
fn snapshots(info: &Element) -> Vec<Snapshot> {
    fn walk(tree: &Element, parent: Option<&Moref>, out: &mut Vec<Snapshot>) {
        let id = Moref::new(tree.child_text("snapshot").unwrap_or_default());
        out.push(Snapshot {
            id: id.clone(),
            name: tree.child_text("name").unwrap_or_default().to_owned(),
            parent: parent.cloned(),
        });
        for child in tree.children("childSnapshotList") {
            walk(child, Some(&id), out);
        }
    }
    let mut out = Vec::new();
    for root in info.children("rootSnapshotList") {
        walk(root, None, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use golden_xml::parse_pruned;

    #[test]
    fn snapshot_trees_flatten_parents_first() {
        let val = parse_pruned(
            r#"<val xmlns:X="http://www.w3.org/2001/XMLSchema-instance" X:type="VirtualMachineSnapshotInfo">
            <currentSnapshot type="VirtualMachineSnapshot">snapshot-3</currentSnapshot>
            <rootSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-1</snapshot><vm type="VirtualMachine">vm-1</vm><name>a</name>
              <description>sealed <name>not a name</name></description><id>1</id><createTime>2026-10-01T00:00:00Z</createTime>
              <childSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-2</snapshot><name>b</name></childSnapshotList>
              <childSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-3</snapshot><name>c</name></childSnapshotList>
            </rootSnapshotList></val>"#,
            SNAPSHOT_DETAILS,
        )
        .expect("xml");
        let list = snapshots(&val);
        let ids: Vec<(&str, Option<&str>)> =
            list.iter().map(|s| (s.name.as_str(), s.parent.as_ref().map(Moref::as_str))).collect();
        assert_eq!(ids, [("a", None), ("b", Some("snapshot-1")), ("c", Some("snapshot-1"))]);
    }
}
