//! Building a lab from a repository: the world as it is before golden's first apply.
//!
//! Every site gets a vCenter laid out as its golden.toml placement says. The source site also
//! gets the build VMs and snapshots the versions name as their source, and its library (named
//! by `settings.library`, published) holding the items versions adopt (`library_item`), as a
//! build pipeline would have left them. Every pool and farm in
//! the repository exists in its site's Horizon, running an initial image golden does not own
//! (a `legacy-<image>` VM and its `initial` snapshot), as a real estate would before adopting
//! golden. Each has machines (a farm: RDS servers) and user sessions on them, as many as
//! [`occupancy`] derives from its Horizon name: the same for every lab of a repository, and
//! always at least one desktop of a pool without a session.

use std::collections::BTreeMap;

use super::horizon::{HorizonSim, PoolKind as SimPoolKind};
use super::vcenter::{Placement, VcenterSim};
use super::{LabState, SiteLab, Timings, VcenterLab, now_ms};
use golden_core::desired::{Compute, DesiredState, PoolKind, Source};

/// The lab state for `desired`, with endpoint URLs as golden.toml writes them. Sites that name
/// one vCenter URL share one simulated vCenter, named after the first of them, with a
/// datacenter each.
pub fn from_desired(desired: &DesiredState, timings: Timings) -> LabState {
    let now = now_ms();
    let mut vcenters: BTreeMap<String, VcenterLab> = BTreeMap::new();
    let mut sites = BTreeMap::new();
    for site in desired.sites.values() {
        let (cluster, resource_pool) = match &site.compute {
            Compute::Cluster(c) => (c.as_str(), None),
            Compute::ResourcePool(p) => ("Cluster-1", Some(p.as_str())),
        };
        let placement = Placement {
            datacenter: &site.datacenter,
            cluster,
            resource_pool,
            folder: &site.folder,
            datastore: &site.datastore,
        };
        let name = match vcenters.values().find(|v| v.url.as_deref() == Some(site.vcenter.as_str())) {
            Some(shared) => shared.name.clone(),
            None => site.name.to_string(),
        };
        let lab = vcenters.entry(name.clone()).or_insert_with(|| VcenterLab {
            name: name.clone(),
            sim: VcenterSim::new(&uuid::Uuid::new_v4().to_string()),
            url: Some(site.vcenter.clone()),
        });
        let datacenter = lab.sim.add_datacenter(&placement);
        let server = url::Url::parse(&site.vcenter)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| site.vcenter.clone());
        let horizon = HorizonSim::new(&uuid::Uuid::new_v4().to_string(), &server);
        sites.insert(
            site.name.to_string(),
            SiteLab {
                name: site.name.to_string(),
                vcenter: name,
                datacenter,
                horizon,
                horizon_url: Some(site.horizon.clone()),
            },
        );
    }
    let mut lab = LabState { vcenters, sites, timings };

    // Build VMs and their snapshots at the source site, parents before children so that the
    // snapshot tree follows the version tree where they share a VM.
    let source = desired.settings.source_site.as_str();
    let source_dc = lab.sites.get(source).map(|s| s.datacenter.clone()).unwrap_or_default();
    if let Some(vc) = lab.vcenter_of_mut(source) {
        let mut library = None;
        for image in desired.images.values() {
            for version in image.versions.values() {
                if let Source::LibraryItem { name } = &version.source {
                    if library.is_none() {
                        let datastore = vc.datastore_in(&source_dc).map(|d| d.id.clone()).unwrap_or_default();
                        library = vc.add_local_library(&desired.settings.library, &datastore, true, now);
                    }
                    if let Some(lib) = &library {
                        vc.add_ovf_item(lib, name, &format!("built by the {} pipeline", image.name), now);
                    }
                }
                if let Source::Vm { vm, snapshot } = &version.source {
                    let id = match vc.vms.values().find(|v| &v.name == vm && v.datacenter == source_dc) {
                        Some(v) => v.id.clone(),
                        None => match vc.add_vm(vm, &source_dc, None) {
                            Some(id) => id,
                            None => continue,
                        },
                    };
                    if let Some(name) = snapshot {
                        let exists =
                            vc.vms.get(&id).is_some_and(|v| v.snapshots.iter().any(|s| &s.name == name));
                        if !exists {
                            vc.add_snapshot(&id, name, &format!("sealed build of {}", image.name), now);
                        }
                    }
                }
            }
        }
    }

    // Pools and farms, each running its site's legacy image of the pool's image.
    for pool in desired.pools.values() {
        let Some(dc) = lab.sites.get(pool.site.as_str()).map(|s| s.datacenter.clone()) else { continue };
        let Some(vc) = lab.vcenter_of_mut(pool.site.as_str()) else { continue };
        let legacy = format!("legacy-{}", pool.image);
        let vm = match vc.vms.values().find(|v| v.name == legacy && v.datacenter == dc) {
            Some(v) => v.id.clone(),
            None => match vc.add_vm(&legacy, &dc, None) {
                Some(id) => id,
                None => continue,
            },
        };
        let snapshot = match vc.vms.get(&vm).and_then(|v| v.snapshots.first()) {
            Some(s) => s.id.clone(),
            None => match vc.add_snapshot(&vm, "initial", "image in use before golden", now) {
                Some(id) => id,
                None => continue,
            },
        };
        if let Some(v) = vc.vms.get_mut(&vm) {
            // Horizon clones from powered-off parents; a parent is never running.
            v.powered_on = false;
        }
        let kind = match pool.kind {
            PoolKind::DesktopPool => SimPoolKind::DesktopPool,
            PoolKind::Farm => SimPoolKind::Farm,
        };
        if let Some(site) = lab.sites.get_mut(pool.site.as_str()) {
            let name = pool.horizon_name.as_str();
            let id = site.horizon.add_pool(kind, name, &dc, &vm, &snapshot);
            let (machines, sessions) = occupancy(kind, name);
            // Within the bounds `set_occupancy` checks, so it cannot refuse.
            let _ = site.horizon.set_occupancy(&id, machines, sessions);
        }
    }
    lab
}

/// The machines and sessions a seeded pool or farm gets, from its name (FNV-1a, so that it
/// is the same on every machine and Rust version): a desktop pool 3 to 8 machines with fewer
/// sessions than machines, a farm 2 to 4 RDS servers with 0 to 11 sessions.
pub fn occupancy(kind: SimPoolKind, name: &str) -> (u32, u32) {
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let (low, high) = ((hash % 1_000) as u32, ((hash >> 16) % 1_000) as u32);
    match kind {
        SimPoolKind::DesktopPool => {
            let machines = 3 + low % 6;
            (machines, high % machines)
        }
        SimPoolKind::Farm => (2 + low % 3, high % 12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use golden_core::desired::load_dir;

    #[test]
    fn the_quickstart_seeds_sites_build_vms_and_pools() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
        let desired = load_dir(&dir).expect("quickstart is valid");
        let lab = from_desired(&desired, Timings::instant());
        assert_eq!(lab.sites.keys().collect::<Vec<_>>(), ["eu", "hq", "us"]);
        let hq = lab.vcenter_of("hq").expect("hq's vCenter");
        let build = hq.vms.values().find(|v| v.name == "win11-build").expect("build VM at hq");
        let snaps: Vec<&str> = build.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(snaps, ["sealed-2026-09", "sealed-2026-10", "sealed-2026-10-vpn"]);
        assert!(
            !lab.vcenter_of("eu").expect("eu's vCenter").vms.values().any(|v| v.name == "win11-build"),
            "builds only at the source"
        );
        let eu_pools: Vec<&str> = lab.sites["eu"].horizon.pools.values().map(|p| p.name.as_str()).collect();
        assert_eq!(eu_pools.len(), 3, "{eu_pools:?}");
        assert!(eu_pools.contains(&"SAP-Farm"));
        assert_eq!(lab.vcenters["hq"].url.as_deref(), Some("http://127.0.0.1:18441"));
        // Every pool has machines on its image and sessions, as `occupancy` says.
        for site in lab.sites.values() {
            for pool in site.horizon.pools.values() {
                let sessions: usize = pool.machines.iter().map(|m| m.sessions.len()).sum();
                let (machines, expected) = occupancy(pool.kind, &pool.name);
                assert_eq!(
                    (pool.machines.len(), sessions),
                    (machines as usize, expected as usize),
                    "{}",
                    pool.name
                );
                assert!(pool.machines.iter().all(|m| m.base_snapshot_id == pool.base_snapshot_id));
                if pool.kind == SimPoolKind::DesktopPool {
                    assert!(pool.machines.iter().any(|m| m.sessions.is_empty()), "{}", pool.name);
                }
            }
        }
    }
}
