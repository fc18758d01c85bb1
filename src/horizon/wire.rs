//! Horizon's JSON as golden reads it, and its conversion into [`crate::live`] types.
//!
//! Parsing is tolerant on purpose: servers from 8.0 to 2512 add fields release by release, so
//! unknown fields are ignored, every field but `id` may be missing or null, and enums are read
//! as strings so that a value added by a later release maps to a fallback instead of failing
//! the whole listing. (An `Option` field is `None` when the answer leaves it out, as serde
//! reads one; only other fields need `#[serde(default)]`.)

use serde::{Deserialize, Serialize};

use super::Machine;
use crate::desired::{Logoff, PoolKind};
use crate::ids::HorizonName;
use crate::live::{HorizonId, ImageRef, LivePool, Moref, Operation, PendingImage, PendingState};

/// `AuthTokens` from `/login`; `/refresh` returns only the access token.
#[derive(Deserialize)]
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Login<'a> {
    pub username: &'a str,
    // The spec types it as an array of string; every known client sends a string.
    pub password: &'a str,
    pub domain: &'a str,
}

#[derive(Serialize)]
pub(crate) struct RefreshToken<'a> {
    pub refresh_token: &'a str,
}

/// `DesktopPoolInfoV2` and later: the fields golden reads.
#[derive(Deserialize)]
pub(crate) struct DesktopPool {
    pub id: String,
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub enable_provisioning: Option<bool>,
    pub vcenter_id: Option<String>,
    pub provisioning_settings: Option<ProvisioningSettings>,
    pub provisioning_status_data: Option<StatusData>,
}

/// `FarmInfoV2` and later. `source` is absent in farm v2–v6 and back in v7.
#[derive(Deserialize)]
pub(crate) struct Farm {
    pub id: String,
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub automated_farm_settings: Option<AutomatedFarmSettings>,
}

#[derive(Deserialize)]
pub(crate) struct AutomatedFarmSettings {
    pub enable_provisioning: Option<bool>,
    pub vcenter_id: Option<String>,
    pub provisioning_settings: Option<ProvisioningSettings>,
    pub provisioning_status_data: Option<StatusData>,
}

#[derive(Deserialize)]
pub(crate) struct ProvisioningSettings {
    pub parent_vm_id: Option<String>,
    pub base_snapshot_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PushImageSettings {
    pub start_time: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatusData {
    pub instant_clone_operation: Option<String>,
    pub instant_clone_pending_image_state: Option<String>,
    pub instant_clone_pending_image_parent_vm_id: Option<String>,
    pub instant_clone_pending_image_snapshot_id: Option<String>,
    pub instant_clone_pending_image_progress: Option<i64>,
    pub instant_clone_pending_image_error: Option<String>,
    /// The settings of the push under way; `start_time` (epoch ms) says when it replaces
    /// machines.
    pub instant_clone_push_image_settings: Option<PushImageSettings>,
    /// A farm's schedule: `next_scheduled_time` (epoch ms) says when its maintenance starts.
    pub instant_clone_scheduled_maintenance_data: Option<MaintenanceData>,
    pub last_provisioning_error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MaintenanceData {
    pub next_scheduled_time: Option<i64>,
}

/// `MachineInfo` (v1): only which pool a machine is in, for counting.
#[derive(Deserialize)]
pub(crate) struct MachineRef {
    pub desktop_pool_id: Option<String>,
}

/// `RDSServerInfo`: only which farm a server is in, for counting.
#[derive(Deserialize)]
pub(crate) struct RdsServerRef {
    pub farm_id: Option<String>,
}

/// `SessionInfo`: which pool or farm a session is on. An RDS session names its farm (and, for
/// an RDS desktop, the RDS desktop pool too); a desktop session only its pool.
#[derive(Deserialize)]
pub(crate) struct SessionRef {
    pub desktop_pool_id: Option<String>,
    pub farm_id: Option<String>,
}

/// `MachineInfoV2`: a machine with its image, as a canary push watches it.
#[derive(Deserialize)]
pub(crate) struct MachineV2 {
    pub id: String,
    pub name: Option<String>,
    pub state: Option<String>,
    pub session_id: Option<String>,
    pub managed_machine_data: Option<ManagedMachineData>,
}

/// `ManagedMachineDataV2`: the fields golden reads.
#[derive(Deserialize)]
pub(crate) struct ManagedMachineData {
    pub base_vm_id: Option<String>,
    pub base_vm_snapshot_id: Option<String>,
    pub pending_base_vm_id: Option<String>,
    pub pending_base_vm_snapshot_id: Option<String>,
    pub operation_state: Option<String>,
    pub clone_error_message: Option<String>,
}

/// `BulkItemResponseInfo`: one item of a bulk answer (the v2 push image). It failed when its
/// `status_code` is 400 or more or it carries errors (in Horizon's error envelope).
#[derive(Debug, Deserialize)]
pub(crate) struct BulkItem {
    pub id: Option<String>,
    pub status_code: Option<i64>,
    /// The rest of the item, where its errors are.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl BulkItem {
    /// Why the item failed, or `None` when it did not.
    pub(crate) fn failure(&self) -> Option<String> {
        let messages = super::error::error_messages(&serde_json::Value::Object(self.rest.clone()));
        let status = self.status_code.unwrap_or(200);
        if status < 400 && messages.is_none() {
            return None;
        }
        let id = self.id.as_deref().unwrap_or("?");
        Some(format!("{id}: {}", messages.unwrap_or_else(|| format!("status {status}"))))
    }
}

/// `BaseVMInfo`.
#[derive(Deserialize)]
pub(crate) struct BaseVm {
    pub id: String,
    pub name: Option<String>,
    pub path: Option<String>,
    pub datacenter_id: Option<String>,
    pub incompatible_reasons: Option<Vec<String>>,
}

/// `BaseSnapshotInfo`.
#[derive(Deserialize)]
pub(crate) struct BaseSnapshot {
    pub id: String,
    pub name: Option<String>,
    pub path: Option<String>,
    pub created_timestamp: Option<i64>,
    pub incompatible_reasons: Option<Vec<String>>,
}

/// `FarmInfo` (v1, `/inventory/v1/farms`): no image, so golden reads only that a farm exists.
#[derive(Deserialize)]
pub(crate) struct FarmV1 {
    pub name: Option<String>,
}

/// `ConnectionServerMonitorInfo` (`/monitor/connection-servers`) and its V2
/// (`/monitor/v1/connection-servers`): only the version golden reads.
#[derive(Deserialize)]
pub(crate) struct ConnectionServerMonitor {
    pub details: Option<ConnectionServerDetails>,
}

/// `ConnectionServerMonitorDetails`.
#[derive(Deserialize)]
pub(crate) struct ConnectionServerDetails {
    pub version: Option<String>,
}

/// `VirtualCenterInfo`.
#[derive(Deserialize)]
pub(crate) struct VirtualCenter {
    pub id: String,
    pub server_name: Option<String>,
    pub instance_uuid: Option<String>,
    pub enabled: Option<bool>,
}

/// `DesktopPoolPushImageSpec` (v1).
#[derive(Serialize)]
pub(crate) struct PushImageSpec<'a> {
    pub logoff_policy: &'static str,
    pub parent_vm_id: &'a str,
    pub snapshot_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    pub stop_on_first_error: bool,
}

/// `DesktopPoolPushImageSpecV2` (2206) for a selective push: the image goes to `machine_ids`
/// only, and Horizon holds it until it is promoted or cancelled.
#[derive(Serialize)]
pub(crate) struct SelectivePushImageSpec<'a> {
    pub logoff_policy: &'static str,
    pub parent_vm_id: &'a str,
    pub snapshot_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    pub stop_on_first_error: bool,
    pub selective_push_image: bool,
    pub machine_ids: Vec<&'a str>,
}

/// `FarmMaintenanceSpec` (v1), immediate mode only.
#[derive(Serialize)]
pub(crate) struct FarmMaintenanceSpec<'a> {
    pub maintenance_mode: &'static str,
    pub logoff_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<i64>,
    pub parent_vm_id: &'a str,
    pub snapshot_id: &'a str,
    pub stop_on_first_error: bool,
}

#[derive(Serialize)]
pub(crate) struct FarmCancelMaintenanceSpec {
    pub maintenance_mode: &'static str,
}

pub(crate) fn logoff_policy(logoff: Logoff) -> &'static str {
    match logoff {
        Logoff::Wait => "WAIT_FOR_LOGOFF",
        Logoff::Force => "FORCE_LOGOFF",
    }
}

/// `instant_clone_operation` of pools and farms; unknown values are [`Operation::Other`].
pub(crate) fn operation(value: Option<&str>) -> Operation {
    match value {
        None | Some("NONE") => Operation::None,
        Some("INITIAL_PUBLISH") => Operation::InitialPublish,
        Some("SCHEDULE_PUSH_IMAGE" | "RECURRING_SCHEDULED_MAINTENANCE") => Operation::PushImage,
        Some("CANCEL_SCHEDULED_PUSH_IMAGE" | "CANCEL_SCHEDULED_MAINTENANCE") => Operation::CancelPush,
        Some("INFRASTRUCTURE_CHANGE") => Operation::InfrastructureChange,
        Some("FINAL_UNPUBLISH") => Operation::FinalUnpublish,
        Some(_) => Operation::Other,
    }
}

/// `instant_clone_pending_image_state`. `PendingState` has no fallback variant, so a value
/// from a later release is read as `PUBLISHING`: work in flight, which makes golden wait
/// rather than act on a pool it does not understand.
pub(crate) fn pending_state(value: &str) -> PendingState {
    match value {
        "PENDING_PUBLISH" => PendingState::PendingPublish,
        "PUBLISHING" => PendingState::Publishing,
        "READY" => PendingState::Ready,
        "READY_HELD" => PendingState::ReadyHeld,
        "FAILED" => PendingState::Failed,
        "UNPUBLISHING" => PendingState::Unpublishing,
        other => {
            tracing::warn!(state = other, "unknown instant_clone_pending_image_state, treated as PUBLISHING");
            PendingState::Publishing
        }
    }
}

fn image(vm: Option<String>, snapshot: Option<String>) -> Option<ImageRef> {
    match (vm.filter(|v| !v.is_empty()), snapshot.filter(|s| !s.is_empty())) {
        (Some(vm), Some(snapshot)) => Some(ImageRef { vm: Moref::new(vm), snapshot: Moref::new(snapshot) }),
        _ => None,
    }
}

/// What a pool or farm says of its provisioning, wherever its resource version keeps it.
struct Provisioning {
    enabled: Option<bool>,
    vcenter_id: Option<String>,
    settings: Option<ProvisioningSettings>,
    status: Option<StatusData>,
}

fn live_pool(
    id: String,
    name: Option<String>,
    kind: PoolKind,
    instant_clone: bool,
    Provisioning { enabled, vcenter_id, settings, status }: Provisioning,
) -> LivePool {
    let current = settings.and_then(|s| image(s.parent_vm_id, s.base_snapshot_id));
    let (operation, pending, last_error) = match status {
        None => (Operation::None, None, None),
        Some(s) => {
            let state = s.instant_clone_pending_image_state.as_deref().map(pending_state);
            // A pending image from the image catalog has no VM/snapshot; it shows as the
            // operation only (golden pushes VM/snapshot images).
            let pending_image =
                image(s.instant_clone_pending_image_parent_vm_id, s.instant_clone_pending_image_snapshot_id);
            let pending = match (state, pending_image) {
                (Some(state), Some(image)) => Some(PendingImage {
                    image,
                    state,
                    progress: s.instant_clone_pending_image_progress.map(|p| p.clamp(0, 100) as u8),
                    error: s.instant_clone_pending_image_error.filter(|e| !e.is_empty()),
                    start_time: s.instant_clone_push_image_settings.and_then(|p| p.start_time).or_else(
                        || s.instant_clone_scheduled_maintenance_data.and_then(|m| m.next_scheduled_time),
                    ),
                }),
                _ => None,
            };
            let last_error = s.last_provisioning_error.filter(|e| !e.is_empty());
            (operation(s.instant_clone_operation.as_deref()), pending, last_error)
        }
    };
    LivePool {
        id: HorizonId::new(id),
        name: HorizonName::new(name.unwrap_or_default()),
        kind,
        instant_clone,
        // Absent (older versions, manual pools): nothing says it is off.
        provisioning: enabled.unwrap_or(true),
        vcenter: vcenter_id.filter(|v| !v.is_empty()).map(HorizonId::new),
        current,
        pending,
        operation,
        last_error,
    }
}

impl MachineV2 {
    pub(crate) fn into_machine(self) -> Machine {
        let data = self.managed_machine_data;
        let (image, pending, operation_state, error) = match data {
            Some(d) => (
                image(d.base_vm_id, d.base_vm_snapshot_id),
                image(d.pending_base_vm_id, d.pending_base_vm_snapshot_id),
                d.operation_state,
                d.clone_error_message.filter(|e| !e.trim().is_empty()),
            ),
            None => (None, None, None, None),
        };
        Machine {
            id: HorizonId::new(self.id),
            name: self.name.unwrap_or_default(),
            state: self.state.unwrap_or_default(),
            has_session: self.session_id.is_some_and(|s| !s.is_empty()),
            image,
            pending,
            operation_state,
            error,
        }
    }
}

impl DesktopPool {
    pub(crate) fn into_live(self) -> LivePool {
        let instant_clone =
            self.kind.as_deref() == Some("AUTOMATED") && self.source.as_deref() == Some("INSTANT_CLONE");
        let provisioning = Provisioning {
            enabled: self.enable_provisioning,
            vcenter_id: self.vcenter_id,
            settings: self.provisioning_settings,
            status: self.provisioning_status_data,
        };
        live_pool(self.id, self.name, PoolKind::DesktopPool, instant_clone, provisioning)
    }
}

impl Farm {
    pub(crate) fn into_live(self) -> LivePool {
        // Farm v2–v6 have no `source`; automated farms of Horizon 8 are instant clone
        // (linked-clone farms went with View Composer), so absent counts as instant clone.
        let instant_clone = self.kind.as_deref() == Some("AUTOMATED")
            && self.source.as_deref().is_none_or(|s| s == "INSTANT_CLONE")
            && self.automated_farm_settings.is_some();
        let provisioning = match self.automated_farm_settings {
            Some(a) => Provisioning {
                enabled: a.enable_provisioning,
                vcenter_id: a.vcenter_id,
                settings: a.provisioning_settings,
                status: a.provisioning_status_data,
            },
            None => Provisioning { enabled: None, vcenter_id: None, settings: None, status: None },
        };
        live_pool(self.id, self.name, PoolKind::Farm, instant_clone, provisioning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_tolerantly_and_map_unknown_values() {
        let json = r#"{
            "id": "p1", "name": "Finance-IC", "type": "AUTOMATED", "source": "INSTANT_CLONE",
            "some_future_field": {"x": 1}, "display_name": null,
            "provisioning_settings": {"parent_vm_id": "vm-2", "base_snapshot_id": "snapshot-3",
                                      "datacenter_id": null},
            "provisioning_status_data": {
                "instant_clone_operation": "SOMETHING_NEW",
                "instant_clone_pending_image_state": "PUBLISHING",
                "instant_clone_pending_image_parent_vm_id": "vm-7",
                "instant_clone_pending_image_snapshot_id": "snapshot-8",
                "instant_clone_pending_image_progress": 140,
                "instant_clone_pending_image_error": null,
                "last_provisioning_error": ""
            }
        }"#;
        let pool: DesktopPool = serde_json::from_str(json).expect("parses");
        let live = pool.into_live();
        assert!(live.instant_clone);
        assert_eq!(live.current.as_ref().map(|i| i.vm.as_str()), Some("vm-2"));
        assert_eq!(live.operation, Operation::Other);
        let pending = live.pending.expect("pending image");
        assert_eq!(
            (pending.image.snapshot.as_str(), pending.state),
            ("snapshot-8", PendingState::Publishing)
        );
        assert_eq!(pending.progress, Some(100));
        assert_eq!(live.last_error, None);
    }

    #[test]
    fn sparse_pools_and_farms_still_parse() {
        let pool: DesktopPool =
            serde_json::from_str(r#"{"id":"p","type":"MANUAL","provisioning_status_data":null}"#)
                .expect("parses");
        let live = pool.into_live();
        assert!(!live.instant_clone && live.current.is_none() && live.pending.is_none());
        assert_eq!(live.operation, Operation::None);

        let farm: Farm = serde_json::from_str(
            r#"{"id":"f","name":"SAP","type":"AUTOMATED","automated_farm_settings":{
                "provisioning_settings":{"parent_vm_id":"vm-1","base_snapshot_id":"snapshot-1"},
                "provisioning_status_data":{"instant_clone_operation":"RECURRING_SCHEDULED_MAINTENANCE",
                    "instant_clone_pending_image_state":"READY_HELD",
                    "instant_clone_pending_image_parent_vm_id":"vm-4",
                    "instant_clone_pending_image_snapshot_id":"snapshot-5"}}}"#,
        )
        .expect("parses");
        let live = farm.into_live();
        assert!(live.instant_clone);
        assert_eq!(live.kind, PoolKind::Farm);
        assert_eq!(live.operation, Operation::PushImage);
        assert_eq!(live.pending.map(|p| p.state), Some(PendingState::ReadyHeld));
    }

    #[test]
    fn machines_show_their_image_and_failure_and_bulk_items_their_refusal() {
        let machine: MachineV2 = serde_json::from_str(
            r#"{"id":"m1","name":"finance-ic-001","state":"PROVISIONING_ERROR","session_id":null,
                "managed_machine_data":{"base_vm_id":"vm-1","base_vm_snapshot_id":"snapshot-1",
                    "pending_base_vm_id":"vm-2","pending_base_vm_snapshot_id":"snapshot-3",
                    "operation":"PUSH_IMAGE","operation_state":"FAULT",
                    "clone_error_message":"Customization failed"}}"#,
        )
        .expect("parses");
        let machine = machine.into_machine();
        let new = ImageRef { vm: Moref::new("vm-2"), snapshot: Moref::new("snapshot-3") };
        assert_eq!(machine.pending.as_ref(), Some(&new));
        assert!(!machine.has_session && !machine.ready_on(&new));
        assert_eq!(
            machine.failure().as_deref(),
            Some("`finance-ic-001` is provisioning error (Customization failed)")
        );
        let ready: MachineV2 = serde_json::from_str(
            r#"{"id":"m2","name":"finance-ic-002","state":"AVAILABLE","session_id":"s-1",
                "managed_machine_data":{"base_vm_id":"vm-2","base_vm_snapshot_id":"snapshot-3","operation_state":"COMPLETED"}}"#,
        )
        .expect("parses");
        let ready = ready.into_machine();
        assert!(ready.ready_on(&new) && ready.has_session && ready.failure().is_none());

        let items: Vec<BulkItem> = serde_json::from_str(
            r#"[{"id":"m1","status_code":200,"errors":[]},
                {"id":"m2","status_code":404,"errors":[{"error_key":"k","error_message":"Machine not found."}]},
                {"id":"m3","status_code":400,"error_messages":["Machine is busy."]},
                {"id":"m4","status_code":409}]"#,
        )
        .expect("parses");
        let failures: Vec<String> = items.iter().filter_map(BulkItem::failure).collect();
        assert_eq!(failures, ["m2: Machine not found.", "m3: Machine is busy.", "m4: status 409"]);
    }

    mod fuzz {
        use super::super::*;
        use crate::horizon::HorizonVersion;
        use crate::horizon::error::{error_text, retry_after};
        use proptest::prelude::*;
        use serde_json::Value;

        /// The names Horizon's answers use, so that generated objects reach the nested types.
        const KEYS: &[&str] = &[
            "id",
            "name",
            "type",
            "source",
            "provisioning_settings",
            "provisioning_status_data",
            "automated_farm_settings",
            "parent_vm_id",
            "base_snapshot_id",
            "instant_clone_operation",
            "instant_clone_pending_image_state",
            "instant_clone_pending_image_parent_vm_id",
            "instant_clone_pending_image_snapshot_id",
            "instant_clone_pending_image_progress",
            "instant_clone_pending_image_error",
            "last_provisioning_error",
            "path",
            "datacenter_id",
            "incompatible_reasons",
            "created_timestamp",
            "details",
            "version",
            "server_name",
            "instance_uuid",
            "enabled",
            "access_token",
            "refresh_token",
            "errors",
            "error_message",
            "error_messages",
            "desktop_pool_id",
            "farm_id",
            "managed_machine_data",
            "base_vm_snapshot_id",
            "pending_base_vm_snapshot_id",
            "operation_state",
            "status_code",
        ];

        /// Any JSON value, its objects keyed mostly by the names Horizon uses.
        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "\\PC{0,12}".prop_map(Value::from),
                prop::sample::select(
                    &["PUBLISHING", "READY_HELD", "PUSH_IMAGE", "INSTANT_CLONE", "8.12.0", "7.13"][..]
                )
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(
                        (prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), "\\PC{0,6}"], inner),
                        0..6
                    )
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Whatever Horizon answers, golden reads it or refuses it: never a panic.
            #[test]
            fn any_answer_is_read_or_refused(value in json(), page in json()) {
                let list = Value::Array(vec![value.clone(), page]);
                if let Ok(pools) = serde_json::from_value::<Vec<DesktopPool>>(list.clone()) {
                    pools.into_iter().for_each(|p| drop(p.into_live()));
                }
                if let Ok(farms) = serde_json::from_value::<Vec<Farm>>(list.clone()) {
                    farms.into_iter().for_each(|f| drop(f.into_live()));
                }
                let _ = serde_json::from_value::<Vec<FarmV1>>(list.clone());
                if let Ok(machines) = serde_json::from_value::<Vec<MachineV2>>(list.clone()) {
                    machines.into_iter().for_each(|m| drop(m.into_machine().failure()));
                }
                if let Ok(items) = serde_json::from_value::<Vec<BulkItem>>(list.clone()) {
                    items.iter().for_each(|i| drop(i.failure()));
                }
                let _ = serde_json::from_value::<Vec<SessionRef>>(list.clone());
                let _ = serde_json::from_value::<Vec<MachineRef>>(list.clone());
                let _ = serde_json::from_value::<Vec<RdsServerRef>>(list.clone());
                let _ = serde_json::from_value::<Vec<BaseVm>>(list.clone());
                let _ = serde_json::from_value::<Vec<BaseSnapshot>>(list.clone());
                let _ = serde_json::from_value::<Vec<VirtualCenter>>(list.clone());
                let _ = serde_json::from_value::<Tokens>(value.clone());
                if let Ok(servers) = serde_json::from_value::<Vec<ConnectionServerMonitor>>(list) {
                    for version in servers.iter().filter_map(|s| s.details.as_ref()?.version.as_deref()) {
                        let _ = HorizonVersion::parse(version);
                    }
                }
                let body = value.to_string();
                let _ = error_text(reqwest::StatusCode::BAD_REQUEST, body.as_bytes());
            }

            /// Any bytes as an answer, and any header text, are read or refused.
            #[test]
            fn any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..256), header in "\\PC{0,24}") {
                let _ = serde_json::from_slice::<Vec<DesktopPool>>(&bytes);
                let _ = error_text(reqwest::StatusCode::TOO_MANY_REQUESTS, &bytes);
                let _ = HorizonVersion::parse(&String::from_utf8_lossy(&bytes));
                let mut headers = reqwest::header::HeaderMap::new();
                if let Ok(value) = reqwest::header::HeaderValue::from_str(&header) {
                    headers.insert(crate::horizon::error::RETRY_AFTER_HEADER, value);
                    let _ = retry_after(&headers);
                }
            }
        }
    }
}
