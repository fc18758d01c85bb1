//! The planner: a pure function of (desired state, live state, options) to a [`Plan`].
//!
//! No I/O, no clock, no randomness: the same inputs give the same plan, byte for byte, which is
//! what makes its snapshot tests and saved plans trustworthy. Everything here works on golden's
//! domain types; API types never reach it.
//!
//! What a site needs: the version each of its pools' markers points at. What it keeps besides:
//! copies a pool still runs (until pushed away), and the `keep_previous` versions each bound
//! marker pointed at before (the warm rollback window, from git history in `marker_history`),
//! which the plan replicates and deploys where a copy is missing, as long as the version is
//! published: it never publishes a version only to keep it warm.
//! Everything else golden owns at the site is retired, after the pushes that move its pools
//! away. The source site also keeps the library item of every version some site needs or keeps,
//! planned or not, since every site replicates from it: what an unplanned site needs and keeps
//! for rollback follows from the desired state and git history, but not what its pools still
//! run, so while a site is unread no item leaves the source library.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::{Action, FORMAT_VERSION, Plan, PublishSource, Step, StepId};
use crate::desired::{DesiredState, Pool, Source};
use crate::ids::{ImageName, MarkerName, SiteName, VersionName};
use crate::live::{
    GoldenMeta, ImageRef, LibraryKind, LivePool, LiveState, Operation, PendingState, SiteLive,
};

/// Inputs of a plan besides the two states.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Plan only these sites (their prerequisites at the source site included); empty = all.
    pub sites: BTreeSet<SiteName>,
    /// Earlier versions of each marker, most recent first, from git history: the rollback
    /// window. Without git history nothing beyond current use is kept warm.
    pub marker_history: BTreeMap<(ImageName, MarkerName), Vec<VersionName>>,
    /// The markers each pool or farm was bound to before, from git history; `None` when the
    /// desired state has no git history. A pool without an entry was always bound as it is.
    /// golden pushes a pool only to what its marker points at, so with this history a pool that
    /// runs a version none of its markers ever pointed at was pushed outside golden: drift.
    /// Without it, the planner cannot tell drift from a marker move or a new binding.
    pub pool_history: Option<BTreeMap<PoolKey, Vec<EarlierBinding>>>,
}

/// A pool or farm as Horizon knows it: its site and its Horizon name.
pub type PoolKey = (SiteName, String);

/// A marker a pool was bound to before its current binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlierBinding {
    pub image: ImageName,
    pub marker: MarkerName,
    /// Every version the marker pointed at in git history.
    pub versions: BTreeSet<VersionName>,
}

/// Problems that make a plan impossible; the user must fix the repository or the site.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "version {image}@{version} is already published from `{published}`, but the repository now says `{desired}`; published versions are immutable"
    )]
    SourceChanged { image: ImageName, version: VersionName, published: String, desired: String },
    #[error("the source of {image}@{version} is missing at source site `{site}`: {what}")]
    SourceMissing { image: ImageName, version: VersionName, site: SiteName, what: String },
    #[error("site `{site}` was not read, but the plan needs it")]
    SiteNotRead { site: SiteName },
}

impl PlanError {
    pub fn hint(&self) -> String {
        match self {
            PlanError::SourceChanged { image, .. } => {
                format!(
                    "add a new version to images/{image}.toml with the new source, and move the marker to it"
                )
            }
            PlanError::SourceMissing { .. } => {
                "create the VM and snapshot (or library item) at the source site, or fix the version's source"
                    .to_owned()
            }
            PlanError::SiteNotRead { .. } => {
                "check the site's credentials and that it is reachable".to_owned()
            }
        }
    }
}

/// The identity golden records for a version's source, e.g. `vm:win11-build@sealed-2026-10`.
pub fn source_identity(source: &Source) -> String {
    match source {
        Source::Vm { vm, snapshot: Some(s) } => format!("vm:{vm}@{s}"),
        Source::Vm { vm, snapshot: None } => format!("vm:{vm}"),
        Source::LibraryItem { name } => format!("library_item:{name}"),
    }
}

/// A version of an image.
pub type Key = (ImageName, VersionName);

/// What golden owns of one version at one site.
#[derive(Default)]
struct Copy {
    items: Vec<String>,
    vms: Vec<String>,
    /// The base VM and its snapshot, when a deployed base is complete.
    base: Option<ImageRef>,
    meta_source: Option<String>,
}

fn copies(site: &SiteLive) -> BTreeMap<Key, Copy> {
    let mut out: BTreeMap<Key, Copy> = BTreeMap::new();
    let key = |m: &GoldenMeta| (m.image.clone(), m.version.clone());
    for item in site.items.values() {
        if let Some(meta) = &item.meta {
            let c = out.entry(key(meta)).or_default();
            c.items.push(item.id.to_string());
            c.meta_source.get_or_insert_with(|| meta.source.clone());
        }
    }
    for vm in site.vms.values() {
        if let Some(meta) = &vm.meta {
            let c = out.entry(key(meta)).or_default();
            c.vms.push(vm.id.to_string());
            if let (None, Some(snapshot)) = (&c.base, vm.snapshots.last()) {
                c.base = Some(ImageRef { vm: vm.id.clone(), snapshot: snapshot.id.clone() });
            }
        }
    }
    out
}

/// A version of a rollback window that no site in the plan has a copy of and that is not
/// published: what a rollback to it would take.
#[derive(Default)]
struct Cold {
    markers: BTreeSet<String>,
    replicate_to: BTreeSet<String>,
    deploy_at: BTreeSet<String>,
}

/// The version a pool's image reference is, when golden owns the VM.
pub fn version_of(site: &SiteLive, image: &ImageRef) -> Option<Key> {
    version_ref(site, image).map(|(i, v)| (i.clone(), v.clone()))
}

/// [`version_of`], borrowed from the VM's metadata.
fn version_ref<'a>(site: &'a SiteLive, image: &ImageRef) -> Option<(&'a ImageName, &'a VersionName)> {
    let meta = site.vms.get(&image.vm)?.meta.as_ref()?;
    Some((&meta.image, &meta.version))
}

fn step_id(parts: &[&str]) -> StepId {
    StepId::new(parts.join("/"))
}

/// The step copying `key` from the source site's library into `site`'s, after its publish.
fn replicate_step(
    site: &SiteName,
    key: &Key,
    source: &SiteName,
    publish: Option<&StepId>,
    reason: String,
) -> Step {
    let (image, version) = key;
    Step {
        id: step_id(&["replicate", site.as_str(), image.as_str(), version.as_str()]),
        site: site.clone(),
        action: Action::Replicate { image: image.clone(), version: version.clone(), from: source.clone() },
        reason,
        depends_on: publish.cloned().into_iter().collect(),
    }
}

/// The step deploying `key`'s base VM and snapshot at `site`.
fn deploy_step(site: &SiteName, key: &Key, reason: String, depends_on: Vec<StepId>) -> Step {
    let (image, version) = key;
    Step {
        id: step_id(&["deploy", site.as_str(), image.as_str(), version.as_str()]),
        site: site.clone(),
        action: Action::Deploy { image: image.clone(), version: version.clone() },
        reason,
        depends_on,
    }
}

/// Computes the plan. Errors list every reason the plan is impossible.
pub fn plan(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> Result<Plan, Vec<PlanError>> {
    plan_with(desired, live, options, Fingerprints::default())
}

/// [`plan`], given the fingerprints of sites already taken: the loader takes each site's as
/// soon as its read is done, while other sites are still being read. Fingerprints of the sites
/// the plan reads that are not in `taken` are taken here, on another core while the steps are
/// planned; those of other sites are left out.
pub fn plan_with(
    desired: &DesiredState,
    live: &LiveState,
    options: &PlanOptions,
    mut taken: Fingerprints,
) -> Result<Plan, Vec<PlanError>> {
    let read_sites = sites_read(desired, options);
    let missing: Vec<&SiteName> = read_sites.iter().copied().filter(|s| !taken.0.contains_key(*s)).collect();
    std::thread::scope(|scope| {
        let rest = (!missing.is_empty()).then(|| scope.spawn(|| fingerprints(live, &missing)));
        let planned = plan_steps(desired, live, options, &read_sites);
        let mut prints: Vec<(String, String)> =
            read_sites.iter().filter_map(|s| taken.0.remove(*s)).flatten().collect();
        if let Some(rest) = rest {
            prints.extend(rest.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        planned.map(|plan| Plan { fingerprints: prints.into_iter().collect(), ..plan })
    })
}

/// Whether `site` is in the plan's scope (every site is without `--site`).
fn in_scope(options: &PlanOptions, site: &SiteName) -> bool {
    options.sites.is_empty() || options.sites.contains(site)
}

/// The sites a plan reads: its scope, and the source site every other site copies from.
fn sites_read<'a>(desired: &'a DesiredState, options: &PlanOptions) -> Vec<&'a SiteName> {
    let source_site = &desired.settings.source_site;
    let mut read: Vec<&SiteName> = desired.sites.keys().filter(|s| in_scope(options, s)).collect();
    if !read.contains(&source_site) {
        read.push(source_site);
    }
    read
}

/// [`plan`] but for the fingerprints.
fn plan_steps(
    desired: &DesiredState,
    live: &LiveState,
    options: &PlanOptions,
    read_sites: &[&SiteName],
) -> Result<Plan, Vec<PlanError>> {
    let source_site = &desired.settings.source_site;
    let scope: Vec<SiteName> = desired.sites.keys().filter(|s| in_scope(options, s)).cloned().collect();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let empty = SiteLive::default();
    let site_live = |s: &SiteName| live.sites.get(s);
    for s in read_sites {
        if site_live(s).is_none() {
            errors.push(PlanError::SiteNotRead { site: (*s).clone() });
        }
    }
    let copies_at: BTreeMap<&SiteName, BTreeMap<Key, Copy>> =
        read_sites.iter().map(|s| (*s, copies(site_live(s).unwrap_or(&empty)))).collect();

    // Each site's pools with the version each one's marker points at, and each site's rollback
    // window: every pass below works site by site.
    let target = |p: &Pool| -> Option<Key> {
        let image = desired.images.get(&p.image)?;
        Some((p.image.clone(), image.markers.get(&p.marker)?.clone()))
    };
    let mut pools_at: BTreeMap<&SiteName, Vec<(&Pool, Option<Key>)>> =
        desired.sites.keys().map(|s| (s, Vec::new())).collect();
    for p in desired.pools.values() {
        if let Some(list) = pools_at.get_mut(&p.site) {
            list.push((p, target(p)));
        }
    }
    let no_pools = Vec::new();
    let pools_of = |s: &SiteName| pools_at.get(s).unwrap_or(&no_pools);
    let histories: BTreeMap<(&ImageName, &MarkerName), &[VersionName]> =
        options.marker_history.iter().map(|((i, m), h)| ((i, m), h.as_slice())).collect();
    let windows: BTreeMap<&SiteName, BTreeMap<Key, BTreeSet<&MarkerName>>> =
        pools_at.iter().map(|(s, pools)| (*s, rollback_window(desired, pools, &histories))).collect();
    let no_window = BTreeMap::new();
    let window_of = |s: &SiteName| windows.get(s).unwrap_or(&no_window);

    // What each site needs, and which pools need it (for reasons).
    let mut needed: BTreeMap<&SiteName, BTreeMap<Key, Vec<&Pool>>> = BTreeMap::new();
    for s in &scope {
        for (p, k) in pools_of(s) {
            if let Some(k) = k {
                needed.entry(s).or_default().entry(k.clone()).or_default().push(p);
            }
        }
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut publish_of: BTreeMap<Key, StepId> = BTreeMap::new();
    let mut deploy_of: BTreeMap<&SiteName, BTreeMap<Key, StepId>> = BTreeMap::new();

    // Publish: every version some site in scope needs, unless the source library has it.
    let all_needed: BTreeSet<&Key> = needed.values().flat_map(|m| m.keys()).collect();
    let source_copies = copies_at.get(source_site);
    for key @ (image, version) in &all_needed {
        let Some(v) = desired.images.get(image).and_then(|i| i.versions.get(version)) else { continue };
        let identity = source_identity(&v.source);
        let existing = source_copies.and_then(|c| c.get(*key)).filter(|c| !c.items.is_empty());
        if let Some(copy) = existing {
            if let Some(published) = &copy.meta_source {
                if *published != identity {
                    errors.push(PlanError::SourceChanged {
                        image: image.clone(),
                        version: version.clone(),
                        published: published.clone(),
                        desired: identity,
                    });
                }
            }
            continue;
        }
        let src_live = site_live(source_site).unwrap_or(&empty);
        let (source, missing) = match &v.source {
            Source::Vm { vm, snapshot } => {
                let found = src_live.vms.values().find(|x| &x.name == vm && x.meta.is_none());
                let missing = match (found, snapshot) {
                    (None, _) => Some(format!("no VM named `{vm}`")),
                    (Some(x), Some(s)) if !x.snapshots.iter().any(|y| &y.name == s) => {
                        Some(format!("VM `{vm}` has no snapshot named `{s}`"))
                    }
                    _ => None,
                };
                (PublishSource::Vm { vm: vm.clone(), snapshot: snapshot.clone() }, missing)
            }
            Source::LibraryItem { name } => {
                let found = src_live.items.values().any(|i| &i.name == name);
                let missing = (!found)
                    .then(|| format!("no item named `{name}` in library `{}`", desired.settings.library));
                (PublishSource::LibraryItem { name: name.clone() }, missing)
            }
        };
        if let Some(what) = missing {
            if site_live(source_site).is_some() {
                errors.push(PlanError::SourceMissing {
                    image: image.clone(),
                    version: version.clone(),
                    site: source_site.clone(),
                    what,
                });
            }
            continue;
        }
        let users = needed.values().filter_map(|m| m.get(*key)).flatten().map(|p| p.name.as_str());
        let id = step_id(&["publish", image.as_str(), version.as_str()]);
        publish_of.insert((*key).clone(), id.clone());
        steps.push(Step {
            id,
            site: source_site.clone(),
            action: Action::Publish { image: image.clone(), version: version.clone(), source },
            reason: format!("{image}@{version} is not published yet; needed by {}", list(users)),
            depends_on: Vec::new(),
        });
    }

    // Replicate and deploy where a site needs a version it lacks.
    for (site, keys) in &needed {
        let here = copies_at.get(site);
        for (key @ (image, version), users) in keys {
            let copy = here.and_then(|c| c.get(key));
            let mut deps = Vec::new();
            let has_item = copy.is_some_and(|c| !c.items.is_empty());
            if **site == *source_site {
                deps.extend(publish_of.get(key).cloned());
            } else if !has_item {
                let reason = format!("copy of {image}@{version} missing at {site}");
                let step = replicate_step(site, key, source_site, publish_of.get(key), reason);
                deps.push(step.id.clone());
                steps.push(step);
            }
            if copy.and_then(|c| c.base.as_ref()).is_none() {
                let names = users.iter().map(|p| p.name.as_str());
                let reason = format!("no base VM of {image}@{version} at {site}; needed by {}", list(names));
                let step = deploy_step(site, key, reason, deps);
                deploy_of.entry(*site).or_default().insert(key.clone(), step.id.clone());
                steps.push(step);
            }
        }
    }

    // Keep the rollback window warm: a copy (library item, base VM and snapshot) at each site
    // of every version a marker bound there pointed at before, so that rolling back is a push.
    // A missing piece is made again from the source library. A version that is not in the
    // source library is not published for that: it may never have been (the marker moved before
    // golden's first apply), and publishing it would capture and ship an image no pool ran
    // under golden. The plan then says once what a rollback to it would take.
    let keep = desired.settings.keep_previous;
    let mut cold: BTreeMap<Key, Cold> = BTreeMap::new();
    for site in &scope {
        let here = copies_at.get(site);
        for (key, markers) in window_of(site) {
            let key = key.clone();
            let (image, version) = &key;
            let in_repo = desired.images.get(image).is_some_and(|i| i.versions.contains_key(version));
            if !in_repo || needed.get(site).is_some_and(|n| n.contains_key(&key)) {
                continue;
            }
            let copy = here.and_then(|c| c.get(&key));
            if copy.is_some_and(|c| c.base.is_some()) {
                continue;
            }
            let markers: BTreeSet<&str> = markers.iter().map(|m| m.as_str()).collect();
            let has_item = copy.is_some_and(|c| !c.items.is_empty());
            let published = source_copies.and_then(|c| c.get(&key)).is_some_and(|c| !c.items.is_empty())
                || publish_of.contains_key(&key);
            let for_rollback = format!(
                "kept warm for a rollback of marker {} of {image} (keep_previous = {keep})",
                list(markers.iter().copied())
            );
            let mut deps: Vec<StepId> = Vec::new();
            if has_item {
                // The site's own item (at the source: the published one) is enough.
            } else if !published {
                let c = cold.entry(key.clone()).or_default();
                c.markers.extend(markers.iter().map(|m| (*m).to_owned()));
                c.deploy_at.insert(site.as_str().to_owned());
                if *site != *source_site {
                    c.replicate_to.insert(site.as_str().to_owned());
                }
                continue;
            } else if *site == *source_site {
                deps.extend(publish_of.get(&key).cloned());
            } else {
                let reason = format!("copy of {image}@{version} missing at {site}; {for_rollback}");
                let step = replicate_step(site, &key, source_site, publish_of.get(&key), reason);
                deps.push(step.id.clone());
                steps.push(step);
            }
            let reason = format!("no base VM of {image}@{version} at {site}; {for_rollback}");
            steps.push(deploy_step(site, &key, reason, deps));
        }
    }
    for ((image, version), c) in &cold {
        let markers: BTreeSet<&str> = c.markers.iter().map(String::as_str).collect();
        let mut then = vec![format!("publish it at {source_site}")];
        if !c.replicate_to.is_empty() {
            then.push(format!("replicate it to {}", all(c.replicate_to.iter().map(String::as_str))));
        }
        then.push(format!("deploy it at {}", all(c.deploy_at.iter().map(String::as_str))));
        warnings.push(format!(
            "no warm copy of {image}@{version}, kept for a rollback of marker {} (keep_previous = {keep}): it is not published, so a rollback to it would first {}",
            list(markers.iter().copied()),
            then.join(", then ")
        ));
    }

    // Pushes.
    let mut pushes: Vec<(u32, Step)> = Vec::new();
    let mut pushed_away: BTreeMap<(SiteName, Key), Vec<StepId>> = BTreeMap::new();
    for site in &scope {
        let s_live = site_live(site).unwrap_or(&empty);
        let here = copies_at.get(site);
        for (pool, key) in pools_of(site) {
            let Some(key) = key else { continue };
            let (image, version) = key;
            let Some(lp) = s_live.pools.get(&pool.horizon_name) else {
                if site_live(site).is_some() {
                    warnings.push(format!(
                        "pool {}: Horizon at {site} has no {} named `{}`; create it, or fix horizon_name",
                        pool.name, pool.kind, pool.horizon_name
                    ));
                }
                continue;
            };
            let base = here.and_then(|c| c.get(key)).and_then(|c| c.base.as_ref());
            let runs_target = lp.current.is_some() && lp.current.as_ref() == base;
            if runs_target || pending_towards(lp, s_live, key) {
                continue;
            }
            let current = lp.current.as_ref().and_then(|c| version_of(s_live, c));
            let reason = push_reason(pool, lp, current.as_ref(), key, s_live, options);
            let id = step_id(&["push", site.as_str(), pool.name.as_str()]);
            if let Some(c) = &current {
                pushed_away.entry((site.clone(), c.clone())).or_default().push(id.clone());
            }
            pushes.push((
                pool.wave,
                Step {
                    id,
                    site: site.clone(),
                    action: Action::Push {
                        pool: pool.name.clone(),
                        horizon_name: pool.horizon_name.clone(),
                        pool_kind: pool.kind,
                        image: image.clone(),
                        marker: pool.marker.clone(),
                        version: version.clone(),
                        wave: pool.wave,
                        logoff: pool.logoff,
                    },
                    reason,
                    depends_on: deploy_of.get(site).and_then(|d| d.get(key)).cloned().into_iter().collect(),
                },
            ));
        }
    }
    // Waves are global: a wave starts when every push of every earlier wave succeeded. A push
    // depends on the previous wave as a group (`wave/N`), which covers the waves before it,
    // rather than on each of its pushes: thousands of pools must not mean millions of edges.
    let waves: BTreeMap<u32, StepId> = pushes.iter().map(|(w, _)| (*w, StepId::wave(*w))).collect();
    for (wave, step) in &mut pushes {
        if let Some((_, previous)) = waves.range(..*wave).next_back() {
            step.depends_on.push(previous.clone());
        }
    }
    // (The steps are put in order once, at the end.)
    steps.extend(pushes.into_iter().map(|(_, s)| s));

    // Retire what nothing needs. Every site, planned or not, holds on to the versions its
    // pools need and its rollback window (both known from the desired state and git history);
    // a site that was read also holds what its pools run or are moving to, until pushes of
    // this plan move every such pool away (the retirement then waits for those pushes).
    let mut held: BTreeMap<&SiteName, BTreeSet<Key>> = BTreeMap::new();
    let mut waits: BTreeMap<(&SiteName, Key), Vec<StepId>> = BTreeMap::new();
    for site in desired.sites.keys() {
        let holds = held.entry(site).or_default();
        for key in pools_of(site).iter().filter_map(|(_, k)| k.as_ref()).chain(window_of(site).keys()) {
            if !holds.contains(key) {
                holds.insert(key.clone());
            }
        }
        let Some(s_live) = site_live(site).filter(|_| read_sites.contains(&site)) else { continue };
        let mut users: BTreeMap<(&ImageName, &VersionName), usize> = BTreeMap::new();
        for p in s_live.pools.values() {
            let current = p.current.as_ref().and_then(|c| version_ref(s_live, c));
            let pending = p
                .pending
                .as_ref()
                .and_then(|x| version_ref(s_live, &x.image))
                .filter(|k| Some(*k) != current);
            for key in current.into_iter().chain(pending) {
                *users.entry(key).or_default() += 1;
            }
        }
        for ((image, version), n) in users {
            let key = (image.clone(), version.clone());
            let away = pushed_away.get(&(site.clone(), key.clone())).cloned().unwrap_or_default();
            if n > away.len() {
                holds.insert(key);
            } else {
                waits.insert((site, key), away);
            }
        }
    }
    // A site this plan did not read may still run a version nothing else needs (its pools
    // are not pushed away yet). Not having looked must never delete what it may use: while a
    // site is unread, no item leaves the source library.
    let unread: BTreeSet<&str> =
        desired.sites.keys().filter(|s| !read_sites.contains(s)).map(SiteName::as_str).collect();
    for site in &scope {
        let Some(here) = copies_at.get(site) else { continue };
        let s_live = site_live(site).unwrap_or(&empty);
        let holds = |s: &SiteName, key: &Key| held.get(s).is_some_and(|h| h.contains(key));
        for (key @ (image, version), copy) in here {
            let keep_vms = holds(site, key);
            // The source library feeds every site: its item of a version stays while any site
            // holds the version, and goes after the pushes moving any site's pools away.
            let (keep_items, item_holders) = if *site == *source_site {
                let holders: BTreeSet<&str> =
                    held.iter().filter(|(_, h)| h.contains(key)).map(|(s, _)| s.as_str()).collect();
                (!holders.is_empty() || !unread.is_empty(), holders)
            } else {
                (keep_vms, BTreeSet::new())
            };
            // A subscribed library mirrors every published version: its items come back with
            // the next sync and vCenter refuses to delete them, so only base VMs retire there.
            let subscribed =
                s_live.library.as_ref().is_some_and(|l| matches!(l.kind, LibraryKind::Subscribed { .. }));
            let items = if keep_items || subscribed { Vec::new() } else { copy.items.clone() };
            if *site == *source_site && item_holders.is_empty() && keep_items && !copy.items.is_empty() {
                warnings.push(format!(
                    "the library item of {image}@{version} stays at {site}, the source site: {} not in this plan and may still use it; a plan of every site retires it if no site does",
                    are(&unread)
                ));
            }
            let vms = if keep_vms { Vec::new() } else { copy.vms.clone() };
            if items.is_empty() && vms.is_empty() {
                continue;
            }
            // After the pushes moving this site's pools away, and for an item of the source
            // library, those of every site.
            let from_source = *site == *source_site && !items.is_empty();
            let depends_on: BTreeSet<StepId> = waits
                .iter()
                .filter(|((s, k), _)| k == key && (*s == site || from_source))
                .flat_map(|(_, ids)| ids.iter().cloned())
                .collect();
            let in_repo = desired.images.get(image).is_some_and(|i| i.versions.contains_key(version));
            let mut why = if in_repo {
                format!("no marker, pool or rollback window needs {image}@{version} at {site}")
            } else {
                format!("{image}@{version} is no longer in the repository")
            };
            if !item_holders.is_empty() && !copy.items.is_empty() {
                let _ = write!(why, "; its library item stays for {}", list(item_holders.iter().copied()));
            }
            steps.push(Step {
                id: step_id(&["retire", site.as_str(), image.as_str(), version.as_str()]),
                site: site.clone(),
                action: Action::Retire { image: image.clone(), version: version.clone(), items, vms },
                reason: why,
                depends_on: depends_on.into_iter().collect(),
            });
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    // Step ids are unique, so an unstable sort is as deterministic as a stable one. Steps are
    // large: their order is found on keys, then each step is moved once.
    let order: Vec<usize> = {
        let mut keys: Vec<_> =
            steps.iter().enumerate().map(|(i, s)| (s.action.rank(), wave_of(s), &s.site, &s.id, i)).collect();
        keys.sort_unstable();
        keys.into_iter().map(|(.., i)| i).collect()
    };
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let steps: Vec<Step> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(Plan {
        format_version: FORMAT_VERSION,
        golden_version: env!("CARGO_PKG_VERSION").to_owned(),
        desired_commit: desired.revision.as_ref().map(|r| r.commit.clone()),
        fingerprints: BTreeMap::new(),
        sites: scope.clone(),
        steps,
        warnings,
    })
}

fn wave_of(step: &Step) -> u32 {
    match &step.action {
        Action::Push { wave, .. } => *wave,
        Action::Publish { .. } | Action::Replicate { .. } | Action::Deploy { .. } | Action::Retire { .. } => {
            0
        }
    }
}

/// True when Horizon is already moving the pool to this version and has not failed.
fn pending_towards(pool: &LivePool, site: &SiteLive, key: &Key) -> bool {
    let Some(pending) = &pool.pending else { return false };
    let towards = version_of(site, &pending.image).as_ref() == Some(key);
    let alive = !matches!(pending.state, PendingState::Failed | PendingState::Unpublishing);
    towards && alive && pool.operation != Operation::None
}

fn push_reason(
    pool: &Pool,
    live: &LivePool,
    current: Option<&Key>,
    target: &Key,
    site: &SiteLive,
    options: &PlanOptions,
) -> String {
    let (image, version) = target;
    let marker = &pool.marker;
    if let Some(p) = &live.pending {
        if p.state == PendingState::Failed && version_of(site, &p.image).as_ref() == Some(target) {
            let err = p.error.as_deref().or(live.last_error.as_deref()).unwrap_or("no message");
            return format!("last push of {image}@{version} to {} failed ({err}); trying again", pool.name);
        }
    }
    let Some((ci, cv)) = current else {
        return match &live.current {
            Some(c) => format!(
                "pool {} runs an image golden does not own ({} @ {}); marker {marker} of {image} is {version}",
                pool.name, c.vm, c.snapshot
            ),
            None => format!("pool {} has no image yet; marker {marker} of {image} is {version}", pool.name),
        };
    };
    let runs = if ci == image { cv.to_string() } else { format!("{ci}@{cv}") };
    match provenance(pool, &(ci.clone(), cv.clone()), options) {
        Provenance::LastTarget => format!("marker {marker} of {image} moved {cv} → {version}"),
        Provenance::EarlierTarget => format!(
            "pool {} runs {cv}, an earlier target of marker {marker} of {image}, which points at {version}",
            pool.name
        ),
        // Without git history a marker move, a new binding and a push by hand look the same.
        Provenance::Unknown => {
            format!("pool {} runs {runs}; marker {marker} of {image} points at {version}", pool.name)
        }
        Provenance::Rebound(b) => {
            let was = if b.image == *image {
                b.marker.to_string()
            } else {
                format!("marker {} of {}", b.marker, b.image)
            };
            let to = if ci == image { version.to_string() } else { format!("{image}@{version}") };
            format!(
                "pool {} is now bound to marker {marker} of {image} instead of {was}: {runs} → {to}",
                pool.name
            )
        }
        Provenance::Drift => format!(
            "pool {} drifted (set outside golden): runs {runs}, which no marker it was ever bound to pointed at in git history; marker {marker} of {image} points at {version}",
            pool.name
        ),
    }
}

/// How a bound pool came to run a golden version other than its target, as far as git history
/// tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance<'a> {
    /// The version its marker pointed at just before: the marker moved.
    LastTarget,
    /// An earlier target of its marker.
    EarlierTarget,
    /// A target of a marker it was bound to before.
    Rebound(&'a EarlierBinding),
    /// No git history to tell.
    Unknown,
    /// No marker it was ever bound to pointed at it: it was pushed outside golden.
    Drift,
}

/// Where the version `current` that `pool` runs came from. golden pushes a pool only to what
/// its marker points at, so a version none of its markers ever pointed at is drift.
pub fn provenance<'a>(pool: &Pool, current: &Key, options: &'a PlanOptions) -> Provenance<'a> {
    let (ci, cv) = current;
    let earlier =
        options.marker_history.get(&(pool.image.clone(), pool.marker.clone())).map_or(&[][..], Vec::as_slice);
    if *ci == pool.image {
        if earlier.first() == Some(cv) {
            return Provenance::LastTarget;
        }
        if earlier.contains(cv) {
            return Provenance::EarlierTarget;
        }
    }
    let Some(pools) = &options.pool_history else { return Provenance::Unknown };
    let bindings = pools.get(&(pool.site.clone(), pool.horizon_name.clone())).map_or(&[][..], Vec::as_slice);
    match bindings.iter().find(|b| b.image == *ci && b.versions.contains(cv)) {
        Some(b) => Provenance::Rebound(b),
        None => Provenance::Drift,
    }
}

/// Versions kept warm at a site: the `keep_previous` earlier targets of each marker bound there
/// (its `pools`), with the markers they are kept for. `histories` is each marker's history.
fn rollback_window<'a>(
    desired: &'a DesiredState,
    pools: &[(&'a Pool, Option<Key>)],
    histories: &BTreeMap<(&ImageName, &MarkerName), &[VersionName]>,
) -> BTreeMap<Key, BTreeSet<&'a MarkerName>> {
    let keep = desired.settings.keep_previous as usize;
    let mut out: BTreeMap<Key, BTreeSet<&MarkerName>> = BTreeMap::new();
    for (pool, current) in pools {
        let Some(history) = histories.get(&(&pool.image, &pool.marker)) else { continue };
        let current = current.as_ref().map(|(_, v)| v);
        for v in history.iter().filter(|v| Some(*v) != current).take(keep) {
            out.entry((pool.image.clone(), v.clone())).or_default().insert(&pool.marker);
        }
    }
    out
}

/// The fingerprints of the live objects of some sites: for each site, a short, stable hash of
/// every object read there, by object key. A plan records them ([`Plan::fingerprints`]) so that
/// apply can tell what changed since.
#[derive(Clone, Debug, Default)]
pub struct Fingerprints(BTreeMap<SiteName, Vec<(String, String)>>);

impl Fingerprints {
    /// Adds the fingerprints of `site`, read as `live`.
    pub fn take(&mut self, site: &SiteName, live: &SiteLive) {
        self.0.insert(site.clone(), of_site(site, live));
    }

    /// Adds every site of `other`.
    pub fn extend(&mut self, other: Fingerprints) {
        self.0.extend(other.0);
    }
}

/// A short, stable hash of every live object at the given sites.
fn fingerprints(live: &LiveState, sites: &[&SiteName]) -> Vec<(String, String)> {
    // Thousands of objects: the sites are hashed on every core.
    let read: Vec<(&SiteName, &SiteLive)> =
        sites.iter().filter_map(|site| live.sites.get(*site).map(|s| (*site, s))).collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from).clamp(1, 8);
    let chunk = read.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = read
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().flat_map(|(site, s)| of_site(site, s)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// The fingerprints of one site's objects: the JSON of each, written into one reused buffer
/// and hashed in one go (a live object always serialises).
fn of_site(site: &SiteName, s: &SiteLive) -> Vec<(String, String)> {
    struct Hasher(Vec<u8>);
    impl Hasher {
        fn hash(&mut self, value: &impl serde::Serialize) -> String {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            self.0.clear();
            let _ = serde_json::to_writer(&mut self.0, value);
            let digest = Sha256::digest(&self.0);
            digest[..8]
                .iter()
                .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
                .map(char::from)
                .collect()
        }
    }
    let mut h = Hasher(Vec::with_capacity(4096));
    let mut out = Vec::with_capacity(s.pools.len() + s.items.len() + s.vms.len() + 1);
    for (name, pool) in &s.pools {
        out.push((format!("{site}/pool/{name}"), h.hash(pool)));
    }
    for (id, item) in &s.items {
        out.push((format!("{site}/item/{id}"), h.hash(item)));
    }
    for (id, vm) in &s.vms {
        out.push((format!("{site}/vm/{id}"), h.hash(vm)));
    }
    if let Some(lib) = &s.library {
        out.push((format!("{site}/library/{}", lib.id), h.hash(lib)));
    }
    out
}

/// `eu is`, `eu and us are`, `apac, eu and us are`: every name, for warnings about sites.
fn are(names: &BTreeSet<&str>) -> String {
    format!("{} {}", all(names.iter().copied()), if names.len() == 1 { "is" } else { "are" })
}

/// `eu`, `eu and hq`, `apac, eu and hq`: every name.
fn all<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    match names.as_slice() {
        [rest @ .., last] if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// `a, b, c and 97 more`: the first three of `names` (distinct, in any order) and how many
/// more. A version a thousand pools need is named by three of them, found without sorting all.
fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<&str> = names.into_iter().collect();
    if names.len() > SHOWN {
        names.select_nth_unstable(SHOWN - 1);
    }
    let (count, first) = (names.len(), names.len().min(SHOWN));
    let shown = &mut names[..first];
    shown.sort_unstable();
    let shown = shown.join(", ");
    match count.saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
