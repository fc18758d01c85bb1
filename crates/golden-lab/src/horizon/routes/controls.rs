//! The lab's own controls under `/__lab/horizon/...`, which no Horizon has: expire tokens, move
//! the pod's clock, fail the next push or canary, set a pool's machines and sessions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{ApiError, ApiResult, parse_body, with_site};
use crate::SiteCtx;

#[derive(Deserialize, Default)]
struct ExpireBody {
    /// Also end the sessions, so refresh fails and clients must log in again.
    #[serde(default)]
    sessions: bool,
}

/// `POST /__lab/horizon/expire-tokens` (`{"sessions": true}` also ends refresh tokens).
pub(super) async fn expire_tokens(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
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
pub(super) async fn fast_forward(State(ctx): State<SiteCtx>, body: Bytes) -> ApiResult {
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
pub(super) async fn fail_next_push(
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: FailBody = parse_body(&body)?;
    if with_site(&ctx, |site, _, _| Ok(site.horizon.fail_next_push(&id, &body.error)))? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found("pool.not.found", format!("No pool or farm with id {id}.")))
    }
}

/// `POST /__lab/horizon/pools/{id}/fail-next-canary {"error": "..."}`: the machines of the
/// pool's next selective push fail to be recreated.
pub(super) async fn fail_next_canary(
    State(ctx): State<SiteCtx>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
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
pub(super) async fn occupancy(State(ctx): State<SiteCtx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: OccupancyBody = parse_body(&body)?;
    let set =
        with_site(&ctx, |site, _, _| Ok(site.horizon.set_occupancy(&id, body.machines, body.sessions)))?;
    match set {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.starts_with("no pool") => Err(ApiError::not_found("pool.not.found", e)),
        Err(e) => Err(ApiError::bad_request("occupancy.invalid", e)),
    }
}
