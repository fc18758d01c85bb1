//! Client of the Horizon Server REST API of a site's Connection Server.
//!
//! golden asks Horizon three things: which image each instant-clone desktop pool and farm
//! runs (and what it is being moved to), which VMs and snapshots of the site's vCenter Horizon
//! can use as images, and to push a new image (pools) or schedule an immediate maintenance
//! onto one (farms). The calls and their wire format follow VMware's Horizon Server REST API
//! documentation (Horizon 8.1 / 2012 and later: `/inventory/v2` pools, `/inventory/v2` farms
//! from 2103, the v1 `schedule-push-image` and `schedule-maintenance` actions).
//!
//! - [`HorizonClient`] (`client`): login with refresh-then-relogin on 401, paging by
//!   `HAS_MORE_RECORDS`, every call under the shared [`crate::connect::RetryPolicy`].
//! - [`HorizonError`] (`error`): one error enum, retryable on transport failures, 429 (with
//!   `X-Rate-Limit-Retry-After-Seconds`), 502, 503 and 504.
//! - `wire`: Horizon's JSON, parsed tolerantly, converted into [`crate::live::LivePool`] here
//!   at the edge so that no API type reaches the planner.

mod client;
mod error;
mod wire;

use serde::{Deserialize, Serialize};

use crate::desired::Logoff;
use crate::live::{HorizonId, ImageRef, Moref};

pub use client::HorizonClient;
pub use error::{HorizonError, RETRY_AFTER_HEADER, ServerMessage};

/// What to push to a desktop pool or a farm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSpec {
    /// The new image: parent VM and snapshot.
    pub image: ImageRef,
    pub logoff: Logoff,
    /// When machines may be recreated (epoch ms); `None` (or a past time) means now.
    pub start_time_ms: Option<i64>,
    /// Stop the rollout at the first machine that fails (Horizon's default).
    pub stop_on_first_error: bool,
}

impl PushSpec {
    /// A push of `image` starting now and stopping at the first error.
    pub fn now(image: ImageRef, logoff: Logoff) -> PushSpec {
        PushSpec { image, logoff, start_time_ms: None, stop_on_first_error: true }
    }
}

/// A vCenter VM Horizon offers as a parent image (`BaseVMInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseVm {
    pub id: Moref,
    pub name: String,
    /// Inventory path, e.g. `/DC-EU/vm/golden/win11-ent-2026.10`.
    pub path: String,
    pub datacenter_id: Option<Moref>,
    /// Why Horizon would refuse it (`NO_SNAPSHOTS`, ...); empty when usable.
    pub incompatible_reasons: Vec<String>,
}

/// A snapshot of a base VM (`BaseSnapshotInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseSnapshot {
    pub id: Moref,
    pub name: String,
    /// Path in the VM's snapshot tree, e.g. `/sealed-2026-09/sealed-2026-10`.
    pub path: String,
    pub created_ms: Option<i64>,
    pub incompatible_reasons: Vec<String>,
}

/// A vCenter registered in the pod (`VirtualCenterInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualCenter {
    pub id: HorizonId,
    /// FQDN or IP the pod reaches the vCenter at.
    pub server_name: String,
    pub instance_uuid: Option<String>,
    pub enabled: bool,
}
