//! What every pass reads, gathered once: each site's pools with the version their marker points
//! at, each site's rollback window, the library of every vCenter read with golden's items in it,
//! golden's base VMs at every site read, and what each planned site needs.

use std::collections::{BTreeMap, BTreeSet};

use super::{PlanOptions, in_scope};
use crate::desired::{DesiredState, Pool, Source, Version};
use crate::ids::{ImageName, MarkerName, SiteName, VersionName, VersionRef};
use crate::live::{ImageRef, ItemId, LibraryKind, LiveState, Moref, SiteLive, VcenterId, VcenterLive};

/// golden's items of one version in one library.
#[derive(Default)]
pub(super) struct LibraryCopy<'a> {
    pub(super) items: Vec<&'a ItemId>,
    /// The source the first item's metadata records.
    pub(super) meta_source: Option<&'a str>,
    /// Whether one of the items has all its content (see [`crate::live::LibraryItem::cached`]).
    pub(super) cached: bool,
}

/// One vCenter's library as the plan sees it. Every site of that vCenter uses it: the source
/// site's vCenter publishes it, every other vCenter holds a replica.
pub(super) struct LibraryView<'a> {
    pub(super) live: &'a VcenterLive,
    /// golden's items, by version.
    pub(super) copies: BTreeMap<VersionRef, LibraryCopy<'a>>,
    /// The sites read that use it, by name.
    pub(super) sites: Vec<&'a SiteName>,
    /// The library of the source site's vCenter, which every other library replicates.
    pub(super) is_source: bool,
}

impl LibraryView<'_> {
    /// Whether the version is here, content included: in a subscribed library an item whose
    /// files are still on their way is a replication under way, not a copy.
    pub(super) fn has(&self, key: &VersionRef) -> bool {
        self.copies.get(key).is_some_and(|c| c.cached || !self.subscribed())
    }

    /// A subscribed library mirrors every published version: its items come back with the
    /// next sync and vCenter refuses to delete them, so none is ever retired there.
    pub(super) fn subscribed(&self) -> bool {
        self.live.library.as_ref().is_some_and(|l| matches!(l.kind, LibraryKind::Subscribed { .. }))
    }
}

/// golden's base VMs of one version at one site.
#[derive(Default)]
pub(super) struct SiteCopy<'a> {
    pub(super) vms: Vec<&'a Moref>,
    /// The base VM and its snapshot, when a deployed base is complete.
    pub(super) base: Option<ImageRef>,
}

/// Everything the passes share, computed once from the desired state, the live state and the
/// options.
pub(super) struct Inputs<'a> {
    pub(super) desired: &'a DesiredState,
    pub(super) live: &'a LiveState,
    pub(super) options: &'a PlanOptions,
    pub(super) source_site: &'a SiteName,
    /// The sites planned: every site, or those named with `--site`.
    pub(super) scope: Vec<&'a SiteName>,
    /// The sites read: the scope and the source site every other site copies from.
    pub(super) read: Vec<&'a SiteName>,
    /// The sites of the repository this plan did not read.
    pub(super) unread: BTreeSet<&'a str>,
    /// Every site's pools, each with the version its marker points at.
    pub(super) pools: BTreeMap<&'a SiteName, Vec<(&'a Pool, Option<VersionRef>)>>,
    /// Every site's rollback window: the versions kept warm there, with their markers.
    pub(super) windows: BTreeMap<&'a SiteName, BTreeMap<VersionRef, BTreeSet<&'a MarkerName>>>,
    /// The library of every vCenter a site read is in.
    pub(super) libraries: BTreeMap<&'a VcenterId, LibraryView<'a>>,
    /// golden's base VMs at every site read.
    pub(super) bases: BTreeMap<&'a SiteName, BTreeMap<VersionRef, SiteCopy<'a>>>,
    /// The base VMs to adopt: for an adopted version, a pool's current image that is the
    /// version's own VM and snapshot, not yet golden's. It counts as the site's base already.
    pub(super) adopt: BTreeMap<(&'a SiteName, VersionRef), ImageRef>,
}

impl<'a> Inputs<'a> {
    pub(super) fn new(
        desired: &'a DesiredState,
        live: &'a LiveState,
        options: &'a PlanOptions,
    ) -> Inputs<'a> {
        let source_site = &desired.settings.source_site;
        let scope: Vec<&SiteName> = desired.sites.keys().filter(|s| in_scope(options, s)).collect();
        let mut read = scope.clone();
        if !read.contains(&source_site) {
            read.push(source_site);
        }
        let unread = desired.sites.keys().filter(|s| !read.contains(s)).map(SiteName::as_str).collect();

        let target = |p: &Pool| -> Option<VersionRef> {
            let image = desired.images.get(&p.image)?;
            Some(VersionRef::new(&p.image, image.markers.get(&p.marker)?))
        };
        let mut pools: BTreeMap<&SiteName, Vec<(&Pool, Option<VersionRef>)>> =
            desired.sites.keys().map(|s| (s, Vec::new())).collect();
        for p in desired.pools.values() {
            if let Some(list) = pools.get_mut(&p.site) {
                list.push((p, target(p)));
            }
        }
        let histories: BTreeMap<(&ImageName, &MarkerName), &[VersionName]> =
            options.marker_history.iter().map(|((i, m), h)| ((i, m), h.as_slice())).collect();
        let windows = pools.iter().map(|(s, p)| (*s, rollback_window(desired, p, &histories))).collect();

        let source_vcenter = live.sites.get(source_site).map(|s| &s.vcenter);
        let mut libraries: BTreeMap<&VcenterId, LibraryView> = BTreeMap::new();
        let mut bases = BTreeMap::new();
        for site in &read {
            let Some(s) = live.sites.get(*site) else { continue };
            let Some(vc) = live.vcenters.get(&s.vcenter) else { continue };
            libraries
                .entry(&s.vcenter)
                .or_insert_with(|| LibraryView {
                    live: vc,
                    copies: library_copies(vc),
                    sites: Vec::new(),
                    is_source: source_vcenter == Some(&s.vcenter),
                })
                .sites
                .push(*site);
            bases.insert(*site, site_copies(s));
        }
        for library in libraries.values_mut() {
            library.sites.sort();
        }
        let adopt = adoptions(desired, live, &read, &pools, &bases);
        for ((site, key), image) in &adopt {
            if let Some(copies) = bases.get_mut(site) {
                copies.entry(key.clone()).or_default().base = Some(image.clone());
            }
        }
        Inputs {
            desired,
            live,
            options,
            source_site,
            scope,
            read,
            unread,
            pools,
            windows,
            libraries,
            bases,
            adopt,
        }
    }

    /// A site's live state, when the plan read it.
    pub(super) fn site(&self, site: &SiteName) -> Option<&'a SiteLive> {
        self.live.sites.get(site).filter(|_| self.read.contains(&site))
    }

    /// The library `site` uses, when the plan read the site.
    pub(super) fn library_of(&self, site: &SiteName) -> Option<&LibraryView<'a>> {
        self.libraries.get(&self.site(site)?.vcenter)
    }

    pub(super) fn source_library(&self) -> Option<&LibraryView<'a>> {
        self.library_of(self.source_site)
    }

    /// Whether `site` uses the source library itself (it shares the source site's vCenter), so
    /// that a version is there once published.
    pub(super) fn uses_source_library(&self, site: &SiteName) -> bool {
        *site == *self.source_site || self.library_of(site).is_some_and(|l| l.is_source)
    }

    pub(super) fn has_item(&self, site: &SiteName, key: &VersionRef) -> bool {
        self.library_of(site).is_some_and(|l| l.has(key))
    }

    pub(super) fn is_published(&self, key: &VersionRef) -> bool {
        self.source_library().is_some_and(|l| l.has(key))
    }

    pub(super) fn base(&self, site: &SiteName, key: &VersionRef) -> Option<&ImageRef> {
        self.bases.get(site)?.get(key)?.base.as_ref()
    }

    pub(super) fn pools_of(&self, site: &SiteName) -> &[(&'a Pool, Option<VersionRef>)] {
        self.pools.get(site).map_or(&[], Vec::as_slice)
    }

    pub(super) fn window_of(
        &self,
        site: &SiteName,
    ) -> impl Iterator<Item = (&VersionRef, &BTreeSet<&'a MarkerName>)> {
        self.windows.get(site).into_iter().flatten()
    }

    pub(super) fn in_repo(&self, VersionRef { image, version }: &VersionRef) -> bool {
        self.desired.images.get(image).is_some_and(|i| i.versions.contains_key(version))
    }
}

/// For each adopted version a read site's pools need and the site has no base of: the image a
/// pool there runs when it is the version's own VM and snapshot (by name), not owned yet.
fn adoptions<'a>(
    desired: &DesiredState,
    live: &LiveState,
    read: &[&'a SiteName],
    pools: &BTreeMap<&'a SiteName, Vec<(&'a Pool, Option<VersionRef>)>>,
    bases: &BTreeMap<&'a SiteName, BTreeMap<VersionRef, SiteCopy<'a>>>,
) -> BTreeMap<(&'a SiteName, VersionRef), ImageRef> {
    let mut out = BTreeMap::new();
    for site in read {
        let Some(s) = live.sites.get(*site) else { continue };
        for (pool, key) in pools.get(site).into_iter().flatten() {
            let Some(key) = key else { continue };
            let has_base = bases.get(site).and_then(|b| b.get(key)).is_some_and(|c| c.base.is_some());
            if has_base || out.contains_key(&(*site, key.clone())) {
                continue;
            }
            let version = desired.images.get(&key.image).and_then(|i| i.versions.get(&key.version));
            let Some(Version { adopted: true, source: Source::Vm { vm, snapshot: Some(snap) }, .. }) =
                version
            else {
                continue;
            };
            let Some(current) = s.pools.get(&pool.horizon_name).and_then(|p| p.current.as_ref()) else {
                continue;
            };
            let Some(running) = s.vms.get(&current.vm).filter(|v| &v.name == vm && v.meta.is_none()) else {
                continue;
            };
            if running.snapshots.iter().any(|x| x.id == current.snapshot && &x.name == snap) {
                out.insert((*site, key.clone()), current.clone());
            }
        }
    }
    out
}

pub(super) fn library_copies(vc: &VcenterLive) -> BTreeMap<VersionRef, LibraryCopy<'_>> {
    let mut out: BTreeMap<VersionRef, LibraryCopy> = BTreeMap::new();
    for item in vc.items.values() {
        if let Some(meta) = &item.meta {
            let c = out.entry(meta.version_ref()).or_default();
            c.items.push(&item.id);
            c.meta_source.get_or_insert(&meta.source);
            c.cached |= item.cached;
        }
    }
    out
}

pub(super) fn site_copies(site: &SiteLive) -> BTreeMap<VersionRef, SiteCopy<'_>> {
    let mut out: BTreeMap<VersionRef, SiteCopy> = BTreeMap::new();
    for vm in site.vms.values() {
        if let Some(meta) = &vm.meta {
            let c = out.entry(meta.version_ref()).or_default();
            // A version's own VM, adopted, is the admin's: golden never retires it.
            if !vm.is_source_vm() {
                c.vms.push(&vm.id);
            }
            if let (None, Some(snapshot)) = (&c.base, vm.base_snapshot(&meta.version)) {
                c.base = Some(ImageRef { vm: vm.id.clone(), snapshot: snapshot.id.clone() });
            }
        }
    }
    out
}

/// What each planned site needs: the version each of its pools' markers points at, with the
/// pools that need it (for reasons).
pub(super) type Needs<'a> = BTreeMap<&'a SiteName, BTreeMap<VersionRef, Vec<&'a Pool>>>;

pub(super) fn needs<'a>(inputs: &Inputs<'a>) -> Needs<'a> {
    let mut needs: Needs = BTreeMap::new();
    for site in &inputs.scope {
        for (pool, key) in inputs.pools_of(site) {
            if let Some(key) = key {
                needs.entry(*site).or_default().entry(key.clone()).or_default().push(*pool);
            }
        }
    }
    needs
}

/// Versions kept warm at a site: the `keep_previous` earlier targets of each marker bound there
/// (its `pools`), with the markers they are kept for. `histories` is each marker's history.
pub(super) fn rollback_window<'a>(
    desired: &'a DesiredState,
    pools: &[(&'a Pool, Option<VersionRef>)],
    histories: &BTreeMap<(&ImageName, &MarkerName), &[VersionName]>,
) -> BTreeMap<VersionRef, BTreeSet<&'a MarkerName>> {
    let keep = desired.settings.keep_previous as usize;
    let mut out: BTreeMap<VersionRef, BTreeSet<&MarkerName>> = BTreeMap::new();
    for (pool, current) in pools {
        let Some(history) = histories.get(&(&pool.image, &pool.marker)) else { continue };
        let current = current.as_ref().map(|c| &c.version);
        for v in history.iter().filter(|v| Some(*v) != current).take(keep) {
            out.entry(VersionRef::new(&pool.image, v)).or_default().insert(&pool.marker);
        }
    }
    out
}
