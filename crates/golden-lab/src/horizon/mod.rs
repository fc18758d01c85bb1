//! The lab's Horizon Connection Server: the subset of the Horizon Server REST API golden uses,
//! built strictly from VMware's documentation of that API (request and answer shapes, the push
//! image state machine `PENDING_PUBLISH` → `PUBLISHING` → `READY`, and the documented refusals).
//!
//! The model here is plain data (it is saved with the rest of the lab and resumed): pools and
//! farms with their current image, the one push or maintenance in flight per pool, and the
//! login sessions. Nothing runs in the background. A push records when it was scheduled, and
//! every request first [`HorizonSim::settle`]s the pod at the wall clock: the phase of a push
//! (`PENDING_PUBLISH` → `PUBLISHING` → `READY` → machines recreated) is a pure function of
//! that record, the clock and [`Timings`]; a push that has ended is folded into the pool
//! (image swapped, or failure recorded) on the next request. [`HorizonSim::fast_forward`]
//! moves a pod's clock forward, so tests can walk through the phases without sleeping.
//!
//! A pod runs one Horizon version ([`HorizonSim::version`], default [`DEFAULT_VERSION`]), which
//! its monitor reports and which decides the resource versions it serves, as the documentation
//! dates them: `/monitor/connection-servers` from 7.10, `/inventory/v1/desktop-pools` and
//! `/inventory/v1/farms` from 7.12, `/inventory/v2/desktop-pools` and
//! `/monitor/v1/connection-servers` from 8.0 (2006), the pool push image actions from 8.1
//! (2012), `/inventory/v2/farms` from 8.2 (2103), the farm maintenance actions from 8.4 (2111).
//! An older pod answers those with 404, as a server without the resource does.
//!
//! Every pool has machines (a farm: RDS servers), each an instant clone of the image it was
//! made from, with the user sessions on it ([`Machine`]). Horizon lists them through
//! `/inventory/v1/machines` (8.0), `/inventory/v2/machines` (8.1, 2012, whose
//! `managed_machine_data` names each machine's base VM and snapshot and its pending ones),
//! `/inventory/v1/rds-servers` (2012) and `/inventory/v1/sessions` (8.0), with filter and paging
//! from 2012 (sessions take a filter only from 2206). A push that ends recreates every machine
//! on the new image, except that under `WAIT_FOR_LOGOFF` a machine with a session keeps its
//! image (its pending image set) until the session ends, as Horizon waits for the user.
//!
//! A selective push (`/inventory/v2/.../schedule-push-image` with `selective_push_image` and
//! `machine_ids`, 2206) publishes the image and holds it as `READY_HELD`: only the listed
//! machines are recreated on it. `promote-pending-image` (2206, only while `READY_HELD`) then
//! gives it to the whole pool. Horizon's reference says a held image stays "unless it is
//! promoted or cancelled", but not through which call: the lab takes
//! `cancel-scheduled-push-image` for a held image at any time (golden's client sends that),
//! and puts the machines recreated on it back on the pool's current image.
//!
//! - `routes`: the HTTP surface (auth, inventory, actions, external inventory, lab controls).
//! - `view`: the JSON documents the API returns, rendered from this model.

mod routes;
mod view;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Timings;

pub use routes::router;

/// The Horizon version a pod runs unless told otherwise: 2312.
pub const DEFAULT_VERSION: &str = "8.12.0";

/// One simulated Horizon pod.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HorizonSim {
    /// The one vCenter this pod manages: Horizon's id for it (a UUID) and its server name.
    pub vcenter_id: String,
    pub vcenter_server: String,
    /// The Connection Server's version, as its monitor reports it (`8.12.0`); older versions
    /// lack newer resource versions (see the module documentation).
    #[serde(default = "default_version")]
    pub version: String,
    pub pools: BTreeMap<String, Pool>,
    /// Login sessions by refresh token.
    #[serde(default)]
    pub sessions: BTreeMap<String, Session>,
    /// Access tokens handed out by login and refresh.
    #[serde(default)]
    pub access_tokens: BTreeMap<String, AccessToken>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolKind {
    DesktopPool,
    Farm,
}

/// How a pool's machines are made: Horizon's `source`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolSource {
    #[default]
    InstantClone,
    LinkedClone,
    /// Automated full clones (Horizon has no `FULL_CLONE` source).
    VirtualCenter,
}

/// A desktop pool or farm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pool {
    pub id: String,
    pub kind: PoolKind,
    pub name: String,
    pub datacenter_id: String,
    /// The current image: `provisioning_settings.parent_vm_id` / `base_snapshot_id`.
    pub parent_vm_id: String,
    pub base_snapshot_id: String,
    #[serde(default)]
    pub source: PoolSource,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// `enable_provisioning`: while off, Horizon makes no machines.
    #[serde(default = "enabled")]
    pub provisioning: bool,
    /// The push image (pools) or immediate maintenance (farms) in flight.
    pub push: Option<Push>,
    /// The pending image whose publish failed; shown until it is cancelled.
    pub failed: Option<FailedImage>,
    /// When set, the next push fails its publish with this message.
    pub fail_next_push: Option<String>,
    pub last_provisioning_error: Option<String>,
    pub last_provisioning_error_time: Option<i64>,
    /// The machines of a desktop pool, or the RDS servers of a farm, by name.
    #[serde(default)]
    pub machines: Vec<Machine>,
    /// When set, the machines of the next selective push fail to be recreated with this
    /// message (`PROVISIONING_ERROR`, operation state `FAULT`).
    pub fail_next_canary: Option<String>,
}

/// A machine of a desktop pool, or an RDS server of a farm: an instant clone of the image it
/// was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub id: String,
    pub name: String,
    /// The image it was cloned from (`managed_machine_data.base_vm_id`, `base_vm_snapshot_id`).
    pub base_vm_id: String,
    pub base_snapshot_id: String,
    /// The user sessions on it: at most one on a desktop, any number on an RDS server.
    #[serde(default)]
    pub sessions: Vec<UserSession>,
    /// The image it is recreated from once its sessions end (a push that waits for logoff).
    pub pending: Option<(String, String)>,
    /// Why recreating it failed: the machine is in `PROVISIONING_ERROR`.
    pub error: Option<String>,
}

/// A user's session on a machine (`SessionInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    pub id: String,
    /// `CONNECTED` or `DISCONNECTED`.
    pub connected: bool,
}

fn enabled() -> bool {
    true
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

impl Default for HorizonSim {
    fn default() -> Self {
        HorizonSim {
            vcenter_id: String::new(),
            vcenter_server: String::new(),
            version: default_version(),
            pools: BTreeMap::new(),
            sessions: BTreeMap::new(),
            access_tokens: BTreeMap::new(),
        }
    }
}

/// A scheduled push image or farm maintenance, as requested.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The new image; `None` for a farm maintenance that only refreshes servers.
    pub parent_vm_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub logoff_policy: String,
    pub stop_on_first_error: bool,
    pub add_virtual_tpm: bool,
    /// `start_time` (pools) or `next_scheduled_time` (farms) as requested, epoch ms.
    pub start_time: Option<i64>,
    /// When the request was accepted.
    pub scheduled_at: i64,
    /// The publish of this push fails with this message.
    pub fail: Option<String>,
    /// When the push was cancelled.
    pub cancelled_at: Option<i64>,
    /// A selective push: the machines it recreates; the image is then held (`READY_HELD`)
    /// until promoted or cancelled.
    pub selective: Option<Vec<String>>,
    /// When a held image was promoted to the whole pool.
    pub promoted_at: Option<i64>,
    /// The selected machines fail to be recreated with this message.
    pub canary_fail: Option<String>,
}

/// Where the machines of a selective push are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canaries {
    /// Waiting for the start time.
    Waiting,
    /// Being recreated on the new image.
    Recreating,
    /// Recreated (or failed).
    Recreated,
}

/// A pending image left in state `FAILED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedImage {
    pub parent_vm_id: Option<String>,
    pub snapshot_id: Option<String>,
    pub error: String,
    pub at: i64,
}

/// A login: the refresh token's lifetime and who logged in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The session (refresh token) it belongs to; logout ends both.
    pub session: String,
    pub expires_ms: i64,
}

/// Where a push is at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Scheduled, clone creation not started: pending `PENDING_PUBLISH`.
    PendingPublish,
    /// Pending `PUBLISHING`, with progress in percent.
    Publishing(u8),
    /// Published; waiting for `start_time`, then machines are recreated. Pending `READY`.
    Ready {
        applying: bool,
    },
    /// A selective push published its image, which Horizon holds (`READY_HELD`) until it is
    /// promoted or cancelled; the selected machines are at `canaries`.
    Held {
        canaries: Canaries,
    },
    /// Cancel requested; operation `CANCEL_SCHEDULED_*`, pending image still shown.
    Cancelling,
    Cancelled,
    /// The publish failed at `at`.
    Failed {
        at: i64,
    },
    /// Machines recreated at `at`: the pending image is current.
    Done {
        at: i64,
    },
}

/// Refresh tokens outlive access tokens by this factor, as a session outlives one token.
const REFRESH_TTL_FACTOR: u64 = 4;

impl Push {
    /// When machines may be recreated: `start_time`, or now when unset or in the past.
    pub fn start(&self) -> i64 {
        self.start_time.unwrap_or(self.scheduled_at).max(self.scheduled_at)
    }

    /// The phase of this push at `now`. The first fifth of the publish time is spent in
    /// `PENDING_PUBLISH`; a maintenance without a new image has no publish at all. A cancel
    /// takes half the apply time (`CANCEL_SCHEDULED_*`), then the push is gone.
    pub fn phase(&self, now: i64, timings: &Timings) -> Phase {
        let apply_ms = timings.push_apply_ms as i64;
        if let Some(at) = self.cancelled_at {
            return if now < at + apply_ms / 2 { Phase::Cancelling } else { Phase::Cancelled };
        }
        self.scheduled_phase(now, timings)
    }

    /// The phase at `now` as if the push had not been cancelled.
    pub fn scheduled_phase(&self, now: i64, timings: &Timings) -> Phase {
        let publish_ms = if self.parent_vm_id.is_some() { timings.push_publish_ms as i64 } else { 0 };
        let apply_ms = timings.push_apply_ms as i64;
        let publish_begin = self.scheduled_at + publish_ms / 5;
        let publish_end = self.scheduled_at + publish_ms;
        if now < publish_begin {
            return Phase::PendingPublish;
        }
        if now < publish_end {
            let span = (publish_end - publish_begin).max(1);
            let progress = ((now - publish_begin) * 100 / span).clamp(0, 99);
            return Phase::Publishing(progress as u8);
        }
        if self.fail.is_some() {
            return Phase::Failed { at: publish_end };
        }
        let apply_begin = match (&self.selective, self.promoted_at) {
            (Some(_), None) => {
                let begin = publish_end.max(self.start());
                let canaries = if now < begin {
                    Canaries::Waiting
                } else if now < begin + apply_ms {
                    Canaries::Recreating
                } else {
                    Canaries::Recreated
                };
                return Phase::Held { canaries };
            }
            // The rest of the pool is recreated from the promotion on.
            (Some(_), Some(promoted)) => promoted.max(publish_end),
            (None, _) => publish_end.max(self.start()),
        };
        let done = apply_begin + apply_ms;
        if now >= done { Phase::Done { at: done } } else { Phase::Ready { applying: now >= apply_begin } }
    }

    /// Whether the schedule has not fired yet, so it may still be cancelled or rescheduled.
    pub fn not_started(&self, now: i64) -> bool {
        self.cancelled_at.is_none() && now < self.start()
    }

    /// Whether this is a selective push whose image is held, not promoted.
    pub fn held(&self) -> bool {
        self.selective.is_some() && self.promoted_at.is_none() && self.cancelled_at.is_none()
    }

    /// The new image, when the push has one.
    fn image(&self) -> Option<(String, String)> {
        Some((self.parent_vm_id.clone()?, self.snapshot_id.clone()?))
    }

    /// Whether `machine` is one this push recreates now: every machine, or for a held
    /// selective push the selected ones.
    pub fn selects(&self, machine: &str) -> bool {
        match &self.selective {
            Some(ids) if self.promoted_at.is_none() => ids.iter().any(|id| id == machine),
            _ => true,
        }
    }
}

impl Machine {
    /// A machine with no session, cloned from `vm` and `snapshot`.
    pub fn new(name: &str, vm: &str, snapshot: &str) -> Machine {
        Machine {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            base_vm_id: vm.to_owned(),
            base_snapshot_id: snapshot.to_owned(),
            sessions: Vec::new(),
            pending: None,
            error: None,
        }
    }

    /// Whether it runs the image `(vm, snapshot)`.
    pub fn runs(&self, image: &(String, String)) -> bool {
        self.base_vm_id == image.0 && self.base_snapshot_id == image.1
    }

    /// Recreates it on `image`: under `WAIT_FOR_LOGOFF` a machine with sessions only gets the
    /// image as pending, to take once they end; otherwise its sessions are logged off.
    fn recreate(&mut self, image: &(String, String), logoff: &str) {
        if self.runs(image) && self.error.is_none() {
            self.pending = None;
            return;
        }
        if !self.sessions.is_empty() && logoff == "WAIT_FOR_LOGOFF" {
            self.pending = Some(image.clone());
            return;
        }
        self.sessions.clear();
        self.base_vm_id = image.0.clone();
        self.base_snapshot_id = image.1.clone();
        self.pending = None;
        self.error = None;
    }

    /// Takes a pending image once no session is left.
    fn take_pending(&mut self) {
        if self.sessions.is_empty() {
            if let Some((vm, snapshot)) = self.pending.take() {
                self.base_vm_id = vm;
                self.base_snapshot_id = snapshot;
                self.error = None;
            }
        }
    }
}

impl HorizonSim {
    pub fn new(vcenter_id: &str, vcenter_server: &str) -> HorizonSim {
        HorizonSim {
            vcenter_id: vcenter_id.into(),
            vcenter_server: vcenter_server.into(),
            ..HorizonSim::default()
        }
    }

    /// Adds an instant-clone desktop pool or farm running the given image. Returns its id.
    pub fn add_pool(
        &mut self,
        kind: PoolKind,
        name: &str,
        datacenter_id: &str,
        vm: &str,
        snapshot: &str,
    ) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.pools.insert(
            id.clone(),
            Pool {
                id: id.clone(),
                kind,
                name: name.into(),
                datacenter_id: datacenter_id.into(),
                parent_vm_id: vm.into(),
                base_snapshot_id: snapshot.into(),
                source: PoolSource::InstantClone,
                enabled: true,
                provisioning: true,
                push: None,
                failed: None,
                fail_next_push: None,
                last_provisioning_error: None,
                last_provisioning_error_time: None,
                machines: Vec::new(),
                fail_next_canary: None,
            },
        );
        id
    }

    /// Gives a pool `machines` machines (RDS servers for a farm) and `sessions` user
    /// sessions on them. Machines kept keep their image and id; new ones (named after the
    /// pool, `<name>-001`, ...) run the pool's current image. Sessions go to the first
    /// machines by name, one each on a desktop pool, round-robin on a farm's servers; every
    /// third one is disconnected. A machine whose last session ends takes its pending image.
    pub fn set_occupancy(&mut self, pool_id: &str, machines: u32, sessions: u32) -> Result<(), String> {
        let pool = self.pools.get_mut(pool_id).ok_or_else(|| format!("no pool or farm with id {pool_id}"))?;
        if pool.kind == PoolKind::DesktopPool && sessions > machines {
            return Err(format!(
                "desktop pool {} cannot hold {sessions} sessions on {machines} machines",
                pool.name
            ));
        }
        if machines == 0 && sessions > 0 {
            return Err(format!("farm {} has no RDS server to hold sessions", pool.name));
        }
        pool.machines.sort_by(|a, b| a.name.cmp(&b.name));
        pool.machines.truncate(machines as usize);
        let prefix = pool.name.to_lowercase();
        let mut n = pool.machines.len();
        while pool.machines.len() < machines as usize {
            n += 1;
            let name = format!("{prefix}-{n:03}");
            if pool.machines.iter().any(|m| m.name == name) {
                continue;
            }
            pool.machines.push(Machine::new(&name, &pool.parent_vm_id, &pool.base_snapshot_id));
        }
        pool.machines.sort_by(|a, b| a.name.cmp(&b.name));
        for machine in &mut pool.machines {
            machine.sessions.clear();
        }
        let count = pool.machines.len().max(1);
        for s in 0..sessions as usize {
            if let Some(machine) = pool.machines.get_mut(s % count) {
                let id = uuid::Uuid::new_v4().to_string();
                machine.sessions.push(UserSession { id, connected: s % 3 != 2 });
            }
        }
        for machine in &mut pool.machines {
            machine.take_pending();
        }
        Ok(())
    }

    /// Makes the machines of the next selective push of a pool fail to be recreated.
    pub fn fail_next_canary(&mut self, pool_id: &str, error: &str) -> bool {
        match self.pools.get_mut(pool_id) {
            Some(pool) => {
                pool.fail_next_canary = Some(error.to_owned());
                true
            }
            None => false,
        }
    }

    /// Whether the pod runs Horizon `major.minor` or later. A version that does not read as
    /// `major.minor[.patch]` is [`DEFAULT_VERSION`].
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let parse = |text: &str| -> Option<(u32, u32)> {
            let mut parts = text.trim().split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        };
        let current = parse(&self.version).or_else(|| parse(DEFAULT_VERSION)).unwrap_or((u32::MAX, 0));
        current >= (major, minor)
    }

    /// The id of the pool or farm named `name`.
    pub fn pool_id(&self, name: &str) -> Option<String> {
        self.pools.values().find(|p| p.name == name).map(|p| p.id.clone())
    }

    /// Makes the next push (or maintenance with an image) of a pool fail its publish.
    pub fn fail_next_push(&mut self, pool_id: &str, error: &str) -> bool {
        match self.pools.get_mut(pool_id) {
            Some(pool) => {
                pool.fail_next_push = Some(error.to_owned());
                true
            }
            None => false,
        }
    }

    /// Folds every push that has ended by `now` into its pool: on success the pending image
    /// becomes current; on failure the pending image stays as `FAILED` with the error, also
    /// recorded as the last provisioning error; a cancelled push vanishes.
    pub fn settle(&mut self, now: i64, timings: &Timings) {
        for pool in self.pools.values_mut() {
            let Some(push) = &pool.push else { continue };
            match push.phase(now, timings) {
                Phase::Done { .. } => {
                    if let Some(image) = push.image() {
                        for machine in &mut pool.machines {
                            machine.recreate(&image, &push.logoff_policy);
                        }
                        (pool.parent_vm_id, pool.base_snapshot_id) = image;
                    } else {
                        // A maintenance without a new image refreshes servers on the current one.
                        let current = (pool.parent_vm_id.clone(), pool.base_snapshot_id.clone());
                        for machine in &mut pool.machines {
                            machine.recreate(&current, &push.logoff_policy);
                        }
                    }
                    pool.push = None;
                }
                Phase::Held { canaries: Canaries::Recreated } => {
                    // Once: a selected machine already recreated (or failed) is left alone.
                    let Some(image) = push.image() else { continue };
                    for machine in pool.machines.iter_mut().filter(|m| push.selects(&m.id)) {
                        if machine.runs(&image) || machine.error.is_some() || machine.pending.is_some() {
                            continue;
                        }
                        match &push.canary_fail {
                            Some(error) => {
                                machine.error = Some(error.clone());
                                machine.pending = Some(image.clone());
                            }
                            None => machine.recreate(&image, &push.logoff_policy),
                        }
                    }
                }
                Phase::Failed { at } => {
                    let error = push.fail.clone().unwrap_or_default();
                    pool.failed = Some(FailedImage {
                        parent_vm_id: push.parent_vm_id.clone(),
                        snapshot_id: push.snapshot_id.clone(),
                        error: error.clone(),
                        at,
                    });
                    pool.last_provisioning_error = Some(error);
                    pool.last_provisioning_error_time = Some(at);
                    pool.push = None;
                }
                Phase::Cancelled => {
                    // Machines recreated on a cancelled (held) image go back to the current one.
                    let current = (pool.parent_vm_id.clone(), pool.base_snapshot_id.clone());
                    if let Some(image) = push.image() {
                        for machine in &mut pool.machines {
                            if machine.runs(&image) || machine.error.is_some() {
                                machine.recreate(&current, "FORCE_LOGOFF");
                            }
                            machine.pending = None;
                        }
                    }
                    pool.push = None;
                }
                Phase::PendingPublish
                | Phase::Publishing(_)
                | Phase::Ready { .. }
                | Phase::Held { .. }
                | Phase::Cancelling => {}
            }
        }
    }

    /// Moves this pod's clock `ms` forward: every recorded instant (schedules, token expiry)
    /// moves back by `ms`. The next request then sees the pod as it will be `ms` from now.
    pub fn fast_forward(&mut self, ms: i64) {
        for pool in self.pools.values_mut() {
            if let Some(push) = &mut pool.push {
                push.scheduled_at -= ms;
                push.start_time = push.start_time.map(|t| t - ms);
                push.cancelled_at = push.cancelled_at.map(|t| t - ms);
                push.promoted_at = push.promoted_at.map(|t| t - ms);
            }
        }
        for session in self.sessions.values_mut() {
            session.expires_ms -= ms;
        }
        for token in self.access_tokens.values_mut() {
            token.expires_ms -= ms;
        }
    }

    /// Logs a user in: a new session and its first access token. Returns (access, refresh).
    pub fn login(&mut self, user: &str, now: i64, timings: &Timings) -> (String, String) {
        self.access_tokens.retain(|_, t| t.expires_ms > now);
        self.sessions.retain(|_, s| s.expires_ms > now);
        let refresh = new_token();
        let refresh_ttl = timings.token_ttl_ms.saturating_mul(REFRESH_TTL_FACTOR) as i64;
        self.sessions
            .insert(refresh.clone(), Session { user: user.to_owned(), expires_ms: now + refresh_ttl });
        let access = self.issue_access(&refresh, now, timings);
        (access, refresh)
    }

    /// A new access token for a live session, or `None` when the refresh token is not valid.
    pub fn refresh(&mut self, refresh_token: &str, now: i64, timings: &Timings) -> Option<String> {
        let live = self.sessions.get(refresh_token).is_some_and(|s| s.expires_ms > now);
        live.then(|| self.issue_access(refresh_token, now, timings))
    }

    /// Ends a session and every access token issued under it. False if there was none.
    pub fn logout(&mut self, refresh_token: &str) -> bool {
        self.access_tokens.retain(|_, t| t.session != refresh_token);
        self.sessions.remove(refresh_token).is_some()
    }

    /// Whether `token` is a live access token.
    pub fn authorized(&self, token: &str, now: i64) -> bool {
        self.access_tokens.get(token).is_some_and(|t| t.expires_ms > now)
    }

    /// Invalidates every access token (sessions stay, so refresh works): token expiry.
    pub fn expire_access_tokens(&mut self) {
        self.access_tokens.clear();
    }

    /// Invalidates every access and refresh token: the next client call must log in again.
    pub fn expire_sessions(&mut self) {
        self.access_tokens.clear();
        self.sessions.clear();
    }

    fn issue_access(&mut self, session: &str, now: i64, timings: &Timings) -> String {
        let token = new_token();
        self.access_tokens.insert(
            token.clone(),
            AccessToken { session: session.to_owned(), expires_ms: now + timings.token_ttl_ms as i64 },
        );
        token
    }
}

/// An opaque random token. Real servers hand out JWTs; clients must not look inside.
fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timings() -> Timings {
        Timings { push_publish_ms: 1000, push_apply_ms: 1000, ..Timings::instant() }
    }

    fn push(start_time: Option<i64>) -> Push {
        Push {
            parent_vm_id: Some("vm-2".into()),
            snapshot_id: Some("snapshot-3".into()),
            logoff_policy: "WAIT_FOR_LOGOFF".into(),
            stop_on_first_error: true,
            add_virtual_tpm: false,
            start_time,
            scheduled_at: 10_000,
            fail: None,
            cancelled_at: None,
            selective: None,
            promoted_at: None,
            canary_fail: None,
        }
    }

    #[test]
    fn a_push_walks_through_the_documented_phases() {
        let t = timings();
        let p = push(None);
        assert_eq!(p.phase(10_000, &t), Phase::PendingPublish);
        assert_eq!(p.phase(10_200, &t), Phase::Publishing(0));
        assert_eq!(p.phase(10_600, &t), Phase::Publishing(50));
        assert_eq!(p.phase(11_000, &t), Phase::Ready { applying: true });
        assert_eq!(p.phase(12_000, &t), Phase::Done { at: 12_000 });
        // A later start time holds the published image as READY until then.
        let later = push(Some(20_000));
        assert_eq!(later.phase(15_000, &t), Phase::Ready { applying: false });
        assert_eq!(later.phase(20_500, &t), Phase::Ready { applying: true });
        assert_eq!(later.phase(21_000, &t), Phase::Done { at: 21_000 });
        assert!(later.not_started(19_999) && !later.not_started(20_000));
    }

    #[test]
    fn instant_timings_finish_at_once_and_failures_end_the_publish() {
        let p = push(None);
        assert_eq!(p.phase(10_000, &Timings::instant()), Phase::Done { at: 10_000 });
        let failing = Push { fail: Some("disk full".into()), ..push(None) };
        assert_eq!(failing.phase(10_999, &timings()), Phase::Publishing(99));
        assert_eq!(failing.phase(11_000, &timings()), Phase::Failed { at: 11_000 });
        let cancelled = Push { cancelled_at: Some(10_100), ..push(Some(50_000)) };
        assert_eq!(cancelled.phase(10_100, &timings()), Phase::Cancelling);
        assert_eq!(cancelled.phase(10_600, &timings()), Phase::Cancelled);
    }

    #[test]
    fn settling_swaps_the_image_or_records_the_failure() {
        let mut sim = HorizonSim::new("vc", "vc.lab");
        let ok = sim.add_pool(PoolKind::DesktopPool, "A", "datacenter-2", "vm-1", "snapshot-1");
        let bad = sim.add_pool(PoolKind::Farm, "B", "datacenter-2", "vm-1", "snapshot-1");
        for id in [&ok, &bad] {
            sim.pools.get_mut(id).expect("pool").push = Some(push(None));
        }
        sim.pools.get_mut(&bad).expect("pool").push.as_mut().expect("push").fail = Some("no space".into());
        sim.settle(10_500, &timings());
        assert!(sim.pools.values().all(|p| p.push.is_some()), "still publishing");
        sim.settle(12_000, &timings());
        let ok = &sim.pools[&ok];
        assert_eq!((ok.parent_vm_id.as_str(), ok.base_snapshot_id.as_str()), ("vm-2", "snapshot-3"));
        assert!(ok.push.is_none() && ok.failed.is_none());
        let bad = &sim.pools[&bad];
        assert_eq!(bad.parent_vm_id, "vm-1");
        assert_eq!(bad.failed.as_ref().map(|f| f.error.as_str()), Some("no space"));
        assert_eq!(bad.last_provisioning_error.as_deref(), Some("no space"));
    }

    #[test]
    fn a_selective_push_holds_its_image_recreates_the_selected_machines_then_the_rest() {
        let t = timings();
        let mut sim = HorizonSim::new("vc", "vc.lab");
        let id = sim.add_pool(PoolKind::DesktopPool, "A", "datacenter-2", "vm-1", "snapshot-1");
        sim.set_occupancy(&id, 3, 1).expect("occupancy");
        let pool = &sim.pools[&id];
        let (busy, canary) = (pool.machines[0].id.clone(), pool.machines[2].id.clone());
        let selective = Push { selective: Some(vec![canary.clone()]), ..push(None) };
        assert_eq!(selective.phase(11_000, &t), Phase::Held { canaries: Canaries::Recreating });
        assert_eq!(selective.phase(90_000, &t), Phase::Held { canaries: Canaries::Recreated });
        sim.pools.get_mut(&id).expect("pool").push = Some(selective);
        sim.settle(12_000, &t);
        let pool = &sim.pools[&id];
        let on_new: Vec<&str> = pool
            .machines
            .iter()
            .filter(|m| m.base_snapshot_id == "snapshot-3")
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(on_new, [canary.as_str()], "only the selected machine");
        assert_eq!(pool.base_snapshot_id, "snapshot-1", "the pool's image is held, not current");

        // Promoted: the rest follow; the machine with a session waits for its user to log off.
        sim.pools.get_mut(&id).and_then(|p| p.push.as_mut()).expect("push").promoted_at = Some(12_000);
        sim.settle(13_000, &t);
        let pool = &sim.pools[&id];
        assert_eq!(pool.base_snapshot_id, "snapshot-3");
        let waiting: Vec<&str> =
            pool.machines.iter().filter(|m| m.pending.is_some()).map(|m| m.id.as_str()).collect();
        assert_eq!(waiting, [busy.as_str()]);
        sim.set_occupancy(&id, 3, 0).expect("the user logs off");
        assert!(
            sim.pools[&id].machines.iter().all(|m| m.base_snapshot_id == "snapshot-3" && m.pending.is_none())
        );
    }

    #[test]
    fn a_failed_canary_is_recorded_and_a_cancel_puts_the_machines_back() {
        let t = timings();
        let mut sim = HorizonSim::new("vc", "vc.lab");
        let id = sim.add_pool(PoolKind::DesktopPool, "A", "datacenter-2", "vm-1", "snapshot-1");
        sim.set_occupancy(&id, 2, 0).expect("occupancy");
        let ids: Vec<String> = sim.pools[&id].machines.iter().map(|m| m.id.clone()).collect();
        let failing = Push {
            selective: Some(vec![ids[0].clone()]),
            canary_fail: Some("sysprep failed".into()),
            ..push(None)
        };
        sim.pools.get_mut(&id).expect("pool").push = Some(failing);
        sim.settle(12_000, &t);
        let machine = &sim.pools[&id].machines[0];
        assert_eq!(
            (machine.error.as_deref(), machine.base_snapshot_id.as_str()),
            (Some("sysprep failed"), "snapshot-1")
        );
        // Cancelled while held: the push goes, the machine is recreated on the current image.
        let push = sim.pools.get_mut(&id).and_then(|p| p.push.as_mut()).expect("push");
        assert!(push.held());
        push.cancelled_at = Some(12_000);
        sim.settle(13_000, &t);
        let pool = &sim.pools[&id];
        assert!(pool.push.is_none());
        assert!(pool.machines.iter().all(|m| m.error.is_none() && m.base_snapshot_id == "snapshot-1"));
    }

    #[test]
    fn the_version_orders_by_major_then_minor() {
        let mut sim = HorizonSim::new("vc", "vc.lab");
        assert_eq!(sim.version, DEFAULT_VERSION);
        assert!(sim.at_least(8, 2) && sim.at_least(8, 12) && !sim.at_least(8, 13));
        sim.version = "8.1.0".into();
        assert!(sim.at_least(8, 0) && !sim.at_least(8, 2));
        sim.version = "7.13.1".into();
        assert!(sim.at_least(7, 12) && !sim.at_least(8, 0));
        sim.version = "8.10.0".into();
        assert!(sim.at_least(8, 2), "10 > 2, not \"10\" < \"2\"");
        let old: HorizonSim =
            serde_json::from_str(r#"{"vcenter_id":"vc","vcenter_server":"vc.lab","pools":{}}"#)
                .expect("a saved lab from before versions");
        assert_eq!(old.version, DEFAULT_VERSION);
    }

    #[test]
    fn tokens_expire_refresh_and_log_out() {
        let t = Timings { token_ttl_ms: 100, ..Timings::instant() };
        let mut sim = HorizonSim::new("vc", "vc.lab");
        let (access, refresh) = sim.login("LAB\\u", 0, &t);
        assert!(sim.authorized(&access, 99));
        assert!(!sim.authorized(&access, 100));
        let again = sim.refresh(&refresh, 300, &t).expect("session outlives the token");
        assert!(sim.authorized(&again, 300));
        assert!(sim.refresh(&refresh, 400, &t).is_none(), "session over after 4 ttl");
        let (access, refresh) = sim.login("LAB\\u", 0, &t);
        assert!(sim.logout(&refresh));
        assert!(!sim.authorized(&access, 1));
        assert!(sim.refresh(&refresh, 1, &t).is_none());
    }
}
