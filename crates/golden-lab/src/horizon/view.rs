//! The JSON documents the lab's Horizon returns, rendered from the model: `DesktopPoolInfo`
//! (v1), `DesktopPoolInfoV2`, `FarmInfo` (v1), `FarmInfoV2`, `MachineInfo` (v1, v2),
//! `RDSServerInfo`, `SessionInfo`, `BaseVMInfo`, `BaseSnapshotInfo`,
//! the virtual center and connection server views and the error envelope. Field names and enum values follow the Horizon Server
//! REST API documentation.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Canaries, FailedImage, Machine, Phase, Pool, PoolKind, PoolSource, Push, UserSession};
use crate::Timings;
use crate::vcenter::{Snapshot, VcenterSim, Vm};

/// Placement objects every pool reports: the first cluster of the site's datacenter.
#[derive(Debug, Default)]
pub(super) struct Placement {
    pub host_or_cluster_id: Option<String>,
    pub resource_pool_id: Option<String>,
    pub vm_folder_id: Option<String>,
}

impl Placement {
    pub(super) fn of(vc: &VcenterSim, datacenter: &str) -> Placement {
        let cluster = vc.cluster_in(datacenter);
        Placement {
            host_or_cluster_id: cluster.map(|c| c.id.clone()),
            resource_pool_id: cluster.map(|c| c.resource_pool.clone()),
            vm_folder_id: vc.datacenters.get(datacenter).map(|d| d.vm_folder.clone()),
        }
    }
}

/// The error envelope of Horizon 2203+: `status` is the HTTP status name in UPPER_SNAKE.
pub(super) fn error_envelope(status: StatusCode, key: &str, message: &str, now: i64) -> Value {
    let name = status.canonical_reason().unwrap_or("ERROR").to_ascii_uppercase().replace([' ', '-'], "_");
    json!({
        "status": name,
        "timestamp": now,
        "errors": [{"error_key": key, "error_message": message}],
    })
}

fn source_name(source: PoolSource) -> &'static str {
    match source {
        PoolSource::InstantClone => "INSTANT_CLONE",
        PoolSource::LinkedClone => "LINKED_CLONE",
        PoolSource::VirtualCenter => "VIRTUAL_CENTER",
    }
}

/// `DesktopPoolInfo` (v1): no provisioning data at all.
#[derive(Debug, Serialize)]
pub(super) struct PoolV1 {
    id: String,
    name: String,
    display_name: String,
    description: Option<String>,
    enabled: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
}

pub(super) fn pool_v1(pool: &Pool) -> PoolV1 {
    PoolV1 {
        id: pool.id.clone(),
        name: pool.name.clone(),
        display_name: pool.name.clone(),
        description: None,
        enabled: pool.enabled,
        kind: "AUTOMATED",
        source: source_name(pool.source),
    }
}

/// `DesktopPoolInfoV2`. The documents are typed rather than built as `serde_json::Value`:
/// a listing renders thousands of them while holding the lab's lock.
#[derive(Debug, Serialize)]
pub(super) struct PoolV2 {
    id: String,
    name: String,
    display_name: String,
    description: Option<String>,
    enabled: bool,
    enable_provisioning: bool,
    stop_provisioning_on_error: bool,
    delete_in_progress: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
    image_source: &'static str,
    user_assignment: &'static str,
    vcenter_id: String,
    provisioning_settings: ProvisioningSettings,
    provisioning_status_data: Option<StatusData>,
}

pub(super) fn pool_v2(pool: &Pool, vcenter_id: &str, place: &Placement, now: i64, t: &Timings) -> PoolV2 {
    let instant = pool.source == PoolSource::InstantClone;
    PoolV2 {
        id: pool.id.clone(),
        name: pool.name.clone(),
        display_name: pool.name.clone(),
        description: None,
        enabled: pool.enabled,
        enable_provisioning: pool.provisioning,
        stop_provisioning_on_error: true,
        delete_in_progress: false,
        kind: "AUTOMATED",
        source: source_name(pool.source),
        image_source: "VIRTUAL_CENTER",
        user_assignment: "FLOATING",
        vcenter_id: vcenter_id.to_owned(),
        provisioning_settings: provisioning_settings(pool, place),
        provisioning_status_data: instant.then(|| status_data(pool, now, t)),
    }
}

/// `FarmInfo` (v1): what a farm is, but not which image it runs.
#[derive(Debug, Serialize)]
pub(super) struct FarmV1 {
    id: String,
    name: String,
    display_name: String,
    description: Option<String>,
    enabled: bool,
    #[serde(rename = "type")]
    kind: &'static str,
}

pub(super) fn farm_v1(pool: &Pool) -> FarmV1 {
    FarmV1 {
        id: pool.id.clone(),
        name: pool.name.clone(),
        display_name: pool.name.clone(),
        description: None,
        enabled: pool.enabled,
        kind: "AUTOMATED",
    }
}

/// `FarmInfoV2`: no `source` (absent in farm v2–v6); the image lives in
/// `automated_farm_settings`.
#[derive(Debug, Serialize)]
pub(super) struct FarmV2 {
    id: String,
    name: String,
    display_name: String,
    description: Option<String>,
    enabled: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    delete_in_progress: bool,
    server_error_threshold: u32,
    automated_farm_settings: AutomatedFarmSettings,
}

#[derive(Debug, Serialize)]
struct AutomatedFarmSettings {
    vcenter_id: String,
    image_source: &'static str,
    enable_provisioning: bool,
    stop_provisioning_on_error: bool,
    min_ready_vms: u32,
    provisioning_settings: ProvisioningSettings,
    provisioning_status_data: StatusData,
}

pub(super) fn farm_v2(pool: &Pool, vcenter_id: &str, place: &Placement, now: i64, t: &Timings) -> FarmV2 {
    let mut status = status_data(pool, now, t);
    status.instant_clone_operation_time = Some(pool.push.as_ref().map(|p| p.scheduled_at));
    status.instant_clone_scheduled_maintenance_data = Some(maintenance_data(pool.push.as_ref()));
    FarmV2 {
        id: pool.id.clone(),
        name: pool.name.clone(),
        display_name: pool.name.clone(),
        description: None,
        enabled: pool.enabled,
        kind: "AUTOMATED",
        delete_in_progress: false,
        server_error_threshold: 0,
        automated_farm_settings: AutomatedFarmSettings {
            vcenter_id: vcenter_id.to_owned(),
            image_source: "VIRTUAL_CENTER",
            enable_provisioning: pool.provisioning,
            stop_provisioning_on_error: true,
            min_ready_vms: 0,
            provisioning_settings: provisioning_settings(pool, place),
            provisioning_status_data: status,
        },
    }
}

#[derive(Debug, Serialize)]
struct ProvisioningSettings {
    parent_vm_id: Option<String>,
    base_snapshot_id: Option<String>,
    vm_template_id: Option<String>,
    datacenter_id: String,
    vm_folder_id: Option<String>,
    host_or_cluster_id: Option<String>,
    resource_pool_id: Option<String>,
    add_virtual_tpm: bool,
}

fn provisioning_settings(pool: &Pool, place: &Placement) -> ProvisioningSettings {
    let (parent, snapshot, template) = match pool.source {
        PoolSource::VirtualCenter => (None, None, Some(pool.parent_vm_id.clone())),
        _ => (Some(pool.parent_vm_id.clone()), Some(pool.base_snapshot_id.clone()), None),
    };
    ProvisioningSettings {
        parent_vm_id: parent,
        base_snapshot_id: snapshot,
        vm_template_id: template,
        datacenter_id: pool.datacenter_id.clone(),
        vm_folder_id: place.vm_folder_id.clone(),
        host_or_cluster_id: place.host_or_cluster_id.clone(),
        resource_pool_id: place.resource_pool_id.clone(),
        add_virtual_tpm: false,
    }
}

/// The `instant_clone_pending_image_*` fields; all null when there is no pending image.
#[derive(Default)]
struct PendingView<'a> {
    vm: Option<&'a String>,
    snapshot: Option<&'a String>,
    state: Option<&'static str>,
    progress: Option<u8>,
    error: Option<&'a String>,
}

/// `provisioning_status_data`. Pools report their push in `instant_clone_push_image_settings`;
/// farms their schedule in the two `instant_clone_operation_time` and
/// `instant_clone_scheduled_maintenance_data` fields instead (each present only where it
/// belongs, null or not).
#[derive(Debug, Serialize)]
struct StatusData {
    instant_clone_operation: &'static str,
    instant_clone_current_image_state: &'static str,
    instant_clone_pending_image_state: Option<&'static str>,
    instant_clone_pending_image_parent_vm_id: Option<String>,
    instant_clone_pending_image_snapshot_id: Option<String>,
    instant_clone_pending_image_progress: Option<u8>,
    instant_clone_pending_image_error: Option<String>,
    instant_clone_pending_im_stream_id: Option<String>,
    instant_clone_pending_im_tag_id: Option<String>,
    last_provisioning_error: Option<String>,
    last_provisioning_error_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instant_clone_push_image_settings: Option<Option<PushSettings>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instant_clone_operation_time: Option<Option<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instant_clone_scheduled_maintenance_data: Option<Value>,
}

#[derive(Debug, Serialize)]
struct PushSettings {
    start_time: i64,
    logoff_policy: String,
    stop_on_first_error: bool,
    add_virtual_tpm: bool,
}

/// `provisioning_status_data`: the push-image state machine at `now` (the pool is settled).
fn status_data(pool: &Pool, now: i64, t: &Timings) -> StatusData {
    let farm = pool.kind == PoolKind::Farm;
    let (scheduled, cancelling) = if farm {
        ("RECURRING_SCHEDULED_MAINTENANCE", "CANCEL_SCHEDULED_MAINTENANCE")
    } else {
        ("SCHEDULE_PUSH_IMAGE", "CANCEL_SCHEDULED_PUSH_IMAGE")
    };
    let mut operation = "NONE";
    let mut pending = PendingView::default();
    let mut settings = None;
    if let Some(push) = &pool.push {
        let mut phase = push.phase(now, t);
        if phase == Phase::Cancelling {
            operation = cancelling;
            // While cancelling, the pending image is shown as it was when the cancel came.
            phase = push.scheduled_phase(push.cancelled_at.unwrap_or(now), t);
        } else {
            operation = scheduled;
        }
        let state = match phase {
            Phase::PendingPublish => Some(("PENDING_PUBLISH", 0)),
            Phase::Publishing(p) => Some(("PUBLISHING", p)),
            Phase::Ready { .. } | Phase::Done { .. } => Some(("READY", 100)),
            Phase::Held { .. } => Some(("READY_HELD", 100)),
            Phase::Cancelling | Phase::Cancelled | Phase::Failed { .. } => None,
        };
        if let (Some((state, progress)), Some(vm)) = (state, &push.parent_vm_id) {
            pending = PendingView {
                vm: Some(vm),
                snapshot: push.snapshot_id.as_ref(),
                state: Some(state),
                progress: Some(progress),
                error: None,
            };
        }
        settings = Some(PushSettings {
            start_time: push.start(),
            logoff_policy: push.logoff_policy.clone(),
            stop_on_first_error: push.stop_on_first_error,
            add_virtual_tpm: push.add_virtual_tpm,
        });
    } else if let Some(FailedImage { parent_vm_id, snapshot_id, error, .. }) = &pool.failed {
        pending = PendingView {
            vm: parent_vm_id.as_ref(),
            snapshot: snapshot_id.as_ref(),
            state: Some("FAILED"),
            progress: None,
            error: Some(error),
        };
    }
    let PendingView { vm, snapshot, state, progress, error } = pending;
    StatusData {
        instant_clone_operation: operation,
        instant_clone_current_image_state: "READY",
        instant_clone_pending_image_state: state,
        instant_clone_pending_image_parent_vm_id: vm.cloned(),
        instant_clone_pending_image_snapshot_id: snapshot.cloned(),
        instant_clone_pending_image_progress: progress,
        instant_clone_pending_image_error: error.cloned(),
        instant_clone_pending_im_stream_id: None,
        instant_clone_pending_im_tag_id: None,
        last_provisioning_error: pool.last_provisioning_error.clone(),
        last_provisioning_error_time: pool.last_provisioning_error_time,
        // Farms report their schedule in `instant_clone_scheduled_maintenance_data` instead.
        instant_clone_push_image_settings: (!farm).then_some(settings),
        instant_clone_operation_time: None,
        instant_clone_scheduled_maintenance_data: None,
    }
}

fn maintenance_data(push: Option<&Push>) -> Value {
    match push.filter(|p| p.cancelled_at.is_none()) {
        Some(p) => json!({
            "immediate_maintenance_scheduled": true,
            "next_scheduled_time": p.start(),
            "logoff_policy": p.logoff_policy,
            "stop_on_first_error": p.stop_on_first_error,
            "recurring_maintenance_settings": null,
        }),
        None => json!({"immediate_maintenance_scheduled": false}),
    }
}

/// `BaseVMInfo`.
pub(super) fn base_vm(vc: &VcenterSim, vcenter_id: &str, vm: &Vm) -> Value {
    let (os, os_name) = match vm.guest_id.as_str() {
        "windows9_64Guest" | "windows9Guest" => ("WINDOWS_10", "Windows 10"),
        "windows11_64Guest" => ("WINDOWS_11", "Windows 11"),
        g if g.starts_with("windows") && g.contains("srv") => {
            ("WINDOWS_SERVER_2016_OR_ABOVE", "Windows Server 2016 or above")
        }
        _ => ("UNKNOWN", "Unknown"),
    };
    json!({
        "id": vm.id,
        "name": vm.name,
        "path": vc.vm_path(vm),
        "datacenter_id": vm.datacenter,
        "vcenter_id": vcenter_id,
        "operating_system": os,
        "operating_system_display_name": os_name,
        "network_type": "STANDARD_NETWORK",
        "incompatible_reasons": incompatible_reasons(vm),
    })
}

pub(super) fn incompatible_reasons(vm: &Vm) -> Vec<&'static str> {
    if vm.snapshots.is_empty() { vec!["NO_SNAPSHOTS"] } else { Vec::new() }
}

/// `BaseSnapshotInfo`.
/// Why Horizon cannot use a snapshot as an image: `POWERED_ON` for one taken of a running VM
/// (the lab's VMs all have a recent hardware version).
pub(super) fn snapshot_incompatible_reasons(snapshot: &Snapshot) -> Vec<&'static str> {
    if snapshot.powered_on { vec!["POWERED_ON"] } else { Vec::new() }
}

pub(super) fn base_snapshot(vcenter_id: &str, vm: &Vm, snapshot: &Snapshot) -> Value {
    json!({
        "id": snapshot.id,
        "name": snapshot.name,
        "path": VcenterSim::snapshot_path(vm, &snapshot.id),
        "description": snapshot.description,
        "created_timestamp": snapshot.created_ms,
        "vcenter_id": vcenter_id,
        "hardware_version": 19,
        "disk_size_mb": 81920,
        "memory_mb": 8192,
        "memory_reservation_mb": 0,
        "max_number_of_monitors": 2,
        "max_resolution_of_any_one_monitor": "WSXGA_PLUS",
        "total_video_memory_mb": 36,
        "renderer3d": "MANAGE_BY_VSPHERE_CLIENT",
        "vgpu_type": null,
        "incompatible_reasons": snapshot_incompatible_reasons(snapshot),
    })
}

/// `VirtualCenterInfo` of `/config/v1/virtual-centers`.
pub(super) fn virtual_center_config(vc: &VcenterSim, vcenter_id: &str, server: &str) -> Value {
    json!({
        "id": vcenter_id,
        "server_name": server,
        "port": 443,
        "use_ssl": true,
        "user_name": "administrator@vsphere.local",
        "display_name": server,
        "description": null,
        "enabled": true,
        "instance_uuid": vc.instance_uuid,
        "version": "8.0.3",
        "vmc_deployment": false,
    })
}

/// The `/monitor/v2/virtual-centers` view of the same vCenter.
pub(super) fn virtual_center_monitor(vcenter_id: &str, server: &str, now: i64) -> Value {
    json!({
        "id": vcenter_id,
        "name": server,
        "details": {"version": "8.0.3", "build": "24022515", "api_version": "8.0.3.0"},
        "connection_servers": [{
            "id": "cs-lab-1",
            "name": "cs-lab-1",
            "status": "OK",
            "thumbprint_accepted": true,
            "last_updated_timestamp": now,
        }],
        "hosts": [],
        "datastores": [],
    })
}

/// The pod's one Connection Server, `cs-lab-1`, as `/monitor/connection-servers`
/// (`ConnectionServerMonitorInfo`) or, with `v2`, `/monitor/v1/connection-servers`
/// (`ConnectionServerMonitorInfoV2`, which adds `last_updated_timestamp`) show it. The
/// version is `details.version`.
pub(super) fn connection_server_monitor(version: &str, now: i64, v2: bool) -> Value {
    let mut item = json!({
        "id": "cs-lab-1",
        "name": "cs-lab-1",
        "status": "OK",
        "details": {"version": version, "build": "0"},
        "connection_count": 0,
        "tunnel_connection_count": 0,
        "session_threshold": 2000,
        "default_certificate": false,
        "certificate": {"valid": true, "valid_from": 0, "valid_to": now + 365 * 24 * 3_600_000},
        "services": [{"service_name": "BLAST_SECURE_GATEWAY", "status": "UP"}],
        "session_protocol_data": [],
        "cs_replications": [],
    });
    if let (true, Some(fields)) = (v2, item.as_object_mut()) {
        fields.insert("last_updated_timestamp".to_owned(), json!(now));
    }
    item
}

/// What a machine (or RDS server) shows at `now`: its state and the push operation on it.
struct MachineNow<'a> {
    state: &'static str,
    operation: Option<&'static str>,
    operation_state: Option<&'static str>,
    pending: Option<(&'a String, &'a String)>,
}

/// The state of `machine` in `pool` at `now` (the pod is settled): a push in flight shows on
/// the machines it recreates as operation `PUSH_IMAGE`, `SCHEDULED` before their turn,
/// `PROGRESSING` while they are recreated, then `COMPLETED` (or `FAULT`, the machine in
/// `PROVISIONING_ERROR`).
fn machine_now<'a>(pool: &'a Pool, machine: &'a Machine, now: i64, t: &Timings) -> MachineNow<'a> {
    let resting = if machine.error.is_some() {
        "PROVISIONING_ERROR"
    } else if pool.kind == PoolKind::Farm {
        "AVAILABLE"
    } else if machine.sessions.iter().any(|s| s.connected) {
        "CONNECTED"
    } else if machine.sessions.is_empty() {
        "AVAILABLE"
    } else {
        "DISCONNECTED"
    };
    let mut shown = MachineNow { state: resting, operation: None, operation_state: None, pending: None };
    let waiting = |shown: &mut MachineNow<'a>, image: (&'a String, &'a String)| {
        shown.operation = Some("PUSH_IMAGE");
        shown.operation_state = Some("SCHEDULED");
        shown.pending = Some(image);
    };
    if let Some((vm, snapshot)) = &machine.pending {
        waiting(&mut shown, (vm, snapshot));
    }
    let Some(push) = pool.push.as_ref().filter(|p| p.selects(&machine.id)) else { return shown };
    let (Some(vm), Some(snapshot)) = (&push.parent_vm_id, &push.snapshot_id) else { return shown };
    let on_it = machine.base_vm_id == *vm && machine.base_snapshot_id == *snapshot;
    match push.phase(now, t) {
        Phase::PendingPublish
        | Phase::Publishing(_)
        | Phase::Ready { applying: false }
        | Phase::Held { canaries: Canaries::Waiting }
            if !on_it =>
        {
            waiting(&mut shown, (vm, snapshot));
        }
        Phase::Ready { applying: true } if !on_it => {
            waiting(&mut shown, (vm, snapshot));
            shown.operation_state = Some("PROGRESSING");
        }
        Phase::Held { canaries: Canaries::Recreating } if !on_it => {
            waiting(&mut shown, (vm, snapshot));
            shown.operation_state = Some("PROGRESSING");
            if machine.sessions.is_empty() || push.logoff_policy == "FORCE_LOGOFF" {
                shown.state = "PROVISIONING";
            }
        }
        Phase::Held { canaries: Canaries::Recreated } if machine.error.is_some() => {
            waiting(&mut shown, (vm, snapshot));
            shown.operation_state = Some("FAULT");
        }
        _ if on_it => {
            shown.operation = Some("PUSH_IMAGE");
            shown.operation_state = Some("COMPLETED");
        }
        _ => {}
    }
    shown
}

/// A machine's inventory path, `/<datacenter>/vm/<pool>/<machine>`, written straight into the
/// document.
#[derive(Debug)]
struct MachinePath<'a>(&'a Pool, &'a Machine);

impl Serialize for MachinePath<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let MachinePath(pool, machine) = self;
        s.collect_str(&format_args!("/{}/vm/{}/{}", pool.datacenter_id, pool.name, machine.name))
    }
}

/// A machine's DNS name, `<machine>.lab.local`.
#[derive(Debug)]
struct DnsName<'a>(&'a str);

impl Serialize for DnsName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}.lab.local", self.0))
    }
}

/// Which document a machine list renders: `MachineInfo` (v1), `MachineInfoV2`, or
/// `RDSServerInfo`.
#[derive(Clone, Copy, Debug)]
pub(super) enum MachineDoc {
    V1,
    V2,
    RdsServer,
}

/// A machine or RDS server as a list shows it. Documents borrow from the lab's state: a list
/// renders every machine of the pod (thousands) while holding the lab's lock.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum MachineDocView<'a> {
    Machine(MachineView<'a>),
    RdsServer(RdsServerView<'a>),
}

/// `machine` of `pool` at `now`, as `doc`.
pub(super) fn machine_doc<'a>(
    doc: MachineDoc,
    pool: &'a Pool,
    machine: &'a Machine,
    vcenter_id: &'a str,
    now: i64,
    t: &Timings,
) -> MachineDocView<'a> {
    match doc {
        MachineDoc::V1 => MachineDocView::Machine(machine_view(pool, machine, vcenter_id, now, t, false)),
        MachineDoc::V2 => MachineDocView::Machine(machine_view(pool, machine, vcenter_id, now, t, true)),
        MachineDoc::RdsServer => MachineDocView::RdsServer(rds_server(pool, machine, now, t)),
    }
}

/// `MachineInfo` (v1) and `MachineInfoV2`: typed, as the pool documents are. v1 has no
/// `session_id` and no image in `managed_machine_data`.
#[derive(Debug, Serialize)]
pub(super) struct MachineView<'a> {
    id: &'a str,
    name: &'a str,
    dns_name: DnsName<'a>,
    desktop_pool_id: &'a str,
    state: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    operating_system: &'static str,
    user_ids: [&'static str; 0],
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<Option<&'a str>>,
    managed_machine_data: ManagedMachineData<'a>,
}

#[derive(Debug, Serialize)]
struct ManagedMachineData<'a> {
    virtual_center_id: &'a str,
    path: MachinePath<'a>,
    virtual_machine_power_state: &'static str,
    in_maintenance_mode: bool,
    clone_error_message: Option<&'a str>,
    clone_error_time: Option<i64>,
    #[serde(flatten)]
    image: Option<MachineImage<'a>>,
}

/// The image fields of `ManagedMachineDataV2` and `RDSServerInfo`.
#[derive(Debug, Serialize)]
struct MachineImage<'a> {
    base_vm_id: &'a str,
    base_vm_snapshot_id: &'a str,
    pending_base_vm_id: Option<&'a str>,
    pending_base_vm_snapshot_id: Option<&'a str>,
    operation: Option<&'static str>,
    operation_state: Option<&'static str>,
    logoff_policy: Option<&'a str>,
}

fn machine_image<'a>(pool: &'a Pool, machine: &'a Machine, shown: &MachineNow<'a>) -> MachineImage<'a> {
    MachineImage {
        base_vm_id: &machine.base_vm_id,
        base_vm_snapshot_id: &machine.base_snapshot_id,
        pending_base_vm_id: shown.pending.map(|p| p.0.as_str()),
        pending_base_vm_snapshot_id: shown.pending.map(|p| p.1.as_str()),
        operation: shown.operation,
        operation_state: shown.operation_state,
        logoff_policy: pool.push.as_ref().map(|p| p.logoff_policy.as_str()),
    }
}

fn machine_view<'a>(
    pool: &'a Pool,
    machine: &'a Machine,
    vcenter_id: &'a str,
    now: i64,
    t: &Timings,
    v2: bool,
) -> MachineView<'a> {
    let shown = machine_now(pool, machine, now, t);
    MachineView {
        id: &machine.id,
        name: &machine.name,
        dns_name: DnsName(&machine.name),
        desktop_pool_id: &pool.id,
        state: shown.state,
        kind: "MANAGED_MACHINE",
        operating_system: "WINDOWS_10",
        user_ids: [],
        session_id: v2.then(|| machine.sessions.first().map(|s| s.id.as_str())),
        managed_machine_data: ManagedMachineData {
            virtual_center_id: vcenter_id,
            path: MachinePath(pool, machine),
            virtual_machine_power_state: "POWERED_ON",
            in_maintenance_mode: false,
            clone_error_message: machine.error.as_deref(),
            clone_error_time: machine.error.as_ref().map(|_| now),
            image: v2.then(|| machine_image(pool, machine, &shown)),
        },
    }
}

/// `RDSServerInfo`: an RDS server of a farm, with its image and pending image.
#[derive(Debug, Serialize)]
pub(super) struct RdsServerView<'a> {
    id: &'a str,
    name: &'a str,
    dns_name: DnsName<'a>,
    farm_id: &'a str,
    enabled: bool,
    state: &'static str,
    operating_system: &'static str,
    session_count: usize,
    load_preference: &'static str,
    #[serde(flatten)]
    image: MachineImage<'a>,
}

fn rds_server<'a>(pool: &'a Pool, machine: &'a Machine, now: i64, t: &Timings) -> RdsServerView<'a> {
    let shown = machine_now(pool, machine, now, t);
    RdsServerView {
        id: &machine.id,
        name: &machine.name,
        dns_name: DnsName(&machine.name),
        farm_id: &pool.id,
        enabled: true,
        state: shown.state,
        operating_system: "WINDOWS_SERVER_2016_OR_ABOVE",
        session_count: machine.sessions.len(),
        load_preference: "LIGHT",
        image: machine_image(pool, machine, &shown),
    }
}

/// A session's user, a SID made from the session's id.
#[derive(Debug)]
struct UserSid<'a>(&'a str);

impl Serialize for UserSid<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("S-1-5-21-lab-{}", self.0.get(..8).unwrap_or(self.0)))
    }
}

/// `SessionInfo`: a desktop session names its pool and machine, an RDS session its farm and
/// server (its `machine_id` is unset).
#[derive(Debug, Serialize)]
pub(super) struct SessionView<'a> {
    id: &'a str,
    user_id: UserSid<'a>,
    desktop_pool_id: Option<&'a str>,
    farm_id: Option<&'a str>,
    machine_id: Option<&'a str>,
    rds_server_id: Option<&'a str>,
    session_type: &'static str,
    session_state: &'static str,
    session_protocol: Option<&'static str>,
    start_time: i64,
}

pub(super) fn session<'a>(
    pool: &'a Pool,
    machine: &'a Machine,
    session: &'a UserSession,
    now: i64,
) -> SessionView<'a> {
    let farm = pool.kind == PoolKind::Farm;
    SessionView {
        id: &session.id,
        user_id: UserSid(&session.id),
        desktop_pool_id: (!farm).then_some(pool.id.as_str()),
        farm_id: farm.then_some(pool.id.as_str()),
        machine_id: (!farm).then_some(machine.id.as_str()),
        rds_server_id: farm.then_some(machine.id.as_str()),
        session_type: "DESKTOP",
        session_state: if session.connected { "CONNECTED" } else { "DISCONNECTED" },
        session_protocol: session.connected.then_some("BLAST"),
        start_time: now - 3_600_000,
    }
}
