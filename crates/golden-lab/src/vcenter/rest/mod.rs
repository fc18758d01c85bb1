//! The lab vCenter's vSphere Automation REST API (`/rest`), in the wire format of vCenter 6.5+
//! (and of vcsim, which the contract tests compare it with): `{"value": ...}` envelopes, `id:` path prefixes, `~action=` queries,
//! `com.vmware.vapi.std.errors.*` error types.
//!
//! Where vcsim deviates from real vCenter (text/plain JSON, `null` for empty lists), the lab
//! follows real vCenter; golden's client accepts both, and the contract tests run it on both.
//!
//! This module holds the shared plumbing (envelopes, vAPI errors, the session check, the `id:`
//! path extractor) and the session itself (`/rest/com/vmware/cis/session`); each API area has
//! its own file, mirroring golden's client: [`library`], [`item`], [`transfer`], [`ovf`] and
//! [`tagging`].

mod item;
mod library;
mod ovf;
mod tagging;
mod transfer;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::VcenterSim;
use super::content;
use crate::{LAB_PASSWORD, LAB_USER, LabState, SiteCtx, now_ms};

pub(super) use item::{item_by_id, item_collection, list_item_files, list_items};
pub(super) use library::{create_library, library_by_id, library_collection_action, list_libraries};
pub(super) use ovf::{NewVm, delete_vm, ovf_create, ovf_deploy, place_vm, vmtx_create, vmtx_deploy};
pub(super) use tagging::{
    category_by_id, category_collection, tag_association, tag_association_by_id, tag_by_id, tag_collection,
};
pub(super) use transfer::{
    create_download_session, create_update_session, data, download_session_by_id, download_session_file,
    list_download_sessions, list_update_session_files, list_update_sessions, update_session_by_id,
    update_session_file,
};

type Q = Query<BTreeMap<String, String>>;

/// `{"value": v}` with 200.
pub(super) fn value(v: impl serde::Serialize) -> Response {
    axum::Json(json!({ "value": v })).into_response()
}

/// 200 with an empty body, as vCenter answers calls that return nothing.
pub(super) fn empty() -> Response {
    StatusCode::OK.into_response()
}

/// A vAPI error: `{"type":"com.vmware.vapi.std.errors.<kind>","value":{"messages":[...]}}`.
pub(super) fn api_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({
        "type": format!("com.vmware.vapi.std.errors.{kind}"),
        "value": {"messages": [{"id": format!("vapi.lab.{kind}"), "default_message": message, "args": []}]},
    });
    (status, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    api_error(StatusCode::NOT_FOUND, "not_found", &format!("{what} not found"))
}

fn invalid(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "invalid_argument", message)
}

/// Runs `f` on the locked lab after settling due work and checking the REST session.
fn with_session(
    ctx: &SiteCtx,
    headers: &HeaderMap,
    f: impl FnOnce(&mut LabState, &str) -> Response,
) -> Response {
    in_session(ctx, headers, f).unwrap_or_else(|refused| *refused)
}

/// [`with_session`] for handlers that go on after `f`: its result, or the refusal.
fn in_session<T>(
    ctx: &SiteCtx,
    headers: &HeaderMap,
    f: impl FnOnce(&mut LabState, &str) -> T,
) -> Result<T, Box<Response>> {
    let mut lab = ctx.lock();
    content::settle(&mut lab, now_ms());
    let Some(vcenter) = lab.vcenters.get(&ctx.name) else { return Err(Box::new(not_found("vcenter"))) };
    if !has_session(&vcenter.sim, headers) {
        let refused =
            api_error(StatusCode::UNAUTHORIZED, "unauthenticated", "this method requires authentication");
        return Err(Box::new(refused));
    }
    Ok(f(&mut lab, &ctx.name))
}

fn has_session(vc: &VcenterSim, headers: &HeaderMap) -> bool {
    let from_header = headers.get("vmware-api-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let from_cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).and_then(|c| {
        c.split(';').find_map(|kv| kv.trim().strip_prefix("vmware-api-session-id=").map(str::to_owned))
    });
    from_header.or(from_cookie).is_some_and(|id| vc.sessions.contains(&id))
}

fn vc<'a>(lab: &'a mut LabState, vcenter: &str) -> &'a mut VcenterSim {
    // The vCenter exists: `with_session` checked it under the same lock.
    &mut lab.vcenters.get_mut(vcenter).expect("vcenter checked under the lock").sim
}

fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str)
}

/// A `{id}` path segment in vAPI form, `id:<value>`; anything else gets vCenter's plain 404.
pub(super) struct VapiId(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for VapiId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Response> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        match raw.strip_prefix("id:") {
            Some(id) => Ok(VapiId(id.to_owned())),
            None => Err((StatusCode::NOT_FOUND, "404 page not found").into_response()),
        }
    }
}

fn action(q: &BTreeMap<String, String>) -> &str {
    q.get("~action").or_else(|| q.get("action")).map(String::as_str).unwrap_or("")
}

pub(super) async fn login(State(ctx): State<SiteCtx>, headers: HeaderMap) -> Response {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|pair| pair == format!("{LAB_USER}:{LAB_PASSWORD}"));
    if !ok {
        return api_error(StatusCode::UNAUTHORIZED, "unauthenticated", "authentication required");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut lab = ctx.lock();
    let Some(vcenter) = lab.vcenters.get_mut(&ctx.name) else { return not_found("vcenter") };
    vcenter.sim.sessions.insert(id.clone());
    let mut response = value(&id);
    if let Ok(cookie) = format!("vmware-api-session-id={id};Path=/rest;HttpOnly").parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub(super) async fn logout(State(ctx): State<SiteCtx>, headers: HeaderMap) -> Response {
    let id =
        headers.get("vmware-api-session-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    with_session(&ctx, &headers, |lab, site| {
        vc(lab, site).sessions.remove(&id);
        empty()
    })
}
/// ISO 8601 UTC with milliseconds, as vCenter writes `creation_time`.
pub(super) fn iso(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn iso_dates_are_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}
