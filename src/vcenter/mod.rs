//! Client of a site's vCenter: the vSphere REST API (`/rest`) for the Content Library, OVF and
//! VM-template items and tags, and the SOAP API (`/sdk`) for the inventory and snapshots.
//!
//! Both halves are needed because the inventory (datacenters, folders, pools, datastores, VMs
//! and their snapshot trees) is only readable over SOAP on the vCenter versions golden supports
//! (and on vcsim, which the contract tests run against). Everything goes through one
//! [`VcenterClient`], which logs in lazily on both APIs, logs in again once when a session has
//! expired (one login per API at a time: calls that find the session expired together wait for
//! one new session), and runs every call through the site's [`RetryPolicy`]: reads after any
//! transient failure, writes that would act twice (create, clone, snapshot) only after failures
//! that show the first attempt had no effect. Answers are read up to
//! [`crate::connect::MAX_BODY`] bytes, property reads up to [`soap::MAX_PAGES`] pages.
//!
//! Wire types stay in this module: callers get `live` types ([`LibraryItem`], [`Vm`],
//! [`GoldenMeta`]) and an [`Inventory`] that resolves golden.toml placement names to morefs.
//!
//! Ownership marks, which decide what golden may change or delete:
//! - a library item is golden's when its description is exactly the metadata JSON of
//!   [`meta_to_description`]: `{"golden":{"image":"…","version":"…","source":"…"}}` and nothing
//!   else (no prose around it), so that it round-trips through [`meta_from_description`];
//! - a VM is golden's when it carries a tag of the category [`OWNER_CATEGORY`] (not its annotation,
//!   which a clone copies: that is only a claim, see [`Inventory`]); the tag is named
//!   `<image>@<version>` and its description is the same metadata JSON.

mod inventory;
mod rest;
mod soap;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::connect::{Credentials, RetryPolicy, Retryable};
use crate::ids::SiteName;
use crate::live::{GoldenMeta, ItemRef, VcenterId};

pub use inventory::{Cluster, Datacenter, Inventory, Named, Placement};
pub use rest::{DeploySpec, NamedTag};

/// The tag category golden's ownership tags live in.
pub const OWNER_CATEGORY: &str = "golden";

/// How long a vCenter task (a snapshot) may run before golden gives up waiting.
pub const TASK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One site's vCenter. Clones share the sessions, so a clone can be moved into a task.
#[derive(Clone)]
pub struct VcenterClient {
    site: SiteName,
    base: String,
    credentials: Credentials,
    http: reqwest::Client,
    retry: RetryPolicy,
    /// The REST session id (`vmware-api-session-id`), once logged in.
    rest_session: Arc<Mutex<Option<String>>>,
    /// The SOAP session cookie (`vmware_soap_session=…`), once logged in.
    soap_cookie: Arc<Mutex<Option<String>>>,
    /// Held while logging in on the REST API, so that one login serves every waiting call.
    rest_gate: Arc<tokio::sync::Mutex<()>>,
    /// Held while logging in on the SOAP API.
    soap_gate: Arc<tokio::sync::Mutex<()>>,
    /// `RetrieveServiceContent`, read once.
    service: Arc<Mutex<Option<soap::ServiceContent>>>,
}

impl VcenterClient {
    pub fn new(
        site: SiteName,
        base_url: url::Url,
        credentials: Credentials,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> VcenterClient {
        VcenterClient {
            site,
            base: base_url.as_str().trim_end_matches('/').to_owned(),
            credentials,
            http,
            retry,
            rest_session: Arc::default(),
            soap_cookie: Arc::default(),
            rest_gate: Arc::default(),
            soap_gate: Arc::default(),
            service: Arc::default(),
        }
    }

    pub fn site(&self) -> &SiteName {
        &self.site
    }

    /// The vCenter's instance UUID (`ServiceContent.about.instanceUuid`), which tells whether
    /// two sites' vCenters are one. Needs no login.
    pub async fn instance_uuid(&self) -> Result<VcenterId, VcenterError> {
        Ok(VcenterId::new(self.service().await?.instance_uuid))
    }

    /// Logs in on both APIs now, so that wrong credentials fail before any work starts.
    pub async fn login(&self) -> Result<(), VcenterError> {
        let (rest, soap) = tokio::join!(self.login_rest(), self.login_soap());
        rest.and(soap)
    }

    /// Ends both sessions, if any. vCenter keeps a session until it idles out
    /// and caps the sessions it holds, so a CI job planning every pull request must not leave
    /// one behind each time.
    pub async fn logout(&self) -> Result<(), VcenterError> {
        let (rest, soap) = tokio::join!(self.rest_logout(), self.soap_logout());
        rest.and(soap)
    }

    /// Logs in on the REST API now.
    pub async fn login_rest(&self) -> Result<(), VcenterError> {
        self.retry.run("vcenter rest login", || self.rest_session(None)).await.map(drop)
    }

    /// Logs in on the SOAP API now.
    pub async fn login_soap(&self) -> Result<(), VcenterError> {
        self.retry.run("vcenter soap login", || self.soap_session(None)).await.map(drop)
    }

    fn err_http(
        &self,
        operation: &str,
        status: u16,
        kind: Option<String>,
        message: Option<String>,
    ) -> VcenterError {
        VcenterError::Http { site: self.site.clone(), operation: operation.to_owned(), status, kind, message }
    }

    /// The error for a redirect, when `response` is one (see [`crate::connect`]).
    fn refuse_redirect(&self, operation: &str, response: &reqwest::Response) -> Result<(), VcenterError> {
        match crate::connect::redirect_target(response) {
            None => Ok(()),
            Some(location) => Err(VcenterError::Redirect {
                site: self.site.clone(),
                operation: operation.to_owned(),
                status: response.status().as_u16(),
                location,
            }),
        }
    }

    /// The body of `response`, at most [`crate::connect::MAX_BODY`] bytes.
    async fn body(&self, operation: &str, response: reqwest::Response) -> Result<Vec<u8>, VcenterError> {
        use crate::connect::{BodyError, MAX_BODY, read_body};
        read_body(response, MAX_BODY).await.map_err(|e| match e {
            BodyError::Transport(source) => self.err_transport(operation, source),
            too_large @ BodyError::TooLarge { .. } => self.err_protocol(operation, too_large.to_string()),
        })
    }

    /// [`Self::body`] as text; bytes that are not UTF-8 are replaced.
    async fn text(&self, operation: &str, response: reqwest::Response) -> Result<String, VcenterError> {
        let body = self.body(operation, response).await?;
        Ok(String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn err_transport(&self, operation: &str, source: reqwest::Error) -> VcenterError {
        // reqwest puts the URL in its message; ours never carry credentials or session ids.
        VcenterError::Transport { site: self.site.clone(), operation: operation.to_owned(), source }
    }

    fn err_protocol(&self, operation: &str, detail: impl Into<String>) -> VcenterError {
        VcenterError::Protocol {
            site: self.site.clone(),
            operation: operation.to_owned(),
            detail: detail.into(),
        }
    }

    fn err_failed(&self, operation: &str, message: impl Into<String>) -> VcenterError {
        VcenterError::Failed {
            site: self.site.clone(),
            operation: operation.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Debug for VcenterClient {
    // By hand: the session id and cookie are credentials too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcenterClient")
            .field("site", &self.site)
            .field("base", &self.base)
            .field("user", &self.credentials.user)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything that can go wrong talking to a vCenter. Every variant names the site and the
/// operation (with its object); none ever carries a password or a session id.
#[derive(Debug, thiserror::Error)]
pub enum VcenterError {
    #[error("site `{site}`: cannot reach vcenter to {operation}")]
    Transport { site: SiteName, operation: String, source: reqwest::Error },
    #[error("site `{site}`: vcenter rejected the login of user `{user}`")]
    Login { site: SiteName, user: String },
    #[error("site `{site}`: {operation}: vcenter answered HTTP {status}{}{}",
        kind.as_ref().map(|k| format!(" {k}")).unwrap_or_default(),
        message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Http { site: SiteName, operation: String, status: u16, kind: Option<String>, message: Option<String> },
    /// A 3xx answer, never followed: it would carry the login to another address.
    #[error(
        "site `{site}`: {operation}: vcenter answered HTTP {status}, a redirect to {location}; golden never follows redirects"
    )]
    Redirect { site: SiteName, operation: String, status: u16, location: String },
    #[error("site `{site}`: {operation}: vcenter fault {fault}: {message}")]
    Fault { site: SiteName, operation: String, fault: String, message: String },
    #[error("site `{site}`: {operation} failed: {message}")]
    Failed { site: SiteName, operation: String, message: String },
    #[error("site `{site}`: {operation} did not finish within {} s", timeout.as_secs())]
    Timeout { site: SiteName, operation: String, timeout: Duration },
    #[error("site `{site}`: unexpected answer from vcenter to {operation}: {detail}")]
    Protocol { site: SiteName, operation: String, detail: String },
    #[error("site `{site}`: no {kind} named `{name}` in {scope}")]
    NotFound { site: SiteName, kind: &'static str, name: String, scope: String },
    #[error("site `{site}`: {count} objects of kind {kind} are named `{name}` in {scope}")]
    Ambiguous { site: SiteName, kind: &'static str, name: String, scope: String, count: usize },
}

impl VcenterError {
    /// Whether the object the call named does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, VcenterError::Http { status: 404, .. } | VcenterError::NotFound { .. })
    }
}

impl VcenterError {
    /// A call refused for its session (REST 401, SOAP `NotAuthenticated`) although it had
    /// just logged in again: that session ended too (sessions ended on the server, a restart).
    /// vCenter refused it before doing anything, and the next attempt logs in afresh. A login
    /// refused is [`VcenterError::Login`], never this.
    fn is_session_ended(&self) -> bool {
        match self {
            VcenterError::Http { status, .. } => *status == 401,
            VcenterError::Fault { fault, .. } => fault == "NotAuthenticated",
            _ => false,
        }
    }
}

impl Retryable for VcenterError {
    fn is_retryable(&self) -> bool {
        match self {
            VcenterError::Transport { source, .. } => {
                source.is_connect() || source.is_timeout() || source.is_request()
            }
            VcenterError::Http { status, kind, .. } => {
                matches!(status, 429 | 502 | 503 | 504)
                    || kind.as_deref() == Some("com.vmware.vapi.std.errors.service_unavailable")
                    || self.is_session_ended()
            }
            VcenterError::Fault { .. } => self.is_session_ended(),
            _ => false,
        }
    }

    fn had_no_effect(&self) -> bool {
        match self {
            VcenterError::Transport { source, .. } => source.is_connect() || source.is_builder(),
            VcenterError::Http { status, .. } => matches!(status, 429 | 503) || self.is_session_ended(),
            VcenterError::Fault { .. } => self.is_session_ended(),
            _ => false,
        }
    }
}

/// The description golden writes on a library item (and on an ownership tag), and the
/// annotation of a base VM, which also names the item it was deployed from.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaDescription {
    golden: GoldenMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<ItemRef>,
}

/// The metadata JSON golden stores in a description: `{"golden":{"image":…,"version":…,"source":…}}`.
pub fn meta_to_description(meta: &GoldenMeta) -> String {
    // Serialising plain strings cannot fail.
    serde_json::to_string(&MetaDescription { golden: meta.clone(), item: None }).unwrap_or_default()
}

/// The annotation of a base VM deployed from `item`: the metadata plus
/// `"item":{"id":…,"name":…,"kind":…}`, so that reading the site knows the item without a
/// request of its own.
pub fn deployment_annotation(meta: &GoldenMeta, item: &ItemRef) -> String {
    let description = MetaDescription { golden: meta.clone(), item: Some(item.clone()) };
    serde_json::to_string(&description).unwrap_or_default()
}

/// Reads golden's metadata back from a description; anything else (free text, other JSON) is
/// not golden's and gives `None`.
pub fn meta_from_description(description: &str) -> Option<GoldenMeta> {
    serde_json::from_str::<MetaDescription>(description).ok().map(|d| d.golden)
}

/// golden's metadata in a base VM's annotation, with the item it was deployed from if named.
pub fn marks_from_annotation(annotation: &str) -> Option<(GoldenMeta, Option<ItemRef>)> {
    serde_json::from_str::<MetaDescription>(annotation).ok().map(|d| (d.golden, d.item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ImageName, VersionName};

    #[test]
    fn a_deployment_annotation_names_the_version_and_the_item() {
        let meta = GoldenMeta {
            image: ImageName::new("win11-ent"),
            version: VersionName::new("2026.10"),
            source: "library_item:win11-2026.10".into(),
        };
        let item = ItemRef {
            id: crate::live::ItemId::new("5e3c-item"),
            name: "win11-ent-2026.10".into(),
            kind: "ovf".into(),
        };
        let text = deployment_annotation(&meta, &item);
        assert_eq!(meta_from_description(&text), Some(meta.clone()));
        assert_eq!(marks_from_annotation(&text), Some((meta.clone(), Some(item))));
        // A description (no item) names no item; free text names nothing.
        assert_eq!(marks_from_annotation(&meta_to_description(&meta)), Some((meta, None)));
        assert_eq!(marks_from_annotation("built by Packer"), None);
    }

    #[test]
    fn metadata_round_trips_through_a_description() {
        let meta = GoldenMeta {
            image: ImageName::new("win11-ent"),
            version: VersionName::new("2026.10"),
            source: "vm:win11-build@sealed \"q\"".into(),
        };
        let text = meta_to_description(&meta);
        assert_eq!(
            text,
            r#"{"golden":{"image":"win11-ent","version":"2026.10","source":"vm:win11-build@sealed \"q\""}}"#
        );
        assert_eq!(meta_from_description(&text), Some(meta));
        assert_eq!(meta_from_description("golden image win11"), None);
        assert_eq!(
            meta_from_description(r#"{"golden":{"image":"a","version":"b","source":"c"},"x":1}"#),
            None
        );
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let site = SiteName::new("hq");
        let http = |status, kind: Option<&str>| VcenterError::Http {
            site: site.clone(),
            operation: "x".into(),
            status,
            kind: kind.map(str::to_owned),
            message: None,
        };
        assert!(http(503, None).is_retryable());
        assert!(http(400, Some("com.vmware.vapi.std.errors.service_unavailable")).is_retryable());
        assert!(!http(400, Some("com.vmware.vapi.std.errors.already_exists")).is_retryable());
        let ended = http(401, Some("com.vmware.vapi.std.errors.unauthenticated"));
        assert!(ended.is_retryable() && ended.had_no_effect());
        let fault = |fault: &str| VcenterError::Fault {
            site: site.clone(),
            operation: "x".into(),
            fault: fault.into(),
            message: String::new(),
        };
        assert!(fault("NotAuthenticated").is_retryable() && fault("NotAuthenticated").had_no_effect());
        assert!(!fault("InvalidState").is_retryable());
        assert!(!VcenterError::Login { site, user: "u".into() }.is_retryable());
    }
}
