//! The pod's machines, RDS servers and user sessions: `/inventory/v1|v2/machines`,
//! `/inventory/v1/rds-servers` and `/inventory/v1/sessions`.

use std::collections::HashMap;

use axum::extract::{Query, State};

use super::listing::{listing, page_bounds, paged_response};
use super::{ApiResult, Authed, read_site, since};
use crate::SiteCtx;
use crate::horizon::{PoolKind, view};

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
pub(super) async fn machines_v1(
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
pub(super) async fn machines_v2(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 1)?;
    list_machines(&ctx, PoolKind::DesktopPool, &query, MACHINE_FILTER_FIELDS, view::MachineDoc::V2)
}

/// `GET /inventory/v1/rds-servers` (2012): `RDSServerInfo`.
pub(super) async fn rds_servers(
    _: Authed,
    State(ctx): State<SiteCtx>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    since(&ctx, 8, 1)?;
    list_machines(&ctx, PoolKind::Farm, &query, RDS_SERVER_FILTER_FIELDS, view::MachineDoc::RdsServer)
}

/// `GET /inventory/v1/sessions` (8.0): `SessionInfo` of every session in the pod.
pub(super) async fn sessions(
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
