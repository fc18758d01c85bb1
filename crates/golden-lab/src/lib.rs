//! The lab: simulated vCenter and Horizon endpoints on loopback.
//!
//! Every vCenter of a repository gets an HTTP endpoint (vSphere REST `/rest` and SOAP `/sdk`),
//! and every site a Horizon Connection Server (`/rest`), both speaking the same wire format as the real
//! products for the subset golden uses. golden's own clients talk to it exactly as they talk to
//! production, so `golden demo`, the examples and the tests need no VMware software.
//!
//! All vCenters and sites live in one [`LabState`] behind one lock: cross-vCenter behaviour (a
//! subscribed library replicating from another vCenter's published library) is a plain read of
//! another vCenter. Sites whose golden.toml names one vCenter URL share one simulated vCenter,
//! each in its own datacenter.
//! Asynchronous behaviour is computed lazily from the wall clock and [`Timings`], so the state
//! is plain data that can be saved to a file and resumed.
//!
//! - [`vcenter`]: the vCenter simulator (inventory, Content Library, tags, SOAP calls).
//! - [`horizon`]: the Horizon simulator (auth, pools, farms, their machines and sessions, the
//!   push-image state machine, selective push).
//! - [`server`]: binding, per-request latency, request counters and fault injection.
//! - [`chaos`]: random faults from a seed (503, 429, dropped connections, expiry, slowness).
//! - [`seed`]: building a lab from a repository's desired state.
//! - [`remote`]: Horizon in front of a vCenter the lab does not simulate (vcsim in the tests).

pub mod chaos;
mod clock;
pub mod horizon;
pub mod remote;
pub mod seed;
pub mod server;
pub mod vcenter;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use chaos::{Chaos, FaultKind};
pub use server::{CONTROL_TOKEN_HEADER, Endpoint, Lab, LabOptions, Product};

/// User name and password the lab accepts on every endpoint (Horizon also wants the domain).
pub const LAB_USER: &str = "golden-lab";
pub const LAB_PASSWORD: &str = "lab-password";
pub const LAB_DOMAIN: &str = "LAB";

/// How long the lab's asynchronous operations take, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// A subscribed library sync (per item) and a PULL file transfer.
    pub library_sync_ms: u64,
    /// Horizon publishing a pushed image (PENDING_PUBLISH → PUBLISHING → READY).
    pub push_publish_ms: u64,
    /// Horizon recreating machines on the new image (READY → current image swapped).
    pub push_apply_ms: u64,
    /// Lifetime of a Horizon access token.
    pub token_ttl_ms: u64,
    /// Capturing a VM as a library item (the OVF export): the item is listed at once, its
    /// files when the export is done.
    #[serde(default)]
    pub capture_ms: u64,
    /// Deploying a library item as a VM.
    #[serde(default)]
    pub deploy_ms: u64,
    /// Preparing a file of a download session (`PREPARING` → `PREPARED`).
    #[serde(default)]
    pub prepare_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            library_sync_ms: 300,
            push_publish_ms: 400,
            push_apply_ms: 400,
            token_ttl_ms: 30 * 60 * 1000,
            capture_ms: 100,
            deploy_ms: 100,
            prepare_ms: 50,
        }
    }
}

impl Timings {
    /// Everything instant (but still through the same state machines): for fast tests.
    pub fn instant() -> Self {
        Timings {
            library_sync_ms: 0,
            push_publish_ms: 0,
            push_apply_ms: 0,
            capture_ms: 0,
            deploy_ms: 0,
            prepare_ms: 0,
            ..Timings::default()
        }
    }
}

/// The whole lab: the simulated vCenters and every site's Horizon.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LabState {
    /// Every simulated vCenter, by name. Several sites may share one, each in a datacenter of
    /// its own, as one vCenter with a datacenter per Horizon pod often is in production.
    pub vcenters: BTreeMap<String, VcenterLab>,
    pub sites: BTreeMap<String, SiteLab>,
    pub timings: Timings,
}

impl LabState {
    /// The vCenter `site`'s datacenter is in.
    pub fn vcenter_of(&self, site: &str) -> Option<&vcenter::VcenterSim> {
        Some(&self.vcenters.get(&self.sites.get(site)?.vcenter)?.sim)
    }

    /// [`Self::vcenter_of`], to change.
    pub fn vcenter_of_mut(&mut self, site: &str) -> Option<&mut vcenter::VcenterSim> {
        let name = self.sites.get(site)?.vcenter.clone();
        Some(&mut self.vcenters.get_mut(&name)?.sim)
    }
}

/// One simulated vCenter and the URL it is served at.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VcenterLab {
    pub name: String,
    pub sim: vcenter::VcenterSim,
    /// The base URL the endpoint is served at (set when the lab binds), so that one vCenter
    /// can resolve another's publish URL.
    pub url: Option<String>,
}

/// One site: a datacenter of a vCenter, and the Horizon pod whose desktops it hosts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteLab {
    pub name: String,
    /// The vCenter (a key of [`LabState::vcenters`]) the site's datacenter is in.
    pub vcenter: String,
    /// The moref of the site's datacenter in that vCenter.
    pub datacenter: String,
    pub horizon: horizon::HorizonSim,
    /// The base URL the Horizon endpoint is served at (set when the lab binds).
    pub horizon_url: Option<String>,
}

/// The lab state shared by every endpoint's handlers. Handlers that only read (property reads,
/// listings) share it; the others have it to themselves. A poisoned lock (a handler panicked)
/// is recovered: the state is plain data and every handler leaves it consistent before it can
/// panic.
#[derive(Clone, Debug, Default)]
pub struct Shared(Arc<RwLock<LabState>>);

impl Shared {
    pub fn new(state: LabState) -> Shared {
        Shared(Arc::new(RwLock::new(state)))
    }

    /// The lab, to change.
    pub fn lock(&self) -> RwLockWriteGuard<'_, LabState> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The lab, to read alongside other readers.
    pub fn read(&self) -> RwLockReadGuard<'_, LabState> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Axum state of one endpoint: the lab plus what it serves, a site (a Horizon endpoint) or a
/// vCenter (a vCenter endpoint), by name.
#[derive(Clone, Debug)]
pub struct SiteCtx {
    pub lab: Shared,
    pub name: String,
}

impl SiteCtx {
    /// The lab, to change.
    pub fn lock(&self) -> RwLockWriteGuard<'_, LabState> {
        self.lab.lock()
    }

    /// The lab, to read.
    pub fn read(&self) -> RwLockReadGuard<'_, LabState> {
        self.lab.read()
    }
}

/// Milliseconds since the Unix epoch: the lab's clock, and Horizon's timestamp unit.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
