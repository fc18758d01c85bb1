//! The vSphere REST half (`/rest`): session, Content Library, OVF and VM-template items, VMs
//! and tagging.
//!
//! Answers are read leniently, as vcsim and the real product differ: JSON may come as
//! `text/plain`, an empty list may be `{"value":null}`, a call may answer 200 with an empty
//! body, and objects carry fields golden does not know (vcsim's `Item`, `Template`, ...).

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{VcenterClient, VcenterError, lock, meta_from_description, meta_to_description};
use crate::live::{GoldenMeta, ItemId, Library, LibraryId, LibraryItem, LibraryKind, Moref};

const SESSION_HEADER: &str = "vmware-api-session-id";

/// Where to deploy a VM (OVF or VM template): resolved by [`super::Inventory::placement`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploySpec {
    pub name: String,
    /// The new VM's annotation (its notes in the vSphere client). golden writes its metadata
    /// here, so a VM deployed by golden is golden's from the moment it exists.
    pub annotation: Option<String>,
    pub folder: Moref,
    pub resource_pool: Moref,
    pub datastore: Moref,
}

#[derive(Deserialize)]
struct WireLibrary {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    publish_info: Option<WirePublish>,
    #[serde(default)]
    subscription_info: Option<WireSubscription>,
    #[serde(default)]
    last_sync_time: Option<String>,
}

#[derive(Deserialize)]
struct WirePublish {
    #[serde(default)]
    published: bool,
    #[serde(default)]
    publish_url: Option<String>,
}

#[derive(Deserialize)]
struct WireSubscription {
    #[serde(default)]
    subscription_url: String,
}

#[derive(Deserialize)]
struct WireItem {
    id: String,
    library_id: String,
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct WireTag {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
struct WireCategory {
    id: String,
    name: String,
    #[serde(default)]
    associable_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ObjectId {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize)]
struct TagObjects {
    tag_id: String,
    #[serde(default)]
    object_ids: Option<Vec<ObjectId>>,
}

/// A percent-encoded path segment; keeps what a path may hold as is (`:` in `id:urn:...`).
fn seg(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A percent-encoded query value.
fn q(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A vCenter time (RFC 3339 in UTC, as vCenter and vcsim write it) as milliseconds since the
/// epoch; `None` when unparseable.
fn time_ms(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}

impl VcenterClient {
    fn rest_url(&self, path: &str) -> String {
        format!("{}/rest{path}", self.base)
    }

    /// `POST /rest/com/vmware/cis/session` with basic auth; stores the session id.
    pub(super) async fn rest_login(&self) -> Result<String, VcenterError> {
        let op = "log in to the rest api";
        let response = self
            .http
            .post(self.rest_url("/com/vmware/cis/session"))
            .basic_auth(&self.credentials.user, Some(self.credentials.password.expose()))
            .header("vmware-use-header-authn", "true")
            .send()
            .await
            .map_err(|e| self.err_transport(op, e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(VcenterError::Login { site: self.site.clone(), user: self.credentials.user.clone() });
        }
        let text = response.text().await.map_err(|e| self.err_transport(op, e))?;
        if !status.is_success() {
            return Err(self.status_error(op, status, &text));
        }
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("value").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| self.err_protocol(op, "no session id in the answer"))?;
        *lock(&self.rest_session) = Some(id.clone());
        Ok(id)
    }

    /// `DELETE /rest/com/vmware/cis/session`: ends the REST session, if there is one. Not
    /// retried, and never logs in to log out.
    pub(super) async fn rest_logout(&self) -> Result<(), VcenterError> {
        let op = "log out of the rest api";
        let Some(session) = lock(&self.rest_session).take() else { return Ok(()) };
        let response = self
            .http
            .delete(self.rest_url("/com/vmware/cis/session"))
            .header(SESSION_HEADER, &session)
            .send()
            .await
            .map_err(|e| self.err_transport(op, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.err_transport(op, e))?;
        // 401: the session had already ended.
        if status.is_success() || status == StatusCode::UNAUTHORIZED {
            Ok(())
        } else {
            Err(self.status_error(op, status, &text))
        }
    }

    fn status_error(&self, op: &str, status: StatusCode, body: &str) -> VcenterError {
        // vAPI errors: {"type":"com.vmware.vapi.std.errors.x","value":{"messages":[{"default_message":…}]}}
        let parsed: Option<Value> = serde_json::from_str(body).ok();
        let kind = parsed.as_ref().and_then(|v| v.get("type")).and_then(Value::as_str).map(str::to_owned);
        let message = parsed
            .as_ref()
            .and_then(|v| v.pointer("/value/messages/0/default_message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                let t = body.trim();
                (parsed.is_none() && !t.is_empty() && t.len() < 300).then(|| t.to_owned())
            });
        self.err_http(op, status.as_u16(), kind, message)
    }

    /// One REST call with retries; logs in first when needed, and once more on a 401.
    /// Returns the answer's `value` (or the whole body when it has none; `Null` when empty).
    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, VcenterError> {
        self.retry
            .run(op, || {
                let method = method.clone();
                let body = body.clone();
                async move {
                    let mut relogged = false;
                    loop {
                        let existing = lock(&self.rest_session).clone();
                        let session = match existing {
                            Some(s) => s,
                            None => self.rest_login().await?,
                        };
                        let mut request = self
                            .http
                            .request(method.clone(), self.rest_url(path))
                            .header(SESSION_HEADER, &session);
                        if let Some(b) = &body {
                            request = request.json(b);
                        }
                        let response = request.send().await.map_err(|e| self.err_transport(op, e))?;
                        let status = response.status();
                        let text = response.text().await.map_err(|e| self.err_transport(op, e))?;
                        if status == StatusCode::UNAUTHORIZED && !relogged {
                            relogged = true;
                            let mut current = lock(&self.rest_session);
                            if current.as_deref() == Some(session.as_str()) {
                                *current = None;
                            }
                            continue;
                        }
                        if !status.is_success() {
                            return Err(self.status_error(op, status, &text));
                        }
                        if text.trim().is_empty() {
                            return Ok(Value::Null);
                        }
                        let value: Value = serde_json::from_str(&text)
                            .map_err(|e| self.err_protocol(op, format!("invalid json: {e}")))?;
                        return Ok(match value {
                            Value::Object(mut map) if map.contains_key("value") => {
                                map.remove("value").unwrap_or(Value::Null)
                            }
                            other => other,
                        });
                    }
                }
            })
            .await
    }

    /// [`Self::call`] decoding the value; `null` decodes as the type's "empty" when it has one.
    async fn call_as<T: DeserializeOwned>(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, VcenterError> {
        let value = self.call(op, method, path, body).await?;
        serde_json::from_value(value).map_err(|e| self.err_protocol(op, e.to_string()))
    }

    /// A list of ids; `null` is an empty list and duplicates (vcsim's find) are dropped.
    async fn ids(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<String>, VcenterError> {
        let ids: Option<Vec<String>> = self.call_as(op, method, path, body).await?;
        Ok(ids.unwrap_or_default().into_iter().collect::<BTreeSet<_>>().into_iter().collect())
    }

    async fn created_id(&self, op: &str, path: &str, body: Value) -> Result<String, VcenterError> {
        let id: Option<String> = self.call_as(op, Method::POST, path, Some(body)).await?;
        id.filter(|s| !s.is_empty()).ok_or_else(|| self.err_protocol(op, "no id in the answer"))
    }

    // ---- libraries ---------------------------------------------------------------------------

    /// The library named `name` (vCenter compares names without case); an error when several are.
    pub async fn find_library(&self, name: &str) -> Result<Option<Library>, VcenterError> {
        let op = format!("find library `{name}`");
        let ids = self
            .ids(
                &op,
                Method::POST,
                "/com/vmware/content/library?~action=find",
                Some(json!({"spec": {"name": name}})),
            )
            .await?;
        let ids: Vec<LibraryId> = ids.into_iter().map(LibraryId::new).collect();
        let mut found = Vec::new();
        for library in join_all(ids.iter().map(|id| self.get_library(id))).await {
            let library = library?;
            // Some servers match loosely; golden names are exact.
            if library.name == name {
                found.push(library);
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            count => Err(VcenterError::Ambiguous {
                site: self.site.clone(),
                kind: "library",
                name: name.to_owned(),
                scope: "the content library".to_owned(),
                count,
            }),
        }
    }

    pub async fn get_library(&self, id: &LibraryId) -> Result<Library, VcenterError> {
        let op = format!("read library {id}");
        let wire: WireLibrary = self
            .call_as(&op, Method::GET, &format!("/com/vmware/content/library/id:{}", seg(id.as_str())), None)
            .await?;
        let kind = if wire.kind.eq_ignore_ascii_case("SUBSCRIBED") {
            LibraryKind::Subscribed {
                subscription_url: wire.subscription_info.map(|s| s.subscription_url).unwrap_or_default(),
                last_sync_ms: wire.last_sync_time.as_deref().and_then(time_ms),
            }
        } else {
            LibraryKind::Local {
                publish_url: wire.publish_info.filter(|p| p.published).and_then(|p| p.publish_url),
            }
        };
        Ok(Library { id: LibraryId::new(wire.id), name: wire.name, kind })
    }

    /// Creates a local library on `datastore`, published (no authentication) so other sites
    /// can subscribe to it.
    pub async fn create_published_library(
        &self,
        name: &str,
        datastore: &Moref,
    ) -> Result<LibraryId, VcenterError> {
        let body = json!({"create_spec": {
            "name": name,
            "description": "golden images, published by golden",
            "type": "LOCAL",
            "storage_backings": [{"type": "DATASTORE", "datastore_id": datastore.as_str()}],
            "publish_info": {"published": true, "authentication_method": "NONE"},
        }});
        self.create_library(name, "/com/vmware/content/local-library", body).await
    }

    /// Creates a library subscribed to `subscription_url` that downloads content right away
    /// (`on_demand: false`) and syncs automatically.
    pub async fn create_subscribed_library(
        &self,
        name: &str,
        datastore: &Moref,
        subscription_url: &str,
    ) -> Result<LibraryId, VcenterError> {
        let body = json!({"create_spec": {
            "name": name,
            "description": "golden images, subscribed by golden",
            "type": "SUBSCRIBED",
            "storage_backings": [{"type": "DATASTORE", "datastore_id": datastore.as_str()}],
            "subscription_info": {
                "subscription_url": subscription_url,
                "authentication_method": "NONE",
                "automatic_sync_enabled": true,
                "on_demand": false,
            },
        }});
        self.create_library(name, "/com/vmware/content/subscribed-library", body).await
    }

    /// Creates library `name`, or gives the library of that name that exists already: vCenter
    /// keeps library names unique, and another step or run may have created it a moment ago.
    /// The caller checks that the library is of the kind it wants.
    async fn create_library(&self, name: &str, path: &str, body: Value) -> Result<LibraryId, VcenterError> {
        let op = format!("create library `{name}`");
        match self.created_id(&op, path, body).await {
            Ok(id) => Ok(LibraryId::new(id)),
            Err(e) if is_already_exists(&e) => match self.find_library(name).await? {
                Some(library) => Ok(library.id),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Asks a subscribed library to sync now (it runs in the background).
    pub async fn sync_library(&self, library: &LibraryId) -> Result<(), VcenterError> {
        let path =
            format!("/com/vmware/content/subscribed-library/id:{}?~action=sync", seg(library.as_str()));
        self.call(&format!("sync library {library}"), Method::POST, &path, None).await.map(drop)
    }

    // ---- items -------------------------------------------------------------------------------

    pub async fn list_items(&self, library: &LibraryId) -> Result<Vec<ItemId>, VcenterError> {
        let path = format!("/com/vmware/content/library/item?library_id={}", q(library.as_str()));
        let ids = self.ids(&format!("list items of library {library}"), Method::GET, &path, None).await?;
        Ok(ids.into_iter().map(ItemId::new).collect())
    }

    /// The item named `name` in `library`.
    pub async fn find_item(
        &self,
        library: &LibraryId,
        name: &str,
    ) -> Result<Option<LibraryItem>, VcenterError> {
        let op = format!("find item `{name}` in library {library}");
        let body = json!({"spec": {"name": name, "library_id": library.as_str()}});
        let ids =
            self.ids(&op, Method::POST, "/com/vmware/content/library/item?~action=find", Some(body)).await?;
        let mut found = Vec::new();
        for id in ids {
            let item = self.get_item_in(Some(library), &ItemId::new(id)).await?;
            if item.name == name {
                found.push(item);
            }
        }
        match found.len() {
            0 | 1 => Ok(found.pop()),
            count => Err(VcenterError::Ambiguous {
                site: self.site.clone(),
                kind: "library item",
                name: name.to_owned(),
                scope: format!("library {library}"),
                count,
            }),
        }
    }

    /// An item, with golden's metadata when its description holds it.
    pub async fn get_item(&self, item: &ItemId) -> Result<LibraryItem, VcenterError> {
        self.get_item_in(None, item).await
    }

    /// An item read through `library` when known: a subscribed library on the same vCenter
    /// shares item ids with its publisher, and vcsim picks either at random without it.
    async fn get_item_in(
        &self,
        library: Option<&LibraryId>,
        item: &ItemId,
    ) -> Result<LibraryItem, VcenterError> {
        let op = format!("read library item {item}");
        let mut path = format!("/com/vmware/content/library/item/id:{}", seg(item.as_str()));
        if let Some(library) = library {
            path.push_str(&format!("?library_id={}", q(library.as_str())));
        }
        let wire: WireItem = self.call_as(&op, Method::GET, &path, None).await?;
        Ok(LibraryItem {
            id: ItemId::new(wire.id),
            library: LibraryId::new(wire.library_id),
            name: wire.name,
            kind: wire.kind,
            meta: wire.description.as_deref().and_then(meta_from_description),
        })
    }

    /// Creates an empty item of `kind` (`ovf` or `vm-template`) carrying golden's metadata.
    pub async fn create_item(
        &self,
        library: &LibraryId,
        name: &str,
        kind: &str,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let body = json!({"create_spec": {
            "library_id": library.as_str(),
            "name": name,
            "type": kind,
            "description": meta_to_description(meta),
        }});
        let op = format!("create library item `{name}` in library {library}");
        self.created_id(&op, "/com/vmware/content/library/item", body).await.map(ItemId::new)
    }

    /// Rewrites an item's metadata (its description).
    pub async fn set_item_meta(&self, item: &ItemId, meta: &GoldenMeta) -> Result<(), VcenterError> {
        let path = format!("/com/vmware/content/library/item/id:{}", seg(item.as_str()));
        let body = json!({"update_spec": {"description": meta_to_description(meta)}});
        self.call(&format!("update library item {item}"), Method::PATCH, &path, Some(body)).await.map(drop)
    }

    pub async fn delete_item(&self, library: &LibraryId, item: &ItemId) -> Result<(), VcenterError> {
        let path = format!(
            "/com/vmware/content/library/item/id:{}?library_id={}",
            seg(item.as_str()),
            q(library.as_str())
        );
        self.call(&format!("delete library item {item}"), Method::DELETE, &path, None).await.map(drop)
    }

    /// The names of an item's files, sorted (`/com/vmware/content/library/item/file`).
    pub async fn list_files(&self, item: &ItemId) -> Result<Vec<String>, VcenterError> {
        #[derive(Deserialize)]
        struct WireFile {
            name: String,
        }
        let op = format!("list the files of library item {item}");
        let path = format!("/com/vmware/content/library/item/file?library_item_id={}", q(item.as_str()));
        let files: Option<Vec<WireFile>> = self.call_as(&op, Method::GET, &path, None).await?;
        let names: BTreeSet<String> = files.unwrap_or_default().into_iter().map(|f| f.name).collect();
        Ok(names.into_iter().collect())
    }

    /// Evicts the cached content of an item of a subscribed library: what vCenter allows
    /// instead of deleting it (the item itself goes when the publisher's item goes).
    pub async fn evict_item(&self, item: &ItemId) -> Result<(), VcenterError> {
        let path =
            format!("/com/vmware/content/library/subscribed-item/id:{}?~action=evict", seg(item.as_str()));
        self.call(&format!("evict library item {item}"), Method::POST, &path, None).await.map(drop)
    }

    /// Asks a subscribed library to fetch one item's content now.
    pub async fn sync_item(&self, library: &LibraryId, item: &ItemId) -> Result<(), VcenterError> {
        // library_id is required in practice: vcsim picks a random library without it.
        let path = format!(
            "/com/vmware/content/library/subscribed-item/id:{}?~action=sync&library_id={}",
            seg(item.as_str()),
            q(library.as_str())
        );
        let body = json!({"force_sync_content": true});
        self.call(&format!("sync library item {item}"), Method::POST, &path, Some(body)).await.map(drop)
    }

    // ---- update and download sessions -----------------------------------------------------

    async fn update_session(&self, item: &ItemId, op: &str) -> Result<String, VcenterError> {
        let body = json!({"create_spec": {"library_item_id": item.as_str()}});
        self.created_id(op, "/com/vmware/content/library/item/update-session", body).await
    }

    async fn add_file(&self, op: &str, session: &str, spec: Value) -> Result<Value, VcenterError> {
        let path =
            format!("/com/vmware/content/library/item/updatesession/file/id:{}?~action=add", seg(session));
        self.call(op, Method::POST, &path, Some(json!({"file_spec": spec}))).await
    }

    async fn complete_session(&self, op: &str, session: &str) -> Result<(), VcenterError> {
        let path =
            format!("/com/vmware/content/library/item/update-session/id:{}?~action=complete", seg(session));
        self.call(op, Method::POST, &path, None).await.map(drop)
    }

    /// Has vCenter itself fetch a file into an item from `source_uri` (PULL), e.g. another
    /// site's download endpoint: the bytes never pass through golden.
    pub async fn pull_file(
        &self,
        item: &ItemId,
        file_name: &str,
        source_uri: &str,
        wait: std::time::Duration,
    ) -> Result<(), VcenterError> {
        let op = format!("pull `{file_name}` into library item {item}");
        let session = self.update_session(item, &op).await?;
        let spec = json!({"name": file_name, "source_type": "PULL", "source_endpoint": {"uri": source_uri}});
        self.add_file(&op, &session, spec).await?;
        // vCenter moves the bytes itself; completing the session before the transfer is done
        // is refused, so wait for the file to be READY (or to fail) first.
        let waiting = crate::wait::Waiting::new(wait, std::time::Duration::from_secs(2));
        // The session's file list (`GET ...?update_session_id=`): vcsim answers the `get` action
        // with the session rather than the file.
        let path = format!("/com/vmware/content/library/item/updatesession/file?update_session_id={}", q(&session));
        loop {
            let files: Vec<Value> = self.call_as(&op, Method::GET, &path, None).await?;
            let file = files.into_iter().find(|f| f.get("name").and_then(Value::as_str) == Some(file_name));
            let file = file.ok_or_else(|| self.err_protocol(&op, "the file is not in its update session"))?;
            match file.get("status").and_then(Value::as_str) {
                Some("READY") => break,
                Some("ERROR") => {
                    let message = file
                        .pointer("/error_message/default_message")
                        .and_then(Value::as_str)
                        .unwrap_or("the transfer failed")
                        .to_owned();
                    return Err(VcenterError::Failed { site: self.site.clone(), operation: op, message });
                }
                _ if !waiting.next().await => {
                    return Err(VcenterError::Timeout {
                        site: self.site.clone(),
                        operation: op,
                        timeout: wait,
                    });
                }
                _ => {}
            }
        }
        self.complete_session(&op, &session).await
    }

    /// The URL a file of an item can be downloaded from (a download session's endpoint).
    pub async fn download_url(&self, item: &ItemId, file_name: &str) -> Result<String, VcenterError> {
        let op = format!("prepare download of `{file_name}` from library item {item}");
        let body = json!({"create_spec": {"library_item_id": item.as_str()}});
        let session = self.created_id(&op, "/com/vmware/content/library/item/download-session", body).await?;
        let path = format!(
            "/com/vmware/content/library/item/downloadsession/file/id:{}?~action=prepare",
            seg(&session)
        );
        let file = self.call(&op, Method::POST, &path, Some(json!({"file_name": file_name}))).await?;
        file.pointer("/download_endpoint/uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.err_protocol(&op, "no download_endpoint in the answer"))
    }

    // ---- OVF and VM-template items, VMs ----------------------------------------------------

    /// Captures `vm` as an OVF item in `library`, carrying golden's metadata.
    pub async fn create_ovf_from_vm(
        &self,
        library: &LibraryId,
        vm: &Moref,
        name: &str,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let op = format!("capture vm {vm} as ovf item `{name}` in library {library}");
        let body = json!({
            "source": {"type": "VirtualMachine", "id": vm.as_str()},
            "target": {"library_id": library.as_str()},
            "create_spec": {"name": name, "description": meta_to_description(meta)},
        });
        let value = self.call(&op, Method::POST, "/com/vmware/vcenter/ovf/library-item", Some(body)).await?;
        // HTTP 200 even on failure: the body says whether it worked.
        if value.get("succeeded").and_then(Value::as_bool) != Some(true) {
            return Err(self.err_failed(&op, ovf_error(&value)));
        }
        value
            .get("ovf_library_item_id")
            .and_then(Value::as_str)
            .map(ItemId::new)
            .ok_or_else(|| self.err_protocol(&op, "no ovf_library_item_id in the answer"))
    }

    /// Deploys an OVF item as a new VM; returns its moref.
    pub async fn deploy_ovf(&self, item: &ItemId, spec: &DeploySpec) -> Result<Moref, VcenterError> {
        let op = format!("deploy ovf item {item} as vm `{}`", spec.name);
        let path = format!("/com/vmware/vcenter/ovf/library-item/id:{}?~action=deploy", seg(item.as_str()));
        let body = json!({
            "target": {"resource_pool_id": spec.resource_pool.as_str(), "folder_id": spec.folder.as_str()},
            "deployment_spec": {
                "name": spec.name,
                "accept_all_EULA": true,
                "default_datastore_id": spec.datastore.as_str(),
            },
        });
        let mut body = body;
        if let Some(annotation) = &spec.annotation {
            body["deployment_spec"]["annotation"] = json!(annotation);
        }
        let value = self.call(&op, Method::POST, &path, Some(body)).await?;
        if value.get("succeeded").and_then(Value::as_bool) != Some(true) {
            return Err(self.err_failed(&op, ovf_error(&value)));
        }
        value
            .pointer("/resource_id/id")
            .and_then(Value::as_str)
            .map(Moref::new)
            .ok_or_else(|| self.err_protocol(&op, "no resource_id in the answer"))
    }

    /// Captures `vm` as a VM-template item; `placement` is where vCenter keeps the template.
    pub async fn create_vm_template(
        &self,
        library: &LibraryId,
        vm: &Moref,
        placement: &DeploySpec,
        meta: &GoldenMeta,
    ) -> Result<ItemId, VcenterError> {
        let op = format!("capture vm {vm} as vm-template item `{}` in library {library}", placement.name);
        let body = json!({"spec": {
            "source_vm": vm.as_str(),
            "name": placement.name,
            "description": meta_to_description(meta),
            "library": library.as_str(),
            "placement": {"folder": placement.folder.as_str(), "resource_pool": placement.resource_pool.as_str()},
            "vm_home_storage": {"datastore": placement.datastore.as_str()},
        }});
        self.created_id(&op, "/vcenter/vm-template/library-items", body).await.map(ItemId::new)
    }

    /// Deploys a VM-template item as a new, powered-off VM; returns its moref.
    pub async fn deploy_vm_template(&self, item: &ItemId, spec: &DeploySpec) -> Result<Moref, VcenterError> {
        let op = format!("deploy vm-template item {item} as vm `{}`", spec.name);
        // folder and resource_pool always: vcsim panics without the folder and needs the pool.
        let body = json!({"spec": {
            "name": spec.name,
            "powered_on": false,
            "placement": {"folder": spec.folder.as_str(), "resource_pool": spec.resource_pool.as_str()},
            "disk_storage": {"datastore": spec.datastore.as_str()},
            "vm_home_storage": {"datastore": spec.datastore.as_str()},
        }});
        let path = format!("/vcenter/vm-template/library-items/{}?action=deploy", seg(item.as_str()));
        self.created_id(&op, &path, body).await.map(Moref::new)
    }

    /// Deletes a VM (it must be powered off on a real vCenter).
    pub async fn delete_vm(&self, vm: &Moref) -> Result<(), VcenterError> {
        let path = format!("/vcenter/vm/{}", seg(vm.as_str()));
        self.call(&format!("delete vm {vm}"), Method::DELETE, &path, None).await.map(drop)
    }

    // ---- tags: ownership of VMs --------------------------------------------------------------

    async fn find_category(&self, name: &str) -> Result<Option<String>, VcenterError> {
        let op = format!("find tag category `{name}`");
        let ids = self.ids(&op, Method::GET, "/com/vmware/cis/tagging/category", None).await?;
        let paths: Vec<String> =
            ids.iter().map(|id| format!("/com/vmware/cis/tagging/category/id:{}", seg(id))).collect();
        let reads = paths.iter().map(|path| self.call_as::<WireCategory>(&op, Method::GET, path, None));
        for category in join_all(reads).await {
            let category = category?;
            if category.name != name {
                continue;
            }
            let types = category.associable_types.unwrap_or_default();
            let for_vms = types.is_empty() || types.iter().any(|t| t == "VirtualMachine");
            if !for_vms {
                return Err(self.err_failed(
                    &op,
                    format!(
                        "a tag category `{name}` exists for {} only, not for virtual machines; it is not golden's: rename it, or let golden's category be created",
                        types.join(", ")
                    ),
                ));
            }
            return Ok(Some(category.id));
        }
        Ok(None)
    }

    /// golden's tag category, created when missing. A category of that name that cannot
    /// hold tags of VMs is someone else's: an error rather than a guess.
    async fn ensure_category(&self, name: &str) -> Result<String, VcenterError> {
        if let Some(id) = self.find_category(name).await? {
            return Ok(id);
        }
        let body = json!({"create_spec": {
            "name": name,
            "description": "golden: base VMs golden owns, one tag per image version",
            "cardinality": "SINGLE",
            "associable_types": ["VirtualMachine"],
        }});
        let op = format!("create tag category `{name}`");
        match self.created_id(&op, "/com/vmware/cis/tagging/category", body).await {
            // Created at the same moment by another step or run: use that one.
            Err(e) if is_already_exists(&e) => self.find_category(name).await?.ok_or(e),
            other => other,
        }
    }

    async fn category_tags(&self, category: &str) -> Result<Vec<WireTag>, VcenterError> {
        let ids = self.category_tag_ids(category).await?;
        self.get_tags(ids.iter()).await
    }

    /// The ids of the tags in `category`.
    async fn category_tag_ids(&self, category: &str) -> Result<Vec<String>, VcenterError> {
        let op = format!("list the tags of category {category}");
        let path = format!("/com/vmware/cis/tagging/tag/id:{}?~action=list-tags-for-category", seg(category));
        self.ids(&op, Method::POST, &path, None).await
    }

    /// The tags `ids`: one request per tag (the API has no bulk read), all at once.
    async fn get_tags<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<Vec<WireTag>, VcenterError> {
        let paths: Vec<String> =
            ids.into_iter().map(|id| format!("/com/vmware/cis/tagging/tag/id:{}", seg(id))).collect();
        join_all(paths.iter().map(|path| self.call_as::<WireTag>("read a tag", Method::GET, path, None)))
            .await
            .into_iter()
            .collect()
    }

    /// Marks `vm` as golden's base VM of `meta`'s version: attaches the version's tag in the
    /// [`super::OWNER_CATEGORY`] category, creating category and tag when missing.
    pub async fn tag_vm(&self, vm: &Moref, meta: &GoldenMeta) -> Result<(), VcenterError> {
        let category = self.ensure_category(super::OWNER_CATEGORY).await?;
        let name = format!("{}@{}", meta.image, meta.version);
        let tag = match self.find_tag(&category, &name, meta).await? {
            Some(id) => id,
            None => {
                let body = json!({"create_spec": {
                    "name": name,
                    "description": meta_to_description(meta),
                    "category_id": category,
                }});
                match self
                    .created_id(&format!("create tag `{name}`"), "/com/vmware/cis/tagging/tag", body)
                    .await
                {
                    // Created at the same moment by another step or run: use that one.
                    Err(e) if is_already_exists(&e) => {
                        self.find_tag(&category, &name, meta).await?.ok_or(e)?
                    }
                    other => other?,
                }
            }
        };
        let path = format!("/com/vmware/cis/tagging/tag-association/id:{}?~action=attach", seg(&tag));
        let body = json!({"object_id": {"type": "VirtualMachine", "id": vm.as_str()}});
        self.call(&format!("tag vm {vm} as `{name}`"), Method::POST, &path, Some(body)).await.map(drop)
    }

    /// The tag `name` of golden's category, checked to hold `meta`: a tag of that name with
    /// other content is not golden's to attach.
    async fn find_tag(
        &self,
        category: &str,
        name: &str,
        meta: &GoldenMeta,
    ) -> Result<Option<String>, VcenterError> {
        let Some(tag) = self.category_tags(category).await?.into_iter().find(|t| t.name == name) else {
            return Ok(None);
        };
        if meta_from_description(&tag.description).as_ref() != Some(meta) {
            return Err(self.err_failed(
                &format!("tag vms as `{name}`"),
                format!(
                    "the tag `{name}` ({}) in category `{}` does not hold golden's metadata for {}@{}; delete it so that golden can make its own",
                    tag.id,
                    super::OWNER_CATEGORY,
                    meta.image,
                    meta.version
                ),
            ));
        }
        Ok(Some(tag.id))
    }

    /// golden's ownership tags and the VMs each is attached to, by tag id. A fixed handful of
    /// requests however many tags there are: the category, its tag ids, and one bulk read of
    /// their attachments. The tags' names and metadata are read by [`Self::tag_metas`], only for
    /// the tags that are needed.
    pub async fn tag_attachments(&self) -> Result<BTreeMap<String, Vec<Moref>>, VcenterError> {
        let Some(category) = self.find_category(super::OWNER_CATEGORY).await? else {
            return Ok(BTreeMap::new());
        };
        let tags = self.category_tag_ids(&category).await?;
        if tags.is_empty() {
            return Ok(BTreeMap::new());
        }
        let body = json!({ "tag_ids": tags });
        let attached: Option<Vec<TagObjects>> = self
            .call_as(
                "list the vms golden owns",
                Method::POST,
                "/com/vmware/cis/tagging/tag-association?~action=list-attached-objects-on-tags",
                Some(body),
            )
            .await?;
        let mut vms: BTreeMap<String, Vec<Moref>> = BTreeMap::new();
        for entry in attached.unwrap_or_default() {
            let objects = entry.object_ids.unwrap_or_default().into_iter();
            let on = objects.filter(|o| o.kind == "VirtualMachine").map(|o| Moref::new(o.id));
            vms.entry(entry.tag_id).or_default().extend(on);
        }
        Ok(vms)
    }

    /// The golden metadata of each of the tags `ids`, one request per tag, all at once; tags
    /// without golden metadata in their description are left out.
    pub async fn tag_metas<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, GoldenMeta>, VcenterError> {
        let tags = self.get_tags(ids).await?;
        Ok(tags.into_iter().filter_map(|t| Some((t.id, meta_from_description(&t.description)?))).collect())
    }
}

/// Each VM of `attached` (tag id → VMs) with the metadata of its tag, for the tags in `metas`.
pub(super) fn owners(
    attached: &BTreeMap<String, Vec<Moref>>,
    metas: &BTreeMap<String, GoldenMeta>,
) -> BTreeMap<Moref, GoldenMeta> {
    attached
        .iter()
        .filter_map(|(tag, vms)| Some((metas.get(tag)?, vms)))
        .flat_map(|(meta, vms)| vms.iter().map(move |vm| (vm.clone(), meta.clone())))
        .collect()
}

/// The messages of a failed OVF call's `error` (vcsim and vCenter nest them differently).
fn ovf_error(value: &Value) -> String {
    let mut messages = Vec::new();
    collect_messages(value, &mut messages);
    if messages.is_empty() { "vcenter gave no reason".to_owned() } else { messages.join("; ") }
}

fn collect_messages(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("default_message", Value::String(s)) => out.push(s.clone()),
                    _ => collect_messages(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

/// vCenter's answer to creating what exists already (a library, tag or category of that name).
fn is_already_exists(e: &VcenterError) -> bool {
    matches!(e, VcenterError::Http { kind: Some(kind), .. } if kind.ends_with("already_exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_segments() {
        assert_eq!(time_ms("1970-01-02T00:00:01.5Z"), Some(86_401_500));
        assert_eq!(time_ms("garbage"), None);
        assert_eq!(seg("urn:vmomi:InventoryServiceTag:a b/c"), "urn:vmomi:InventoryServiceTag:a%20b%2Fc");
    }

    #[test]
    fn ovf_errors_are_collected_from_nested_messages() {
        let v: Value = serde_json::from_str(
            r#"{"error":{"errors":[{"category":"SERVER","error":{"messages":[{"default_message":"no such file"}]}}]}}"#,
        )
        .expect("json");
        assert_eq!(ovf_error(&v), "no such file");
    }
}
