//! File transfers into and out of library items: update sessions with PULL files, and
//! download sessions (`/rest/com/vmware/content/library/item/update-session`,
//! `.../item/updatesession/file`, `.../item/download-session`, `.../item/downloadsession/file`).
//!
//! Sessions are vCenter objects that outlive the request that opened them: golden deletes each
//! one when done with it, and before opening an update session on an item it cancels one a
//! crashed run left open there (vCenter refuses a second active update session on an item).
//! A download endpoint is usable only once its file is `PREPARED`, which golden waits for.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{q, seg};
use crate::live::ItemId;
use crate::vcenter::{VcenterClient, VcenterError};
use crate::wait::Waiting;

const UPDATE_SESSION: &str = "/com/vmware/content/library/item/update-session";
const DOWNLOAD_SESSION: &str = "/com/vmware/content/library/item/download-session";

/// A session as `GET .../update-session/id:` or `.../download-session/id:` tells it.
#[derive(Deserialize)]
struct WireSession {
    library_item_id: String,
    #[serde(default)]
    state: String,
}

/// A file of a download session made ready to fetch: the session to end once the file has
/// been fetched, and the URL to fetch it from.
#[derive(Debug)]
pub struct Download {
    pub session: String,
    pub uri: String,
}

impl VcenterClient {
    /// The sessions under `base` (update or download) open on `item`, with their state.
    async fn sessions_of(&self, base: &str, item: &ItemId) -> Result<Vec<(String, String)>, VcenterError> {
        let op = format!("list the sessions open on library item {item}");
        let mut out = Vec::new();
        for id in self.ids(&op, Method::GET, base, None).await? {
            let path = format!("{base}/id:{}", seg(&id));
            match self.call_as::<WireSession>(&op, Method::GET, &path, None).await {
                Ok(s) if s.library_item_id == item.as_str() => out.push((id, s.state)),
                Ok(_) => {}
                // Ended between the list and the read.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The update sessions open on `item`, with their state (`ACTIVE`, `DONE`, ...).
    pub async fn update_sessions(&self, item: &ItemId) -> Result<Vec<(String, String)>, VcenterError> {
        self.sessions_of(UPDATE_SESSION, item).await
    }

    /// The download sessions open on `item`.
    pub async fn download_sessions(&self, item: &ItemId) -> Result<Vec<String>, VcenterError> {
        Ok(self.sessions_of(DOWNLOAD_SESSION, item).await?.into_iter().map(|(id, _)| id).collect())
    }

    /// Ends an update session: cancelled first when still active, then deleted.
    async fn end_update_session(&self, op: &str, session: &str, active: bool) -> Result<(), VcenterError> {
        let path = format!("{UPDATE_SESSION}/id:{}", seg(session));
        if active {
            self.call(op, Method::POST, &format!("{path}?~action=cancel"), None).await?;
        }
        self.call(op, Method::DELETE, &path, None).await.map(drop)
    }

    /// Opens an update session on `item`, after ending any a crashed run left there.
    async fn update_session(&self, item: &ItemId, op: &str) -> Result<String, VcenterError> {
        for (stale, state) in self.update_sessions(item).await? {
            tracing::info!(site = %self.site, %item, session = %stale, %state, "ending a stale update session");
            self.end_update_session(op, &stale, state == "ACTIVE").await?;
        }
        let body = json!({"create_spec": {"library_item_id": item.as_str()}});
        self.created_id(op, UPDATE_SESSION, body).await
    }

    async fn add_file(&self, op: &str, session: &str, spec: Value) -> Result<Value, VcenterError> {
        let path =
            format!("/com/vmware/content/library/item/updatesession/file/id:{}?~action=add", seg(session));
        self.call(op, Method::POST, &path, Some(json!({"file_spec": spec}))).await
    }

    /// Has vCenter itself fetch a file into an item from `source_uri` (PULL), e.g. another
    /// site's download endpoint: the bytes never pass through golden. The update session is
    /// deleted when done, and cancelled and deleted when the transfer fails.
    pub async fn pull_file(
        &self,
        item: &ItemId,
        file_name: &str,
        source_uri: &str,
        wait: Duration,
    ) -> Result<(), VcenterError> {
        let op = format!("pull `{file_name}` into library item {item}");
        let session = self.update_session(item, &op).await?;
        let pulled = self.pull_in(&op, &session, file_name, source_uri, wait).await;
        let ended = self.end_update_session(&op, &session, pulled.is_err()).await;
        pulled.and(ended)
    }

    async fn pull_in(
        &self,
        op: &str,
        session: &str,
        file_name: &str,
        source_uri: &str,
        wait: Duration,
    ) -> Result<(), VcenterError> {
        let spec = json!({"name": file_name, "source_type": "PULL", "source_endpoint": {"uri": source_uri}});
        self.add_file(op, session, spec).await?;
        // vCenter moves the bytes itself; completing the session before the transfer is done
        // is refused, so wait for the file to be READY (or to fail) first. The session's file
        // list (`GET ...?update_session_id=`): vcsim answers the `get` action with the session
        // rather than the file.
        let path =
            format!("/com/vmware/content/library/item/updatesession/file?update_session_id={}", q(session));
        let waiting = Waiting::new(wait, Duration::from_secs(2));
        loop {
            let files: Vec<Value> = self.call_as(op, Method::GET, &path, None).await?;
            let file = files.into_iter().find(|f| f.get("name").and_then(Value::as_str) == Some(file_name));
            let file = file.ok_or_else(|| self.err_protocol(op, "the file is not in its update session"))?;
            match file.get("status").and_then(Value::as_str) {
                Some("READY") => break,
                Some("ERROR") => return Err(self.failed(op, &file, "the transfer failed")),
                _ => self.next_wait(&waiting, op, wait).await?,
            }
        }
        let path = format!("{UPDATE_SESSION}/id:{}?~action=complete", seg(session));
        self.call(op, Method::POST, &path, None).await.map(drop)
    }

    /// Makes a file of an item downloadable: opens a download session, asks vCenter to
    /// prepare the file and waits until it is `PREPARED`. End the session with
    /// [`VcenterClient::end_download`] once the file has been fetched.
    pub async fn prepare_download(
        &self,
        item: &ItemId,
        file_name: &str,
        wait: Duration,
    ) -> Result<Download, VcenterError> {
        let op = format!("prepare download of `{file_name}` from library item {item}");
        let body = json!({"create_spec": {"library_item_id": item.as_str()}});
        let session = self.created_id(&op, DOWNLOAD_SESSION, body).await?;
        match self.prepared_uri(&op, &session, file_name, wait).await {
            Ok(uri) => Ok(Download { session, uri }),
            Err(e) => {
                if let Err(end) = self.end_download(&session).await {
                    tracing::warn!(site = %self.site, %session, "download session left open: {end}");
                }
                Err(e)
            }
        }
    }

    async fn prepared_uri(
        &self,
        op: &str,
        session: &str,
        file_name: &str,
        wait: Duration,
    ) -> Result<String, VcenterError> {
        let path = |action| {
            format!(
                "/com/vmware/content/library/item/downloadsession/file/id:{}?~action={action}",
                seg(session)
            )
        };
        let body = json!({"file_name": file_name});
        let mut file = self.call_safe(op, &path("prepare"), Some(body.clone())).await?;
        let waiting = Waiting::new(wait, Duration::from_secs(2));
        loop {
            match file.get("status").and_then(Value::as_str) {
                Some("PREPARED") => break,
                Some("ERROR") => return Err(self.failed(op, &file, "vCenter could not prepare the file")),
                _ => self.next_wait(&waiting, op, wait).await?,
            }
            file = self.call_safe(op, &path("get"), Some(body.clone())).await?;
        }
        file.pointer("/download_endpoint/uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.err_protocol(op, "no download_endpoint in the answer"))
    }

    /// Deletes a download session; its endpoints stop working.
    pub async fn end_download(&self, session: &str) -> Result<(), VcenterError> {
        let op = format!("end download session {session}");
        let path = format!("{DOWNLOAD_SESSION}/id:{}", seg(session));
        self.call(&op, Method::DELETE, &path, None).await.map(drop)
    }

    /// Sleeps before the next poll, or fails with a timeout once `wait` is over.
    async fn next_wait(&self, waiting: &Waiting, op: &str, wait: Duration) -> Result<(), VcenterError> {
        if waiting.next().await {
            return Ok(());
        }
        Err(VcenterError::Timeout { site: self.site.clone(), operation: op.to_owned(), timeout: wait })
    }

    /// A failure of a transfer file, with vCenter's message when it gives one.
    fn failed(&self, op: &str, file: &Value, fallback: &str) -> VcenterError {
        let message =
            file.pointer("/error_message/default_message").and_then(Value::as_str).unwrap_or(fallback);
        VcenterError::Failed {
            site: self.site.clone(),
            operation: op.to_owned(),
            message: message.to_owned(),
        }
    }
}
