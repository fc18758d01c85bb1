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

use super::{Action, FORMAT_VERSION, Plan, Step, StepId};
use crate::desired::{DesiredState, Pool, Source};
use crate::ids::{HorizonName, ImageName, MarkerName, SiteName, VersionName};
use crate::live::{
    ImageRef, ItemId, LibraryKind, LivePool, LiveState, Moref, Operation, PendingState, SiteLive, VcenterId,
    VcenterLive,
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
pub type PoolKey = (SiteName, HorizonName);

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

/// A version of an image.
pub type Key = (ImageName, VersionName);

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

/// Computes the plan. Errors list every reason the plan is impossible.
pub fn plan(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> Result<Plan, Vec<PlanError>> {
    let inputs = Inputs::new(desired, live, options);
    let mut errors: Vec<PlanError> = inputs
        .read
        .iter()
        .filter(|s| !live.sites.contains_key(**s))
        .map(|s| PlanError::SiteNotRead { site: (*s).clone() })
        .collect();
    let mut warnings = Vec::new();

    let needs = needs(&inputs);
    let published = publish(&inputs, &needs, &mut errors);
    let copies = copies(&inputs, &needs, &published, &mut warnings);
    let pushes = pushes(&inputs, &copies, &mut warnings);
    let retirements = retirements(&inputs, &pushes, &mut warnings);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut steps: Vec<Step> = [published.steps, copies.steps, pushes.steps, retirements].concat();
    // Step ids are unique, so an unstable sort is as deterministic as a stable one.
    steps.sort_unstable_by(|a, b| {
        (a.action.rank(), wave_of(a), &a.site, &a.id).cmp(&(b.action.rank(), wave_of(b), &b.site, &b.id))
    });
    Ok(Plan {
        format_version: FORMAT_VERSION,
        golden_version: env!("CARGO_PKG_VERSION").to_owned(),
        desired_commit: desired.revision.as_ref().map(|r| r.commit.clone()),
        fingerprints: live.fingerprints(&inputs.read),
        sites: inputs.scope.iter().map(|s| (*s).clone()).collect(),
        steps,
        warnings,
    })
}

/// Whether `site` is in the plan's scope (every site is without `--site`).
fn in_scope(options: &PlanOptions, site: &SiteName) -> bool {
    options.sites.is_empty() || options.sites.contains(site)
}

/// golden's items of one version in one library.
#[derive(Default)]
struct LibraryCopy<'a> {
    items: Vec<&'a ItemId>,
    /// The source the first item's metadata records.
    meta_source: Option<&'a str>,
}

/// One vCenter's library as the plan sees it. Every site of that vCenter uses it: the source
/// site's vCenter publishes it, every other vCenter holds a replica.
struct LibraryView<'a> {
    live: &'a VcenterLive,
    /// golden's items, by version.
    copies: BTreeMap<Key, LibraryCopy<'a>>,
    /// The sites read that use it, by name.
    sites: Vec<&'a SiteName>,
    /// The library of the source site's vCenter, which every other library replicates.
    is_source: bool,
}

impl LibraryView<'_> {
    fn has(&self, key: &Key) -> bool {
        self.copies.contains_key(key)
    }

    /// A subscribed library mirrors every published version: its items come back with the
    /// next sync and vCenter refuses to delete them, so none is ever retired there.
    fn subscribed(&self) -> bool {
        self.live.library.as_ref().is_some_and(|l| matches!(l.kind, LibraryKind::Subscribed { .. }))
    }
}

/// golden's base VMs of one version at one site.
#[derive(Default)]
struct SiteCopy<'a> {
    vms: Vec<&'a Moref>,
    /// The base VM and its snapshot, when a deployed base is complete.
    base: Option<ImageRef>,
}

/// Everything the passes share, computed once from the desired state, the live state and the
/// options.
struct Inputs<'a> {
    desired: &'a DesiredState,
    live: &'a LiveState,
    options: &'a PlanOptions,
    source_site: &'a SiteName,
    /// The sites planned: every site, or those named with `--site`.
    scope: Vec<&'a SiteName>,
    /// The sites read: the scope and the source site every other site copies from.
    read: Vec<&'a SiteName>,
    /// The sites of the repository this plan did not read.
    unread: BTreeSet<&'a str>,
    /// Every site's pools, each with the version its marker points at.
    pools: BTreeMap<&'a SiteName, Vec<(&'a Pool, Option<Key>)>>,
    /// Every site's rollback window: the versions kept warm there, with their markers.
    windows: BTreeMap<&'a SiteName, BTreeMap<Key, BTreeSet<&'a MarkerName>>>,
    /// The library of every vCenter a site read is in.
    libraries: BTreeMap<&'a VcenterId, LibraryView<'a>>,
    /// golden's base VMs at every site read.
    bases: BTreeMap<&'a SiteName, BTreeMap<Key, SiteCopy<'a>>>,
}

impl<'a> Inputs<'a> {
    fn new(desired: &'a DesiredState, live: &'a LiveState, options: &'a PlanOptions) -> Inputs<'a> {
        let source_site = &desired.settings.source_site;
        let scope: Vec<&SiteName> = desired.sites.keys().filter(|s| in_scope(options, s)).collect();
        let mut read = scope.clone();
        if !read.contains(&source_site) {
            read.push(source_site);
        }
        let unread = desired.sites.keys().filter(|s| !read.contains(s)).map(SiteName::as_str).collect();

        let target = |p: &Pool| -> Option<Key> {
            let image = desired.images.get(&p.image)?;
            Some((p.image.clone(), image.markers.get(&p.marker)?.clone()))
        };
        let mut pools: BTreeMap<&SiteName, Vec<(&Pool, Option<Key>)>> =
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
        Inputs { desired, live, options, source_site, scope, read, unread, pools, windows, libraries, bases }
    }

    /// A site's live state, when the plan read it.
    fn site(&self, site: &SiteName) -> Option<&'a SiteLive> {
        self.live.sites.get(site).filter(|_| self.read.contains(&site))
    }

    /// The library `site` uses, when the plan read the site.
    fn library_of(&self, site: &SiteName) -> Option<&LibraryView<'a>> {
        self.libraries.get(&self.site(site)?.vcenter)
    }

    fn source_library(&self) -> Option<&LibraryView<'a>> {
        self.library_of(self.source_site)
    }

    /// Whether `site` uses the source library itself (it shares the source site's vCenter), so
    /// that a version is there once published.
    fn uses_source_library(&self, site: &SiteName) -> bool {
        *site == *self.source_site || self.library_of(site).is_some_and(|l| l.is_source)
    }

    fn has_item(&self, site: &SiteName, key: &Key) -> bool {
        self.library_of(site).is_some_and(|l| l.has(key))
    }

    fn is_published(&self, key: &Key) -> bool {
        self.source_library().is_some_and(|l| l.has(key))
    }

    fn base(&self, site: &SiteName, key: &Key) -> Option<&ImageRef> {
        self.bases.get(site)?.get(key)?.base.as_ref()
    }

    fn pools_of(&self, site: &SiteName) -> &[(&'a Pool, Option<Key>)] {
        self.pools.get(site).map_or(&[], Vec::as_slice)
    }

    fn window_of(&self, site: &SiteName) -> impl Iterator<Item = (&Key, &BTreeSet<&'a MarkerName>)> {
        self.windows.get(site).into_iter().flatten()
    }

    fn in_repo(&self, (image, version): &Key) -> bool {
        self.desired.images.get(image).is_some_and(|i| i.versions.contains_key(version))
    }
}

fn library_copies(vc: &VcenterLive) -> BTreeMap<Key, LibraryCopy<'_>> {
    let mut out: BTreeMap<Key, LibraryCopy> = BTreeMap::new();
    for item in vc.items.values() {
        if let Some(meta) = &item.meta {
            let c = out.entry((meta.image.clone(), meta.version.clone())).or_default();
            c.items.push(&item.id);
            c.meta_source.get_or_insert(&meta.source);
        }
    }
    out
}

fn site_copies(site: &SiteLive) -> BTreeMap<Key, SiteCopy<'_>> {
    let mut out: BTreeMap<Key, SiteCopy> = BTreeMap::new();
    for vm in site.vms.values() {
        if let Some(meta) = &vm.meta {
            let c = out.entry((meta.image.clone(), meta.version.clone())).or_default();
            c.vms.push(&vm.id);
            if let (None, Some(snapshot)) = (&c.base, vm.snapshots.last()) {
                c.base = Some(ImageRef { vm: vm.id.clone(), snapshot: snapshot.id.clone() });
            }
        }
    }
    out
}

/// What each planned site needs: the version each of its pools' markers points at, with the
/// pools that need it (for reasons).
type Needs<'a> = BTreeMap<&'a SiteName, BTreeMap<Key, Vec<&'a Pool>>>;

fn needs<'a>(inputs: &Inputs<'a>) -> Needs<'a> {
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

/// The publish steps, and the step publishing each version.
struct Published {
    steps: Vec<Step>,
    of: BTreeMap<Key, StepId>,
}

/// Publishes every version some planned site needs, unless the source library has it.
fn publish(inputs: &Inputs<'_>, needs: &Needs<'_>, errors: &mut Vec<PlanError>) -> Published {
    let mut out = Published { steps: Vec::new(), of: BTreeMap::new() };
    let source_site = inputs.source_site;
    let all_needed: BTreeSet<&Key> = needs.values().flat_map(|m| m.keys()).collect();
    for key @ (image, version) in all_needed {
        let Some(v) = inputs.desired.images.get(image).and_then(|i| i.versions.get(version)) else {
            continue;
        };
        let identity = v.source.identity();
        if let Some(copy) = inputs.source_library().and_then(|l| l.copies.get(key)) {
            if let Some(published) = copy.meta_source.filter(|p| *p != identity) {
                errors.push(PlanError::SourceChanged {
                    image: image.clone(),
                    version: version.clone(),
                    published: published.to_owned(),
                    desired: identity,
                });
            }
            continue;
        }
        let src = inputs.site(source_site);
        let missing = match &v.source {
            Source::Vm { vm, snapshot } => {
                let found = src.and_then(|s| s.vms.values().find(|x| &x.name == vm && x.meta.is_none()));
                match (found, snapshot) {
                    (None, _) => Some(format!("no VM named `{vm}`")),
                    (Some(x), Some(s)) if !x.snapshots.iter().any(|y| &y.name == s) => {
                        Some(format!("VM `{vm}` has no snapshot named `{s}`"))
                    }
                    _ => None,
                }
            }
            Source::LibraryItem { name } => {
                let found =
                    inputs.source_library().is_some_and(|l| l.live.items.values().any(|i| &i.name == name));
                (!found).then(|| {
                    format!("no item named `{name}` in library `{}`", inputs.desired.settings.library)
                })
            }
        };
        if let Some(what) = missing {
            if src.is_some() {
                errors.push(PlanError::SourceMissing {
                    image: image.clone(),
                    version: version.clone(),
                    site: source_site.clone(),
                    what,
                });
            }
            continue;
        }
        let users = needs.values().filter_map(|m| m.get(key)).flatten().map(|p| p.name.as_str());
        let id = step_id(&["publish", image.as_str(), version.as_str()]);
        out.of.insert(key.clone(), id.clone());
        out.steps.push(Step {
            id,
            site: source_site.clone(),
            action: Action::Publish {
                image: image.clone(),
                version: version.clone(),
                source: v.source.clone(),
            },
            reason: format!("{image}@{version} is not published yet; needed by {}", list(users)),
            depends_on: Vec::new(),
        });
    }
    out
}

/// The replicate and deploy steps, and the step deploying each version at each site.
struct Copies<'a> {
    steps: Vec<Step>,
    deploy_of: BTreeMap<(&'a SiteName, Key), StepId>,
}

/// A copy a site lacks: replicated into its library (unless it is there, or the site uses the
/// source library), then deployed as the site's base VM.
struct Missing<'a> {
    site: &'a SiteName,
    key: Key,
    /// Why the site wants the version.
    why: String,
    /// Wanted only to keep a rollback warm.
    warm: bool,
    /// The library the version must be replicated into first.
    replicate_into: Option<&'a VcenterId>,
    deploy: bool,
}

/// Makes the copies the planned sites lack: the versions they need, and their rollback windows.
fn copies<'a>(
    inputs: &Inputs<'a>,
    needs: &Needs<'a>,
    published: &Published,
    warnings: &mut Vec<String>,
) -> Copies<'a> {
    let mut missing: Vec<Missing<'a>> = Vec::new();
    let vcenter_of = |site: &SiteName| inputs.site(site).map(|s| &s.vcenter);
    for (site, keys) in needs {
        for (key, users) in keys {
            let replicate = !inputs.uses_source_library(site) && !inputs.has_item(site, key);
            let deploy = inputs.base(site, key).is_none();
            if !replicate && !deploy {
                continue;
            }
            let names = users.iter().map(|p| p.name.as_str());
            missing.push(Missing {
                site,
                key: key.clone(),
                why: format!("needed by {}", list(names)),
                warm: false,
                replicate_into: if replicate { vcenter_of(site) } else { None },
                deploy,
            });
        }
    }

    // Keep the rollback window warm: a copy (library item, base VM and snapshot) at each site
    // of every version a marker bound there pointed at before, so that rolling back is a push.
    // A missing piece is made again from the source library. A version that is not in the
    // source library is not published for that: it may never have been (the marker moved before
    // golden's first apply), and publishing it would capture and ship an image no pool ran
    // under golden. The plan then says once what a rollback to it would take.
    let keep = inputs.desired.settings.keep_previous;
    let mut cold: BTreeMap<&Key, Cold> = BTreeMap::new();
    for site in &inputs.scope {
        for (key, markers) in inputs.window_of(site) {
            let needed = needs.get(site).is_some_and(|n| n.contains_key(key));
            if !inputs.in_repo(key) || needed || inputs.base(site, key).is_some() {
                continue;
            }
            let markers: BTreeSet<&str> = markers.iter().map(|m| m.as_str()).collect();
            let has_item = inputs.has_item(site, key);
            if !has_item && !inputs.is_published(key) && !published.of.contains_key(key) {
                let c = cold.entry(key).or_default();
                c.markers.extend(markers.iter().map(|m| (*m).to_owned()));
                c.deploy_at.insert(site.as_str().to_owned());
                if !inputs.uses_source_library(site) {
                    c.replicate_to.insert(site.as_str().to_owned());
                }
                continue;
            }
            let replicate = !has_item && !inputs.uses_source_library(site);
            missing.push(Missing {
                site,
                key: key.clone(),
                why: format!(
                    "kept warm for a rollback of marker {} of {} (keep_previous = {keep})",
                    list(markers.iter().copied()),
                    key.0
                ),
                warm: true,
                replicate_into: if replicate { vcenter_of(site) } else { None },
                deploy: true,
            });
        }
    }
    for ((image, version), c) in &cold {
        let markers: BTreeSet<&str> = c.markers.iter().map(String::as_str).collect();
        let mut then = vec![format!("publish it at {}", inputs.source_site)];
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

    // One replicate step per library and version, however many of the library's sites want
    // the version; it runs as the first of them by name, whose datastore holds the library if
    // the step has to create it.
    let mut wanted: BTreeMap<(&VcenterId, &Key), Vec<&Missing>> = BTreeMap::new();
    for m in &missing {
        if let Some(vc) = m.replicate_into {
            wanted.entry((vc, &m.key)).or_default().push(m);
        }
    }
    let mut out = Copies { steps: Vec::new(), deploy_of: BTreeMap::new() };
    let mut replicate_of: BTreeMap<(&VcenterId, &Key), StepId> = BTreeMap::new();
    for ((vc, key @ (image, version)), mut wants) in wanted {
        wants.sort_by_key(|m| m.site);
        let site = wants[0].site;
        let reason = match wants.as_slice() {
            [one] if one.warm => format!("copy of {image}@{version} missing at {}; {}", one.site, one.why),
            [one] => format!("copy of {image}@{version} missing at {}", one.site),
            many => format!(
                "copy of {image}@{version} missing in the library {} share (one vCenter)",
                all(many.iter().map(|m| m.site.as_str()).collect::<BTreeSet<_>>())
            ),
        };
        let id = step_id(&["replicate", site.as_str(), image.as_str(), version.as_str()]);
        replicate_of.insert((vc, key), id.clone());
        out.steps.push(Step {
            id,
            site: site.clone(),
            action: Action::Replicate {
                image: image.clone(),
                version: version.clone(),
                from: inputs.source_site.clone(),
            },
            reason,
            depends_on: published.of.get(key).cloned().into_iter().collect(),
        });
    }
    for m in missing.iter().filter(|m| m.deploy) {
        let (image, version) = &m.key;
        let depends_on: Vec<StepId> = match m.replicate_into {
            Some(vc) => replicate_of.get(&(vc, &m.key)).cloned().into_iter().collect(),
            None if inputs.uses_source_library(m.site) => {
                published.of.get(&m.key).cloned().into_iter().collect()
            }
            None => Vec::new(),
        };
        let id = step_id(&["deploy", m.site.as_str(), image.as_str(), version.as_str()]);
        out.deploy_of.insert((m.site, m.key.clone()), id.clone());
        out.steps.push(Step {
            id,
            site: m.site.clone(),
            action: Action::Deploy { image: image.clone(), version: version.clone() },
            reason: format!("no base VM of {image}@{version} at {}; {}", m.site, m.why),
            depends_on,
        });
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

/// The push steps, and the pushes moving each site's pools away from each version.
struct Pushes<'a> {
    steps: Vec<Step>,
    away: BTreeMap<(&'a SiteName, Key), Vec<StepId>>,
}

/// Pushes every planned pool that neither runs its marker's version nor is moving to it.
fn pushes<'a>(inputs: &Inputs<'a>, copies: &Copies<'a>, warnings: &mut Vec<String>) -> Pushes<'a> {
    let mut pushes: Vec<(u32, Step)> = Vec::new();
    let mut away: BTreeMap<(&SiteName, Key), Vec<StepId>> = BTreeMap::new();
    for site in &inputs.scope {
        let Some(s_live) = inputs.site(site) else { continue };
        for (pool, key) in inputs.pools_of(site) {
            let Some(key) = key else { continue };
            let (image, version) = key;
            let Some(lp) = s_live.pools.get(&pool.horizon_name) else {
                warnings.push(format!(
                    "pool {}: Horizon at {site} has no {} named `{}`; create it, or fix horizon_name",
                    pool.name, pool.kind, pool.horizon_name
                ));
                continue;
            };
            let runs_target = lp.current.is_some() && lp.current.as_ref() == inputs.base(site, key);
            if runs_target || pending_towards(lp, s_live, key) {
                continue;
            }
            let current = lp.current.as_ref().and_then(|c| version_of(s_live, c));
            let reason = push_reason(pool, lp, current.as_ref(), key, s_live, inputs.options);
            let id = step_id(&["push", site.as_str(), pool.name.as_str()]);
            if let Some(c) = current {
                away.entry((*site, c)).or_default().push(id.clone());
            }
            pushes.push((
                pool.wave,
                Step {
                    id,
                    site: (*site).clone(),
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
                    depends_on: copies.deploy_of.get(&(*site, key.clone())).cloned().into_iter().collect(),
                },
            ));
        }
    }
    // Waves are global: a wave starts when every push of every earlier wave succeeded. A push
    // depends on the previous wave as a group (`wave/N`), which covers the waves before it,
    // rather than on each of its pushes: thousands of pools must not mean millions of edges.
    let waves: BTreeSet<u32> = pushes.iter().map(|(w, _)| *w).collect();
    for (wave, step) in &mut pushes {
        if let Some(previous) = waves.range(..*wave).next_back() {
            step.depends_on.push(StepId::wave(*previous));
        }
    }
    Pushes { steps: pushes.into_iter().map(|(_, s)| s).collect(), away }
}

/// A retirement being put together: a site's base VMs of a version, and the items of its
/// library when it is the site that retires them.
#[derive(Default)]
struct Retirement {
    items: Vec<ItemId>,
    vms: Vec<Moref>,
    /// Sites that still hold the version, for which the library's item stays.
    item_stays_for: BTreeSet<String>,
    /// Where the version is no longer needed, for the reason.
    at: String,
    depends_on: BTreeSet<StepId>,
}

/// Retires what nothing needs. Every site, planned or not, holds on to the versions its pools
/// need and its rollback window (both known from the desired state and git history); a site
/// that was read also holds what its pools run or are moving to, until pushes of this plan
/// move every such pool away (the retirement then waits for those pushes). A base VM goes when
/// its site does not hold its version; a library item when no site using the library holds it
/// (for the source library: no site at all, since every library replicates from it).
fn retirements(inputs: &Inputs<'_>, pushes: &Pushes<'_>, warnings: &mut Vec<String>) -> Vec<Step> {
    let mut held: BTreeMap<&SiteName, BTreeSet<Key>> = BTreeMap::new();
    let mut waits: BTreeMap<(&SiteName, Key), Vec<StepId>> = BTreeMap::new();
    for site in inputs.desired.sites.keys() {
        let holds = held.entry(site).or_default();
        // Thousands of pools share a handful of versions: a key is cloned only when new.
        let keys = inputs.pools_of(site).iter().filter_map(|(_, k)| k.as_ref());
        for key in keys.chain(inputs.window_of(site).map(|(k, _)| k)) {
            if !holds.contains(key) {
                holds.insert(key.clone());
            }
        }
        let Some(s_live) = inputs.site(site) else { continue };
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
            let away = pushes.away.get(&(site, key.clone())).cloned().unwrap_or_default();
            if n > away.len() {
                holds.insert(key);
            } else {
                waits.insert((site, key), away);
            }
        }
    }
    let holders = |sites: &[&SiteName], key: &Key| -> BTreeSet<String> {
        sites
            .iter()
            .filter(|s| held.get(*s).is_some_and(|h| h.contains(key)))
            .map(|s| s.to_string())
            .collect()
    };
    let waits_of = |sites: &[&SiteName], key: &Key| -> Vec<StepId> {
        sites.iter().filter_map(|s| waits.get(&(*s, key.clone()))).flatten().cloned().collect()
    };
    let every_site: Vec<&SiteName> = inputs.desired.sites.keys().collect();

    let mut out: BTreeMap<(&SiteName, Key), Retirement> = BTreeMap::new();
    for site in &inputs.scope {
        let Some(bases) = inputs.bases.get(site) else { continue };
        let library = inputs.library_of(site);
        for (key, copy) in bases {
            if held.get(site).is_some_and(|h| h.contains(key)) {
                continue;
            }
            let r = out.entry((*site, key.clone())).or_default();
            r.vms = copy.vms.iter().map(|v| (*v).clone()).collect();
            r.depends_on.extend(waits_of(&[*site], key));
            r.at = site.to_string();
            if let Some(l) = library.filter(|l| l.has(key)) {
                let users = if l.is_source { &every_site } else { &l.sites };
                r.item_stays_for = holders(users, key);
            }
        }
    }
    // A library's items are retired by the first of its planned sites.
    for library in inputs.libraries.values() {
        let Some(site) = library.sites.iter().find(|s| in_scope(inputs.options, s)) else { continue };
        if library.subscribed() {
            continue;
        }
        let users = if library.is_source { &every_site } else { &library.sites };
        for (key @ (image, version), copy) in &library.copies {
            if !holders(users, key).is_empty() {
                continue;
            }
            // A site this plan did not read may still run a version nothing else needs (its
            // pools are not pushed away yet), and may share this library's vCenter: not having
            // looked must never delete what it may use.
            if !inputs.unread.is_empty() {
                let place = if library.is_source {
                    format!("at {}, the source site", inputs.source_site)
                } else {
                    format!("in the library of {}", all(library.sites.iter().map(|s| s.as_str())))
                };
                let may = if library.is_source { "may still use it" } else { "may share its vCenter" };
                warnings.push(format!(
                    "the library item of {image}@{version} stays {place}: {} not in this plan and {may}; a plan of every site retires it if no site does",
                    are(&inputs.unread)
                ));
                continue;
            }
            let r = out.entry((*site, key.clone())).or_default();
            r.items = copy.items.iter().map(|i| (*i).clone()).collect();
            r.item_stays_for.clear();
            r.depends_on.extend(waits_of(users, key));
            r.at = if !library.is_source && library.sites.len() > 1 {
                all(library.sites.iter().map(|s| s.as_str()))
            } else {
                site.to_string()
            };
        }
    }

    out.into_iter()
        .map(|((site, key), r)| {
            let in_repo = inputs.in_repo(&key);
            let (image, version) = key;
            let mut why = if in_repo {
                format!("no marker, pool or rollback window needs {image}@{version} at {}", r.at)
            } else {
                format!("{image}@{version} is no longer in the repository")
            };
            if !r.item_stays_for.is_empty() {
                let _ = write!(
                    why,
                    "; its library item stays for {}",
                    list(r.item_stays_for.iter().map(String::as_str))
                );
            }
            Step {
                id: step_id(&["retire", site.as_str(), image.as_str(), version.as_str()]),
                site: site.clone(),
                action: Action::Retire { image, version, items: r.items, vms: r.vms },
                reason: why,
                depends_on: r.depends_on.into_iter().collect(),
            }
        })
        .collect()
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
