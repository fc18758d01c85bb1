//! HTTP routes of the lab's Horizon: `/rest/...` as VMware documents it, plus the lab's
//! own controls under `/__lab/horizon/...` (token expiry, failure injection, clock).
//!
//! Every error uses the 2203+ envelope (`status`, `timestamp`, `errors[]`); requests with a
//! body are parsed here rather than by axum's `Json` extractor so that a malformed body also
//! gets that envelope and a 400.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::view::{self, Placement};
use super::{HorizonSim, Phase, PoolKind, PoolSource, Push};
use crate::vcenter::VcenterSim;
use crate::{LAB_DOMAIN, LAB_PASSWORD, LAB_USER, LabState, SiteCtx, Timings, now_ms};

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

// ---- auth ----

#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    password: Option<Value>,
    domain: Option<String>,
}

async fn login(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: LoginBody = parse_body(&body)?;
    let (Some(user), Some(password), Some(domain)) = (body.username, body.password, body.domain) else {
        return Err(ApiError::bad_request(
            "auth.login.invalid",
            "username, password and domain are required.",
        ));
    };
    // The schema types the password as an array of string; every client sends a string.
    let password = match password {
        Value::String(p) => p,
        Value::Array(items) => match items.as_slice() {
            [Value::String(p)] => p.clone(),
            _ => return Err(ApiError::bad_request("auth.login.invalid", "Invalid password.")),
        },
        _ => return Err(ApiError::bad_request("auth.login.invalid", "Invalid password.")),
    };
    // AD account and NetBIOS domain names are case-insensitive; passwords are not.
    let valid = user.eq_ignore_ascii_case(LAB_USER)
        && domain.eq_ignore_ascii_case(LAB_DOMAIN)
        && password == LAB_PASSWORD;
    if !valid {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "user.authentication.failed",
            "Authentication failed: unknown user name or bad password.",
        ));
    }
    let (access, refresh) =
        with_site(&ctx, |site, t, now| Ok(site.horizon.login(&format!("{domain}\\{user}"), now, t)))?;
    Ok(axum::Json(json!({"access_token": access, "refresh_token": refresh})).into_response())
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<String>,
}

async fn refresh(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: RefreshBody = parse_body(&body)?;
    let token = body.refresh_token.unwrap_or_default();
    let access = with_site(&ctx, |site, t, now| Ok(site.horizon.refresh(&token, now, t)))?;
    match access {
        Some(access) => Ok(axum::Json(json!({"access_token": access})).into_response()),
        None => Err(ApiError::bad_request("auth.refresh.token.invalid", "Invalid or expired refresh token.")),
    }
}

async fn logout(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: RefreshBody = parse_body(&body)?;
    let token = body.refresh_token.unwrap_or_default();
    if with_site(&ctx, |site, _, _| Ok(site.horizon.logout(&token)))? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::bad_request("auth.refresh.token.invalid", "Invalid or expired refresh token."))
    }
}

// ---- listing: filter and paging ----

/// The subset of filter types the lab understands (enough to look pools up by name or id).
#[derive(Deserialize)]
#[serde(tag = "type")]
enum Filter {
    Equals { name: String, value: Value },
    And { filters: Vec<Filter> },
}

impl Filter {
    fn check(&self, fields: &[&str]) -> Result<(), ApiError> {
        match self {
            Filter::Equals { name, .. } if fields.contains(&name.as_str()) => Ok(()),
            Filter::Equals { name, .. } => {
                Err(ApiError::bad_request("filter.invalid", format!("Filtering on {name} is not supported.")))
            }
            Filter::And { filters } => filters.iter().try_for_each(|f| f.check(fields)),
        }
    }

    fn matches(&self, item: &Value) -> bool {
        match self {
            Filter::Equals { name, value } => item.get(name) == Some(value),
            Filter::And { filters } => filters.iter().all(|f| f.matches(item)),
        }
    }
}

/// Answers a list request: `filter`, then `page` + `size` (both or neither, size ≤ 1000, a page
/// past the end is 400), with `HAS_MORE_RECORDS: true` when more pages follow.
/// A listing with Horizon's filter and paging. Documents are turned into JSON values only to be
/// matched against a filter.
fn listing<T: Serialize>(items: Vec<T>, query: &HashMap<String, String>, fields: &[&str]) -> ApiResult {
    let Some(raw) = query.get("filter") else { return page(items, query) };
    let filter: Filter = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request("filter.invalid", format!("Invalid filter: {e}")))?;
    filter.check(fields)?;
    let matching: Vec<Value> = items
        .iter()
        .filter_map(|item| serde_json::to_value(item).ok())
        .filter(|item| filter.matches(item))
        .collect();
    page(matching, query)
}

/// The page of `items` the query's `page` and `size` ask for (all of them without paging).
fn page<T: Serialize>(items: Vec<T>, query: &HashMap<String, String>) -> ApiResult {
    let (range, more) = page_bounds(items.len(), query)?;
    let page: Vec<T> = items.into_iter().skip(range.start).take(range.len()).collect();
    Ok(paged_response(&page, more))
}

/// Which of `len` items the query's `page` and `size` ask for (all of them without paging),
/// and whether more pages follow; a page past the end is 400.
fn page_bounds(
    len: usize,
    query: &HashMap<String, String>,
) -> Result<(std::ops::Range<usize>, bool), ApiError> {
    let number = |name: &str, raw: &str| -> Result<usize, ApiError> {
        raw.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request("pagination.invalid", format!("{name} must be a positive integer."))
        })
    };
    match (query.get("page"), query.get("size")) {
        (None, None) => Ok((0..len, false)),
        (Some(page), Some(size)) => {
            let (page, size) = (number("page", page)?, number("size", size)?);
            if size > 1000 {
                return Err(ApiError::bad_request("pagination.invalid", "size must not exceed 1000."));
            }
            let start = (page - 1).saturating_mul(size);
            if page > 1 && start >= len {
                return Err(ApiError::bad_request("pagination.invalid", "Requested page does not exist."));
            }
            let end = start.saturating_add(size).min(len);
            Ok((start.min(len)..end, end < len))
        }
        _ => Err(ApiError::bad_request("pagination.invalid", "page and size must be given together.")),
    }
}

/// A page as a JSON response, with `HAS_MORE_RECORDS: true` when more pages follow.
fn paged_response<T: Serialize>(page: &[T], more: bool) -> Response {
    let mut response = json_list(page);
    if more {
        // Header names are case-insensitive; `from_static` wants them lowercase.
        response
            .headers_mut()
            .insert(HeaderName::from_static("has_more_records"), HeaderValue::from_static("true"));
    }
    response
}

const POOL_FILTER_FIELDS: &[&str] = &["id", "name", "display_name", "type", "source", "vcenter_id"];
const FARM_FILTER_FIELDS: &[&str] = &["id", "name", "display_name", "type"];

fn noun(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::DesktopPool => "desktop pool",
        PoolKind::Farm => "farm",
    }
}

fn pool_not_found(kind: PoolKind, id: &str) -> ApiError {
    let key = match kind {
        PoolKind::DesktopPool => "desktop.pool.not.found",
        PoolKind::Farm => "farm.not.found",
    };
    ApiError::not_found(key, format!("The {} with id {id} does not exist.", noun(kind)))
}

/// Renders every pool of `kind` (or the one with `id`) with `render`.
fn render<T>(
    ctx: &SiteCtx,
    kind: PoolKind,
    id: Option<&str>,
    render: fn(&super::Pool, &str, &Placement, i64, &Timings) -> T,
) -> Result<Vec<T>, ApiError> {
    read_site(ctx, |site, t, now| {
        let place = Placement::of(site.vcenter, site.datacenter);
        let sim = &site.horizon;
        let items: Vec<T> = sim
            .pools
            .values()
            .filter(|p| p.kind == kind && id.is_none_or(|id| p.id == id))
            .map(|p| render(p, &sim.vcenter_id, &place, now, t))
            .collect();
        match id {
            Some(id) if items.is_empty() => Err(pool_not_found(kind, id)),
            _ => Ok(items),
        }
    })
}

/// A list as a JSON response, written into a buffer sized for it up front (a page of pools is
/// hundreds of kilobytes, which a growing buffer would copy over and over).
fn json_list<T: Serialize>(items: &[T]) -> Response {
    let mut body = Vec::with_capacity(2 + items.len() * 1024);
    match serde_json::to_writer(&mut body, items) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "lab.render", e.to_string()).into_response()
        }
    }
}

fn one<T: Serialize>(mut items: Vec<T>) -> ApiResult {
    match items.pop() {
        Some(item) => Ok(axum::Json(item).into_response()),
        None => Ok(axum::Json(Value::Null).into_response()),
    }
}

fn v1(pool: &super::Pool, _: &str, _: &Placement, _: i64, _: &Timings) -> view::PoolV1 {
    view::pool_v1(pool)
}

fn farm_v1(pool: &super::Pool, _: &str, _: &Placement, _: i64, _: &Timings) -> view::FarmV1 {
    view::farm_v1(pool)
}

async fn list_pools_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 12)?;
    // v1 lists take no paging or filter.
    Ok(axum::Json(render(&ctx, PoolKind::DesktopPool, None, v1)?).into_response())
}

async fn get_pool_v1(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 7, 12)?;
    one(render(&ctx, PoolKind::DesktopPool, Some(&id), v1)?)
}

async fn list_pools_v2(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 0)?;
    listing(render(&ctx, PoolKind::DesktopPool, None, view::pool_v2)?, &query, POOL_FILTER_FIELDS)
}

async fn get_pool_v2(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 0)?;
    one(render(&ctx, PoolKind::DesktopPool, Some(&id), view::pool_v2)?)
}

/// `FarmInfo` (v1): no image. Like the other v1 lists, no paging or filter.
async fn list_farms_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 12)?;
    Ok(axum::Json(render(&ctx, PoolKind::Farm, None, farm_v1)?).into_response())
}

async fn list_farms(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 2)?;
    listing(render(&ctx, PoolKind::Farm, None, view::farm_v2)?, &query, FARM_FILTER_FIELDS)
}

async fn get_farm(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 2)?;
    one(render(&ctx, PoolKind::Farm, Some(&id), view::farm_v2)?)
}

// ---- push image and farm maintenance ----

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

async fn push_image(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
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
async fn push_image_v2(
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
async fn promote(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
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

async fn cancel_push(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
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

async fn schedule_maintenance(
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

async fn cancel_maintenance(
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

// ---- machines, RDS servers and sessions ----

const MACHINE_FILTER_FIELDS: &[&str] = &["id", "name", "dns_name", "desktop_pool_id", "state", "type"];
const RDS_SERVER_FILTER_FIELDS: &[&str] = &["id", "name", "dns_name", "farm_id", "state", "base_vm_id"];
const SESSION_FILTER_FIELDS: &[&str] =
    &["id", "desktop_pool_id", "farm_id", "machine_id", "session_state", "session_type", "user_id"];

/// The query a pod of its version understands: paging and filter on these lists came with
/// 2012 (sessions take a filter only from 2206); an older server ignores them, as it ignores
/// any parameter it does not know.
fn known_params(
    ctx: &SiteCtx,
    query: HashMap<String, String>,
    filter_since: (u32, u32),
) -> HashMap<String, String> {
    let lab = ctx.read();
    let Some(site) = lab.sites.get(&ctx.name) else { return HashMap::new() };
    let (paging, filter) =
        (site.horizon.at_least(8, 1), site.horizon.at_least(filter_since.0, filter_since.1));
    query
        .into_iter()
        .filter(|(name, _)| match name.as_str() {
            "page" | "size" => paging,
            "filter" => filter,
            _ => true,
        })
        .collect()
}

/// The machines of `kind` (desktop machines or RDS servers) a list request asks for, rendered
/// as `doc` while the lab is read: without a filter only the page asked for is rendered (a pod
/// has thousands); with one, all of them, to be matched.
fn list_machines(
    ctx: &SiteCtx,
    kind: PoolKind,
    query: &HashMap<String, String>,
    fields: &[&str],
    doc: view::MachineDoc,
) -> ApiResult {
    read_site(ctx, |site, t, now| {
        let sim = &site.horizon;
        let of_kind = || sim.pools.values().filter(|p| p.kind == kind);
        let all = of_kind()
            .flat_map(|p| p.machines.iter().map(move |m| (p, m)))
            .map(|(p, m)| view::machine_doc(doc, p, m, &sim.vcenter_id, now, t));
        if query.contains_key("filter") {
            return listing(all.collect(), query, fields);
        }
        let (range, more) = page_bounds(of_kind().map(|p| p.machines.len()).sum(), query)?;
        let page: Vec<_> = all.skip(range.start).take(range.len()).collect();
        Ok(paged_response(&page, more))
    })
}

/// `GET /inventory/v1/machines` (8.0): `MachineInfo`, without images.
async fn machines_v1(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 0)?;
    let query = known_params(&ctx, query, (8, 1));
    list_machines(&ctx, PoolKind::DesktopPool, &query, MACHINE_FILTER_FIELDS, view::MachineDoc::V1)
}

/// `GET /inventory/v2/machines` (2012): `MachineInfoV2`, whose `managed_machine_data` names
/// the machine's image and pending image.
async fn machines_v2(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 1)?;
    list_machines(&ctx, PoolKind::DesktopPool, &query, MACHINE_FILTER_FIELDS, view::MachineDoc::V2)
}

/// `GET /inventory/v1/rds-servers` (2012): `RDSServerInfo`.
async fn rds_servers(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 1)?;
    list_machines(&ctx, PoolKind::Farm, &query, RDS_SERVER_FILTER_FIELDS, view::MachineDoc::RdsServer)
}

/// `GET /inventory/v1/sessions` (8.0): `SessionInfo` of every session in the pod.
async fn sessions(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 0)?;
    let query = known_params(&ctx, query, (8, 6));
    read_site(&ctx, |site, _, now| {
        let items = site
            .horizon
            .pools
            .values()
            .flat_map(|p| p.machines.iter().flat_map(move |m| m.sessions.iter().map(move |s| (p, m, s))))
            .map(|(p, m, s)| view::session(p, m, s, now))
            .collect();
        listing(items, &query, SESSION_FILTER_FIELDS)
    })
}

// ---- external inventory (the site's lab vCenter) and virtual centers ----

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

async fn datacenters(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = with_site(&ctx, |site, _, _| {
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

async fn base_vms(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = with_site(&ctx, |site, _, _| {
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

async fn base_snapshots(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let items = with_site(&ctx, |site, _, _| {
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

async fn virtual_centers_config(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    let item = with_site(&ctx, |site, _, _| {
        let h = &site.horizon;
        Ok(view::virtual_center_config(site.vcenter, &h.vcenter_id, &h.vcenter_server))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

async fn virtual_centers_monitor(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    let item = with_site(&ctx, |site, _, now| {
        Ok(view::virtual_center_monitor(&site.horizon.vcenter_id, &site.horizon.vcenter_server, now))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

/// `/monitor/connection-servers` (7.10 and later): `ConnectionServerMonitorInfo`.
async fn connection_servers_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 10)?;
    let item = read_site(&ctx, |site, _, now| {
        Ok(view::connection_server_monitor(&site.horizon.version, now, false))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

/// `/monitor/v1/connection-servers` (8.0 and later): `ConnectionServerMonitorInfoV2`.
async fn connection_servers_v2(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 8, 0)?;
    let item = read_site(&ctx, |site, _, now| {
        Ok(view::connection_server_monitor(&site.horizon.version, now, true))
    })?;
    Ok(axum::Json(vec![item]).into_response())
}

// ---- lab controls ----

#[derive(Deserialize, Default)]
struct ExpireBody {
    /// Also end the sessions, so refresh fails and clients must log in again.
    #[serde(default)]
    sessions: bool,
}

/// `POST /__lab/horizon/expire-tokens` (`{"sessions": true}` also ends refresh tokens).
async fn expire_tokens(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: ExpireBody = if body.is_empty() { ExpireBody::default() } else { parse_body(&body)? };
    with_site(&ctx, |site, _, _| {
        if body.sessions {
            site.horizon.expire_sessions();
        } else {
            site.horizon.expire_access_tokens();
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct FastForwardBody {
    ms: i64,
}

/// `POST /__lab/horizon/fast-forward {"ms": N}`: moves this pod's clock forward.
async fn fast_forward(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
    let body: FastForwardBody = parse_body(&body)?;
    with_site(&ctx, |site, _, _| {
        site.horizon.fast_forward(body.ms.max(0));
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct FailBody {
    error: String,
}

/// `POST /__lab/horizon/pools/{id}/fail-next-push {"error": "..."}`.
async fn fail_next_push(State(ctx): State<SiteCtx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: FailBody = parse_body(&body)?;
    if with_site(&ctx, |site, _, _| Ok(site.horizon.fail_next_push(&id, &body.error)))? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("pool.not.found", format!("No pool or farm with id {id}.")))
    }
}

/// `POST /__lab/horizon/pools/{id}/fail-next-canary {"error": "..."}`: the machines of the
/// pool's next selective push fail to be recreated.
async fn fail_next_canary(State(ctx): State<SiteCtx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: FailBody = parse_body(&body)?;
    if with_site(&ctx, |site, _, _| Ok(site.horizon.fail_next_canary(&id, &body.error)))? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("pool.not.found", format!("No pool or farm with id {id}.")))
    }
}

#[derive(Deserialize)]
struct OccupancyBody {
    machines: u32,
    sessions: u32,
}

/// `POST /__lab/horizon/pools/{id}/occupancy {"machines": N, "sessions": M}`: the pool's
/// machines (a farm's RDS servers) and the user sessions on them.
async fn occupancy(State(ctx): State<SiteCtx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: OccupancyBody = parse_body(&body)?;
    let set =
        with_site(&ctx, |site, _, _| Ok(site.horizon.set_occupancy(&id, body.machines, body.sessions)))?;
    match set {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.starts_with("no pool") => Err(ApiError::not_found("pool.not.found", e)),
        Err(e) => Err(ApiError::bad_request("occupancy.invalid", e)),
    }
}

async fn not_found() -> ApiError {
    resource_not_found()
}
