//! The vSphere REST half (`/rest`): session, Content Library, OVF and VM-template items, VMs
//! and tagging. This module holds the shared plumbing (URLs, the session login and logout at
//! `/rest/com/vmware/cis/session`, calls with retries and relogin, error mapping); each API area
//! has its own file: [`library`], [`item`], [`transfer`], [`ovf`] and [`tagging`].
//!
//! Answers are read leniently, as vcsim and the real product differ: JSON may come as
//! `text/plain`, an empty list may be `{"value":null}`, a call may answer 200 with an empty
//! body, and objects carry fields golden does not know (vcsim's `Item`, `Template`, ...).

mod item;
mod library;
mod ovf;
mod tagging;
mod transfer;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{VcenterClient, VcenterError, lock};
use crate::connect::Repeat;

pub use ovf::DeploySpec;
pub use tagging::NamedTag;
pub(super) use tagging::owners;

const SESSION_HEADER: &str = "vmware-api-session-id";

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
        self.refuse_redirect(op, &response)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(VcenterError::Login { site: self.site.clone(), user: self.credentials.user.clone() });
        }
        let text = self.text(op, response).await?;
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

    /// The REST session to send with: the current one, or a new one when there is none or
    /// `stale` (the session a call was just refused with) is still the current one. One login at
    /// a time: calls that find the session expired together wait for one new session.
    pub(super) async fn rest_session(&self, stale: Option<&str>) -> Result<String, VcenterError> {
        let usable = || lock(&self.rest_session).clone().filter(|s| Some(s.as_str()) != stale);
        if let Some(session) = usable() {
            return Ok(session);
        }
        let _gate = self.rest_gate.lock().await;
        // Another call may have logged in while this one waited.
        match usable() {
            Some(session) => Ok(session),
            None => self.rest_login().await,
        }
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
        self.refuse_redirect(op, &response)?;
        let status = response.status();
        let text = self.text(op, response).await?;
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
    /// A POST is taken for a write that would act twice ([`Repeat::Once`]); reads that POST
    /// go through [`Self::ids`].
    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, VcenterError> {
        let repeat = if method == Method::POST { Repeat::Once } else { Repeat::Safe };
        self.call_within(op, method, path, body, None, repeat).await
    }

    /// A long OVF operation (a capture or deploy), which vCenter answers only when it is done:
    /// the request waits up to `TASK_TIMEOUT` rather than the HTTP client's timeout. `body`
    /// carries a `client_token`, so that a retry of a request that reached vCenter gets the
    /// first one's answer instead of starting the work again.
    async fn call_long(&self, op: &str, path: &str, body: Value) -> Result<Value, VcenterError> {
        self.call_within(op, Method::POST, path, Some(body), Some(super::TASK_TIMEOUT), Repeat::Safe).await
    }

    async fn call_within(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Option<std::time::Duration>,
        repeat: Repeat,
    ) -> Result<Value, VcenterError> {
        self.retry
            .run_as(repeat, op, || {
                let method = method.clone();
                let body = body.clone();
                async move {
                    // The session a first try was refused with (401): log in again, once.
                    let mut stale: Option<String> = None;
                    loop {
                        let session = self.rest_session(stale.as_deref()).await?;
                        let mut request = self
                            .http
                            .request(method.clone(), self.rest_url(path))
                            .header(SESSION_HEADER, &session);
                        if let Some(b) = &body {
                            request = request.json(b);
                        }
                        if let Some(t) = timeout {
                            request = request.timeout(t);
                        }
                        let response = request.send().await.map_err(|e| self.err_transport(op, e))?;
                        self.refuse_redirect(op, &response)?;
                        let status = response.status();
                        let text = self.text(op, response).await?;
                        if status == StatusCode::UNAUTHORIZED && stale.is_none() {
                            stale = Some(session);
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

    /// A list of ids; `null` is an empty list and duplicates (vcsim's find) are dropped. A
    /// read, also when it is a POST (`?~action=find`), so safe to repeat.
    async fn ids(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Vec<String>, VcenterError> {
        let value = self.call_within(op, method, path, body, None, Repeat::Safe).await?;
        let ids: Option<Vec<String>> =
            serde_json::from_value(value).map_err(|e| self.err_protocol(op, e.to_string()))?;
        Ok(ids.unwrap_or_default().into_iter().collect::<BTreeSet<_>>().into_iter().collect())
    }

    async fn created_id(&self, op: &str, path: &str, body: Value) -> Result<String, VcenterError> {
        let id: Option<String> = self.call_as(op, Method::POST, path, Some(body)).await?;
        id.filter(|s| !s.is_empty()).ok_or_else(|| self.err_protocol(op, "no id in the answer"))
    }

    /// [`Self::created_id`] for an object whose name vCenter keeps unique in its scope (a
    /// library, a tag category, a tag in its category): sent again after a failure that may
    /// have reached vCenter, as a second create is refused with `already_exists`, which every
    /// caller takes for "it is there", so a repeat never makes two.
    async fn created_unique_id(&self, op: &str, path: &str, body: Value) -> Result<String, VcenterError> {
        let value = self.call_within(op, Method::POST, path, Some(body), None, Repeat::Safe).await?;
        let id: Option<String> =
            serde_json::from_value(value).map_err(|e| self.err_protocol(op, e.to_string()))?;
        id.filter(|s| !s.is_empty()).ok_or_else(|| self.err_protocol(op, "no id in the answer"))
    }

    /// [`Self::call`] for a POST that is safe to repeat: a read (`?~action=list-...`, `get`),
    /// or an action whose repetition does nothing more (attach a tag, sync a library, prepare
    /// a file).
    async fn call_safe(&self, op: &str, path: &str, body: Option<Value>) -> Result<Value, VcenterError> {
        self.call_within(op, Method::POST, path, body, None, Repeat::Safe).await
    }

    /// [`Self::created_id`] for a long operation (a VM template captured or deployed), which
    /// vCenter answers only when it is done: up to `TASK_TIMEOUT`, not the client's timeout.
    async fn created_id_long(&self, op: &str, path: &str, body: Value) -> Result<String, VcenterError> {
        // No client_token in this API: sent once, never repeated blindly.
        let value = self
            .call_within(op, Method::POST, path, Some(body), Some(super::TASK_TIMEOUT), Repeat::Once)
            .await?;
        value
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| self.err_protocol(op, "no id in the answer"))
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
}
