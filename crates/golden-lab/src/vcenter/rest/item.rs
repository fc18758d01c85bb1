//! Library items: list, find, create, read, update, delete, their files, and the sync of
//! subscribed items (`/rest/com/vmware/content/library/item`, `.../item/file`,
//! `.../library/subscribed-item`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Q, VapiId, action, api_error, body_json, empty, invalid, iso, not_found, s, value, vc, with_session,
};
use crate::vcenter::content::{Item, LibraryKind};
use crate::{SiteCtx, now_ms};

fn item_json(item: &Item, now: i64) -> Value {
    let cached = item.cached(now);
    let size: usize = if cached { item.files.values().map(|f| f.bytes.len()).sum() } else { 0 };
    let mut v = json!({
        "id": item.id, "library_id": item.library_id, "name": item.name, "type": item.kind,
        "description": item.description, "version": item.version, "content_version": "1", "metadata_version": "1",
        "creation_time": iso(item.created_ms), "last_modified_time": iso(item.created_ms),
        "cached": cached, "size": size,
    });
    if let Some(source) = &item.source_id {
        v["source_id"] = json!(source);
    }
    if let Some(t) = item.last_sync_ms {
        v["last_sync_time"] = json!(iso(t));
    }
    v
}

pub(in crate::vcenter) async fn list_items(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
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

pub(in crate::vcenter) async fn item_collection(
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

pub(in crate::vcenter) async fn item_by_id(
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
                .map_or_else(|| not_found(&format!("item {id}")), |i| value(item_json(i, now_ms()))),
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
                let Some(item) = vc.content.items.get(&id) else {
                    return not_found(&format!("item {id}"));
                };
                // An item of a subscribed library follows its publisher: vCenter refuses to
                // delete it (delete at the publisher and sync).
                let subscribed = vc
                    .content
                    .libraries
                    .get(&item.library_id)
                    .is_some_and(|l| matches!(l.kind, LibraryKind::Subscribed { .. }));
                if subscribed {
                    return api_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_element_type",
                        &format!("library item {id} is a member of a subscribed library"),
                    );
                }
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

pub(in crate::vcenter) async fn list_item_files(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let Some(id) = q.get("library_item_id").cloned() else { return invalid("library_item_id is required") };
    with_session(&ctx, &headers, |lab, site| {
        let Some(item) = vc(lab, site).content.items.get(&id) else {
            return not_found(&format!("item {id}"));
        };
        let cached = item.cached(now_ms());
        let files: Vec<Value> = item
            .files
            .iter()
            .map(|(name, f)| {
                let size = if cached { f.bytes.len() } else { 0 };
                json!({"name": name, "size": size, "cached": cached, "version": "1"})
            })
            .collect();
        value(files)
    })
}
