//! What Horizon shows of its vCenter: `/external/v1/datacenters`, `base-vms` and
//! `base-snapshots` (read from the site's lab vCenter), the virtual centers, and the
//! connection servers' monitor (which reports the pod's version).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::{ApiError, ApiResult, Authed, read_site, since};
use crate::SiteCtx;
use crate::horizon::{HorizonSim, view};

/// Checks the `vcenter_id` every external API requires.
fn vcenter_param(query: &HashMap<String, String>, horizon: &HorizonSim) -> Result<(), ApiError> {
    match query.get("vcenter_id") {
        None => Err(ApiError::bad_request("vcenter.id.required", "vcenter_id is required.")),
        Some(id) if *id == horizon.vcenter_id => Ok(()),
        Some(id) => {
            Err(ApiError::not_found("vcenter.not.found", format!("Virtual center {id} does not exist.")))
        }
    }
}

pub(super) async fn datacenters(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = read_site(&ctx, |site, _, _| {
        vcenter_param(&query, site.horizon)?;
        Ok(site
            .vcenter
            .datacenters
            .values()
            .map(|dc| json!({"id": dc.id, "name": dc.name, "path": format!("/{}", dc.name)}))
            .collect::<Vec<_>>())
    })?;
    Ok(axum::Json(items).into_response())
}

pub(super) async fn base_vms(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = read_site(&ctx, |site, _, _| {
        vcenter_param(&query, site.horizon)?;
        let datacenter = query.get("datacenter_id");
        let compatible_only = query.get("filter_incompatible_vms").is_some_and(|v| v == "true");
        let vc = &site.vcenter;
        Ok(vc
            .vms
            .values()
            .filter(|vm| !vm.template && datacenter.is_none_or(|dc| *dc == vm.datacenter))
            .filter(|vm| !compatible_only || view::incompatible_reasons(vm).is_empty())
            .map(|vm| view::base_vm(vc, &site.horizon.vcenter_id, vm))
            .collect::<Vec<_>>())
    })?;
    Ok(axum::Json(items).into_response())
}

pub(super) async fn base_snapshots(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = read_site(&ctx, |site, _, _| {
        vcenter_param(&query, site.horizon)?;
        let Some(vm_id) = query.get("base_vm_id") else {
            return Err(ApiError::bad_request("base.vm.id.required", "base_vm_id is required."));
        };
        let vm = site.vcenter.vms.get(vm_id).filter(|vm| !vm.template).ok_or_else(|| {
            ApiError::not_found("base.vm.not.found", format!("Base VM {vm_id} does not exist."))
        })?;
        Ok(vm
            .snapshots
            .iter()
            .map(|s| view::base_snapshot(&site.horizon.vcenter_id, vm, s))
            .collect::<Vec<_>>())
    })?;
    Ok(axum::Json(items).into_response())
}

pub(super) async fn virtual_centers_config(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    let item = read_site(&ctx, |site, _, _| {
        let h = &site.horizon;
        Ok(view::virtual_center_config(site.vcenter, &h.vcenter_id, &h.vcenter_server))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

pub(super) async fn virtual_centers_monitor(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    let item = read_site(&ctx, |site, _, now| {
        Ok(view::virtual_center_monitor(&site.horizon.vcenter_id, &site.horizon.vcenter_server, now))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

/// `/monitor/connection-servers` (7.10 and later): `ConnectionServerMonitorInfo`.
pub(super) async fn connection_servers_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 10)?;
    let item = read_site(&ctx, |site, _, now| {
        Ok(view::connection_server_monitor(&site.horizon.version, now, false))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

/// `/monitor/v1/connection-servers` (8.0 and later): `ConnectionServerMonitorInfoV2`.
pub(super) async fn connection_servers_v2(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 8, 0)?;
    let item = read_site(&ctx, |site, _, now| {
        Ok(view::connection_server_monitor(&site.horizon.version, now, true))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}
