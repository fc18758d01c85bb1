//! The lab vCenter's vSphere Automation REST API (`/rest`), in the wire format of vCenter 6.5+
//! (and of vcsim, which the contract tests compare it with): `{"value": ...}` envelopes, `id:` path prefixes, `~action=` queries,
//! `com.vmware.vapi.std.errors.*` error types.
//!
//! Where vcsim deviates from real vCenter (text/plain JSON, `null` for empty lists), the lab
//! follows real vCenter; golden's client accepts both, and the contract tests run it on both.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::content::{self, File, Item, Library, LibraryKind, PendingFile, UpdateSession};
use super::{Tag, VcenterSim, Vm};
use crate::{LAB_PASSWORD, LAB_USER, LabState, SiteCtx, now_ms};

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
    let mut lab = ctx.lock();
    content::settle(&mut lab, now_ms());
    let Some(vcenter) = lab.vcenters.get(&ctx.name) else { return not_found("vcenter") };
    if !has_session(&vcenter.sim, headers) {
        return api_error(StatusCode::UNAUTHORIZED, "unauthenticated", "this method requires authentication");
    }
    f(&mut lab, &ctx.name)
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

// ---- session ----

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

// ---- libraries ----

fn library_json(lib: &Library, base: &str) -> Value {
    let mut v = json!({
        "id": lib.id, "name": lib.name, "description": lib.description,
        "creation_time": iso(lib.created_ms), "last_modified_time": iso(lib.created_ms),
        "storage_backings": [{"type": "DATASTORE", "datastore_id": lib.datastore_id}],
    });
    match &lib.kind {
        LibraryKind::Local { published } => {
            v["type"] = json!("LOCAL");
            v["publish_info"] = json!({"published": published, "authentication_method": "NONE"});
            if let Some(url) = lib.publish_url(base) {
                v["publish_info"]["publish_url"] = json!(url);
            }
        }
        LibraryKind::Subscribed { subscription_url, on_demand, last_sync_ms, .. } => {
            v["type"] = json!("SUBSCRIBED");
            v["subscription_info"] = json!({
                "subscription_url": subscription_url, "authentication_method": "NONE",
                "automatic_sync_enabled": true, "on_demand": on_demand,
            });
            if let Some(t) = last_sync_ms {
                v["last_sync_time"] = json!(iso(*t));
            }
        }
    }
    v
}

pub(super) async fn create_library(State(ctx): State<SiteCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let body = body_json(&body);
    let spec = &body["create_spec"];
    with_session(&ctx, &headers, |lab, site| {
        let Some(name) = s(spec, &["name"]) else { return invalid("create_spec.name is required") };
        let Some(datastore) = spec["storage_backings"].get(0).and_then(|b| b["datastore_id"].as_str()) else {
            return invalid("create_spec.storage_backings[0].datastore_id is required");
        };
        let vc = vc(lab, site);
        if !vc.datastores.contains_key(datastore) {
            return invalid(&format!("datastore {datastore} does not exist"));
        }
        // vCenter keeps library names unique (compared as its find does, without case).
        if vc.content.libraries.values().any(|l| l.name.eq_ignore_ascii_case(name)) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "already_exists",
                &format!("A library with the name {name} already exists."),
            );
        }
        let kind = match spec["type"].as_str() {
            Some("SUBSCRIBED") => {
                let Some(url) = s(spec, &["subscription_info", "subscription_url"]) else {
                    return invalid("create_spec.subscription_info.subscription_url is required");
                };
                let automatic = spec["subscription_info"]["automatic_sync_enabled"].as_bool().unwrap_or(true);
                LibraryKind::Subscribed {
                    subscription_url: url.to_owned(),
                    on_demand: spec["subscription_info"]["on_demand"].as_bool().unwrap_or(false),
                    // An automatically syncing subscription starts its first sync at creation.
                    sync_started_ms: automatic.then(now_ms),
                    last_sync_ms: None,
                }
            }
            _ => {
                LibraryKind::Local { published: spec["publish_info"]["published"].as_bool().unwrap_or(false) }
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        vc.content.libraries.insert(
            id.clone(),
            Library {
                id: id.clone(),
                name: name.to_owned(),
                description: s(spec, &["description"]).unwrap_or_default().to_owned(),
                datastore_id: datastore.to_owned(),
                created_ms: now_ms(),
                kind,
            },
        );
        value(id)
    })
}

pub(super) async fn list_libraries(State(ctx): State<SiteCtx>, headers: HeaderMap) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        value(vc(lab, site).content.libraries.keys().collect::<Vec<_>>())
    })
}

pub(super) async fn library_collection_action(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| match action(&q) {
        "find" => {
            let name = s(&body, &["spec", "name"]).map(str::to_ascii_lowercase);
            let kind = s(&body, &["spec", "type"]);
            let ids: Vec<&String> = vc(lab, site)
                .content
                .libraries
                .values()
                .filter(|l| name.as_ref().is_none_or(|n| l.name.to_ascii_lowercase() == *n))
                .filter(|l| {
                    kind.is_none_or(|k| {
                        matches!(
                            (&l.kind, k),
                            (LibraryKind::Local { .. }, "LOCAL")
                                | (LibraryKind::Subscribed { .. }, "SUBSCRIBED")
                        )
                    })
                })
                .map(|l| &l.id)
                .collect();
            value(ids)
        }
        other => invalid(&format!("unknown action {other}")),
    })
}

pub(super) async fn library_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let base = ctx.lock().vcenters.get(&ctx.name).and_then(|v| v.url.clone()).unwrap_or_default();
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let Some(lib) = vc.content.libraries.get_mut(&id) else { return not_found(&format!("library {id}")) };
        match (method.as_str(), action(&q)) {
            ("GET", _) => value(library_json(lib, &base)),
            ("PATCH", _) => {
                if let Some(d) = s(&body, &["update_spec", "description"]).filter(|d| !d.is_empty()) {
                    lib.description = d.to_owned();
                }
                if let Some(n) = s(&body, &["update_spec", "name"]).filter(|n| !n.is_empty()) {
                    lib.name = n.to_owned();
                }
                empty()
            }
            ("POST", "sync") => match &mut lib.kind {
                LibraryKind::Subscribed { sync_started_ms, .. } => {
                    sync_started_ms.get_or_insert_with(now_ms);
                    empty()
                }
                LibraryKind::Local { .. } => not_found(&format!("subscribed library {id}")),
            },
            ("DELETE", _) => {
                vc.content.libraries.remove(&id);
                let items: Vec<String> =
                    vc.content.items.values().filter(|i| i.library_id == id).map(|i| i.id.clone()).collect();
                for item in items {
                    if let Some(vm) = vc.content.items.remove(&item).and_then(|i| i.template_vm) {
                        vc.vms.remove(&vm);
                    }
                }
                empty()
            }
            (m, a) => invalid(&format!("unsupported {m} {a}")),
        }
    })
}

// ---- items ----

fn item_json(item: &Item) -> Value {
    let size: usize = item.files.values().map(|f| f.bytes.len()).sum();
    let mut v = json!({
        "id": item.id, "library_id": item.library_id, "name": item.name, "type": item.kind,
        "description": item.description, "version": item.version, "content_version": "1", "metadata_version": "1",
        "creation_time": iso(item.created_ms), "last_modified_time": iso(item.created_ms),
        "cached": true, "size": size,
    });
    if let Some(source) = &item.source_id {
        v["source_id"] = json!(source);
    }
    if let Some(t) = item.last_sync_ms {
        v["last_sync_time"] = json!(iso(t));
    }
    v
}

pub(super) async fn list_items(State(ctx): State<SiteCtx>, headers: HeaderMap, Query(q): Q) -> Response {
    let Some(library) = q.get("library_id").cloned() else { return invalid("library_id is required") };
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        if !vc.content.libraries.contains_key(&library) {
            return not_found(&format!("library {library}"));
        }
        value(
            vc.content.items.values().filter(|i| i.library_id == library).map(|i| &i.id).collect::<Vec<_>>(),
        )
    })
}

pub(super) async fn item_collection(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        match action(&q) {
            "find" => {
                let spec = &body["spec"];
                let ids: Vec<&String> = vc
                    .content
                    .items
                    .values()
                    .filter(|i| s(spec, &["name"]).is_none_or(|n| i.name.eq_ignore_ascii_case(n)))
                    .filter(|i| s(spec, &["library_id"]).is_none_or(|l| i.library_id == l))
                    .filter(|i| s(spec, &["type"]).is_none_or(|t| i.kind == t))
                    .map(|i| &i.id)
                    .collect();
                value(ids)
            }
            "" => {
                let spec = &body["create_spec"];
                let (Some(library), Some(name)) = (s(spec, &["library_id"]), s(spec, &["name"])) else {
                    return invalid("create_spec.library_id and create_spec.name are required");
                };
                match vc.content.libraries.get(library).map(|l| &l.kind) {
                    None => return not_found(&format!("library {library}")),
                    Some(LibraryKind::Subscribed { .. }) => {
                        return api_error(
                            StatusCode::BAD_REQUEST,
                            "invalid_element_type",
                            "items cannot be created in a subscribed library",
                        );
                    }
                    Some(LibraryKind::Local { .. }) => {}
                }
                if vc.content.items.values().any(|i| i.library_id == library && i.name == name) {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "already_exists",
                        &format!("an item named {name} already exists"),
                    );
                }
                let kind = s(spec, &["type"]).unwrap_or("ovf");
                let description = s(spec, &["description"]).unwrap_or_default();
                let item = Item::new(library, name, kind, description, BTreeMap::new(), now_ms());
                let id = item.id.clone();
                vc.content.items.insert(id.clone(), item);
                value(id)
            }
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

pub(super) async fn item_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        match method.as_str() {
            "GET" => vc
                .content
                .items
                .get(&id)
                .map_or_else(|| not_found(&format!("item {id}")), |i| value(item_json(i))),
            "PATCH" => {
                let Some(item) = vc.content.items.get_mut(&id) else {
                    return not_found(&format!("item {id}"));
                };
                if let Some(d) = s(&body, &["update_spec", "description"]).filter(|d| !d.is_empty()) {
                    item.description = d.to_owned();
                }
                if let Some(v) = s(&body, &["update_spec", "version"]).filter(|v| !v.is_empty()) {
                    item.version = v.to_owned();
                }
                empty()
            }
            "DELETE" => {
                let Some(item) = vc.content.items.remove(&id) else {
                    return not_found(&format!("item {id}"));
                };
                if let Some(vm) = item.template_vm {
                    vc.vms.remove(&vm);
                }
                empty()
            }
            m => invalid(&format!("unsupported {m}")),
        }
    })
}

pub(super) async fn list_item_files(State(ctx): State<SiteCtx>, headers: HeaderMap, Query(q): Q) -> Response {
    let Some(id) = q.get("library_item_id").cloned() else { return invalid("library_item_id is required") };
    with_session(&ctx, &headers, |lab, site| {
        let Some(item) = vc(lab, site).content.items.get(&id) else {
            return not_found(&format!("item {id}"));
        };
        let files: Vec<Value> = item
            .files
            .iter()
            .map(|(name, f)| json!({"name": name, "size": f.bytes.len(), "cached": true, "version": "1"}))
            .collect();
        value(files)
    })
}

pub(super) async fn sync_subscribed_item(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let Some(item) = vc.content.items.get_mut(&id) else { return not_found(&format!("item {id}")) };
        if q.get("library_id").is_some_and(|l| *l != item.library_id) || item.source_id.is_none() {
            return not_found(&format!("subscribed item {id}"));
        }
        item.last_sync_ms = Some(now_ms());
        empty()
    })
}

// ---- update and download sessions ----

/// The existing item a session's `create_spec.library_item_id` names.
fn session_item<'a>(vc: &VcenterSim, body: &'a Value) -> Result<&'a str, Box<Response>> {
    let Some(item) = s(body, &["create_spec", "library_item_id"]) else {
        return Err(Box::new(invalid("create_spec.library_item_id is required")));
    };
    if !vc.content.items.contains_key(item) {
        return Err(Box::new(not_found(&format!("item {item}"))));
    }
    Ok(item)
}

pub(super) async fn create_update_session(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let item = match session_item(vc, &body) {
            Ok(item) => item,
            Err(response) => return *response,
        };
        let id = uuid::Uuid::new_v4().to_string();
        vc.content.update_sessions.insert(
            id.clone(),
            UpdateSession {
                id: id.clone(),
                item_id: item.to_owned(),
                state: "ACTIVE".into(),
                files: BTreeMap::new(),
            },
        );
        value(id)
    })
}

fn file_status(f: &PendingFile) -> &'static str {
    match (&f.bytes, &f.error) {
        (_, Some(_)) => "ERROR",
        (Some(_), None) => "READY",
        (None, None) => "TRANSFERRING",
    }
}

fn pending_file_json(f: &PendingFile) -> Value {
    let mut v = json!({
        "name": f.name,
        "source_type": "PULL",
        "status": file_status(f),
        "source_endpoint": {"uri": f.source_uri},
    });
    if let Some(e) = &f.error {
        v["error_message"] = json!({"id": "lab.transfer", "default_message": e, "args": []});
    }
    if let Some(b) = &f.bytes {
        v["bytes_transferred"] = json!(b.bytes.len());
    }
    v
}

pub(super) async fn update_session_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
    Query(q): Q,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let Some(session) = vc.content.update_sessions.get_mut(&id) else {
            return not_found(&format!("update session {id}"));
        };
        match (method.as_str(), action(&q)) {
            ("GET", _) => {
                value(json!({"id": session.id, "library_item_id": session.item_id, "state": session.state}))
            }
            ("POST", "complete") => {
                if session.state != "ACTIVE" {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "not_allowed_in_current_state",
                        &format!("session is {}", session.state),
                    );
                }
                if let Some(f) = session.files.values().find(|f| f.bytes.is_none()) {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "not_allowed_in_current_state",
                        &format!("file {} is {}", f.name, file_status(f)),
                    );
                }
                let files: Vec<(String, File)> =
                    session.files.values().filter_map(|f| Some((f.name.clone(), f.bytes.clone()?))).collect();
                session.state = "DONE".into();
                let item_id = session.item_id.clone();
                if let Some(item) = vc.content.items.get_mut(&item_id) {
                    item.files.extend(files);
                }
                empty()
            }
            ("POST", "cancel") | ("POST", "fail") => {
                session.state = if action(&q) == "cancel" { "CANCELED".into() } else { "ERROR".into() };
                empty()
            }
            ("DELETE", _) => {
                vc.content.update_sessions.remove(&id);
                empty()
            }
            (m, a) => invalid(&format!("unsupported {m} {a}")),
        }
    })
}

pub(super) async fn update_session_file(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let Some(session) = vc.content.update_sessions.get_mut(&id) else {
            return not_found(&format!("update session {id}"));
        };
        match action(&q) {
            "add" => {
                let spec = &body["file_spec"];
                let Some(name) = s(spec, &["name"]) else { return invalid("file_spec.name is required") };
                let source_type = s(spec, &["source_type"]).unwrap_or("PUSH").to_owned();
                // golden only has vCenter fetch files (PULL); uploads through the client (PUSH)
                // are not simulated.
                if source_type != "PULL" {
                    return invalid("the lab simulates PULL transfers only");
                }
                let Some(source_uri) = s(spec, &["source_endpoint", "uri"]).map(str::to_owned) else {
                    return invalid("file_spec.source_endpoint.uri is required for PULL");
                };

                let file = PendingFile {
                    name: name.to_owned(),
                    source_uri,
                    started_ms: now_ms(),
                    bytes: None,
                    error: None,
                };
                let out = pending_file_json(&file);
                session.files.insert(name.to_owned(), file);
                value(out)
            }
            "get" => {
                let name = s(&body, &["file_name"]).unwrap_or_default();
                session.files.get(name).map_or_else(
                    || not_found(&format!("file {name}")),
                    |f| value(pending_file_json(f)),
                )
            }
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

/// `GET .../updatesession/file?update_session_id=`: the files of an update session, with the
/// status of their transfer.
pub(super) async fn list_update_session_files(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let Some(id) = q.get("update_session_id").cloned() else {
        return invalid("update_session_id is required");
    };
    with_session(&ctx, &headers, |lab, site| match vc(lab, site).content.update_sessions.get(&id) {
        Some(session) => value(session.files.values().map(pending_file_json).collect::<Vec<_>>()),
        None => not_found(&format!("update session {id}")),
    })
}

pub(super) async fn create_download_session(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let item = match session_item(vc, &body) {
            Ok(item) => item,
            Err(response) => return *response,
        };
        let id = uuid::Uuid::new_v4().to_string();
        vc.content.download_sessions.insert(
            id.clone(),
            content::DownloadSession { id: id.clone(), item_id: item.to_owned(), prepared: BTreeMap::new() },
        );
        value(id)
    })
}

pub(super) async fn download_session_file(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let base = ctx.lock().vcenters.get(&ctx.name).and_then(|v| v.url.clone()).unwrap_or_default();
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let Some(session) = vc.content.download_sessions.get(&id).cloned() else {
            return not_found(&format!("download session {id}"));
        };
        let Some(item) = vc.content.items.get(&session.item_id) else { return not_found("item") };
        match action(&q) {
            "prepare" => {
                let Some(name) = s(&body, &["file_name"]) else { return invalid("file_name is required") };
                let Some(file) = item.files.get(name) else { return not_found(&format!("file {name}")) };
                let size = file.bytes.len();
                let data_id = uuid::Uuid::new_v4().to_string();
                let uri = format!("{base}/rest/com/vmware/cis/data/{data_id}/{name}");
                if let Some(sess) = vc.content.download_sessions.get_mut(&id) {
                    sess.prepared.insert(name.to_owned(), data_id);
                }
                value(json!({"name": name, "size": size, "status": "PREPARED", "download_endpoint": {"uri": uri}}))
            }
            "list" => value(item.files.iter().map(|(n, f)| json!({"name": n, "size": f.bytes.len(), "status": if session.prepared.contains_key(n) {"PREPARED"} else {"UNPREPARED"}})).collect::<Vec<_>>()),
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

/// `GET` downloads a prepared file. The session id alone (in the URL) authorises the
/// transfer, as vCenter's data endpoints do for the session header too.
pub(super) async fn data(
    State(ctx): State<SiteCtx>,
    method: axum::http::Method,
    Path((data_id, name)): Path<(String, String)>,
) -> Response {
    let mut lab = ctx.lock();
    let Some(vcenter) = lab.vcenters.get_mut(&ctx.name) else { return not_found("vcenter") };
    let content = &mut vcenter.sim.content;
    match method.as_str() {
        "GET" => {
            let bytes = content
                .download_sessions
                .values()
                .find(|s| s.prepared.get(&name) == Some(&data_id))
                .and_then(|s| content.items.get(&s.item_id))
                .and_then(|i| i.files.get(&name))
                .map(|f| f.bytes.clone());
            match bytes {
                Some(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
                None => not_found(&format!("download endpoint {data_id}/{name}")),
            }
        }
        m => invalid(&format!("unsupported {m}")),
    }
}

// ---- OVF and VM templates ----

/// The OVF descriptor the lab writes when it captures a VM (and reads back on deploy).
fn ovf_for(vm: &Vm) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:vmw=\"http://www.vmware.com/schema/ovf\">\n  <References><File ovf:href=\"disk-0.vmdk\" ovf:id=\"file1\"/></References>\n  <VirtualSystem ovf:id=\"{name}\"><Info>A virtual machine</Info><Name>{name}</Name>\n    <OperatingSystemSection ovf:id=\"1\" vmw:osType=\"{guest}\"><Info>os</Info></OperatingSystemSection>\n  </VirtualSystem>\n</Envelope>\n",
        name = golden_xml::escape(&vm.name),
        guest = golden_xml::escape(&vm.guest_id),
    )
}

pub(super) async fn ovf_create(State(ctx): State<SiteCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let (Some(vm), Some(library), Some(name)) = (
            s(&body, &["source", "id"]),
            s(&body, &["target", "library_id"]),
            s(&body, &["create_spec", "name"]),
        ) else {
            return invalid("source.id, target.library_id and create_spec.name are required");
        };
        let Some(vm) = vc.vms.get(vm).cloned() else { return not_found(&format!("VirtualMachine:{vm}")) };
        if !matches!(vc.content.libraries.get(library).map(|l| &l.kind), Some(LibraryKind::Local { .. })) {
            return not_found(&format!("local library {library}"));
        }
        let existing = s(&body, &["target", "library_item_id"]).map(str::to_owned);
        if existing.is_none() && vc.content.items.values().any(|i| i.library_id == library && i.name == name)
        {
            return value(
                json!({"succeeded": false, "error": {"errors": [{"category": "SERVER", "error": {"@class": "com.vmware.vapi.std.errors.already_exists", "messages": [{"default_message": format!("an item named {name} already exists")}]}}]}}),
            );
        }
        let id = existing.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut files = BTreeMap::new();
        files.insert(format!("{name}.ovf"), File { bytes: ovf_for(&vm).into_bytes() });
        // The lab does not simulate disk contents; the disk stands for the captured state.
        let snapshot = vm.current_snapshot.clone().unwrap_or_default();
        files.insert(
            "disk-0.vmdk".to_owned(),
            File { bytes: format!("lab disk of {} at {snapshot}\n", vm.id).into_bytes() },
        );
        let description = s(&body, &["create_spec", "description"]).unwrap_or_default();
        let item = Item { id: id.clone(), ..Item::new(library, name, "ovf", description, files, now_ms()) };
        vc.content.items.insert(id.clone(), item);
        value(json!({"succeeded": true, "ovf_library_item_id": id}))
    })
}

fn deploy_failure(message: &str) -> Response {
    value(
        json!({"succeeded": false, "error": {"errors": [{"category": "SERVER", "error": {"@class": "com.vmware.vapi.std.errors.error", "messages": [{"default_message": message}]}}]}}),
    )
}

pub(super) async fn ovf_deploy(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        if action(&q) != "deploy" {
            return invalid("unknown action");
        }
        let Some(item) = vc.content.items.get(&id).cloned() else { return not_found(&format!("item {id}")) };
        let Some(ovf) = item.files.iter().find(|(n, _)| n.ends_with(".ovf")).map(|(_, f)| f) else {
            return deploy_failure(&format!("item {id} has no OVF descriptor"));
        };
        let guest = String::from_utf8_lossy(&ovf.bytes)
            .split("osType=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("otherGuest64")
            .to_owned();
        let annotation = s(&body, &["deployment_spec", "annotation"]).unwrap_or_default();
        let Some(name) = s(&body, &["deployment_spec", "name"]) else {
            return invalid("deployment_spec.name is required");
        };
        let pool = s(&body, &["target", "resource_pool_id"]).map(str::to_owned);
        let folder = s(&body, &["target", "folder_id"]).map(str::to_owned);
        let datastore = s(&body, &["deployment_spec", "default_datastore_id"]).map(str::to_owned);
        let new = NewVm { name, annotation, guest: &guest, powered_on: false };
        match place_vm(vc, &new, pool.as_deref(), folder.as_deref(), datastore.as_deref()) {
            Ok(vm) => value(json!({"succeeded": true, "resource_id": {"type": "VirtualMachine", "id": vm}})),
            Err(e) => deploy_failure(&e),
        }
    })
}

/// What a deployment makes, apart from where.
struct NewVm<'a> {
    name: &'a str,
    annotation: &'a str,
    guest: &'a str,
    powered_on: bool,
}

/// Creates a VM at the given placement; every moref must exist and belong to the datacenter.
fn place_vm(
    vc: &mut VcenterSim,
    new: &NewVm<'_>,
    pool: Option<&str>,
    folder: Option<&str>,
    datastore: Option<&str>,
) -> Result<String, String> {
    let pool = pool.ok_or("a resource pool is required")?;
    let pool =
        vc.resource_pools.get(pool).ok_or(format!("managed object not found: ResourcePool:{pool}"))?.clone();
    let cluster = vc.clusters.get(&pool.cluster).ok_or("resource pool has no cluster")?.clone();
    let dc = cluster.datacenter.clone();
    let folder = match folder {
        Some(f) if vc.folders.get(f).is_some_and(|x| x.kind == super::FolderKind::Vm) => f.to_owned(),
        Some(f) => return Err(format!("managed object not found: Folder:{f}")),
        None => vc.datacenters.get(&dc).map(|d| d.vm_folder.clone()).ok_or("no datacenter")?,
    };
    let datastore = match datastore {
        Some(d) if vc.datastores.contains_key(d) => d.to_owned(),
        Some(d) => return Err(format!("managed object not found: Datastore:{d}")),
        None => vc.datastore_in(&dc).map(|d| d.id.clone()).ok_or("no datastore")?,
    };
    // A VM lives in one datacenter: its folder, resource pool and datastore all belong to it.
    if vc.datacenter_of(&folder).map(|d| &d.id) != Some(&dc) {
        return Err(format!("folder {folder} is not in the datacenter of resource pool {}", pool.id));
    }
    if vc.datastores.get(&datastore).map(|d| &d.datacenter) != Some(&dc) {
        return Err(format!("datastore {datastore} is not in the datacenter of resource pool {}", pool.id));
    }
    // VM names are unique per folder.
    if vc.vms.values().any(|v| v.folder == folder && v.name == new.name) {
        return Err(format!("The name '{}' already exists.", new.name));
    }
    let id = vc.moref("vm-");
    vc.vms.insert(
        id.clone(),
        Vm {
            id: id.clone(),
            name: new.name.to_owned(),
            datacenter: cluster.datacenter.clone(),
            folder,
            resource_pool: Some(pool.id.clone()),
            host: cluster.hosts.first().cloned().unwrap_or_default(),
            datastore,
            template: false,
            powered_on: new.powered_on,
            guest_id: new.guest.to_owned(),
            annotation: new.annotation.to_owned(),
            snapshots: Vec::new(),
            current_snapshot: None,
        },
    );
    Ok(id)
}

pub(super) async fn vmtx_create(State(ctx): State<SiteCtx>, headers: HeaderMap, body: Bytes) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let spec = &body["spec"];
        let (Some(source), Some(name), Some(library)) =
            (s(spec, &["source_vm"]), s(spec, &["name"]), s(spec, &["library"]))
        else {
            return invalid("spec.source_vm, spec.name and spec.library are required");
        };
        let Some(vm) = vc.vms.get(source).cloned() else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                &format!("managed object not found: VirtualMachine:{source}"),
            );
        };
        if !matches!(vc.content.libraries.get(library).map(|l| &l.kind), Some(LibraryKind::Local { .. })) {
            return not_found(&format!("local library {library}"));
        }
        if vc.content.items.values().any(|i| i.library_id == library && i.name == name) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "already_exists",
                &format!("an item named {name} already exists"),
            );
        }
        let template = vc.moref("vm-");
        vc.vms.insert(
            template.clone(),
            Vm {
                id: template.clone(),
                name: name.to_owned(),
                template: true,
                powered_on: false,
                resource_pool: None,
                snapshots: Vec::new(),
                current_snapshot: None,
                ..vm.clone()
            },
        );
        let files = BTreeMap::from([(format!("{name}.vmtx"), File { bytes: ovf_for(&vm).into_bytes() })]);
        let description = s(spec, &["description"]).unwrap_or_default();
        let item = Item {
            template_vm: Some(template),
            ..Item::new(library, name, "vm-template", description, files, now_ms())
        };
        let id = item.id.clone();
        vc.content.items.insert(id.clone(), item);
        value(id)
    })
}

pub(super) async fn vmtx_deploy(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        if action(&q) != "deploy" {
            return (StatusCode::NOT_FOUND, "404 page not found").into_response();
        }
        let Some(item) = vc.content.items.get(&id).cloned() else { return not_found(&format!("item {id}")) };
        let guest = item
            .template_vm
            .as_ref()
            .and_then(|t| vc.vms.get(t))
            .map(|v| v.guest_id.clone())
            .unwrap_or_else(|| "otherGuest64".into());
        let spec = &body["spec"];
        let Some(name) = s(spec, &["name"]) else { return invalid("spec.name is required") };
        let pool = s(spec, &["placement", "resource_pool"]).map(str::to_owned).or_else(|| {
            s(spec, &["placement", "cluster"])
                .and_then(|c| vc.clusters.get(c))
                .map(|c| c.resource_pool.clone())
        });
        let folder = s(spec, &["placement", "folder"]).map(str::to_owned);
        let datastore = s(spec, &["disk_storage", "datastore"]).map(str::to_owned);
        let powered_on = spec["powered_on"].as_bool().unwrap_or(false);
        let new = NewVm { name, annotation: "", guest: &guest, powered_on };
        match place_vm(vc, &new, pool.as_deref(), folder.as_deref(), datastore.as_deref()) {
            Ok(vm) => value(vm),
            Err(e) => invalid(&e),
        }
    })
}

pub(super) async fn delete_vm(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        vc.vms.remove(&id);
        for set in vc.tagging.attached.values_mut() {
            set.retain(|(_, o)| *o != id);
        }
        empty()
    })
}

// ---- tagging ----

pub(super) async fn category_collection(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        if method == axum::http::Method::GET {
            return value(t.categories.keys().collect::<Vec<_>>());
        }
        let spec = &body["create_spec"];
        let Some(name) = s(spec, &["name"]) else { return invalid("create_spec.name is required") };
        if t.categories.values().any(|c| c.name == name) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "already_exists",
                &format!("category {name} already exists"),
            );
        }
        let id = format!("urn:vmomi:InventoryServiceCategory:{}:GLOBAL", uuid::Uuid::new_v4());
        let types = spec["associable_types"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        t.categories.insert(
            id.clone(),
            super::Category {
                id: id.clone(),
                name: name.to_owned(),
                description: s(spec, &["description"]).unwrap_or_default().to_owned(),
                cardinality: s(spec, &["cardinality"]).unwrap_or("MULTIPLE").to_owned(),
                associable_types: types,
            },
        );
        value(id)
    })
}

pub(super) async fn category_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        match method.as_str() {
            "GET" => t.categories.get(&id).map_or_else(
                || not_found(&format!("category {id}")),
                |c| value(json!({"id": c.id, "name": c.name, "description": c.description, "cardinality": c.cardinality, "associable_types": c.associable_types, "used_by": []})),
            ),
            "DELETE" => {
                t.categories.remove(&id);
                let tags: Vec<String> = t.tags.values().filter(|x| x.category_id == id).map(|x| x.id.clone()).collect();
                for tag in tags {
                    t.tags.remove(&tag);
                    t.attached.remove(&tag);
                }
                empty()
            }
            m => invalid(&format!("unsupported {m}")),
        }
    })
}

pub(super) async fn tag_collection(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        if method == axum::http::Method::GET {
            return value(t.tags.keys().collect::<Vec<_>>());
        }
        let spec = &body["create_spec"];
        let (Some(name), Some(category)) = (s(spec, &["name"]), s(spec, &["category_id"])) else {
            return invalid("create_spec.name and create_spec.category_id are required");
        };
        if !t.categories.contains_key(category) {
            return not_found(&format!("category {category}"));
        }
        if t.tags.values().any(|x| x.category_id == category && x.name == name) {
            return api_error(
                StatusCode::BAD_REQUEST,
                "already_exists",
                &format!("tag {name} already exists"),
            );
        }
        let id = format!("urn:vmomi:InventoryServiceTag:{}:GLOBAL", uuid::Uuid::new_v4());
        t.tags.insert(
            id.clone(),
            Tag {
                id: id.clone(),
                name: name.to_owned(),
                description: s(spec, &["description"]).unwrap_or_default().to_owned(),
                category_id: category.to_owned(),
            },
        );
        value(id)
    })
}

pub(super) async fn tag_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
    Query(q): Q,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        match (method.as_str(), action(&q)) {
            ("GET", _) => t.tags.get(&id).map_or_else(
                || not_found(&format!("tag {id}")),
                |x| value(json!({"id": x.id, "name": x.name, "description": x.description, "category_id": x.category_id, "used_by": []})),
            ),
            ("POST", "list-tags-for-category") => value(t.tags.values().filter(|x| x.category_id == id).map(|x| &x.id).collect::<Vec<_>>()),
            ("DELETE", _) => {
                t.tags.remove(&id);
                t.attached.remove(&id);
                empty()
            }
            (m, a) => invalid(&format!("unsupported {m} {a}")),
        }
    })
}

fn object_id(v: &Value) -> Option<(String, String)> {
    Some((v["type"].as_str()?.to_owned(), v["id"].as_str()?.to_owned()))
}

pub(super) async fn tag_association(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let t = &vc(lab, site).tagging;
        match action(&q) {
            "list-attached-objects-on-tags" => {
                let ids: Vec<&str> = body["tag_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let out: Vec<Value> = ids
                    .iter()
                    .filter(|id| t.tags.contains_key(**id))
                    .map(|id| {
                        let objects: Vec<Value> = t
                            .attached
                            .get(*id)
                            .into_iter()
                            .flatten()
                            .map(|(ty, o)| json!({"type": ty, "id": o}))
                            .collect();
                        json!({"tag_id": id, "object_ids": objects})
                    })
                    .collect();
                value(out)
            }
            "list-attached-tags-on-objects" => {
                let objects: Vec<(String, String)> = body["object_ids"]
                    .as_array()
                    .map(|a| a.iter().filter_map(object_id).collect())
                    .unwrap_or_default();
                let out: Vec<Value> = objects
                    .iter()
                    .map(|o| {
                        let tags: Vec<&String> = t
                            .attached
                            .iter()
                            .filter(|(_, set)| set.contains(o))
                            .map(|(tag, _)| tag)
                            .collect();
                        json!({"object_id": {"type": o.0, "id": o.1}, "tag_ids": tags})
                    })
                    .collect();
                value(out)
            }
            "list-attached-tags" => {
                let Some(o) = object_id(&body["object_id"]) else { return invalid("object_id is required") };
                value(
                    t.attached
                        .iter()
                        .filter(|(_, set)| set.contains(&o))
                        .map(|(tag, _)| tag)
                        .collect::<Vec<_>>(),
                )
            }
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

pub(super) async fn tag_association_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        if !t.tags.contains_key(&id) {
            return not_found(&format!("tag {id}"));
        }
        match action(&q) {
            "attach" | "detach" => {
                let Some(o) = object_id(&body["object_id"]) else { return invalid("object_id is required") };
                let set = t.attached.entry(id.clone()).or_default();
                if action(&q) == "attach" {
                    set.insert(o);
                } else {
                    set.remove(&o);
                }
                empty()
            }
            "list-attached-objects" => {
                if body.is_null() {
                    return invalid("a request body is required");
                }
                value(
                    t.attached
                        .get(&id)
                        .into_iter()
                        .flatten()
                        .map(|(ty, o)| json!({"type": ty, "id": o}))
                        .collect::<Vec<_>>(),
                )
            }
            other => invalid(&format!("unknown action {other}")),
        }
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
