//! Desktop pools and farms as documents: `/inventory/v1|v2/desktop-pools` and
//! `/inventory/v1|v2/farms`, each available from the release that added it.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;

use super::listing::{listing, one};
use super::{ApiError, ApiResult, Authed, read_site, since};
use crate::horizon::view::{self, Placement};
use crate::horizon::{Pool, PoolKind};
use crate::{SiteCtx, Timings};

const POOL_FILTER_FIELDS: &[&str] = &["id", "name", "display_name", "type", "source", "vcenter_id"];
const FARM_FILTER_FIELDS: &[&str] = &["id", "name", "display_name", "type"];

pub(super) fn noun(kind: PoolKind) -> &'static str {
    match kind {
        PoolKind::DesktopPool => "desktop pool",
        PoolKind::Farm => "farm",
    }
}

pub(super) fn pool_not_found(kind: PoolKind, id: &str) -> ApiError {
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
    render: fn(&Pool, &str, &Placement, i64, &Timings) -> T,
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

fn v1(pool: &Pool, _: &str, _: &Placement, _: i64, _: &Timings) -> view::PoolV1 {
    view::pool_v1(pool)
}

fn farm_v1(pool: &Pool, _: &str, _: &Placement, _: i64, _: &Timings) -> view::FarmV1 {
    view::farm_v1(pool)
}

pub(super) async fn list_pools_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 12)?;
    // v1 lists take no paging or filter.
    Ok(axum::Json(render(&ctx, PoolKind::DesktopPool, None, v1)?).into_response())
}

pub(super) async fn get_pool_v1(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 7, 12)?;
    one(render(&ctx, PoolKind::DesktopPool, Some(&id), v1)?)
}

pub(super) async fn list_pools_v2(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 0)?;
    listing(render(&ctx, PoolKind::DesktopPool, None, view::pool_v2)?, &query, POOL_FILTER_FIELDS)
}

pub(super) async fn get_pool_v2(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 0)?;
    one(render(&ctx, PoolKind::DesktopPool, Some(&id), view::pool_v2)?)
}

/// `FarmInfo` (v1): no image. Like the other v1 lists, no paging or filter.
pub(super) async fn list_farms_v1(_: Authed, State(ctx): State<SiteCtx>) -> ApiResult {
    since(&ctx, 7, 12)?;
    Ok(axum::Json(render(&ctx, PoolKind::Farm, None, farm_v1)?).into_response())
}

pub(super) async fn list_farms(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 2)?;
    listing(render(&ctx, PoolKind::Farm, None, view::farm_v2)?, &query, FARM_FILTER_FIELDS)
}

pub(super) async fn get_farm(_: Authed, State(ctx): State<SiteCtx>, Path(id): Path<String>) -> ApiResult {
    since(&ctx, 8, 2)?;
    one(render(&ctx, PoolKind::Farm, Some(&id), view::farm_v2)?)
}
