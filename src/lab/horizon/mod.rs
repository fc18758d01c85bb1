//! The lab's Horizon Connection Server: the subset of the Horizon Server REST API golden uses,
//! built strictly from the documented API (`shared/reference/horizon-rest.md`).

mod routes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use routes::router;

/// One simulated Horizon pod.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HorizonSim {
    /// The one vCenter this pod manages: Horizon's id for it (a UUID) and its server name.
    pub vcenter_id: String,
    pub vcenter_server: String,
    pub pools: BTreeMap<String, Pool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    DesktopPool,
    Farm,
}

/// A desktop pool or farm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pool {
    pub id: String,
    pub kind: PoolKind,
    pub name: String,
    pub datacenter_id: String,
    /// The current image: `provisioning_settings.parent_vm_id` / `base_snapshot_id`.
    pub parent_vm_id: String,
    pub base_snapshot_id: String,
}

impl HorizonSim {
    pub fn new(vcenter_id: &str, vcenter_server: &str) -> HorizonSim {
        HorizonSim {
            vcenter_id: vcenter_id.into(),
            vcenter_server: vcenter_server.into(),
            ..HorizonSim::default()
        }
    }

    /// Adds an instant-clone desktop pool or farm running the given image. Returns its id.
    pub fn add_pool(
        &mut self,
        kind: PoolKind,
        name: &str,
        datacenter_id: &str,
        vm: &str,
        snapshot: &str,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.pools.insert(
            id.clone(),
            Pool {
                id: id.clone(),
                kind,
                name: name.into(),
                datacenter_id: datacenter_id.into(),
                parent_vm_id: vm.into(),
                base_snapshot_id: snapshot.into(),
            },
        );
        id
    }
}
