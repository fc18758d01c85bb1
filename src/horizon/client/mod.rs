//! [`HorizonClient`]: one method per call golden makes. How a call reaches the server (tokens,
//! retries, paging, one HTTP exchange) is in `session.rs`.

mod session;

use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell};

use super::error::HorizonError;
use super::wire;
use super::{BaseSnapshot, BaseVm, HorizonVersion, Machine, PushSpec, VirtualCenter};
use crate::connect::{Credentials, RetryPolicy};
use crate::ids::SiteName;
use crate::live::{HorizonId, LivePool, Moref, Occupancy};

/// Farms named in a [`HorizonError::TooOld`]; more are counted.
const FARMS_NAMED: usize = 5;

/// A client of one site's Horizon Connection Server.
///
/// Logs in on first use and keeps the tokens. A resource call answered 401 refreshes the
/// access token once (logging in again if the refresh is refused) and is repeated once; of
/// several calls answered 401 at once, one refreshes and the others wait for its token. Every
/// call runs under the [`RetryPolicy`]: reads are retried after any transient failure, actions
/// (a push, a maintenance, their cancelling, logging out) only after failures that show the
/// first attempt had no effect, since Horizon would act twice or answer the second with an
/// error. Logging in is retried like a read: a second login only opens a second session. Clones share the session, so a clone can be moved
/// into a task. The Connection Server's version is read once, by the first read that needs
/// it ([`HorizonClient::version`]), and kept.
#[derive(Clone, Debug)]
pub struct HorizonClient {
    site: SiteName,
    base: url::Url,
    credentials: Credentials,
    http: reqwest::Client,
    retry: RetryPolicy,
    session: Arc<Mutex<session::Session>>,
    /// `None` inside: the server would not say (see [`HorizonClient::version`]).
    version: Arc<OnceCell<Option<HorizonVersion>>>,
}

impl HorizonClient {
    /// A client of the Horizon at `base_url` (the server root; `/rest/...` is appended).
    pub fn new(
        site: SiteName,
        base_url: url::Url,
        credentials: Credentials,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> HorizonClient {
        HorizonClient {
            site,
            base: base_url,
            credentials,
            http,
            retry,
            session: Arc::default(),
            version: Arc::default(),
        }
    }

    pub fn site(&self) -> &SiteName {
        &self.site
    }

    /// The version of the site's Connection Servers: the oldest, should they differ in the
    /// middle of an upgrade. Read once per client, then kept.
    ///
    /// Read from `/monitor/v1/connection-servers` (Horizon 8.0 and later); where that is
    /// missing (404: Horizon 7), from `/monitor/connection-servers` (7.10 and later).
    /// `Ok(None)` when the server will not say (the call is forbidden to the account, or no
    /// server reports a version golden can read): golden then reads as from a current server.
    pub async fn version(&self) -> Result<Option<HorizonVersion>, HorizonError> {
        self.version.get_or_try_init(|| self.read_version()).await.copied()
    }

    async fn read_version(&self) -> Result<Option<HorizonVersion>, HorizonError> {
        let what = "read the connection server version";
        let mut servers =
            self.monitor_connection_servers(what, &["monitor", "v1", "connection-servers"]).await;
        if matches!(&servers, Err(e) if e.status() == Some(StatusCode::NOT_FOUND)) {
            servers = self.monitor_connection_servers(what, &["monitor", "connection-servers"]).await;
        }
        let servers = match servers {
            Ok(servers) => servers,
            Err(e)
                if matches!(e, HorizonError::Decode { .. })
                    || matches!(e.status(), Some(StatusCode::FORBIDDEN | StatusCode::NOT_FOUND)) =>
            {
                tracing::warn!(site = %self.site, error = %e, "horizon does not say its version; reading it as a current one");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let version = servers
            .iter()
            .filter_map(|s| s.details.as_ref()?.version.as_deref())
            .filter_map(HorizonVersion::parse)
            .min();
        match version {
            Some(v) => tracing::debug!(site = %self.site, version = %v, "horizon connection server version"),
            None => {
                tracing::warn!(site = %self.site, "horizon reports no version; reading it as a current one")
            }
        }
        Ok(version)
    }

    async fn monitor_connection_servers(
        &self,
        what: &str,
        path: &[&str],
    ) -> Result<Vec<wire::ConnectionServerMonitor>, HorizonError> {
        Ok(self.get_json(what, path, Vec::new()).await?.0)
    }

    /// Every desktop pool and farm, sorted by name.
    ///
    /// How depends on the Connection Server's [`version`](Self::version), read alongside the
    /// desktop pools: from Horizon 8.2 (2103) farms come from `/inventory/v2/farms`. Horizon
    /// 8.0 and 8.1 have no v2 farms, and their v1 farms show no image, so `/inventory/v1/farms`
    /// only says whether the pod has any: none, and the desktop pools are the answer; some,
    /// and the read fails ([`HorizonError::TooOld`]) rather than leave out farms whose images
    /// golden must see (it never retires a base VM a farm still runs). Horizon 7 has no
    /// `/inventory/v2/desktop-pools`: [`HorizonError::TooOld`] too.
    pub async fn pools(&self) -> Result<Vec<LivePool>, HorizonError> {
        let (pools, farms) = futures::join!(self.desktop_pools(), self.farms_of_supported_server());
        // The version's verdict first: on Horizon 7 the desktop pools fail with a bare 404.
        let farms = farms?;
        let mut pools = pools?;
        pools.extend(farms);
        pools.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(pools)
    }

    /// The farms, as far as the server's version lets golden read them (see [`Self::pools`]);
    /// fails on a server golden cannot read desktop pools and farms from at all.
    async fn farms_of_supported_server(&self) -> Result<Vec<LivePool>, HorizonError> {
        let Some(version) = self.version().await? else { return self.farms().await };
        if version >= HorizonVersion::FARMS_V2 {
            return self.farms().await;
        }
        if version < HorizonVersion::DESKTOP_POOLS_V2 {
            let reason = format!(
                "golden reads desktop pools through /inventory/v2/desktop-pools, which came with horizon {}",
                HorizonVersion::DESKTOP_POOLS_V2
            );
            return Err(self.too_old("list desktop pools", version, reason));
        }
        let what = "list farms";
        let farms: Vec<wire::FarmV1> =
            self.get_json(what, &["inventory", "v1", "farms"], Vec::new()).await?.0;
        if farms.is_empty() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> =
            farms.iter().map(|f| format!("`{}`", f.name.as_deref().unwrap_or("?"))).collect();
        names.sort();
        let more = names.len().saturating_sub(FARMS_NAMED);
        names.truncate(FARMS_NAMED);
        let mut listed = names.join(", ");
        if more > 0 {
            listed.push_str(&format!(" and {more} more"));
        }
        let count = if farms.len() == 1 { "1 farm".to_owned() } else { format!("{} farms", farms.len()) };
        let reason = format!(
            "the pod has {count} ({listed}) whose images only /inventory/v2/farms shows, which came with horizon {}",
            HorizonVersion::FARMS_V2
        );
        Err(self.too_old(what, version, reason))
    }

    fn too_old(&self, what: &str, version: HorizonVersion, reason: String) -> HorizonError {
        self.older_than(HorizonVersion::MINIMUM, what, version, reason)
    }

    fn older_than(
        &self,
        minimum: HorizonVersion,
        what: &str,
        version: HorizonVersion,
        reason: String,
    ) -> HorizonError {
        HorizonError::TooOld { site: self.site.clone(), what: what.to_owned(), version, minimum, reason }
    }

    /// Every desktop pool (`/inventory/v2/desktop-pools`, 1,000 per page, Horizon 8.0 and
    /// later), sorted by name.
    pub async fn desktop_pools(&self) -> Result<Vec<LivePool>, HorizonError> {
        let pools: Vec<wire::DesktopPool> =
            self.list_paged(&["inventory", "v2", "desktop-pools"], "list desktop pools").await?;
        let mut pools: Vec<LivePool> = pools.into_iter().map(wire::DesktopPool::into_live).collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(pools)
    }

    /// Every farm (`/inventory/v2/farms`, 1,000 per page, Horizon 8.2 and later), sorted by
    /// name. [`Self::pools`] checks the version first.
    pub async fn farms(&self) -> Result<Vec<LivePool>, HorizonError> {
        let farms: Vec<wire::Farm> = self.list_paged(&["inventory", "v2", "farms"], "list farms").await?;
        let mut farms: Vec<LivePool> = farms.into_iter().map(wire::Farm::into_live).collect();
        farms.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(farms)
    }

    /// One desktop pool, for following a push.
    pub async fn desktop_pool(&self, id: &HorizonId) -> Result<LivePool, HorizonError> {
        let what = format!("read desktop pool `{id}`");
        let pool: wire::DesktopPool =
            self.get_json(&what, &["inventory", "v2", "desktop-pools", id.as_str()], Vec::new()).await?.0;
        Ok(pool.into_live())
    }

    /// One farm, for following a maintenance.
    pub async fn farm(&self, id: &HorizonId) -> Result<LivePool, HorizonError> {
        let what = format!("read farm `{id}`");
        let farm: wire::Farm =
            self.get_json(&what, &["inventory", "v2", "farms", id.as_str()], Vec::new()).await?.0;
        Ok(farm.into_live())
    }

    /// The vCenters this pod manages (`/config/v1/virtual-centers`).
    pub async fn virtual_centers(&self) -> Result<Vec<VirtualCenter>, HorizonError> {
        let vcs: Vec<wire::VirtualCenter> =
            self.get_json("list virtual centers", &["config", "v1", "virtual-centers"], Vec::new()).await?.0;
        Ok(vcs
            .into_iter()
            .map(|v| VirtualCenter {
                id: HorizonId::new(v.id),
                server_name: v.server_name.unwrap_or_default(),
                instance_uuid: v.instance_uuid,
                enabled: v.enabled.unwrap_or(true),
            })
            .collect())
    }

    /// The VMs of a vCenter Horizon offers as parent images (`/external/v1/base-vms`).
    pub async fn base_vms(&self, vcenter_id: &HorizonId) -> Result<Vec<BaseVm>, HorizonError> {
        let what = format!("list base vms of vcenter `{vcenter_id}`");
        let query = vec![("vcenter_id", vcenter_id.to_string())];
        let vms: Vec<wire::BaseVm> = self.get_json(&what, &["external", "v1", "base-vms"], query).await?.0;
        Ok(vms
            .into_iter()
            .map(|v| BaseVm {
                id: Moref::new(v.id),
                name: v.name.unwrap_or_default(),
                path: v.path.unwrap_or_default(),
                datacenter_id: v.datacenter_id.map(Moref::new),
                incompatible_reasons: v.incompatible_reasons.unwrap_or_default(),
            })
            .collect())
    }

    /// The snapshots of a base VM (`/external/v1/base-snapshots`).
    pub async fn base_snapshots(
        &self,
        vcenter_id: &HorizonId,
        vm: &Moref,
    ) -> Result<Vec<BaseSnapshot>, HorizonError> {
        let what = format!("list snapshots of base vm `{vm}`");
        let query = vec![("vcenter_id", vcenter_id.to_string()), ("base_vm_id", vm.to_string())];
        let snaps: Vec<wire::BaseSnapshot> =
            self.get_json(&what, &["external", "v1", "base-snapshots"], query).await?.0;
        Ok(snaps
            .into_iter()
            .map(|s| BaseSnapshot {
                id: Moref::new(s.id),
                name: s.name.unwrap_or_default(),
                path: s.path.unwrap_or_default(),
                created_ms: s.created_timestamp,
                incompatible_reasons: s.incompatible_reasons.unwrap_or_default(),
            })
            .collect())
    }

    /// Schedules a push of `spec.image` to an instant-clone desktop pool (204).
    ///
    /// Not sent again after a failure that may have reached Horizon (a timeout, a reset): once
    /// the push has started, a second one would be refused or push twice. Planning again sees
    /// the push under way.
    pub async fn push_image(&self, pool_id: &HorizonId, spec: &PushSpec) -> Result<(), HorizonError> {
        let body = wire::PushImageSpec {
            logoff_policy: wire::logoff_policy(spec.logoff),
            parent_vm_id: spec.image.vm.as_str(),
            snapshot_id: spec.image.snapshot.as_str(),
            start_time: spec.start_time_ms,
            stop_on_first_error: spec.stop_on_first_error,
        };
        let what = format!("schedule a push image to desktop pool `{pool_id}`");
        let path = ["inventory", "v1", "desktop-pools", pool_id.as_str(), "action", "schedule-push-image"];
        self.post(&what, &path, Some(&body)).await
    }

    /// Schedules a selective push of `spec.image` to `machines` of a desktop pool, the canaries
    /// of a rollout (`/inventory/v2/.../schedule-push-image` with `selective_push_image`,
    /// Horizon 2206 and later): Horizon publishes the image, holds it (`READY_HELD`) and
    /// recreates only those machines on it, until [`Self::promote_pending_image`] gives it to
    /// the whole pool or [`Self::cancel_push`] drops it. Horizon answers 200 with one
    /// `BulkItemResponseInfo` per item; one with a status of 400 or more, or with errors, is a
    /// [`HorizonError::Refused`]. On an older server it fails before sending
    /// ([`HorizonError::TooOld`]). Sent once, like [`Self::push_image`].
    pub async fn push_image_selective(
        &self,
        pool_id: &HorizonId,
        spec: &PushSpec,
        machines: &[HorizonId],
    ) -> Result<(), HorizonError> {
        let what = format!("schedule a selective push image (canary) to desktop pool `{pool_id}`");
        self.needs_selective_push(&what).await?;
        let body = wire::SelectivePushImageSpec {
            logoff_policy: wire::logoff_policy(spec.logoff),
            parent_vm_id: spec.image.vm.as_str(),
            snapshot_id: spec.image.snapshot.as_str(),
            start_time: spec.start_time_ms,
            stop_on_first_error: spec.stop_on_first_error,
            selective_push_image: true,
            machine_ids: machines.iter().map(HorizonId::as_str).collect(),
        };
        let path = ["inventory", "v2", "desktop-pools", pool_id.as_str(), "action", "schedule-push-image"];
        let items: Vec<wire::BulkItem> = self.post_json(&what, &path, Some(&body)).await?;
        let failures: Vec<String> = items.iter().filter_map(wire::BulkItem::failure).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(HorizonError::Refused { site: self.site.clone(), what, failures: failures.join(", ") })
        }
    }

    /// Gives the image a selective push holds (`READY_HELD`) to the whole desktop pool (204;
    /// Horizon 2206 and later).
    pub async fn promote_pending_image(&self, pool_id: &HorizonId) -> Result<(), HorizonError> {
        let what = format!("promote the pending image of desktop pool `{pool_id}`");
        self.needs_selective_push(&what).await?;
        let path = ["inventory", "v1", "desktop-pools", pool_id.as_str(), "action", "promote-pending-image"];
        self.post::<()>(&what, &path, None).await
    }

    /// Fails on a server older than 2206, which has no selective push: a canary needs it.
    async fn needs_selective_push(&self, what: &str) -> Result<(), HorizonError> {
        match self.version().await? {
            Some(version) if version < HorizonVersion::SELECTIVE_PUSH => {
                let reason = "a canary is a selective push image, which horizon added in 2206; remove `canary` from the pool".into();
                Err(self.older_than(HorizonVersion::SELECTIVE_PUSH, what, version, reason))
            }
            _ => Ok(()),
        }
    }

    /// The machines of a desktop pool with their images (`/inventory/v2/machines` filtered by
    /// `desktop_pool_id`, Horizon 2012 and later), by name.
    pub async fn machines(&self, pool_id: &HorizonId) -> Result<Vec<Machine>, HorizonError> {
        let what = format!("list the machines of desktop pool `{pool_id}`");
        let filter =
            serde_json::json!({"type": "Equals", "name": "desktop_pool_id", "value": pool_id.as_str()});
        let machines: Vec<wire::MachineV2> =
            self.list_filtered(&["inventory", "v2", "machines"], &what, Some(&filter)).await?;
        let mut machines: Vec<Machine> = machines.into_iter().map(wire::MachineV2::into_machine).collect();
        machines.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(machines)
    }

    /// The machines and user sessions of every desktop pool and farm of the pod, by their id:
    /// three paged lists for the whole pod (`/inventory/v1/machines`, `/inventory/v1/rds-servers`,
    /// `/inventory/v1/sessions`), never one call per pool. A pool or farm without any is not
    /// in the map.
    ///
    /// `Ok(None)` when the server cannot say: older than 2012 (no RDS server list, no paging),
    /// or a list answered 404 (not there) or 403 (the account may not see machines,
    /// `MACHINE_VIEW`). The blast radius is then unknown; nothing else depends on it.
    ///
    /// Golden reads it after planning, by which time the server's version is known (read with
    /// the pools), so an older server is sent nothing.
    pub async fn occupancy(&self) -> Result<Option<BTreeMap<HorizonId, Occupancy>>, HorizonError> {
        if let Some(version) = self.version().await?.filter(|v| *v < HorizonVersion::MACHINES_PAGED) {
            tracing::info!(site = %self.site, %version, "horizon lists machines and sessions by pages only from 2012; the blast radius of pushes is unknown here");
            return Ok(None);
        }
        let (machines, servers, sessions) = futures::join!(
            self.list_paged::<wire::MachineRef>(&["inventory", "v1", "machines"], "list machines"),
            self.list_paged::<wire::RdsServerRef>(&["inventory", "v1", "rds-servers"], "list rds servers"),
            self.list_paged::<wire::SessionRef>(&["inventory", "v1", "sessions"], "list sessions"),
        );
        let unavailable =
            |e: &HorizonError| matches!(e.status(), Some(StatusCode::NOT_FOUND | StatusCode::FORBIDDEN));
        let (machines, servers, sessions) = match (machines, servers, sessions) {
            (Ok(m), Ok(r), Ok(s)) => (m, r, s),
            (m, r, s) => {
                let errors = [m.err(), r.err(), s.err()];
                let mut errors = errors.into_iter().flatten();
                let first = errors.next();
                match first {
                    Some(e) if unavailable(&e) && errors.all(|e| unavailable(&e)) => {
                        tracing::info!(site = %self.site, error = %e, "horizon does not list machines or sessions to this account; the blast radius of pushes is unknown here");
                        return Ok(None);
                    }
                    Some(e) if unavailable(&e) => return Err(errors.find(|e| !unavailable(e)).unwrap_or(e)),
                    Some(e) => return Err(e),
                    None => return Ok(None),
                }
            }
        };
        let mut counts: BTreeMap<HorizonId, Occupancy> = BTreeMap::new();
        let mut count = |id: Option<String>, add: Occupancy| {
            if let Some(id) = id.filter(|id| !id.is_empty()) {
                *counts.entry(HorizonId::new(id)).or_default() += add;
            }
        };
        let one_machine = Occupancy { machines: 1, sessions: 0 };
        let one_session = Occupancy { machines: 0, sessions: 1 };
        for m in machines {
            count(m.desktop_pool_id, one_machine);
        }
        for r in servers {
            count(r.farm_id, one_machine);
        }
        for s in sessions {
            // An RDS session counts for its farm, not for the RDS desktop pool it also names.
            count(s.farm_id.or(s.desktop_pool_id), one_session);
        }
        Ok(Some(counts))
    }

    /// Cancels a scheduled push that has not started (204).
    pub async fn cancel_push(&self, pool_id: &HorizonId) -> Result<(), HorizonError> {
        let what = format!("cancel the scheduled push image of desktop pool `{pool_id}`");
        let path =
            ["inventory", "v1", "desktop-pools", pool_id.as_str(), "action", "cancel-scheduled-push-image"];
        self.post::<()>(&what, &path, None).await
    }

    /// Schedules an immediate maintenance of an instant-clone farm onto `spec.image` (204);
    /// `spec.start_time_ms` becomes `next_scheduled_time`.
    pub async fn schedule_maintenance(
        &self,
        farm_id: &HorizonId,
        spec: &PushSpec,
    ) -> Result<(), HorizonError> {
        let body = wire::FarmMaintenanceSpec {
            maintenance_mode: "IMMEDIATE",
            logoff_policy: wire::logoff_policy(spec.logoff),
            next_scheduled_time: spec.start_time_ms,
            parent_vm_id: spec.image.vm.as_str(),
            snapshot_id: spec.image.snapshot.as_str(),
            stop_on_first_error: spec.stop_on_first_error,
        };
        let what = format!("schedule maintenance of farm `{farm_id}`");
        // Farms read from 2103 but take a new image only from 2111: say so rather than send a
        // request the server does not have.
        if let Some(version) = self.version().await?.filter(|v| *v < HorizonVersion::FARM_MAINTENANCE) {
            let reason =
                "farms take a new image through schedule-maintenance, which Horizon added in 2111".into();
            return Err(self.older_than(HorizonVersion::FARM_MAINTENANCE, &what, version, reason));
        }
        let path = ["inventory", "v1", "farms", farm_id.as_str(), "action", "schedule-maintenance"];
        self.post(&what, &path, Some(&body)).await
    }

    /// Cancels the scheduled immediate maintenance of a farm (204).
    pub async fn cancel_maintenance(&self, farm_id: &HorizonId) -> Result<(), HorizonError> {
        let body = wire::FarmCancelMaintenanceSpec { maintenance_mode: "IMMEDIATE" };
        let what = format!("cancel the scheduled maintenance of farm `{farm_id}`");
        let path = ["inventory", "v1", "farms", farm_id.as_str(), "action", "cancel-scheduled-maintenance"];
        self.post(&what, &path, Some(&body)).await
    }
}
