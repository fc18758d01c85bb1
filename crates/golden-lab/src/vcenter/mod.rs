//! The lab's vCenter: an inventory model plus the vSphere REST (`/rest`) and SOAP (`/sdk`)
//! calls golden uses, with the wire format of the real product (and of vcsim, which the
//! contract tests compare it with).
//!
//! Morefs follow real vCenter (`datacenter-2`, `group-v3`, `domain-c7`, `resgroup-8`,
//! `datastore-11`, `vm-42`, `snapshot-43`) but clients must treat them as opaque.

pub mod content;
mod rest;
mod routes;
mod soap;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use routes::router;

/// One simulated vCenter.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VcenterSim {
    /// `about.instanceUuid`; Horizon registers the vCenter under it.
    pub instance_uuid: String,
    /// Counter behind every moref this vCenter hands out.
    pub next_id: u64,
    pub datacenters: BTreeMap<String, Datacenter>,
    pub folders: BTreeMap<String, Folder>,
    pub clusters: BTreeMap<String, Cluster>,
    pub hosts: BTreeMap<String, Host>,
    pub resource_pools: BTreeMap<String, ResourcePool>,
    pub datastores: BTreeMap<String, Datastore>,
    pub networks: BTreeMap<String, Network>,
    pub vms: BTreeMap<String, Vm>,
    /// Content libraries and their items (see [`content`]).
    #[serde(default)]
    pub content: content::Content,
    /// Tag categories, tags and their attachments.
    #[serde(default)]
    pub tagging: Tagging,
    /// Finished and running tasks, by moref.
    #[serde(default)]
    pub tasks: BTreeMap<String, Task>,
    /// Live REST and SOAP session ids. Not persisted: a resumed lab wants a fresh login.
    #[serde(skip)]
    pub sessions: std::collections::BTreeSet<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tagging {
    pub categories: BTreeMap<String, Category>,
    pub tags: BTreeMap<String, Tag>,
    /// Tag id to attached objects `(type, id)`.
    pub attached: BTreeMap<String, std::collections::BTreeSet<(String, String)>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cardinality: String,
    pub associable_types: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tag {
    pub id: String,
    pub name: String,
    pub description: String,
    pub category_id: String,
}

/// A vSphere task. The lab finishes tasks at once, like vcsim; clients still poll `info.state`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub description_id: String,
    pub entity: String,
    pub entity_type: String,
    /// `success` or `error`.
    pub state: String,
    /// The result moref and its type, e.g. (`VirtualMachineSnapshot`, `snapshot-12`).
    pub result: Option<(String, String)>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Datacenter {
    pub id: String,
    pub name: String,
    pub vm_folder: String,
    pub host_folder: String,
    pub datastore_folder: String,
    pub network_folder: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FolderKind {
    Datacenter,
    Vm,
    Host,
    Datastore,
    Network,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Folder {
    pub id: String,
    pub name: String,
    /// The parent folder or datacenter; `None` for the root folder.
    pub parent: Option<String>,
    pub kind: FolderKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    /// The cluster's root resource pool (`Resources`).
    pub resource_pool: String,
    pub hosts: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub id: String,
    pub name: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourcePool {
    pub id: String,
    pub name: String,
    /// The parent pool, or the owning cluster for a root pool.
    pub parent: String,
    /// The cluster that owns the pool.
    pub cluster: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Datastore {
    pub id: String,
    pub name: String,
    pub datacenter: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub datacenter: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vm {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub folder: String,
    /// `None` for templates, as in vSphere.
    pub resource_pool: Option<String>,
    pub host: String,
    pub datastore: String,
    pub template: bool,
    pub powered_on: bool,
    pub guest_id: String,
    /// `config.annotation`: the VM's notes.
    #[serde(default)]
    pub annotation: String,
    /// Every snapshot, flattened; the tree is given by `parent`.
    pub snapshots: Vec<Snapshot>,
    pub current_snapshot: Option<String>,
    /// What the VM's disk holds now: the lab's stand-in for its contents, which a snapshot
    /// keeps, a clone from a snapshot starts from, and a capture writes into the item.
    #[serde(default)]
    pub disk: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    /// Per-VM counter starting at 1, as vSphere's `VirtualMachineSnapshotTree.id`.
    pub num: u32,
    pub name: String,
    pub description: String,
    pub parent: Option<String>,
    pub created_ms: i64,
    /// The VM's disk when the snapshot was taken.
    #[serde(default)]
    pub disk: String,
    /// Taken of a running VM with its memory: the snapshot's power state is `poweredOn`
    /// (without memory it is `poweredOff`), which Horizon refuses as an image (`POWERED_ON`).
    #[serde(default)]
    pub powered_on: bool,
}

/// Where a new site's inventory puts things, from the site's golden.toml placement.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    pub datacenter: &'a str,
    /// The cluster to create; with `resource_pool`, the pool is created inside it.
    pub cluster: &'a str,
    pub resource_pool: Option<&'a str>,
    pub folder: &'a str,
    pub datastore: &'a str,
}

impl VcenterSim {
    /// A vCenter with nothing but its root folder; [`Self::add_datacenter`] fills it.
    pub fn new(instance_uuid: &str) -> VcenterSim {
        let mut vc =
            VcenterSim { instance_uuid: instance_uuid.to_owned(), next_id: 1, ..VcenterSim::default() };
        let root = vc.moref("group-d");
        vc.folders.insert(
            root.clone(),
            Folder { id: root, name: "Datacenters".into(), parent: None, kind: FolderKind::Datacenter },
        );
        vc
    }

    /// Adds a datacenter holding a cluster of two hosts, a VM folder, a datastore and a
    /// network, named as `placement` says. Returns the datacenter's moref.
    pub fn add_datacenter(&mut self, placement: &Placement<'_>) -> String {
        let dc = self.moref("datacenter-");
        let folder = |vc: &mut VcenterSim, prefix: &str, name: &str, parent: &str, kind| {
            let id = vc.moref(prefix);
            vc.folders.insert(
                id.clone(),
                Folder { id: id.clone(), name: name.into(), parent: Some(parent.into()), kind },
            );
            id
        };
        let vm_folder = folder(self, "group-v", "vm", &dc, FolderKind::Vm);
        let host_folder = folder(self, "group-h", "host", &dc, FolderKind::Host);
        let datastore_folder = folder(self, "group-s", "datastore", &dc, FolderKind::Datastore);
        let network_folder = folder(self, "group-n", "network", &dc, FolderKind::Network);
        folder(self, "group-v", placement.folder, &vm_folder, FolderKind::Vm);
        self.datacenters.insert(
            dc.clone(),
            Datacenter {
                id: dc.clone(),
                name: placement.datacenter.into(),
                vm_folder,
                host_folder,
                datastore_folder,
                network_folder,
            },
        );
        let cluster = self.moref("domain-c");
        let root_pool = self.moref("resgroup-");
        self.resource_pools.insert(
            root_pool.clone(),
            ResourcePool {
                id: root_pool.clone(),
                name: "Resources".into(),
                parent: cluster.clone(),
                cluster: cluster.clone(),
            },
        );
        if let Some(pool) = placement.resource_pool {
            let id = self.moref("resgroup-");
            self.resource_pools.insert(
                id.clone(),
                ResourcePool { id, name: pool.into(), parent: root_pool.clone(), cluster: cluster.clone() },
            );
        }
        let mut hosts = Vec::new();
        for n in 0..2 {
            let id = self.moref("host-");
            self.hosts.insert(
                id.clone(),
                Host {
                    id: id.clone(),
                    name: format!("esx-{n:02}.{}.lab", placement.datacenter.to_ascii_lowercase()),
                    cluster: cluster.clone(),
                },
            );
            hosts.push(id);
        }
        self.clusters.insert(
            cluster.clone(),
            Cluster {
                id: cluster,
                name: placement.cluster.into(),
                datacenter: dc.clone(),
                resource_pool: root_pool,
                hosts,
            },
        );
        let ds = self.moref("datastore-");
        self.datastores.insert(
            ds.clone(),
            Datastore { id: ds, name: placement.datastore.into(), datacenter: dc.clone() },
        );
        let net = self.moref("network-");
        self.networks
            .insert(net.clone(), Network { id: net, name: "VM Network".into(), datacenter: dc.clone() });
        dc
    }

    /// A fresh moref with the given prefix (`vm-`, `snapshot-`, ...).
    pub fn moref(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}{}", self.next_id);
        self.next_id += 1;
        id
    }

    /// The datacenter an inventory object (a folder, or a datacenter itself) is in.
    pub fn datacenter_of(&self, id: &str) -> Option<&Datacenter> {
        let mut at = Some(id.to_owned());
        for _ in 0..64 {
            let current = at?;
            if let Some(dc) = self.datacenters.get(&current) {
                return Some(dc);
            }
            at = self.folders.get(&current)?.parent.clone();
        }
        None
    }

    /// The first cluster of a datacenter.
    pub fn cluster_in(&self, datacenter: &str) -> Option<&Cluster> {
        self.clusters.values().find(|c| c.datacenter == datacenter)
    }

    /// The first datastore of a datacenter.
    pub fn datastore_in(&self, datacenter: &str) -> Option<&Datastore> {
        self.datastores.values().find(|d| d.datacenter == datacenter)
    }

    /// Adds a powered-on VM to datacenter `datacenter`, in folder `folder` (default: the
    /// datacenter's VM root folder), on its first cluster's first host and its first datastore.
    /// Returns its moref.
    pub fn add_vm(&mut self, name: &str, datacenter: &str, folder: Option<&str>) -> Option<String> {
        let dc = self.datacenters.get(datacenter)?.clone();
        let cluster = self.cluster_in(datacenter)?.clone();
        let datastore = self.datastore_in(datacenter)?.id.clone();
        let id = self.moref("vm-");
        self.vms.insert(
            id.clone(),
            Vm {
                id: id.clone(),
                name: name.into(),
                datacenter: dc.id.clone(),
                folder: folder.map_or(dc.vm_folder.clone(), str::to_owned),
                resource_pool: Some(cluster.resource_pool.clone()),
                host: cluster.hosts.first()?.clone(),
                datastore,
                template: false,
                powered_on: true,
                guest_id: "windows9_64Guest".into(),
                annotation: String::new(),
                snapshots: Vec::new(),
                current_snapshot: None,
                disk: format!("{name} as built"),
            },
        );
        Some(id)
    }

    /// Takes a snapshot of `vm` as a child of its current snapshot. Returns the snapshot moref.
    pub fn add_snapshot(&mut self, vm: &str, name: &str, description: &str, now_ms: i64) -> Option<String> {
        let id = self.moref("snapshot-");
        let vm = self.vms.get_mut(vm)?;
        let num = vm.snapshots.iter().map(|s| s.num).max().unwrap_or(0) + 1;
        vm.snapshots.push(Snapshot {
            id: id.clone(),
            num,
            name: name.into(),
            description: description.into(),
            parent: vm.current_snapshot.clone(),
            created_ms: now_ms,
            disk: vm.disk.clone(),
            powered_on: false,
        });
        vm.current_snapshot = Some(id.clone());
        Some(id)
    }

    /// A VM's inventory path as Horizon shows it: `/<datacenter>/vm/<folder>/<name>`.
    pub fn vm_path(&self, vm: &Vm) -> String {
        let mut parts = vec![vm.name.clone()];
        let mut at = Some(vm.folder.clone());
        while let Some(id) = at {
            if let Some(f) = self.folders.get(&id) {
                parts.push(f.name.clone());
                at = f.parent.clone();
            } else if let Some(dc) = self.datacenters.get(&id) {
                parts.push(dc.name.clone());
                break;
            } else {
                break;
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// A snapshot's path in its VM's snapshot tree, as Horizon shows it: `/base/child`.
    pub fn snapshot_path(vm: &Vm, snapshot: &str) -> String {
        let mut parts = Vec::new();
        let mut at = Some(snapshot.to_owned());
        while let Some(id) = at {
            let Some(s) = vm.snapshots.iter().find(|s| s.id == id) else { break };
            parts.push(s.name.clone());
            at = s.parent.clone();
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The VM folder named `name` anywhere in datacenter `datacenter`.
    pub fn vm_folder_named(&self, datacenter: &str, name: &str) -> Option<&Folder> {
        self.folders.values().find(|f| {
            f.kind == FolderKind::Vm
                && f.name == name
                && self.datacenter_of(&f.id).is_some_and(|dc| dc.id == datacenter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_vcenter_has_the_placement_objects() {
        let mut vc = VcenterSim::new("uuid");
        let place = |datacenter| Placement {
            datacenter,
            cluster: "C",
            resource_pool: Some("VDI"),
            folder: "golden",
            datastore: "ds",
        };
        let eu = vc.add_datacenter(&place("DC-EU"));
        let us = vc.add_datacenter(&place("DC-US"));
        assert_eq!(vc.datacenters.len(), 2);
        assert!(vc.resource_pools.values().any(|p| p.name == "VDI"));
        let folder = vc.vm_folder_named(&eu, "golden").map(|f| f.id.clone());
        assert_ne!(
            folder,
            vc.vm_folder_named(&us, "golden").map(|f| f.id.clone()),
            "a folder per datacenter"
        );
        let vm = vc.add_vm("win11-build", &eu, folder.as_deref()).expect("vm");
        let s1 = vc.add_snapshot(&vm, "a", "", 1).expect("snapshot");
        let s2 = vc.add_snapshot(&vm, "b", "", 2).expect("snapshot");
        let vm = &vc.vms[&vm];
        assert_eq!(vc.vm_path(vm), "/DC-EU/vm/golden/win11-build");
        assert_eq!(vm.datacenter, eu);
        assert_eq!(VcenterSim::snapshot_path(vm, &s2), "/a/b");
        assert_eq!(vm.snapshots[1].parent.as_deref(), Some(s1.as_str()));
    }
}
