//! Tagging: tag categories, tags, and their attachments to objects
//! (`/rest/com/vmware/cis/tagging/category`, `.../tagging/tag`, `.../tagging/tag-association`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Q, VapiId, action, api_error, body_json, empty, invalid, not_found, s, value, vc, with_session};
use crate::SiteCtx;
use crate::vcenter::Tag;

pub(in crate::vcenter) async fn category_collection(
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
            crate::vcenter::Category {
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

pub(in crate::vcenter) async fn category_by_id(
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

pub(in crate::vcenter) async fn tag_collection(
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

pub(in crate::vcenter) async fn tag_by_id(
    State(ctx): State<SiteCtx>,
    headers: HeaderMap,
    method: axum::http::Method,
    VapiId(id): VapiId,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let body = body_json(&body);
    with_session(&ctx, &headers, |lab, site| {
        let t = &mut vc(lab, site).tagging;
        match (method.as_str(), action(&q)) {
            ("GET", _) => t.tags.get(&id).map_or_else(
                || not_found(&format!("tag {id}")),
                |x| value(json!({"id": x.id, "name": x.name, "description": x.description, "category_id": x.category_id, "used_by": []})),
            ),
            ("POST", "list-tags-for-category") => value(t.tags.values().filter(|x| x.category_id == id).map(|x| &x.id).collect::<Vec<_>>()),
            // Only the description changes: golden renews its lock this way.
            ("PATCH", _) => match (t.tags.get_mut(&id), s(&body["update_spec"], &["description"])) {
                (None, _) => not_found(&format!("tag {id}")),
                (Some(tag), Some(description)) => {
                    tag.description = description.to_owned();
                    empty()
                }
                (Some(_), None) => empty(),
            },
            ("DELETE", _) => {
                if t.tags.remove(&id).is_none() {
                    return not_found(&format!("tag {id}"));
                }
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

pub(in crate::vcenter) async fn tag_association(
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

pub(in crate::vcenter) async fn tag_association_by_id(
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
