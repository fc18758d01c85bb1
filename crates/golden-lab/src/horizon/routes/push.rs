//! The image actions: a pool's `schedule-push-image` (v1, and v2 with the selective push),
//! `cancel-scheduled-push-image` and `promote-pending-image`, and a farm's
//! `schedule-maintenance` and `cancel-scheduled-maintenance`, with Horizon's documented refusals.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pools::{noun, pool_not_found};
use super::{ApiError, ApiResult, Authed, Pod, parse_body, since, with_site};
use crate::horizon::{Phase, PoolKind, PoolSource, Push, view};
use crate::{SiteCtx, now_ms};

/// `DesktopPoolPushImageSpec`, and the image part of `FarmMaintenanceSpec`.
#[derive(Deserialize)]
struct PushBody {
    logoff_policy: Option<String>,
    parent_vm_id: Option<String>,
    snapshot_id: Option<String>,
    im_stream_id: Option<String>,
    im_tag_id: Option<String>,
    #[serde(alias = "next_scheduled_time")]
    start_time: Option<i64>,
    stop_on_first_error: Option<bool>,
    add_virtual_tpm: Option<bool>,
}

#[derive(Deserialize)]
struct MaintenanceBody {
    maintenance_mode: Option<String>,
    #[serde(flatten)]
    push: PushBody,
}

/// Validates and records a push (pools) or immediate maintenance (farms), with Horizon's
/// documented rules: a logoff policy is required; the image is a parent VM and snapshot (or an
/// image-catalog stream and tag); only instant-clone pools and farms take one; the VM must be
/// a VM (not a template) in the pool's datacenter and own the snapshot; a second request while
/// one is under way is refused, except that a pool's not yet started push may be rescheduled
/// and a farm's not yet started maintenance replaced.
fn schedule(
    ctx: &SiteCtx,
    kind: PoolKind,
    id: &str,
    body: PushBody,
    selective: Option<Vec<String>>,
) -> Result<(), ApiError> {
    with_site(ctx, |site, _, now| {
        let Pod { vcenter, horizon, .. } = site;
        let pool =
            horizon.pools.get_mut(id).filter(|p| p.kind == kind).ok_or_else(|| pool_not_found(kind, id))?;
        let logoff = match body.logoff_policy.as_deref() {
            Some(p @ ("FORCE_LOGOFF" | "WAIT_FOR_LOGOFF")) => p.to_owned(),
            Some(other) => {
                return Err(ApiError::bad_request(
                    "logoff.policy.invalid",
                    format!("Invalid logoff_policy {other}: expected FORCE_LOGOFF or WAIT_FOR_LOGOFF."),
                ));
            }
            None => {
                return Err(ApiError::bad_request("logoff.policy.required", "logoff_policy is required."));
            }
        };
        let image = match (body.parent_vm_id, body.snapshot_id, body.im_stream_id, body.im_tag_id) {
            (Some(vm), Some(snapshot), None, None) => Some((vm, snapshot)),
            (None, None, Some(stream), Some(_)) => {
                // The lab has no image catalog, so no stream exists.
                return Err(ApiError::bad_request(
                    "im.stream.not.found",
                    format!("Image stream {stream} does not exist."),
                ));
            }
            // A farm maintenance without a new image refreshes servers on the current one.
            (None, None, None, None) if kind == PoolKind::Farm => None,
            _ => {
                return Err(ApiError::bad_request(
                    "image.spec.invalid",
                    "Either parent_vm_id and snapshot_id, or im_stream_id and im_tag_id, are required.",
                ));
            }
        };
        if pool.source != PoolSource::InstantClone {
            return Err(ApiError::bad_request(
                "pool.not.instant.clone",
                format!("The {} {} is not an instant clone {}.", noun(kind), pool.name, noun(kind)),
            ));
        }
        if let Some((vm_id, snapshot_id)) = &image {
            let vm = vcenter.vms.get(vm_id).filter(|vm| !vm.template).ok_or_else(|| {
                ApiError::bad_request("base.vm.not.found", format!("Base VM {vm_id} does not exist."))
            })?;
            if vm.datacenter != pool.datacenter_id {
                return Err(ApiError::bad_request(
                    "base.vm.datacenter.mismatch",
                    format!("Base VM {vm_id} is not in the datacenter of the current image."),
                ));
            }
            let Some(snapshot) = vm.snapshots.iter().find(|s| &s.id == snapshot_id) else {
                return Err(ApiError::bad_request(
                    "base.snapshot.not.found",
                    format!("Snapshot {snapshot_id} does not belong to base VM {vm_id}."),
                ));
            };
            let reasons = view::snapshot_incompatible_reasons(snapshot);
            if !reasons.is_empty() {
                return Err(ApiError::bad_request(
                    "base.snapshot.incompatible",
                    format!(
                        "Snapshot {snapshot_id} of base VM {vm_id} cannot be used: {}.",
                        reasons.join(", ")
                    ),
                ));
            }
        }
        // A failed pending image stays until it is cancelled; Horizon takes no new image over it.
        if pool.failed.is_some() && pool.push.is_none() {
            return Err(ApiError::bad_request(
                "pending.image.failed",
                format!(
                    "The pending image of the {} {} failed to publish; cancel it before pushing another.",
                    noun(kind),
                    pool.name
                ),
            ));
        }
        if let Some(ids) = &selective {
            if let Some(stranger) = ids.iter().find(|id| !pool.machines.iter().any(|m| &m.id == *id)) {
                return Err(ApiError::bad_request(
                    "machine.not.in.pool",
                    format!("Machine {stranger} does not belong to the {} {}.", noun(kind), pool.name),
                ));
            }
        }
        let (vm, snapshot) = image.map_or((None, None), |(v, s)| (Some(v), Some(s)));
        let stop_on_first_error = body.stop_on_first_error.unwrap_or(true);
        let add_virtual_tpm = body.add_virtual_tpm.unwrap_or(false);
        if let Some(existing) = &mut pool.push {
            let same = existing.parent_vm_id == vm
                && existing.snapshot_id == snapshot
                && existing.logoff_policy == logoff
                && existing.stop_on_first_error == stop_on_first_error
                && existing.add_virtual_tpm == add_virtual_tpm
                && existing.selective == selective;
            match kind {
                // Calling again before the schedule fired reschedules; only start_time may differ.
                PoolKind::DesktopPool if same && existing.not_started(now) => {
                    existing.start_time = body.start_time;
                    return Ok(());
                }
                // A farm call replaces the schedule of its kind while it has not fired.
                PoolKind::Farm if existing.not_started(now) => {}
                _ => {
                    return Err(ApiError::bad_request(
                        "operation.in.progress",
                        format!("Another operation is in progress on the {} {}.", noun(kind), pool.name),
                    ));
                }
            }
        }
        let fail = if vm.is_some() { pool.fail_next_push.take() } else { None };
        let canary_fail = if selective.is_some() { pool.fail_next_canary.take() } else { None };
        pool.failed = None;
        pool.push = Some(Push {
            parent_vm_id: vm,
            snapshot_id: snapshot,
            logoff_policy: logoff,
            stop_on_first_error,
            add_virtual_tpm,
            start_time: body.start_time,
            scheduled_at: now,
            fail,
            cancelled_at: None,
            selective,
            promoted_at: None,
            canary_fail,
        });
        Ok(())
    })
}

/// Cancels a schedule that has not fired yet.
fn cancel(ctx: &SiteCtx, kind: PoolKind, id: &str) -> ApiResult {
    with_site(ctx, |site, _, now| {
        let pool = site
            .horizon
            .pools
            .get_mut(id)
            .filter(|p| p.kind == kind)
            .ok_or_else(|| pool_not_found(kind, id))?;
        let what = match kind {
            PoolKind::DesktopPool => "push image",
            PoolKind::Farm => "maintenance",
        };
        match &mut pool.push {
            // A held image (selective push) may be cancelled whenever it is held.
            Some(push) if push.held() || push.not_started(now) => {
                push.cancelled_at = Some(now);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Some(push) if push.cancelled_at.is_none() => Err(ApiError::bad_request(
                "operation.already.started",
                format!("The scheduled {what} of the {} {} has already started.", noun(kind), pool.name),
            )),
            // Cancelling clears a pending image whose publish failed.
            _ if pool.failed.is_some() => {
                pool.failed = None;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(ApiError::bad_request(
                "operation.not.scheduled",
                format!("There is no scheduled {what} on the {} {}.", noun(kind), pool.name),
            )),
        }
    })
}

pub(super) async fn push_image(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    since(&ctx, 8, 1)?;
    schedule(&ctx, PoolKind::DesktopPool, &id, parse_body(&body)?, None)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DesktopPoolPushImageSpecV2`: v1's fields, a compute profile (which the lab ignores) and
/// the selective push.
#[derive(Deserialize)]
struct PushBodyV2 {
    #[serde(flatten)]
    push: PushBody,
    selective_push_image: Option<bool>,
    machine_ids: Option<Vec<String>>,
}

/// `POST /inventory/v2/desktop-pools/{id}/action/schedule-push-image` (2206): 200 with one
/// `BulkItemResponseInfo` per selected machine (for the pool itself without a selection; what
/// the items stand for is not documented).
pub(super) async fn push_image_v2(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    since(&ctx, 8, 6)?;
    let body: PushBodyV2 = parse_body(&body)?;
    let selective = match (body.selective_push_image.unwrap_or(false), body.machine_ids) {
        (true, Some(ids)) if !ids.is_empty() => {
            let mut ids = ids;
            ids.sort();
            ids.dedup();
            Some(ids)
        }
        (true, _) => {
            return Err(ApiError::bad_request(
                "machine.ids.required",
                "machine_ids are required when selective_push_image is true.",
            ));
        }
        (false, Some(ids)) if !ids.is_empty() => {
            return Err(ApiError::bad_request(
                "machine.ids.not.allowed",
                "machine_ids can be set only when selective_push_image is true.",
            ));
        }
        (false, _) => None,
    };
    let keys = selective.clone().unwrap_or_else(|| vec![id.clone()]);
    schedule(&ctx, PoolKind::DesktopPool, &id, body.push, selective)?;
    let now = now_ms();
    let items: Vec<Value> = keys
        .iter()
        .map(|key| json!({"id": key, "key": key, "status_code": 200, "errors": [], "timestamp": now}))
        .collect();
    Ok(axum::Json(items).into_response())
}

/// `POST /inventory/v1/desktop-pools/{id}/action/promote-pending-image` (2206): the held
/// image of a selective push goes to the whole pool. Only while it is `READY_HELD`.
pub(super) async fn promote(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 6)?;
    with_site(&ctx, |site, t, now| {
        let kind = PoolKind::DesktopPool;
        let pool = site
            .horizon
            .pools
            .get_mut(&id)
            .filter(|p| p.kind == kind)
            .ok_or_else(|| pool_not_found(kind, &id))?;
        match &mut pool.push {
            Some(push) if push.held() && matches!(push.phase(now, t), Phase::Held { .. }) => {
                push.promoted_at = Some(now);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(ApiError::bad_request(
                "pending.image.not.ready.held",
                format!("The pending image of the desktop pool {} is not in READY_HELD state.", pool.name),
            )),
        }
    })
}

pub(super) async fn cancel_push(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 1)?;
    cancel(&ctx, PoolKind::DesktopPool, &id)
}

fn maintenance_mode(mode: Option<&str>) -> Result<(), ApiError> {
    match mode {
        Some("IMMEDIATE") => Ok(()),
        Some("RECURRING") => Err(ApiError::bad_request(
            "maintenance.mode.unsupported",
            "The lab simulates IMMEDIATE maintenance only.",
        )),
        Some(other) => Err(ApiError::bad_request(
            "maintenance.mode.invalid",
            format!("Invalid maintenance_mode {other}: expected IMMEDIATE or RECURRING."),
        )),
        None => Err(ApiError::bad_request("maintenance.mode.required", "maintenance_mode is required.")),
    }
}

pub(super) async fn schedule_maintenance(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    since(&ctx, 8, 4)?;
    let body: MaintenanceBody = parse_body(&body)?;
    maintenance_mode(body.maintenance_mode.as_deref())?;
    schedule(&ctx, PoolKind::Farm, &id, body.push, None)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct CancelMaintenanceBody {
    maintenance_mode: Option<String>,
}

pub(super) async fn cancel_maintenance(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    since(&ctx, 8, 4)?;
    let body: CancelMaintenanceBody = parse_body(&body)?;
    maintenance_mode(body.maintenance_mode.as_deref())?;
    cancel(&ctx, PoolKind::Farm, &id)
}
