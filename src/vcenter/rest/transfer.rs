//! File transfers into and out of library items: update sessions with PULL files, and
//! download sessions (`/rest/com/vmware/content/library/item/update-session`,
//! `.../item/updatesession/file`, `.../item/download-session`, `.../item/downloadsession/file`).

use reqwest::Method;
use serde_json::{Value, json};

use super::{q, seg};
use crate::live::ItemId;
use crate::vcenter::{VcenterClient, VcenterError};

impl VcenterClient {
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
        let path =
            format!("/com/vmware/content/library/item/updatesession/file?update_session_id={}", q(&session));
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
}
