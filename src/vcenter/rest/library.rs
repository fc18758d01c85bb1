//! Content libraries: find, read, create (local and published, or subscribed) and sync
//! (`/rest/com/vmware/content/library`, `.../local-library`, `.../subscribed-library`).

use crate::connect::fan_out;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{is_already_exists, seg, time_ms};
use crate::live::{Library, LibraryId, LibraryKind, Moref};
use crate::vcenter::{VcenterClient, VcenterError};

#[derive(Deserialize)]
struct WireLibrary {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    publish_info: Option<WirePublish>,
    subscription_info: Option<WireSubscription>,
    last_sync_time: Option<String>,
}

#[derive(Deserialize)]
struct WirePublish {
    #[serde(default)]
    published: bool,
    publish_url: Option<String>,
}

#[derive(Deserialize)]
struct WireSubscription {
    #[serde(default)]
    subscription_url: String,
}

impl VcenterClient {
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
        for library in fan_out(ids.iter().map(|id| self.get_library(id))).await {
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
        match self.created_unique_id(&op, path, body).await {
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
        self.call_safe(&format!("sync library {library}"), &path, None).await.map(drop)
    }
}
