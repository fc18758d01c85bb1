//! Reading live state: every site at once, each with a fixed handful of list calls.
//!
//! Per site the vCenter and Horizon reads run concurrently: one SOAP inventory read (VMs with
//! snapshot trees and golden's ownership tags), the library and its items, and Horizon's pools
//! and farms by pages. Never one call per pool; one per library item, of which there are a few
//! per version. The result is golden's own [`LiveState`]; nothing of the APIs leaks past here.
//!
//! After planning, [`occupancy`] reads the pod's machines, RDS servers and user sessions at the
//! sites the plan pushes at: each push's blast radius.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures::future::join_all;

use crate::connect::{ConnectError, RetryPolicy, SiteConnection, Tls, fan_out, http_client};
use crate::desired::{DesiredState, Location, Revision, Source};
use crate::horizon::{HorizonClient, HorizonError};
use crate::ids::{HorizonName, ImageName, SiteName, VersionName, VersionRef};
use crate::live::{LibraryItem, LiveState, Moref, Occupancy, SiteLive, VcenterLive, Vm};
use crate::vcenter::{Inventory, VcenterClient, VcenterError};

/// Both clients of one site. Clones share the sessions.
#[derive(Clone, Debug)]
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
    #[error("site `{site}`: {} vms are tagged as golden's copy of {version}: {}", vms.len(), vms.join(" and "))]
    TwoCopies { site: SiteName, version: VersionRef, vms: Vec<String> },
}

/// Every problem of one read, one per site at most.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the live state of {}", crate::plan::render::count(.0.len(), "site", "sites"))]
pub struct GatherErrors(pub Vec<GatherError>);

impl SiteClients {
    /// Clients for `conn` that send through `http`, a client made for `conn.tls`.
    pub fn new(conn: &SiteConnection, http: reqwest::Client, retry: &RetryPolicy) -> SiteClients {
        SiteClients {
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
        }
    }
}

impl SiteClients {
    /// Ends the site's vCenter and Horizon sessions. Best effort: a failure is logged, since
    /// the work is done and the sessions will idle out anyway.
    pub async fn logout(&self) {
        let (vcenter, horizon) = tokio::join!(self.vcenter.logout(), self.horizon.logout());
        if let Err(e) = vcenter {
            tracing::debug!(site = %self.site, error = %e, "cannot log out of vcenter");
        }
        if let Err(e) = horizon {
            tracing::debug!(site = %self.site, error = %e, "cannot log out of horizon");
        }
    }
}

/// Ends the sessions of every site of `clients`, all at once.
pub async fn logout_all<'a>(clients: impl IntoIterator<Item = &'a SiteClients>) {
    join_all(clients.into_iter().map(SiteClients::logout)).await;
}

/// Clients for `sites`, from the desired state and the environment `env`. Files the sites name
/// (`ca_file`) are read where the desired state was: from `repo_dir`'s working tree, or from
/// the commit `--ref` named.
pub fn connect_all(
    desired: &DesiredState,
    sites: &BTreeSet<SiteName>,
    repo_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    retry: &RetryPolicy,
) -> Result<BTreeMap<SiteName, SiteClients>, GatherErrors> {
    let mut clients = BTreeMap::new();
    let mut errors = Vec::new();
    let repo = match &desired.revision {
        Some(Revision { commit, reference: Some(_), .. }) => {
            Location::GitRef { dir: repo_dir.to_owned(), reference: commit.to_string() }
        }
        _ => Location::WorkTree { dir: repo_dir.to_owned() },
    };
    // One HTTP client per distinct TLS setting, shared by the sites that have it: building one
    // loads the system's CA store, which costs more than reading a site.
    let mut http: Vec<(Tls, reqwest::Client)> = Vec::new();
    let mut client_for = |conn: &SiteConnection| -> Result<reqwest::Client, ConnectError> {
        if conn.tls.insecure {
            tracing::warn!(site = %conn.site, "TLS certificate verification is off for this site");
        }
        if let Some((_, client)) = http.iter().find(|(tls, _)| *tls == conn.tls) {
            return Ok(client.clone());
        }
        let client = http_client(&conn.site, &conn.tls)?;
        http.push((conn.tls.clone(), client.clone()));
        Ok(client)
    };
    for name in sites {
        let Some(site) = desired.sites.get(name) else { continue };
        let connected = SiteConnection::resolve(site, &repo, env)
            .and_then(|c| Ok(SiteClients::new(&c, client_for(&c)?, retry)));
        match connected {
            Ok(c) => {
                clients.insert(name.clone(), c);
            }
            Err(e) => errors.push(GatherError::Connect(e)),
        }
    }
    if errors.is_empty() { Ok(clients) } else { Err(GatherErrors(errors)) }
}

/// What [`read_all`] read.
#[derive(Debug)]
pub struct Read {
    pub live: LiveState,
    /// Each site's inventory, for apply to place what it deploys.
    pub inventories: BTreeMap<SiteName, Inventory>,
}

/// Reads every site of `clients` concurrently, each site in a task of its own so that the
/// work of reading answers spreads over the runtime's threads. Sites that share a vCenter
/// (the same instance UUID) read its library alike; it is kept once.
pub async fn read_all(
    desired: &DesiredState,
    clients: &BTreeMap<SiteName, SiteClients>,
) -> Result<Read, GatherErrors> {
    let reads: Vec<_> = clients
        .values()
        .map(|c| {
            let (wanted, clients) = (Wanted::of(desired, &c.site), c.clone());
            tokio::spawn(async move { (clients.site.clone(), read_site(&wanted, &clients).await) })
        })
        .collect();
    let mut read = Read { live: LiveState::default(), inventories: BTreeMap::new() };
    let mut errors = Vec::new();
    for (site, result) in join_spawned(reads).await {
        match result {
            Ok(SiteRead { site: s, vcenter, inventory }) => {
                read.live.vcenters.entry(s.vcenter.clone()).or_insert(vcenter);
                read.live.sites.insert(site.clone(), s);
                read.inventories.insert(site, inventory);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(read) } else { Err(GatherErrors(errors)) }
}

/// What reading one site needs to know of the desired state.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// The Content Library golden uses (`settings.library`).
    pub library: String,
    /// The site's datacenter: everything of the site is read inside it.
    pub datacenter: String,
    /// At the source site, the VMs versions are captured from; at every site, the VMs adopted
    /// versions name (pools there may run them since before golden).
    pub source_vms: BTreeSet<String>,
}

impl Wanted {
    pub fn of(desired: &DesiredState, site: &SiteName) -> Wanted {
        let is_source = *site == desired.settings.source_site;
        let source_vms = desired
            .images
            .values()
            .flat_map(|i| i.versions.values())
            .filter_map(|v| match &v.source {
                Source::Vm { vm, .. } if is_source || v.adopted => Some(vm.clone()),
                _ => None,
            })
            .collect();
        let datacenter = desired.sites.get(site).map(|s| s.datacenter.clone()).unwrap_or_default();
        Wanted { library: desired.settings.library.clone(), datacenter, source_vms }
    }
}

/// What one site's read gives.
#[derive(Debug)]
pub struct SiteRead {
    pub site: SiteLive,
    /// The library of the site's vCenter.
    pub vcenter: VcenterLive,
    /// The whole vCenter's inventory, for apply to place what it deploys.
    pub inventory: Inventory,
}

/// Reads one site: vCenter and Horizon at the same time.
pub async fn read_site(wanted: &Wanted, clients: &SiteClients) -> Result<SiteRead, GatherError> {
    // Three independent chains, each starting as soon as its own login is done: the library
    // and golden's tags over REST, the inventory over SOAP, the pools over Horizon's API.
    let vc = &clients.vcenter;
    let rest = async {
        vc.login_rest().await?;
        let listing = async {
            let library = vc.find_library(&wanted.library).await?;
            let ids = match &library {
                Some(lib) => vc.list_items(&lib.id).await?,
                None => Vec::new(),
            };
            Ok::<_, VcenterError>((library, ids))
        };
        let (listing, attached) = tokio::join!(listing, vc.tag_attachments());
        Ok::<_, VcenterError>((listing?, attached?))
    };
    let soap = async {
        vc.login_soap().await?;
        let (objects, uuid) = tokio::join!(vc.inventory_objects(), vc.instance_uuid());
        Ok::<_, VcenterError>((objects?, uuid?))
    };
    let vcenter = async {
        let (rest, soap) = tokio::join!(rest, soap);
        let ((library, ids), attached) = rest?;
        let (objects, uuid) = soap?;
        // An item a base VM was deployed from is known from the VM's annotation, metadata
        // included; only the others are read, one request each (the API has no bulk read).
        let deployed = objects.deployed_items(&attached);
        let mut items = BTreeMap::new();
        let mut unknown = Vec::new();
        for id in ids {
            match (deployed.get(&id), &library) {
                (Some((item, meta)), Some(lib)) => {
                    let known = LibraryItem {
                        id: id.clone(),
                        library: lib.id.clone(),
                        name: item.name.clone(),
                        kind: item.kind.clone(),
                        meta: Some(meta.clone()),
                        // A base VM was deployed from it: its content was there.
                        cached: true,
                    };
                    items.insert(id, known);
                }
                _ => unknown.push(id),
            }
        }
        let read = async {
            let reads = fan_out(unknown.iter().map(|id| vc.get_item(id))).await;
            reads.into_iter().collect::<Result<Vec<_>, _>>()
        };
        let (inventory, read) = tokio::join!(vc.settle_inventory(objects, &attached), read);
        items.extend(read?.into_iter().map(|item| (item.id.clone(), item)));
        Ok::<_, GatherError>((inventory?, uuid, VcenterLive { library, items }))
    };
    let horizon = async {
        let hz = &clients.horizon;
        hz.login().await?;
        Ok::<_, GatherError>(hz.pools().await?)
    };
    let (vcenter, horizon) = tokio::join!(vcenter, horizon);
    let (inventory, uuid, library) = vcenter?;
    let pools = horizon?;

    // VMs that matter, inside the site's datacenter only: what golden owns, what claims to be
    // golden's without its tag (for status to report), and at the source site the VMs versions
    // capture. Another site of the same vCenter has its own copies.
    let datacenter = inventory.datacenter(&wanted.datacenter)?;
    let vms: BTreeMap<_, _> = inventory
        .vms_in(&datacenter.id)
        .filter(|vm| vm.meta.is_some() || vm.claim.is_some() || wanted.source_vms.contains(&vm.name))
        .map(|vm| (vm.id.clone(), vm.clone()))
        .collect();
    one_copy_each(&clients.site, &vms)?;
    let site =
        SiteLive { vcenter: uuid, vms, pools: pools.into_iter().map(|p| (p.name.clone(), p)).collect() };
    Ok(SiteRead { site, vcenter: library, inventory })
}

/// The machines and user sessions of every pool and farm at `sites`, by site and Horizon
/// name: the blast radius of a plan's pushes. Read after planning, and only at the sites the
/// plan pushes at, since it is three paged lists of the whole pod (see
/// [`HorizonClient::occupancy`]); a plan that pushes nothing spares Horizon its session list.
///
/// A site whose Horizon cannot say (older than 2012, or no machine view for this account) has
/// no entry, and nor has one whose lists fail: the figures inform, nothing depends on them, so
/// a failure is a warning (returned, for the plan to show) rather than a failed plan.
pub async fn occupancy(
    live: &LiveState,
    clients: &BTreeMap<SiteName, SiteClients>,
    sites: &BTreeSet<SiteName>,
) -> (BTreeMap<SiteName, BTreeMap<HorizonName, Occupancy>>, Vec<String>) {
    // A task per site, as in `read_all`: parsing the lists spreads over the runtime's threads.
    let reads: Vec<_> = sites
        .iter()
        .filter_map(|site| {
            let (site, horizon) = (site.clone(), clients.get(site)?.horizon.clone());
            Some(tokio::spawn(async move { (site, horizon.occupancy().await) }))
        })
        .collect();
    let (mut figures, mut warnings) = (BTreeMap::new(), Vec::new());
    for (site, read) in join_spawned(reads).await {
        let Some(site_live) = live.sites.get(&site) else { continue };
        match read {
            // Every pool's count (none is a count too).
            Ok(Some(by_id)) => {
                let pools = site_live.pools.values();
                let counts = pools.map(|p| (p.name.clone(), by_id.get(&p.id).copied().unwrap_or_default()));
                figures.insert(site.clone(), counts.collect());
            }
            Ok(None) => {}
            // With Horizon's own explanation (the error's source).
            Err(e) => warnings.push(format!(
                "site `{site}`: the machines and sessions its pushes touch are unknown: {:#}",
                anyhow::Error::from(e)
            )),
        }
    }
    (figures, warnings)
}

/// Awaits tasks spawned to spread work over the runtime's threads, in order. A task that
/// panicked panics here, as if it had run in place.
async fn join_spawned<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let done = join_all(tasks).await;
    done.into_iter().map(|d| d.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))).collect()
}

/// Two VMs of a site that golden owns (both tagged) for one version: golden cannot tell which
/// is its copy, so it stops rather than push or retire either.
fn one_copy_each(site: &SiteName, vms: &BTreeMap<Moref, Vm>) -> Result<(), GatherError> {
    let mut copies: BTreeMap<(&ImageName, &VersionName), Vec<&Vm>> = BTreeMap::new();
    for vm in vms.values() {
        if let Some(meta) = &vm.meta {
            copies.entry((&meta.image, &meta.version)).or_default().push(vm);
        }
    }
    match copies.into_iter().find(|(_, vms)| vms.len() > 1) {
        None => Ok(()),
        Some(((image, version), vms)) => Err(GatherError::TwoCopies {
            site: site.clone(),
            version: VersionRef::new(image, version),
            vms: vms.iter().map(|vm| format!("`{}` ({})", vm.name, vm.id)).collect(),
        }),
    }
}
