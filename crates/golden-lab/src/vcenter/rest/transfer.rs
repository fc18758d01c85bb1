//! File transfers: update sessions with PULL files, download sessions, and the data endpoint
//! prepared files are downloaded from (`/rest/com/vmware/content/library/item/update-session`,
//! `.../item/updatesession/file`, `.../item/download-session`, `.../item/downloadsession/file`,
//! `/rest/com/vmware/cis/data`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Q, VapiId, action, api_error, body_json, empty, invalid, not_found, s, value, vc, with_session};
use crate::vcenter::VcenterSim;
use crate::vcenter::content::{self, File, PendingFile, UpdateSession};
use crate::{SiteCtx, now_ms};

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

pub(in crate::vcenter) async fn create_update_session(
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
        // One active update session per item: vCenter refuses another until it is completed,
        // cancelled or gone.
        if let Some(open) =
            vc.content.update_sessions.values().find(|s| s.item_id == item && s.state == "ACTIVE")
        {
            return api_error(
                StatusCode::BAD_REQUEST,
                "resource_busy",
                &format!("library item {item} has an active update session ({})", open.id),
            );
        }
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

pub(in crate::vcenter) async fn update_session_by_id(
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

pub(in crate::vcenter) async fn update_session_file(
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
                session
                    .files
                    .get(name)
                    .map_or_else(|| not_found(&format!("file {name}")), |f| value(pending_file_json(f)))
            }
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

/// `GET .../updatesession/file?update_session_id=`: the files of an update session, with the
/// status of their transfer.
pub(in crate::vcenter) async fn list_update_session_files(
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

/// `GET .../update-session`: the ids of every update session.
pub(in crate::vcenter) async fn list_update_sessions(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        value(vc(lab, site).content.update_sessions.keys().cloned().collect::<Vec<_>>())
    })
}

/// `GET .../download-session`: the ids of every download session.
pub(in crate::vcenter) async fn list_download_sessions(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        value(vc(lab, site).content.download_sessions.keys().cloned().collect::<Vec<_>>())
    })
}

/// `GET` or `DELETE .../download-session/id:`: a download session, or its end (its endpoints
/// stop working).
pub(in crate::vcenter) async fn download_session_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        let sessions = &mut vc(lab, site).content.download_sessions;
        let Some(session) = sessions.get(&id) else { return not_found(&format!("download session {id}")) };
        match method.as_str() {
            "GET" => value(json!({"id": session.id, "library_item_id": session.item_id, "state": "ACTIVE"})),
            _ => {
                sessions.remove(&id);
                empty()
            }
        }
    })
}

pub(in crate::vcenter) async fn create_download_session(
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
            content::DownloadSession {
                id: id.clone(),
                item_id: item.to_owned(),
                prepared: BTreeMap::new(),
                ready_ms: BTreeMap::new(),
            },
        );
        value(id)
    })
}

pub(in crate::vcenter) async fn download_session_file(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    let (base, prepare_ms) = {
        let lab = ctx.lock();
        (lab.vcenters.get(&ctx.name).and_then(|v| v.url.clone()).unwrap_or_default(), lab.timings.prepare_ms)
    };
    with_session(&ctx, &headers, |lab, site| {
        let vc = vc(lab, site);
        let now = now_ms();
        let Some(session) = vc.content.download_sessions.get(&id).cloned() else {
            return not_found(&format!("download session {id}"));
        };
        let Some(item) = vc.content.items.get(&session.item_id) else { return not_found("item") };
        let status = |session: &content::DownloadSession, name: &str| match session.prepared.get(name) {
            None => "UNPREPARED",
            Some(_) if session.ready(name, now) => "PREPARED",
            Some(_) => "PREPARING",
        };
        let file_json = |session: &content::DownloadSession, name: &str, size: usize| {
            let mut v = json!({"name": name, "size": size, "status": status(session, name)});
            if let Some(data_id) = session.prepared.get(name) {
                v["download_endpoint"] =
                    json!({"uri": format!("{base}/rest/com/vmware/cis/data/{data_id}/{name}")});
            }
            v
        };
        match action(&q) {
            "prepare" => {
                let Some(name) = s(&body, &["file_name"]) else { return invalid("file_name is required") };
                let Some(file) = item.files.get(name) else { return not_found(&format!("file {name}")) };
                let size = file.bytes.len();
                let Some(sess) = vc.content.download_sessions.get_mut(&id) else {
                    return not_found("session");
                };
                // Preparing takes `prepare_ms`: the endpoint is known at once, usable later.
                sess.prepared.insert(name.to_owned(), uuid::Uuid::new_v4().to_string());
                sess.ready_ms.insert(name.to_owned(), now + prepare_ms as i64);
                value(file_json(sess, name, size))
            }
            "get" => {
                let name = s(&body, &["file_name"]).unwrap_or_default();
                let Some(file) = item.files.get(name) else { return not_found(&format!("file {name}")) };
                value(file_json(&session, name, file.bytes.len()))
            }
            "list" => value(
                item.files.iter().map(|(n, f)| file_json(&session, n, f.bytes.len())).collect::<Vec<_>>(),
            ),
            other => invalid(&format!("unknown action {other}")),
        }
    })
}

/// `GET` downloads a prepared file. The session id alone (in the URL) authorises the
/// transfer, as vCenter's data endpoints do for the session header too.
pub(in crate::vcenter) async fn data(
    State(ctx): State<SiteCtx>,
    method: axum::http::Method,
    Path((data_id, name)): Path<(String, String)>,
) -> Response {
    let mut lab = ctx.lock();
    let Some(vcenter) = lab.vcenters.get_mut(&ctx.name) else { return not_found("vcenter") };
    let content = &mut vcenter.sim.content;
    match method.as_str() {
        "GET" => {
            // Only a prepared file of a session still open can be downloaded.
            let now = now_ms();
            let bytes = content
                .download_sessions
                .values()
                .find(|s| s.prepared.get(&name) == Some(&data_id) && s.ready(&name, now))
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
