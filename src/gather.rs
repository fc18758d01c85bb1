//! Reading live state: every site at once, each with a fixed handful of list calls.
//!
//! Per site the vCenter and Horizon reads run concurrently: one SOAP inventory read (VMs with
//! snapshot trees and golden's ownership tags), the library and its items, and Horizon's pools
//! and farms by pages. Never one call per pool; one per library item, of which there are a few
//! per version. The result is golden's own [`LiveState`]; nothing of the APIs leaks past here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::future::join_all;

use crate::connect::{ConnectError, RetryPolicy, SiteConnection, http_client};
use crate::desired::{DesiredState, Source};
use crate::horizon::{HorizonClient, HorizonError};
use crate::ids::SiteName;
use crate::live::{LiveState, SiteLive};
use crate::vcenter::{Inventory, VcenterClient, VcenterError};

/// Both clients of one site.
#[derive(Debug)]
pub struct SiteClients {
    pub site: SiteName,
    pub vcenter: VcenterClient,
    pub horizon: HorizonClient,
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Vcenter(#[from] VcenterError),
    #[error(transparent)]
    Horizon(#[from] HorizonError),
}

/// Every problem of one read, one per site at most.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the live state of {} site(s)", .0.len())]
pub struct GatherErrors(pub Vec<GatherError>);

impl SiteClients {
    pub fn connect(conn: &SiteConnection, retry: &RetryPolicy) -> Result<SiteClients, ConnectError> {
        let http = http_client(&conn.site, &conn.tls)?;
        Ok(SiteClients {
            site: conn.site.clone(),
            vcenter: VcenterClient::new(
                conn.site.clone(),
                conn.vcenter_url.clone(),
                conn.vcenter.clone(),
                http.clone(),
                retry.clone(),
            ),
            horizon: HorizonClient::new(
                conn.site.clone(),
                conn.horizon_url.clone(),
                conn.horizon.clone(),
                http,
                retry.clone(),
            ),
        })
    }
}

/// Clients for `sites`, from the desired state and the environment `env`.
pub fn connect_all(
    desired: &DesiredState,
    sites: &BTreeSet<SiteName>,
    repo_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    retry: &RetryPolicy,
) -> Result<BTreeMap<SiteName, SiteClients>, GatherErrors> {
    let mut clients = BTreeMap::new();
    let mut errors = Vec::new();
    for name in sites {
        let Some(site) = desired.sites.get(name) else { continue };
        match SiteConnection::resolve(site, repo_dir, env).and_then(|c| SiteClients::connect(&c, retry)) {
            Ok(c) => {
                clients.insert(name.clone(), c);
            }
            Err(e) => errors.push(GatherError::Connect(e)),
        }
    }
    if errors.is_empty() { Ok(clients) } else { Err(GatherErrors(errors)) }
}

/// Reads every site of `clients` concurrently.
pub async fn read_all(
    desired: &DesiredState,
    clients: &BTreeMap<SiteName, SiteClients>,
) -> Result<(LiveState, BTreeMap<SiteName, Inventory>), GatherErrors> {
    let reads = clients.values().map(|c| async move { (c.site.clone(), read_site(desired, c).await) });
    let mut live = LiveState::default();
    let mut inventories = BTreeMap::new();
    let mut errors = Vec::new();
    for (site, result) in join_all(reads).await {
        match result {
            Ok((s, inventory)) => {
                live.sites.insert(site.clone(), s);
                inventories.insert(site, inventory);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok((live, inventories)) } else { Err(GatherErrors(errors)) }
}

/// Reads one site: vCenter and Horizon at the same time.
pub async fn read_site(
    desired: &DesiredState,
    clients: &SiteClients,
) -> Result<(SiteLive, Inventory), GatherError> {
    let is_source = clients.site == desired.settings.source_site;
    let vcenter = async {
        let vc = &clients.vcenter;
        vc.login().await?;
        let content = async {
            let library = vc.find_library(&desired.settings.library).await?;
            let mut items = BTreeMap::new();
            if let Some(lib) = &library {
                let ids = vc.list_items(&lib.id).await?;
                for item in join_all(ids.iter().map(|id| vc.get_item(id))).await {
                    let item = item?;
                    items.insert(item.id.clone(), item);
                }
            }
            Ok::<_, VcenterError>((library, items))
        };
        // Inventory (SOAP + tags) and the library (REST) are independent chains.
        let (inventory, content) = tokio::join!(vc.inventory(), content);
        let (library, items) = content?;
        Ok::<_, GatherError>((inventory?, library, items))
    };
    let horizon = async {
        clients.horizon.login().await?;
        Ok::<_, GatherError>(clients.horizon.pools().await?)
    };
    let (vcenter, horizon) = tokio::join!(vcenter, horizon);
    let (inventory, library, items) = vcenter?;
    let pools = horizon?;

    // VMs that matter: what golden owns, and at the source site the VMs versions capture.
    let sources: BTreeSet<&str> = if is_source {
        desired
            .images
            .values()
            .flat_map(|i| i.versions.values())
            .filter_map(|v| match &v.source {
                Source::Vm { vm, .. } => Some(vm.as_str()),
                Source::LibraryItem { .. } => None,
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    let vms = inventory
        .vms
        .iter()
        .filter(|(_, vm)| vm.meta.is_some() || sources.contains(vm.name.as_str()))
        .map(|(id, vm)| (id.clone(), vm.clone()))
        .collect();
    let site =
        SiteLive { library, items, vms, pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect() };
    Ok((site, inventory))
}
