//! The lab vCenter's Content Library: libraries, items with their files, and the update and
//! download sessions that move files in and out.
//!
//! Unlike vcsim, replication across vCenters is real here: a subscribed library whose
//! subscription URL is another lab site's publish URL receives copies of that library's items,
//! files included, `library_sync_ms` after a sync starts (their metadata; their content is
//! listed as cached another `library_sync_ms` later, as vCenter lists an item before its files); a PULL file transfer from another
//! site's download endpoint copies the bytes after the same delay. Both are settled lazily
//! (see [`settle`]) so the state stays plain, saveable data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::LabState;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Content {
    pub libraries: BTreeMap<String, Library>,
    pub items: BTreeMap<String, Item>,
    #[serde(default)]
    pub update_sessions: BTreeMap<String, UpdateSession>,
    #[serde(default)]
    pub download_sessions: BTreeMap<String, DownloadSession>,
    /// The answer to each `client_token` of an OVF capture or deploy: `None` while it runs. A
    /// request repeating a token gets the first one's answer, and makes nothing again.
    #[serde(default)]
    pub client_tokens: BTreeMap<String, Option<serde_json::Value>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Library {
    pub id: String,
    pub name: String,
    pub description: String,
    pub datastore_id: String,
    pub created_ms: i64,
    pub kind: LibraryKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LibraryKind {
    Local {
        published: bool,
    },
    Subscribed {
        subscription_url: String,
        on_demand: bool,
        /// When the running sync started; items arrive `library_sync_ms` later.
        sync_started_ms: Option<i64>,
        last_sync_ms: Option<i64>,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub library_id: String,
    pub name: String,
    /// `ovf` or `vm-template`.
    pub kind: String,
    pub description: String,
    pub version: String,
    pub created_ms: i64,
    pub files: BTreeMap<String, File>,
    /// For an item in a subscribed library, the publisher's item it copies.
    pub source_id: Option<String>,
    pub last_sync_ms: Option<i64>,
    /// For a vm-template item, the template VM behind it.
    pub template_vm: Option<String>,
    /// For an item a sync brought into a subscribed library, when its files arrive: its
    /// metadata is listed first, and until then its files are listed as not cached.
    pub content_due_ms: Option<i64>,
}

impl Item {
    /// A new item of `library`, version 1, created at `now`, holding `files`.
    pub fn new(
        library: &str,
        name: &str,
        kind: &str,
        description: &str,
        files: BTreeMap<String, File>,
        now: i64,
    ) -> Item {
        Item {
            id: uuid::Uuid::new_v4().to_string(),
            library_id: library.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            description: description.to_owned(),
            version: "1".to_owned(),
            created_ms: now,
            files,
            source_id: None,
            last_sync_ms: None,
            template_vm: None,
            content_due_ms: None,
        }
    }

    /// Whether the item's content is all here at `now` (vCenter's `cached`): an item without
    /// files (a capture still running, or synced while it ran) has nothing cached.
    pub fn cached(&self, now: i64) -> bool {
        !self.files.is_empty() && self.content_due_ms.is_none_or(|due| now >= due)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct File {
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateSession {
    pub id: String,
    pub item_id: String,
    /// `ACTIVE`, `DONE`, `ERROR` or `CANCELED`.
    pub state: String,
    pub files: BTreeMap<String, PendingFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingFile {
    pub name: String,
    /// Where the lab fetches the file from (a `PULL` transfer).
    pub source_uri: String,
    pub started_ms: i64,
    pub bytes: Option<File>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DownloadSession {
    pub id: String,
    pub item_id: String,
    /// File name to the id in its download URL.
    pub prepared: BTreeMap<String, String>,
    /// File name to when it is `PREPARED` (before that, `PREPARING`, and its URL answers 404).
    #[serde(default)]
    pub ready_ms: BTreeMap<String, i64>,
}

impl DownloadSession {
    /// Whether `file` is prepared at `now`.
    pub fn ready(&self, file: &str, now: i64) -> bool {
        self.prepared.contains_key(file) && self.ready_ms.get(file).is_none_or(|due| now >= *due)
    }
}

impl Library {
    /// The publish URL of a published local library, as real vCenter forms it.
    pub fn publish_url(&self, base: &str) -> Option<String> {
        match self.kind {
            LibraryKind::Local { published: true } => {
                Some(format!("{}/cls/vcsp/lib/{}/lib.json", base.trim_end_matches('/'), self.id))
            }
            _ => None,
        }
    }
}

/// Resolves a URL served by one of the lab's vCenters: `(vcenter, path)`.
pub fn resolve_url<'a>(lab: &'a LabState, uri: &str) -> Option<(&'a str, String)> {
    let url = url::Url::parse(uri).ok()?;
    let origin = format!("{}://{}", url.scheme(), url.host_str()?);
    let port = url.port_or_known_default()?;
    lab.vcenters.values().find_map(|v| {
        let base = url::Url::parse(v.url.as_deref()?).ok()?;
        let same = format!("{}://{}", base.scheme(), base.host_str()?) == origin
            && base.port_or_known_default()? == port;
        same.then(|| (v.name.as_str(), url.path().to_owned()))
    })
}

/// Advances every vCenter's asynchronous library work that is due at `now`: subscribed-library
/// syncs and PULL transfers. Called at the start of each vCenter request.
pub fn settle(lab: &mut LabState, now: i64) {
    let delay = lab.timings.library_sync_ms as i64;
    // Collect the work first: it reads one site and writes another.
    let mut syncs = Vec::new();
    let mut pulls = Vec::new();
    for vcenter in lab.vcenters.values() {
        let site = &vcenter.sim;
        for lib in site.content.libraries.values() {
            if let LibraryKind::Subscribed { subscription_url, sync_started_ms: Some(started), .. } =
                &lib.kind
            {
                if now >= started + delay {
                    syncs.push((vcenter.name.clone(), lib.id.clone(), subscription_url.clone()));
                }
            }
        }
        for session in site.content.update_sessions.values() {
            for file in session.files.values() {
                if file.bytes.is_none() && file.error.is_none() && now >= file.started_ms + delay {
                    pulls.push((
                        vcenter.name.clone(),
                        session.id.clone(),
                        file.name.clone(),
                        file.source_uri.clone(),
                    ));
                }
            }
        }
    }
    for (site, library, url) in syncs {
        let items = published_items(lab, &url);
        let Some(vc) = lab.vcenters.get_mut(&site).map(|v| &mut v.sim) else { continue };
        match items {
            Some(items) => {
                // A sync mirrors the publisher: items it no longer has go here too.
                vc.content.items.retain(|_, i| {
                    i.library_id != library
                        || i.source_id.as_ref().is_none_or(|s| items.iter().any(|p| &p.id == s))
                });
                for source in items {
                    let existing = vc
                        .content
                        .items
                        .values()
                        .find(|i| i.library_id == library && i.source_id.as_deref() == Some(&source.id));
                    // The metadata lands now, the files `library_sync_ms` later: content a
                    // copy already holds stays, new content is on its way.
                    let same_files = |i: &Item| i.files.keys().eq(source.files.keys());
                    let content_due_ms = match existing {
                        Some(i) if same_files(i) => i.content_due_ms,
                        _ => Some(now + delay),
                    };
                    let id = existing.map_or_else(|| uuid::Uuid::new_v4().to_string(), |i| i.id.clone());
                    vc.content.items.insert(
                        id.clone(),
                        Item {
                            id,
                            library_id: library.clone(),
                            source_id: Some(source.id.clone()),
                            last_sync_ms: Some(now),
                            template_vm: None,
                            content_due_ms,
                            ..source
                        },
                    );
                }
            }
            None => tracing::warn!(
                site,
                url,
                "lab: subscription URL does not name a published library of this lab"
            ),
        }
        if let Some(lib) = vc.content.libraries.get_mut(&library) {
            if let LibraryKind::Subscribed { sync_started_ms, last_sync_ms, .. } = &mut lib.kind {
                *sync_started_ms = None;
                *last_sync_ms = Some(now);
            }
        }
    }
    for (site, session, name, uri) in pulls {
        let fetched = download(lab, &uri);
        let Some(vc) = lab.vcenters.get_mut(&site).map(|v| &mut v.sim) else { continue };
        if let Some(file) = vc.content.update_sessions.get_mut(&session).and_then(|s| s.files.get_mut(&name))
        {
            match fetched {
                Some(bytes) => file.bytes = Some(File { bytes }),
                None => file.error = Some(format!("cannot fetch {uri}")),
            }
        }
    }
}

/// The items of the published library a subscription URL names, if the lab serves it.
fn published_items(lab: &LabState, url: &str) -> Option<Vec<Item>> {
    let (site, path) = resolve_url(lab, url)?;
    let id = path.strip_prefix("/cls/vcsp/lib/")?.trim_end_matches("/lib.json").trim_end_matches('/');
    let vc = &lab.vcenters.get(site)?.sim;
    let lib = vc.content.libraries.get(id)?;
    if !matches!(lib.kind, LibraryKind::Local { published: true }) {
        return None;
    }
    Some(vc.content.items.values().filter(|i| i.library_id == id).cloned().collect())
}

/// The bytes behind a download URL of any lab vCenter (`/rest/com/vmware/cis/data/{id}/{name}`).
pub fn download(lab: &LabState, uri: &str) -> Option<Vec<u8>> {
    let (site, path) = resolve_url(lab, uri)?;
    let rest = path.strip_prefix("/rest/com/vmware/cis/data/")?;
    let (data_id, name) = rest.split_once('/')?;
    let content = &lab.vcenters.get(site)?.sim.content;
    let session = content
        .download_sessions
        .values()
        .find(|s| s.prepared.get(name).map(String::as_str) == Some(data_id))?;
    content.items.get(&session.item_id)?.files.get(name).map(|f| f.bytes.clone())
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl super::VcenterSim {
    /// Creates a local library on `datastore`, as an admin would in the vSphere client.
    /// Returns its id.
    pub fn add_local_library(
        &mut self,
        name: &str,
        datastore: &str,
        published: bool,
        now: i64,
    ) -> Option<String> {
        let datastore = self.datastores.get(datastore)?.id.clone();
        let id = uuid::Uuid::new_v4().to_string();
        self.content.libraries.insert(
            id.clone(),
            Library {
                id: id.clone(),
                name: name.to_owned(),
                description: String::new(),
                datastore_id: datastore,
                created_ms: now,
                kind: LibraryKind::Local { published },
            },
        );
        Some(id)
    }

    /// Adds a deployable OVF item (descriptor plus a stand-in disk) to a library, as a build
    /// pipeline such as Packer would. Returns its id.
    pub fn add_ovf_item(&mut self, library: &str, name: &str, description: &str, now: i64) -> String {
        let ovf = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:vmw=\"http://www.vmware.com/schema/ovf\">\n  <VirtualSystem ovf:id=\"{name}\"><Info>A virtual machine</Info><Name>{name}</Name>\n    <OperatingSystemSection ovf:id=\"1\" vmw:osType=\"windows9_64Guest\"><Info>os</Info></OperatingSystemSection>\n  </VirtualSystem>\n</Envelope>\n",
            name = golden_xml::escape(name)
        );
        let files = BTreeMap::from([
            (format!("{name}.ovf"), File { bytes: ovf.into_bytes() }),
            ("disk-0.vmdk".to_owned(), File { bytes: format!("lab disk of {name}\n").into_bytes() }),
        ]);
        let item = Item::new(library, name, "ovf", description, files, now);
        let id = item.id.clone();
        self.content.items.insert(id.clone(), item);
        id
    }
}
