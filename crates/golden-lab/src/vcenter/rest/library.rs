//! Content libraries: create (local or subscribed), list, find, read, update, sync and delete
//! (`/rest/com/vmware/content/library`, `.../local-library`, `.../subscribed-library`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{
    Q, VapiId, action, api_error, body_json, empty, invalid, iso, not_found, s, value, vc, with_session,
};
use crate::vcenter::content::{Library, LibraryKind};
use crate::{SiteCtx, now_ms};

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

pub(in crate::vcenter) async fn create_library(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

pub(in crate::vcenter) async fn list_libraries(State(ctx): State<SiteCtx>, headers: HeaderMap) -> Response {
    with_session(&ctx, &headers, |lab, site| {
        value(vc(lab, site).content.libraries.keys().collect::<Vec<_>>())
    })
}

pub(in crate::vcenter) async fn library_collection_action(
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

pub(in crate::vcenter) async fn library_by_id(
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
