//! The lab's Horizon in front of a vCenter the lab does not simulate (vcsim, or a real one).
//!
//! A Connection Server reads base VMs and snapshots from the vCenter it is registered with, so
//! the lab's Horizon needs a view of that vCenter: for a vCenter of its own that is its model;
//! for a remote one it is a mirror ([`VcenterSim`]) that each Horizon request refreshes first,
//! read through golden's own vCenter client (one SOAP inventory read). The mirror holds what
//! Horizon looks at: datacenters, VM folders, clusters, resource pools, datastores, and VMs
//! with their snapshot trees. This is what lets the whole flow run against VMware's simulator,
//! with the lab standing in only for the Connection Servers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Shared;
use super::vcenter::{
    Cluster, Datacenter, Datastore, Folder, FolderKind, ResourcePool, Snapshot, VcenterSim, Vm,
};
use crate::connect::{Credentials, RetryPolicy, Secret};
use crate::ids::SiteName;
use crate::vcenter::{Inventory, VcenterClient, VcenterError};

/// A vCenter the lab's Horizon reads from, and how to log in to it.
#[derive(Clone, Debug)]
pub struct RemoteVcenter {
    pub url: url::Url,
    pub user: String,
    pub password: Secret,
}

/// The mirror of one remote vCenter, kept in the lab state under its name.
#[derive(Clone, Debug)]
pub(super) struct Mirror {
    lab: Shared,
    vcenter: String,
    client: VcenterClient,
    /// One refresh at a time: a burst of Horizon requests reads the vCenter once each, in turn.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl Mirror {
    pub(super) fn new(lab: Shared, vcenter: &str, remote: &RemoteVcenter) -> Mirror {
        let credentials =
            Credentials { user: remote.user.clone(), password: remote.password.clone(), domain: None };
        let client = VcenterClient::new(
            SiteName::new(vcenter),
            remote.url.clone(),
            credentials,
            reqwest::Client::new(),
            RetryPolicy::default(),
        );
        Mirror { lab, vcenter: vcenter.to_owned(), client, refreshing: Arc::default() }
    }

    async fn refresh(&self) -> Result<(), VcenterError> {
        let _one = self.refreshing.lock().await;
        let (inventory, uuid) = tokio::join!(self.client.inventory(), self.client.instance_uuid());
        let sim = mirror(&inventory?, uuid?.as_str());
        if let Some(v) = self.lab.lock().vcenters.get_mut(&self.vcenter) {
            v.sim = sim;
        }
        Ok(())
    }
}

/// Middleware of a Horizon endpoint whose vCenter is remote: refreshes the mirror, then
/// handles the request. A vCenter that cannot be read leaves the last mirror in place.
pub(super) async fn refresh_first(State(mirror): State<Mirror>, request: Request, next: Next) -> Response {
    if let Err(e) = mirror.refresh().await {
        tracing::warn!(vcenter = %mirror.vcenter, error = %e, "lab: cannot refresh the mirror of a remote vcenter");
    }
    next.run(request).await
}

/// The mirror of an inventory: what Horizon reads of it, as the lab's model.
fn mirror(inventory: &Inventory, instance_uuid: &str) -> VcenterSim {
    let mut sim = VcenterSim::new(instance_uuid);
    for dc in inventory.datacenters.values() {
        sim.datacenters.insert(
            dc.id.to_string(),
            Datacenter {
                id: dc.id.to_string(),
                name: dc.name.clone(),
                vm_folder: dc.vm_folder.to_string(),
                host_folder: String::new(),
                datastore_folder: String::new(),
                network_folder: String::new(),
            },
        );
        // Folder parents are not read: every folder hangs below the root VM folder, which is
        // all Horizon's paths need.
        for f in &dc.folders {
            let parent = if f.id == dc.vm_folder { dc.id.to_string() } else { dc.vm_folder.to_string() };
            sim.folders.insert(
                f.id.to_string(),
                Folder {
                    id: f.id.to_string(),
                    name: f.name.clone(),
                    parent: Some(parent),
                    kind: FolderKind::Vm,
                },
            );
        }
        for c in &dc.clusters {
            sim.clusters.insert(
                c.id.to_string(),
                Cluster {
                    id: c.id.to_string(),
                    name: c.name.clone(),
                    datacenter: dc.id.to_string(),
                    resource_pool: c.resource_pool.to_string(),
                    hosts: Vec::new(),
                },
            );
        }
        for p in &dc.resource_pools {
            let id = p.id.to_string();
            let pool = ResourcePool {
                id: id.clone(),
                name: p.name.clone(),
                parent: String::new(),
                cluster: String::new(),
            };
            sim.resource_pools.insert(id, pool);
        }
        for d in &dc.datastores {
            let id = d.id.to_string();
            sim.datastores
                .insert(id.clone(), Datastore { id, name: d.name.clone(), datacenter: dc.id.to_string() });
        }
        for (id, folder) in &dc.vms {
            let Some(vm) = inventory.vms.get(id) else { continue };
            let snapshots: Vec<Snapshot> = vm
                .snapshots
                .iter()
                .zip(1..)
                .map(|(s, num)| Snapshot {
                    id: s.id.to_string(),
                    num,
                    name: s.name.clone(),
                    description: String::new(),
                    parent: s.parent.as_ref().map(ToString::to_string),
                    created_ms: 0,
                })
                .collect();
            sim.vms.insert(
                id.to_string(),
                Vm {
                    id: id.to_string(),
                    name: vm.name.clone(),
                    datacenter: dc.id.to_string(),
                    folder: folder.to_string(),
                    resource_pool: None,
                    host: String::new(),
                    datastore: String::new(),
                    template: vm.template,
                    powered_on: vm.powered_on,
                    guest_id: "windows9_64Guest".into(),
                    annotation: String::new(),
                    current_snapshot: snapshots.last().map(|s| s.id.clone()),
                    snapshots,
                },
            );
        }
    }
    sim
}
