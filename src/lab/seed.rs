//! Building a lab from a repository: the world as it is before golden's first apply.
//!
//! Every site gets a vCenter laid out as its golden.toml placement says. The source site also
//! gets the build VMs and snapshots the versions name as their source, and its library (named
//! by `settings.library`, published) holding the items versions adopt (`library_item`), as a
//! build pipeline would have left them. Every pool and farm in
//! the repository exists in its site's Horizon, running an initial image golden does not own
//! (a `legacy-<image>` VM and its `initial` snapshot), as a real estate would before adopting
//! golden.

use std::collections::BTreeMap;

use super::horizon::{HorizonSim, PoolKind as SimPoolKind};
use super::vcenter::{Placement, VcenterSim};
use super::{LabState, SiteLab, Timings, now_ms};
use crate::desired::{Compute, DesiredState, PoolKind, Source};

/// The lab state for `desired`, with endpoint URLs as golden.toml writes them.
pub fn from_desired(desired: &DesiredState, timings: Timings) -> LabState {
    let now = now_ms();
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
        let vcenter = VcenterSim::new(&uuid::Uuid::new_v4().to_string(), &placement);
        let server = url::Url::parse(&site.vcenter)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| site.vcenter.clone());
        let horizon = HorizonSim::new(&uuid::Uuid::new_v4().to_string(), &server);
        sites.insert(
            site.name.to_string(),
            SiteLab {
                name: site.name.to_string(),
                vcenter,
                horizon,
                vcenter_url: Some(site.vcenter.clone()),
                horizon_url: Some(site.horizon.clone()),
            },
        );
    }

    // Build VMs and their snapshots at the source site, parents before children so that the
    // snapshot tree follows the version tree where they share a VM.
    if let Some(source) = sites.get_mut(desired.settings.source_site.as_str()) {
        let mut library = None;
        for image in desired.images.values() {
            for version in image.versions.values() {
                if let Source::LibraryItem { name } = &version.source {
                    let vc = &mut source.vcenter;
                    if library.is_none() {
                        library = vc.add_local_library(&desired.settings.library, true, now);
                    }
                    if let Some(lib) = &library {
                        vc.add_ovf_item(lib, name, &format!("built by the {} pipeline", image.name), now);
                    }
                }
                if let Source::Vm { vm, snapshot } = &version.source {
                    let vc = &mut source.vcenter;
                    let id = match vc.vms.values().find(|v| &v.name == vm) {
                        Some(v) => v.id.clone(),
                        None => match vc.add_vm(vm, None) {
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
        let Some(site) = sites.get_mut(pool.site.as_str()) else { continue };
        let legacy = format!("legacy-{}", pool.image);
        let vc = &mut site.vcenter;
        let vm = match vc.vms.values().find(|v| v.name == legacy) {
            Some(v) => v.id.clone(),
            None => match vc.add_vm(&legacy, None) {
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
        let dc = vc.datacenter().map(|d| d.id.clone()).unwrap_or_default();
        let kind = match pool.kind {
            PoolKind::DesktopPool => SimPoolKind::DesktopPool,
            PoolKind::Farm => SimPoolKind::Farm,
        };
        site.horizon.add_pool(kind, &pool.horizon_name, &dc, &vm, &snapshot);
    }

    LabState { sites, timings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{Location, load};

    #[test]
    fn the_quickstart_seeds_sites_build_vms_and_pools() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let desired = load(&Location::WorkTree { dir }).expect("quickstart is valid");
        let lab = from_desired(&desired, Timings::instant());
        assert_eq!(lab.sites.keys().collect::<Vec<_>>(), ["eu", "hq", "us"]);
        let hq = &lab.sites["hq"];
        let build = hq.vcenter.vms.values().find(|v| v.name == "win11-build").expect("build VM at hq");
        let snaps: Vec<&str> = build.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(snaps, ["sealed-2026-09", "sealed-2026-10", "sealed-2026-10-vpn"]);
        assert!(
            !lab.sites["eu"].vcenter.vms.values().any(|v| v.name == "win11-build"),
            "builds only at the source"
        );
        let eu_pools: Vec<&str> = lab.sites["eu"].horizon.pools.values().map(|p| p.name.as_str()).collect();
        assert_eq!(eu_pools.len(), 3, "{eu_pools:?}");
        assert!(eu_pools.contains(&"SAP-Farm"));
        assert_eq!(hq.vcenter_url.as_deref(), Some("http://127.0.0.1:18441"));
    }
}
