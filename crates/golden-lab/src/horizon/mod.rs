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
    #[serde(default)]
    pub push: Option<Push>,
    /// The pending image whose publish failed; shown until it is cancelled.
    #[serde(default)]
    pub failed: Option<FailedImage>,
    /// When set, the next push fails its publish with this message.
    #[serde(default)]
    pub fail_next_push: Option<String>,
    #[serde(default)]
    pub last_provisioning_error: Option<String>,
    #[serde(default)]
    pub last_provisioning_error_time: Option<i64>,
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
        let apply_begin = publish_end.max(self.start());
        let done = apply_begin + apply_ms;
        if now >= done { Phase::Done { at: done } } else { Phase::Ready { applying: now >= apply_begin } }
    }

    /// Whether the schedule has not fired yet, so it may still be cancelled or rescheduled.
    pub fn not_started(&self, now: i64) -> bool {
        self.cancelled_at.is_none() && now < self.start()
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
            },
        );
        id
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
                    if let (Some(vm), Some(snapshot)) = (&push.parent_vm_id, &push.snapshot_id) {
                        pool.parent_vm_id = vm.clone();
                        pool.base_snapshot_id = snapshot.clone();
                    }
                    pool.push = None;
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
                Phase::Cancelled => pool.push = None,
                Phase::PendingPublish | Phase::Publishing(_) | Phase::Ready { .. } | Phase::Cancelling => {}
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
