//! Client of the Horizon Server REST API of a site's Connection Server.
//!
//! golden asks Horizon four things: which image each instant-clone desktop pool and farm
//! runs (and what it is being moved to), how many machines and user sessions each has (a
//! push's blast radius), which VMs and snapshots of the site's vCenter Horizon can use as
//! images, and to push a new image (pools, to a few canary machines first if asked) or
//! schedule an immediate maintenance onto one (farms), now or at a start time. The calls and
//! their wire format follow VMware's Horizon Server REST API documentation: `/inventory/v2`
//! desktop pools (Horizon 8.0 / 2006 and later), `/inventory/v2` farms (8.2 / 2103 and later),
//! the v1 `schedule-push-image` and `schedule-maintenance` actions (`start_time` and
//! `next_scheduled_time`: unset or past means now); `/inventory/v1/machines`,
//! `/inventory/v1/rds-servers` and `/inventory/v1/sessions` by pages (2012 and later; a
//! session names its pool, or for an RDS session its farm); and for canaries the v2
//! `schedule-push-image` with `selective_push_image` and `machine_ids` (2206 and later; it
//! answers 200 with one `BulkItemResponseInfo` per item, any of them at 400 or more, or with
//! errors, a refusal), `promote-pending-image` (only while the image is `READY_HELD`), and
//! `/inventory/v2/machines` filtered by `desktop_pool_id`, whose `managed_machine_data` names
//! each machine's image and pending image.
//!
//! golden supports Horizon 8.2 (2103) and later. Before its first pool listing the client reads
//! the Connection Server's version, once, from `GET /rest/monitor/v1/connection-servers`
//! (`ConnectionServerMonitorInfoV2`, Horizon 8.0 and later; the version is `details.version`,
//! e.g. `8.12.0`), falling back on a 404 to the unversioned `/rest/monitor/connection-servers`
//! (7.10 and later), so that a Horizon 7 server is named too. On 8.0 and 8.1 a pod without
//! farms is still read (its farms are listed through `/inventory/v1/farms` only to see that
//! there are none); one with farms, and any Horizon 7, is refused with [`HorizonError::TooOld`].
//!
//! - [`HorizonClient`] (`client/`: the calls in `mod.rs`, the session in `session.rs`): login
//!   with refresh-then-relogin on 401, paging by
//!   `HAS_MORE_RECORDS` (at most 100 pages), answers of at most 64 MiB, every call under the
//!   shared [`crate::connect::RetryPolicy`] (actions only after failures that had no effect).
//! - [`HorizonError`] (`error`): one error enum, retryable on transport failures, 429 (with
//!   `X-Rate-Limit-Retry-After-Seconds`, capped), 502, 503 and 504.
//! - `wire`: Horizon's JSON, parsed tolerantly, converted into [`crate::live::LivePool`] here
//!   at the edge so that no API type reaches the planner.

mod client;
mod error;
mod version;
mod wire;

use serde::{Deserialize, Serialize};

use crate::desired::Logoff;
use crate::live::{HorizonId, ImageRef, Moref};

pub use client::HorizonClient;
pub use error::{HorizonError, RETRY_AFTER_HEADER, ServerMessage};
pub use version::HorizonVersion;

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

/// A machine of a desktop pool (`MachineInfoV2`), as a canary push watches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub id: HorizonId,
    pub name: String,
    /// Horizon's `state`: `AVAILABLE`, `CONNECTED`, `PROVISIONING`, `PROVISIONING_ERROR`, ...
    pub state: String,
    /// A user session is on it.
    pub has_session: bool,
    /// The image it was made from (`managed_machine_data.base_vm_id`, `base_vm_snapshot_id`).
    pub image: Option<ImageRef>,
    /// The image a push is to recreate it from.
    pub pending: Option<ImageRef>,
    /// The state of the operation on it: `SCHEDULED`, `PROGRESSING`, `COMPLETED`, `FAULT`, ...
    pub operation_state: Option<String>,
    /// Why making it failed (`clone_error_message`).
    pub error: Option<String>,
}

impl Machine {
    /// Why Horizon failed to make it, when it did: an error state (`PROVISIONING_ERROR`,
    /// `ERROR`) or a failed operation (`FAULT`).
    pub fn failure(&self) -> Option<String> {
        let failed = matches!(self.state.as_str(), "PROVISIONING_ERROR" | "ERROR")
            || self.operation_state.as_deref() == Some("FAULT");
        failed.then(|| {
            let error = self.error.as_deref().unwrap_or("no message");
            format!("`{}` is {} ({error})", self.name, self.state.to_lowercase().replace('_', " "))
        })
    }

    /// Whether it is ready for users on `image`: `AVAILABLE`, made from it.
    pub fn ready_on(&self, image: &ImageRef) -> bool {
        self.state == "AVAILABLE" && self.image.as_ref() == Some(image)
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
