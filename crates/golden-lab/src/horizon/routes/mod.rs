//! HTTP routes of the lab's Horizon: `/rest/...` as VMware documents it, plus the lab's
//! own controls under `/__lab/horizon/...` (token expiry, failure injection, clock).
//!
//! Every error uses the 2203+ envelope (`status`, `timestamp`, `errors[]`); requests with a
//! body are parsed here rather than by axum's `Json` extractor so that a malformed body also
//! gets that envelope and a 400.
//!
//! One file per API area: `auth`, `pools` (desktop pools and farms), `push` (the image
//! actions), `machines` (machines, RDS servers, sessions), `external` (what Horizon shows of
//! its vCenter, and its monitor), `listing` (filter and paging, shared by the lists), and the
//! lab's own `controls`.

mod auth;
mod controls;
mod external;
mod listing;
mod machines;
mod pools;
mod push;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use self::auth::{login, logout, refresh};
use self::controls::{expire_tokens, fail_next_canary, fail_next_push, fast_forward, occupancy};
use self::external::{
    base_snapshots, base_vms, connection_servers_v1, connection_servers_v2, datacenters,
    virtual_centers_config, virtual_centers_monitor,
};
use self::machines::{machines_v1, machines_v2, rds_servers, sessions};
use self::pools::{
    get_farm, get_pool_v1, get_pool_v2, list_farms, list_farms_v1, list_pools_v1, list_pools_v2,
};
use self::push::{cancel_maintenance, cancel_push, promote, push_image, push_image_v2, schedule_maintenance};
use super::HorizonSim;
use super::view;
use crate::vcenter::VcenterSim;
use crate::{LabState, SiteCtx, Timings, now_ms};

/// The Horizon endpoint's routes: `/rest/...`.
pub fn router() -> Router<SiteCtx> {
    Router::new()
        .route("/rest/login", post(login))
        .route("/rest/refresh", post(refresh))
        .route("/rest/logout", post(logout))
        .route("/rest/inventory/v1/desktop-pools", get(list_pools_v1))
        .route("/rest/inventory/v1/desktop-pools/{id}", get(get_pool_v1))
        .route("/rest/inventory/v2/desktop-pools", get(list_pools_v2))
        .route("/rest/inventory/v2/desktop-pools/{id}", get(get_pool_v2))
        .route("/rest/inventory/v1/desktop-pools/{id}/action/schedule-push-image", post(push_image))
        .route("/rest/inventory/v2/desktop-pools/{id}/action/schedule-push-image", post(push_image_v2))
        .route("/rest/inventory/v1/desktop-pools/{id}/action/cancel-scheduled-push-image", post(cancel_push))
        .route("/rest/inventory/v1/desktop-pools/{id}/action/promote-pending-image", post(promote))
        .route("/rest/inventory/v1/machines", get(machines_v1))
        .route("/rest/inventory/v2/machines", get(machines_v2))
        .route("/rest/inventory/v1/rds-servers", get(rds_servers))
        .route("/rest/inventory/v1/sessions", get(sessions))
        .route("/rest/inventory/v1/farms", get(list_farms_v1))
        .route("/rest/inventory/v2/farms", get(list_farms))
        .route("/rest/inventory/v2/farms/{id}", get(get_farm))
        .route("/rest/inventory/v1/farms/{id}/action/schedule-maintenance", post(schedule_maintenance))
        .route("/rest/inventory/v1/farms/{id}/action/cancel-scheduled-maintenance", post(cancel_maintenance))
        .route("/rest/external/v1/datacenters", get(datacenters))
        .route("/rest/external/v1/base-vms", get(base_vms))
        .route("/rest/external/v1/base-snapshots", get(base_snapshots))
        .route("/rest/config/v1/virtual-centers", get(virtual_centers_config))
        .route("/rest/monitor/v2/virtual-centers", get(virtual_centers_monitor))
        .route("/rest/monitor/connection-servers", get(connection_servers_v1))
        .route("/rest/monitor/v1/connection-servers", get(connection_servers_v2))
        .route("/__lab/horizon/expire-tokens", post(expire_tokens))
        .route("/__lab/horizon/fast-forward", post(fast_forward))
        .route("/__lab/horizon/pools/{id}/fail-next-push", post(fail_next_push))
        .route("/__lab/horizon/pools/{id}/fail-next-canary", post(fail_next_canary))
        .route("/__lab/horizon/pools/{id}/occupancy", post(occupancy))
        .fallback(not_found)
}

/// An API error, answered with the documented envelope.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    key: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, key: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, key, message: message.into() }
    }

    fn bad_request(key: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, key, message)
    }

    fn not_found(key: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, key, message)
    }

    fn unauthenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "user.not.authenticated", "User is not authenticated.")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = view::error_envelope(self.status, self.key, &self.message, now_ms());
        (self.status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// A site as the Horizon handlers see it: its pod, and the vCenter its datacenter is in.
struct Pod<'a, H> {
    horizon: H,
    vcenter: &'a VcenterSim,
    /// The moref of the site's datacenter in that vCenter.
    datacenter: &'a str,
}

/// Runs `f` on this endpoint's site with the lab locked, after settling the pod at the clock.
fn with_site<T>(
    ctx: &SiteCtx,
    f: impl FnOnce(Pod<'_, &mut HorizonSim>, &Timings, i64) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut lab = ctx.lock();
    let LabState { vcenters, sites, timings } = &mut *lab;
    let Some(site) = sites.get_mut(&ctx.name) else { return Err(site_missing()) };
    let Some(vcenter) = vcenters.get(&site.vcenter) else { return Err(site_missing()) };
    let now = now_ms();
    site.horizon.settle(now, timings);
    f(Pod { horizon: &mut site.horizon, vcenter: &vcenter.sim, datacenter: &site.datacenter }, timings, now)
}

/// [`with_site`] for a handler that only reads: the site is settled to now, then read
/// alongside other readers.
fn read_site<T>(
    ctx: &SiteCtx,
    f: impl FnOnce(Pod<'_, &HorizonSim>, &Timings, i64) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let now = with_site(ctx, |_, _, now| Ok(now))?;
    let lab = ctx.read();
    let Some(site) = lab.sites.get(&ctx.name) else { return Err(site_missing()) };
    let Some(vcenter) = lab.vcenters.get(&site.vcenter) else { return Err(site_missing()) };
    f(Pod { horizon: &site.horizon, vcenter: &vcenter.sim, datacenter: &site.datacenter }, &lab.timings, now)
}

/// 404, as from a server without the resource, unless the pod runs `major.minor` or later.
fn since(ctx: &SiteCtx, major: u32, minor: u32) -> Result<(), ApiError> {
    let lab = ctx.read();
    let site = lab.sites.get(&ctx.name).ok_or_else(site_missing)?;
    if site.horizon.at_least(major, minor) { Ok(()) } else { Err(resource_not_found()) }
}

fn resource_not_found() -> ApiError {
    ApiError::not_found("resource.not.found", "The requested resource does not exist.")
}

fn site_missing() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "lab.site.missing", "no such lab site")
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("request.body.invalid", format!("Invalid request body: {e}")))
}

/// A request with a live access token (`Authorization: Bearer <token>`).
struct Authed;

impl FromRequestParts<SiteCtx> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &SiteCtx) -> Result<Authed, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned())
            .ok_or_else(ApiError::unauthenticated)?;
        if with_site(ctx, |site, _, now| Ok(site.horizon.authorized(&token, now)))? {
            Ok(Authed)
        } else {
            Err(ApiError::unauthenticated())
        }
    }
}

async fn not_found() -> ApiError {
    resource_not_found()
}
