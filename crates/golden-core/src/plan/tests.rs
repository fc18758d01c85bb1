//! Planner scenarios and the convergence property.
//!
//! [`World`] is a small model of the live state that applies plan steps the way golden's steps
//! do. The scenarios are fixtures under `tests/fixtures/plan/` (a desired-state repository and
//! a live state each): each renders its plan as text (an insta snapshot), then applies it to
//! the model and checks that planning again gives no changes. A property test runs random
//! repositories over random site-to-vCenter layouts, some replica libraries subscribed to the
//! source library and some sources Packer's VM templates, through apply runs with faults
//! (random dependency-respecting orders, failed steps and pushes, runs killed while a push is
//! under way, which Horizon finishes later) until a plan is empty,
//! and then checks the contract on the world itself, not on the planner's view of it: every
//! bound pool runs its marker's version from its own site, the rollback window is warm, and no
//! retirement ever removed an image a pool runs or is moving to.

use std::collections::{BTreeMap, BTreeSet};

use super::render;
use super::*;
use crate::desired::{DesiredState, PoolKind as DesiredKind, load_dir};
use crate::ids::{HorizonName, ImageName, MarkerName, SiteName, VersionName};
use crate::live::{
    GoldenMeta, HorizonId, ImageRef, ItemId, Library, LibraryId, LibraryItem, LibraryKind, LivePool,
    LiveState, Moref, Operation, SiteLive, Snapshot, VcenterId, VcenterLive, Vm,
};

fn quickstart() -> DesiredState {
    let mut d = load_dir(&crate::repo_root().join("examples/quickstart")).expect("quickstart is valid");
    // Scenarios must not depend on the commit the test runs at.
    d.revision = None;
    // Without git history the quickstart's promotion rule cannot be shown to hold and keeps
    // prod back; the rule has scenarios of its own (tests/fixtures/plan/policy-*).
    for image in d.images.values_mut() {
        image.policies.clear();
    }
    d
}

/// A model of the live world that steps can be applied to.
struct World {
    live: LiveState,
    next: u32,
}

/// The model's vCenter of a site: sites whose golden.toml names one vCenter URL share it.
fn vcenter_id(site: &crate::desired::Site) -> VcenterId {
    VcenterId::new(format!("uuid-of-{}", site.vcenter))
}

impl World {
    /// The world before golden: build VMs and the Packer item at the source site, every pool
    /// running an image golden does not own.
    fn before_golden(desired: &DesiredState) -> World {
        let mut w = World { live: LiveState::default(), next: 100 };
        for (name, site) in &desired.sites {
            let vcenter = vcenter_id(site);
            w.live.vcenters.entry(vcenter.clone()).or_default();
            w.live
                .sites
                .insert(name.clone(), SiteLive { vcenter, vms: BTreeMap::new(), pools: BTreeMap::new() });
        }
        let source = desired.settings.source_site.clone();
        for image in desired.images.values() {
            for version in image.versions.values() {
                match &version.source {
                    crate::desired::Source::Vm { vm, snapshot } => {
                        let id = w.vm_named(&source, vm);
                        if let Some(s) = snapshot {
                            let snap = w.id("snapshot");
                            let site = w.site(&source);
                            let vm = site.vms.get_mut(&id).expect("just made");
                            if !vm.snapshots.iter().any(|x| &x.name == s) {
                                vm.snapshots.push(Snapshot { id: snap, name: s.clone(), parent: None });
                            }
                        }
                    }
                    crate::desired::Source::LibraryItem { name } => {
                        let id = ItemId::new(format!("item-{name}"));
                        let library = w.library(&source);
                        let library_id = library
                            .library
                            .get_or_insert_with(|| Library {
                                id: LibraryId::new("lib-hq"),
                                name: "golden-images".into(),
                                kind: LibraryKind::Local { publish_url: None },
                            })
                            .id
                            .clone();
                        library.items.insert(
                            id.clone(),
                            LibraryItem {
                                id,
                                library: library_id,
                                name: name.clone(),
                                // Packer's vSphere plugin makes VM templates by default; an
                                // OVF export is the other kind an admin may have.
                                kind: if name.len() % 2 == 0 { "vm-template" } else { "ovf" }.into(),
                                meta: None,
                                cached: true,
                            },
                        );
                    }
                }
            }
        }
        for pool in desired.pools.values() {
            let vm = w.vm_named(&pool.site, &format!("legacy-{}", pool.image));
            let snap = w.id("snapshot");
            let site = w.site(&pool.site);
            let legacy = site.vms.get_mut(&vm).expect("just made");
            if legacy.snapshots.is_empty() {
                legacy.snapshots.push(Snapshot { id: snap, name: "initial".into(), parent: None });
            }
            let image = ImageRef { vm: vm.clone(), snapshot: legacy.snapshots[0].id.clone() };
            site.pools.insert(
                pool.horizon_name.clone(),
                LivePool {
                    id: HorizonId::new(format!("pool-{}", pool.name)),
                    name: pool.horizon_name.clone(),
                    kind: pool.kind,
                    instant_clone: true,
                    provisioning: true,
                    vcenter: None,
                    current: Some(image),
                    pending: None,
                    operation: Operation::None,
                    last_error: None,
                },
            );
        }
        w
    }

    fn id(&mut self, prefix: &str) -> Moref {
        self.next += 1;
        Moref::new(format!("{prefix}-{}", self.next))
    }

    fn site(&mut self, site: &SiteName) -> &mut SiteLive {
        self.live.sites.get_mut(site).unwrap_or_else(|| panic!("site {site} is not in the model"))
    }

    /// The library of the vCenter `site` is in.
    fn library(&mut self, site: &SiteName) -> &mut VcenterLive {
        let vcenter = self.site(site).vcenter.clone();
        self.live.vcenters.entry(vcenter).or_default()
    }

    /// Whether the library `site` uses subscribes to the source library.
    fn subscribed(&self, site: &SiteName) -> bool {
        let Some(s) = self.live.sites.get(site) else { return false };
        self.live
            .vcenters
            .get(&s.vcenter)
            .and_then(|v| v.library.as_ref())
            .is_some_and(|l| matches!(l.kind, LibraryKind::Subscribed { .. }))
    }

    /// Horizon goes on with pushes that were sent: each one under way finishes when `finish`
    /// says so.
    fn settle(&mut self, mut finish: impl FnMut() -> bool) {
        for site in self.live.sites.values_mut() {
            for pool in site.pools.values_mut() {
                let under_way =
                    pool.pending.as_ref().is_some_and(|p| p.state != crate::live::PendingState::Failed);
                if under_way && pool.operation != Operation::None && finish() {
                    pool.current = pool.pending.take().map(|p| p.image);
                    pool.operation = Operation::None;
                }
            }
        }
    }

    /// Whether a push is still under way somewhere.
    fn pushes_under_way(&self) -> bool {
        self.live.sites.values().flat_map(|s| s.pools.values()).any(|p| {
            p.operation != Operation::None
                && p.pending.as_ref().is_some_and(|x| x.state != crate::live::PendingState::Failed)
        })
    }

    fn vm_named(&mut self, site: &SiteName, name: &str) -> Moref {
        if let Some(v) = self.live.sites.get(site).and_then(|s| s.vms.values().find(|v| v.name == name)) {
            return v.id.clone();
        }
        let id = self.id("vm");
        self.site(site).vms.insert(
            id.clone(),
            Vm {
                id: id.clone(),
                name: name.into(),
                template: false,
                powered_on: false,
                meta: None,
                claim: None,
                deployed_from: None,
                snapshots: Vec::new(),
            },
        );
        id
    }

    fn base(&self, site: &SiteName, image: &ImageName, version: &VersionName) -> Option<ImageRef> {
        let s = self.live.sites.get(site)?;
        let vm = s
            .vms
            .values()
            .find(|v| v.meta.as_ref().is_some_and(|m| &m.image == image && &m.version == version))?;
        Some(ImageRef { vm: vm.id.clone(), snapshot: vm.snapshots.last()?.id.clone() })
    }

    fn meta(image: &ImageName, version: &VersionName, desired: &DesiredState) -> GoldenMeta {
        let source = desired
            .images
            .get(image)
            .and_then(|i| i.versions.get(version))
            .map(|v| v.source.identity())
            .unwrap_or_default();
        GoldenMeta { image: image.clone(), version: version.clone(), source }
    }

    /// Adds an item of `meta` to the library `site` uses, unless the library has one: a
    /// second replicate or publish into one library would be work done twice.
    fn add_item(&mut self, site: &SiteName, meta: GoldenMeta) {
        self.next += 1;
        let id = ItemId::new(format!("item-{}", self.next));
        let library = self.library(site);
        let twice = library.items.values().any(|i| i.meta.as_ref() == Some(&meta));
        assert!(!twice, "{site}: a second copy of {}@{} into one library", meta.image, meta.version);
        let item = LibraryItem {
            id: id.clone(),
            library: LibraryId::new(format!("lib-{site}")),
            name: format!("{}-{}", meta.image, meta.version),
            kind: "ovf".into(),
            meta: Some(meta),
            cached: true,
        };
        library.items.insert(id, item);
    }

    /// The world as a fixture's live state describes it. New objects get numbers above every
    /// id in it, so they never collide with the fixture's own.
    fn from_live(live: LiveState) -> World {
        let items = live.vcenters.values().flat_map(|vc| vc.items.keys().map(ItemId::as_str));
        let next = live
            .sites
            .values()
            .flat_map(|s| {
                s.vms.values().flat_map(|v| {
                    std::iter::once(v.id.as_str()).chain(v.snapshots.iter().map(|x| x.id.as_str()))
                })
            })
            .chain(items)
            .filter_map(|id| id.rsplit('-').next()?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            .max(100);
        World { live, next }
    }

    /// Applies the plan's steps as a successful apply would, in plan order.
    fn apply(&mut self, plan: &Plan, desired: &DesiredState) {
        for step in &plan.steps {
            self.apply_step(step, desired);
        }
    }

    /// One step done, as the real step does it, with the checks golden's steps make: a push
    /// only to a base VM of the pool's own site, a retirement only of its site's objects and
    /// never of an image a pool runs or is moving to.
    fn apply_step(&mut self, step: &Step, desired: &DesiredState) {
        match &step.action {
            Action::Replicate { image, version, .. } if self.subscribed(&step.site) => {
                // A sync mirrors the source library: every golden item there arrives, and items
                // gone there go here too. The step waits for its own version's content; the
                // others' may still be on their way when it ends.
                let meta = World::meta(image, version, desired);
                let source = self.live.sites[&desired.settings.source_site].vcenter.clone();
                let published: Vec<LibraryItem> = self.live.vcenters[&source]
                    .items
                    .values()
                    .filter(|i| i.meta.is_some())
                    .cloned()
                    .collect();
                let library = self.library(&step.site);
                library.items.retain(|_, i| i.meta.is_none() || published.iter().any(|p| p.meta == i.meta));
                for item in published {
                    if !library.items.values().any(|i| i.meta == item.meta) {
                        let id = ItemId::new(format!("sub-{}", item.id));
                        library.items.insert(id.clone(), LibraryItem { id, cached: false, ..item });
                    }
                }
                for item in library.items.values_mut().filter(|i| i.meta.as_ref() == Some(&meta)) {
                    item.cached = true;
                }
            }
            Action::Publish { image, version, .. } | Action::Replicate { image, version, .. } => {
                self.add_item(&step.site, World::meta(image, version, desired));
            }
            Action::Adopt { image, version, vm, .. } => {
                let meta = World::meta(image, version, desired);
                let adopted = self.site(&step.site).vms.get_mut(vm).expect("the adopted VM exists");
                assert!(adopted.meta.is_none(), "{}: adopts a VM golden owns", step.id);
                adopted.meta = Some(meta);
            }
            Action::Deploy { image, version } => {
                let meta = World::meta(image, version, desired);
                let there =
                    self.library(&step.site).items.values().any(|i| i.meta == Some(meta.clone()) && i.cached);
                assert!(
                    there,
                    "{}: deploy of {image}@{version} before its content is in the library",
                    step.site
                );
                let id = self.id("vm");
                let snap = self.id("snapshot");
                self.site(&step.site).vms.insert(
                    id.clone(),
                    Vm {
                        id,
                        name: format!("golden-{image}-{version}"),
                        template: false,
                        powered_on: false,
                        meta: Some(World::meta(image, version, desired)),
                        claim: None,
                        deployed_from: None,
                        snapshots: vec![Snapshot { id: snap, name: "golden".into(), parent: None }],
                    },
                );
            }
            Action::Push { horizon_name, image, version, .. } => {
                // The base VM of the pool's own site: never another datacenter's.
                let base = self.base(&step.site, image, version);
                assert!(base.is_some(), "{}: no base VM of {image}@{version} at {}", step.id, step.site);
                let pool = self.site(&step.site).pools.get_mut(horizon_name).expect("pushed pool exists");
                let under_way = pool.pending.as_ref().is_some_and(|p| {
                    p.state != crate::live::PendingState::Failed && Some(&p.image) == base.as_ref()
                });
                // A push under way is followed to its end, not sent again: the plan says so,
                // as the step (which sees the pending image) does.
                if under_way {
                    assert!(
                        step.reason.contains("already moving"),
                        "{}: pushed again while under way",
                        step.id
                    );
                }
                pool.current = base;
                pool.pending = None;
                pool.operation = Operation::None;
            }
            Action::Retire { items, vms, .. } => {
                // Only objects of the step's own site and of the library it uses; vCenter refuses
                // to delete an item of a subscribed library.
                assert!(
                    items.is_empty() || !self.subscribed(&step.site),
                    "{}: deletes from a subscribed library",
                    step.id
                );
                let library = self.library(&step.site);
                for i in items {
                    let gone = library.items.remove(i);
                    assert!(gone.is_some(), "{}: item {i} is not in the library of {}", step.id, step.site);
                }
                let site = self.site(&step.site);
                for v in vms {
                    let in_use = site.pools.values().find(|p| {
                        p.current.as_ref().is_some_and(|c| &c.vm == v)
                            || p.pending.as_ref().is_some_and(|x| {
                                &x.image.vm == v && x.state != crate::live::PendingState::Failed
                            })
                    });
                    assert!(
                        in_use.is_none(),
                        "{}: vm {v} is the image of pool {:?}",
                        step.id,
                        in_use.map(|p| &p.name)
                    );
                    let gone = site.vms.remove(v);
                    assert!(gone.is_some(), "{}: vm {v} is not at {}", step.id, step.site);
                }
            }
        }
    }

    /// One run of apply as the executor makes it: the steps in a random order that respects
    /// every dependency (a `wave/N` dependency is every push of wave N), any step may fail (a
    /// failed push leaves Horizon's pending image `FAILED`) and its dependents are then never
    /// started, and the run may be killed at a random moment. The choices come off `t`; an
    /// exhausted tape means no more faults.
    fn run(&mut self, plan: &Plan, desired: &DesiredState, t: &mut property::Tape<'_>) {
        let waves: BTreeMap<u32, Vec<&StepId>> = plan.steps.iter().fold(BTreeMap::new(), |mut m, s| {
            if let Action::Push { wave, .. } = s.action {
                m.entry(wave).or_default().push(&s.id);
            }
            m
        });
        let kill_at = (t.pick(4) == 3).then(|| t.pick(plan.steps.len() + 1));
        let mut done: BTreeSet<&StepId> = BTreeSet::new();
        let mut waiting: Vec<&Step> = plan.steps.iter().collect();
        for ran in 0.. {
            let ready: Vec<usize> = (0..waiting.len())
                .filter(|i| {
                    waiting[*i].depends_on.iter().all(|d| match d.as_wave() {
                        Some(w) => waves.get(&w).is_none_or(|ids| ids.iter().all(|id| done.contains(id))),
                        None => done.contains(d),
                    })
                })
                .collect();
            if ready.is_empty() || kill_at == Some(ran) {
                return;
            }
            let step = waiting.remove(ready[t.pick(ready.len())]);
            let fault = t.pick(8);
            if fault == 6
                && let Action::Push { horizon_name, image, version, .. } = &step.action
            {
                // Sent, and the run is killed while Horizon publishes: the push is under way.
                let base = self.base(&step.site, image, version).expect("a pushed base VM");
                let pool = self.site(&step.site).pools.get_mut(horizon_name).expect("pushed pool exists");
                pool.pending = Some(crate::live::PendingImage {
                    image: base,
                    state: crate::live::PendingState::Publishing,
                    progress: Some(40),
                    error: None,
                    start_time: None,
                });
                pool.operation = Operation::PushImage;
                return;
            }
            if fault == 7 {
                if let Action::Push { horizon_name, image, version, .. } = &step.action {
                    let base = self.base(&step.site, image, version).expect("a pushed base VM");
                    let pool = self.site(&step.site).pools.get_mut(horizon_name).expect("pushed pool exists");
                    pool.pending = Some(crate::live::PendingImage {
                        image: base,
                        state: crate::live::PendingState::Failed,
                        progress: None,
                        error: Some("the model failed it".into()),
                        start_time: None,
                    });
                }
                continue;
            }
            self.apply_step(step, desired);
            done.insert(&step.id);
        }
    }

    /// The contract, checked on the world itself: every bound pool runs the version its
    /// marker points at, from a base VM of its own site, and every version a bound marker
    /// pointed at in its last `keep_previous` moves has a base VM at the site, when it is
    /// published.
    fn check_contract(&self, desired: &DesiredState, options: &PlanOptions) {
        let keep = desired.settings.keep_previous as usize;
        for pool in desired.pools.values() {
            let image = &desired.images[&pool.image];
            let target = &image.markers[&pool.marker];
            let live = &self.live.sites[&pool.site].pools[&pool.horizon_name];
            let base = self.base(&pool.site, &pool.image, target);
            assert!(base.is_some(), "{}: no base VM of {}@{target}", pool.name, pool.image);
            assert_eq!(live.current, base, "{} runs its marker's version {}@{target}", pool.name, pool.image);
            let history = options.marker_history.get(&(pool.image.clone(), pool.marker.clone()));
            for earlier in history.into_iter().flatten().filter(|v| *v != target).take(keep) {
                let meta = World::meta(&pool.image, earlier, desired);
                let source = &self.live.sites[&desired.settings.source_site].vcenter;
                let published =
                    self.live.vcenters[source].items.values().any(|i| i.meta.as_ref() == Some(&meta));
                if published {
                    let warm = self.base(&pool.site, &pool.image, earlier);
                    assert!(
                        warm.is_some(),
                        "{}: {}@{earlier} is not kept warm at {}",
                        pool.name,
                        pool.image,
                        pool.site
                    );
                }
            }
        }
    }
}

/// The text rendering without styles, as it reads in a log.
fn plain(plan: &Plan) -> String {
    anstream::adapter::strip_str(&render::text(plan)).to_string()
}

fn plan_of(desired: &DesiredState, world: &World, options: &PlanOptions) -> Plan {
    plan(desired, &world.live, options).unwrap_or_else(|e| panic!("plan failed: {e:?}"))
}

/// The planner scenarios: one directory per scenario under `tests/fixtures/plan/` (see the
/// README there), discovered by listing, so a new directory is a new case.
pub(crate) mod fixtures {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::desired::layout::LoadError;
    use crate::ids::PoolName;

    pub(crate) struct Fixture {
        pub(crate) name: String,
        pub(crate) desired: DesiredState,
        pub(crate) live: LiveState,
        pub(crate) options: PlanOptions,
    }

    /// `history.toml`: what `golden plan` reads from git history.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HistoryFile {
        /// Per image, per marker, its earlier targets, most recent first.
        #[serde(default)]
        markers: BTreeMap<ImageName, BTreeMap<MarkerName, Vec<VersionName>>>,
        /// Per pool, the markers it was bound to before, most recent first.
        #[serde(default)]
        pools: BTreeMap<PoolName, Vec<BindingFile>>,
        /// Per image, per marker, when it pointed at which version, oldest first.
        #[serde(default)]
        stints: BTreeMap<ImageName, BTreeMap<MarkerName, Vec<StintFile>>>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StintFile {
        version: VersionName,
        since: String,
        until: Option<String>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BindingFile {
        image: ImageName,
        marker: MarkerName,
    }

    /// `options.toml`: the command line of the plan.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OptionsFile {
        /// The `--site` flags.
        #[serde(default)]
        sites: BTreeSet<SiteName>,
        /// The planner's clock (RFC 3339); the Unix epoch when absent.
        now: Option<String>,
        /// `--override-policy REASON`.
        override_policy: Option<String>,
    }

    fn dirs() -> Vec<PathBuf> {
        let root = crate::repo_root().join("tests/fixtures/plan");
        let entries =
            std::fs::read_dir(&root).unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()));
        let mut dirs: Vec<PathBuf> = entries
            .map(|e| e.unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display())).path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        assert!(!dirs.is_empty(), "no planner scenarios found under {}", root.display());
        dirs
    }

    pub(crate) fn read(dir: &Path) -> Fixture {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let here = format!("fixture tests/fixtures/plan/{name}");
        let mut desired = match load_dir(dir) {
            Ok(d) => d,
            Err(LoadError::Invalid(diagnostics)) => {
                let mut text = Vec::new();
                diagnostics.render(&mut text).expect("render to memory");
                panic!(
                    "{here}: the desired state is invalid:\n{}",
                    anstream::adapter::strip_str(&String::from_utf8_lossy(&text))
                )
            }
            Err(e) => panic!("{here}: the desired state does not load: {e}"),
        };
        // Plans must not depend on the commit the test runs at.
        desired.revision = None;

        let text = std::fs::read_to_string(dir.join("live.json"))
            .unwrap_or_else(|e| panic!("{here}: cannot read live.json: {e}"));
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{here}: live.json is not JSON: {e}"));
        let live: LiveState = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{here}: live.json is not a live state: {e}"));
        // serde ignores unknown keys and takes a missing optional one as null: a typo would
        // silently change the scenario. The file must be exactly what the live state serialises to.
        let back = serde_json::to_value(&live).expect("a live state serialises");
        if let Some(at) = first_difference(&value, &back, "") {
            panic!("{here}: live.json at {at}: unknown key, missing key or unexpected value");
        }

        // Without history.toml, as without git history: no rollback window, no pool history.
        let path = dir.join("history.toml");
        let history: Option<HistoryFile> = path.exists().then(|| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{here}: cannot read history.toml: {e}"));
            toml::from_str(&text).unwrap_or_else(|e| panic!("{here}: history.toml: {e}"))
        });
        let mut marker_history = BTreeMap::new();
        let mut pool_history = None;
        let mut marker_stints = None;
        let at = |t: &str| -> jiff::Timestamp {
            t.parse().unwrap_or_else(|e| panic!("{here}: `{t}` is not an RFC 3339 time: {e}"))
        };
        if let Some(HistoryFile { markers, pools, stints }) = history {
            let mut by_marker = BTreeMap::new();
            for (image, markers) in stints {
                for (marker, list) in markers {
                    let list = list
                        .into_iter()
                        .map(|s| history::Stint {
                            version: s.version,
                            since: at(&s.since),
                            until: s.until.as_deref().map(at),
                        })
                        .collect();
                    by_marker.insert((image.clone(), marker), list);
                }
            }
            marker_stints = Some(by_marker);
            for (image, markers) in markers {
                for (marker, versions) in markers {
                    let known = desired.images.get(&image).is_some_and(|i| i.markers.contains_key(&marker));
                    assert!(
                        known,
                        "{here}: history.toml names marker {marker} of {image}, which the repository lacks"
                    );
                    marker_history.insert((image.clone(), marker), versions);
                }
            }
            // As `History::pool_history_for` gives it: each earlier marker with every version
            // it pointed at (its earlier targets and its current one).
            let mut by_pool = BTreeMap::new();
            for (name, bindings) in pools {
                let pool = desired.pools.get(&name).unwrap_or_else(|| {
                    panic!("{here}: history.toml names pool {name}, which the repository lacks")
                });
                let earlier = bindings
                    .into_iter()
                    .map(|BindingFile { image, marker }| {
                        let key = (image.clone(), marker.clone());
                        let current = desired.images.get(&image).and_then(|i| i.markers.get(&marker));
                        let versions =
                            marker_history.get(&key).into_iter().flatten().chain(current).cloned().collect();
                        history::EarlierBinding { image, marker, versions }
                    })
                    .collect();
                by_pool.insert((pool.site.clone(), pool.horizon_name.clone()), earlier);
            }
            pool_history = Some(by_pool);
        }

        let path = dir.join("options.toml");
        let file = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{here}: cannot read options.toml: {e}"));
            let file: OptionsFile =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{here}: options.toml: {e}"));
            for site in &file.sites {
                assert!(desired.sites.contains_key(site), "{here}: options.toml names unknown site {site}");
            }
            file
        } else {
            OptionsFile { sites: BTreeSet::new(), now: None, override_policy: None }
        };
        let options = PlanOptions {
            sites: file.sites,
            marker_history,
            pool_history,
            marker_stints,
            now: file.now.as_deref().map(at).unwrap_or_default(),
            override_policy: file.override_policy,
        };
        Fixture { name, desired, live, options }
    }

    /// What `golden plan` reads: the sites planned and the source site. The rest of a fixture's
    /// live state is the world the plan is applied to, never seen by the planner.
    fn read_by_plan(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> LiveState {
        let read = |s: &SiteName| {
            options.sites.is_empty() || options.sites.contains(s) || *s == desired.settings.source_site
        };
        let sites: BTreeMap<SiteName, SiteLive> =
            live.sites.iter().filter(|(s, _)| read(s)).map(|(s, l)| (s.clone(), l.clone())).collect();
        let vcenters = live
            .vcenters
            .iter()
            .filter(|(id, _)| sites.values().any(|s| &s.vcenter == *id))
            .map(|(id, vc)| (id.clone(), vc.clone()))
            .collect();
        LiveState { sites, vcenters }
    }

    /// The JSON path of the first place where `a` and `b` differ.
    fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &format!("{path}.{k}")),
                    _ => Some(format!("{path}.{k}")),
                })
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
            _ => (a != b).then(|| if path.is_empty() { ".".to_owned() } else { path.to_owned() }),
        }
    }

    /// Every step's dependencies, one line per step that has any. The text rendering does not
    /// show them; the snapshot does, so "retire after the push" is checked too.
    fn dependencies(plan: &Plan) -> String {
        let lines: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| !s.depends_on.is_empty())
            .map(|s| {
                let deps: Vec<&str> = s.depends_on.iter().map(StepId::as_str).collect();
                format!("  {} after {}\n", s.id, deps.join(", "))
            })
            .collect();
        if lines.is_empty() { String::new() } else { format!("\nDependencies:\n{}", lines.concat()) }
    }

    /// Dependencies point only backwards (the order of the steps is an execution order), and
    /// every wave but the first waits for the wave before it.
    fn check_order(here: &str, plan: &Plan) {
        let waves: BTreeSet<u32> = plan
            .steps
            .iter()
            .filter_map(|s| match s.action {
                Action::Push { wave, .. } => Some(wave),
                _ => None,
            })
            .collect();
        let mut seen = BTreeSet::new();
        for step in &plan.steps {
            for dep in &step.depends_on {
                let done = match dep.as_wave() {
                    // Every push of that wave comes earlier.
                    Some(w) => plan
                        .steps
                        .iter()
                        .filter(|s| matches!(s.action, Action::Push { wave, .. } if wave == w))
                        .all(|s| seen.contains(&s.id)),
                    None => seen.contains(dep),
                };
                assert!(done, "{here}: {} depends on later {dep}", step.id);
            }
            if let Action::Push { wave, .. } = step.action {
                if let Some(previous) = waves.range(..wave).next_back() {
                    assert!(
                        step.depends_on.contains(&StepId::wave(*previous)),
                        "{here}: {} does not wait for wave {previous}: {:?}",
                        step.id,
                        step.depends_on
                    );
                }
            }
            seen.insert(step.id.clone());
        }
    }

    /// The reason of a push says what golden knows, and claims drift only when git history
    /// shows golden never pushed the pool there.
    #[test]
    fn push_reasons_claim_drift_only_on_evidence() {
        let dir = crate::repo_root().join("tests/fixtures/plan/marker-move");
        let Fixture { desired, live, .. } = read(&dir);
        let reason = |marker_history: &[&str], pool_history| {
            let prod = (ImageName::new("win11-ent"), MarkerName::new("prod"));
            let versions = marker_history.iter().map(|v| VersionName::new(*v)).collect();
            let options = PlanOptions {
                marker_history: BTreeMap::from([(prod, versions)]),
                pool_history,
                ..PlanOptions::default()
            };
            let plan = plan(&desired, &live, &options).expect("plans");
            let step = plan.steps.iter().find(|s| s.id.as_str() == "push/eu/eu-office").expect("a push");
            step.reason.clone()
        };
        assert_eq!(reason(&["2026.10"], None), "marker prod of win11-ent moved 2026.10 → 2026.11");
        assert_eq!(
            reason(&["2026.09", "2026.10"], Some(BTreeMap::new())),
            "pool eu-office runs 2026.10, an earlier target of marker prod of win11-ent, which points at 2026.11"
        );
        assert_eq!(
            reason(&[], None),
            "pool eu-office runs 2026.10; marker prod of win11-ent points at 2026.11"
        );
        assert!(
            reason(&[], Some(BTreeMap::new())).starts_with("pool eu-office drifted (set outside golden): ")
        );
    }

    /// The safe-rollout scenarios, checked field by field beside their snapshots: a rule holds
    /// prod back and says when it will hold, an override is recorded, a window schedules a
    /// push at the right UTC instant across a daylight saving change.
    #[test]
    fn rollout_scenarios_hold_record_and_schedule() {
        let fixture = |name: &str| read(&crate::repo_root().join("tests/fixtures/plan").join(name));
        let ms = |t: &str| t.parse::<jiff::Timestamp>().expect("a time").as_millisecond();
        let pushes = |p: &Plan| -> Vec<String> {
            p.steps.iter().filter(|s| s.action.verb() == "push").map(|s| s.id.to_string()).collect()
        };

        let Fixture { desired, live, options, .. } = fixture("policy-holds-back-prod");
        let held = plan(&desired, &live, &options).expect("plans");
        assert!(pushes(&held).is_empty(), "{:?}", pushes(&held));
        assert_eq!(held.held.len(), 2);
        assert!(held.held.iter().all(|h| h.cause == crate::plan::HeldCause::Policy));
        assert!(held.held.iter().all(|h| h.until == Some(ms("2026-12-03T10:00:00Z"))));
        let [check] = held.policy.as_slice() else { panic!("one rule check: {:?}", held.policy) };
        assert!(!check.holds && check.overridden.is_none());
        assert_eq!(check.holds_at, Some(ms("2026-12-03T10:00:00Z")));
        assert_eq!(check.pools, ["eu/eu-office", "hq/hq-office"]);

        // A day later the rule holds; had pilot's pool not run it, it would not.
        let mut later = options.clone();
        later.now = "2026-12-03T10:00:00Z".parse().expect("a time");
        let went = plan(&desired, &live, &later).expect("plans");
        assert_eq!(pushes(&went), ["push/eu/eu-office", "push/hq/hq-office"]);
        assert!(went.policy[0].holds && went.held.is_empty());
        let mut lagging = live.clone();
        let pilot = lagging
            .sites
            .get_mut(&SiteName::new("hq"))
            .and_then(|s| s.pools.get_mut(&HorizonName::new("IT-Pilot-IC")));
        pilot.expect("the pilot pool").current = None;
        let waits = plan(&desired, &lagging, &later).expect("plans");
        assert!(pushes(&waits).iter().all(|p| !p.contains("office")), "{:?}", pushes(&waits));
        assert!(
            waits.policy[0].missing.iter().any(|m| m.contains("pilot pool hq-it at hq does not run 2026.11"))
        );
        assert_eq!(waits.policy[0].holds_at, None, "waiting alone does not make it hold");

        let Fixture { desired, live, options, .. } = fixture("policy-overridden");
        let overridden = plan(&desired, &live, &options).expect("plans");
        assert_eq!(pushes(&overridden), ["push/eu/eu-office", "push/hq/hq-office"]);
        assert_eq!(
            overridden.policy[0].overridden.as_deref(),
            Some("CVE-2026-4242 hotfix, approved by the change board")
        );
        assert!(!overridden.policy[0].holds);
        let json = render::json(&overridden);
        assert!(json.contains("\"overridden\": \"CVE-2026-4242"), "{json}");
        assert!(render::markdown(&overridden).contains("overridden: CVE-2026-4242"));
        insta::assert_snapshot!("markdown_of_held_pushes", render::markdown(&held));

        let Fixture { desired, live, options, .. } = fixture("window-across-dst");
        let scheduled = plan(&desired, &live, &options).expect("plans");
        let start = |id: &str| {
            scheduled.steps.iter().find(|s| s.id.as_str() == id).map(|s| match &s.action {
                Action::Push { start_time, .. } => *start_time,
                _ => panic!("{id} is not a push"),
            })
        };
        // Monday 02:00 in Berlin after the change back to winter time (UTC+1): 01:00 UTC.
        assert_eq!(start("push/eu/eu-office"), Some(Some(ms("2026-10-26T01:00:00Z"))));
        assert_eq!(start("push/hq/hq-office"), Some(None), "hq has no window");
    }

    /// Plans every scenario and snapshots the plain text (or the errors, for `*-error`); then
    /// applies the plan to the model of the live state and checks that the next plan is empty.
    #[test]
    fn planner_scenarios() {
        for dir in dirs() {
            let Fixture { name, desired, live, options } = read(&dir);
            let here = format!("fixture tests/fixtures/plan/{name}");
            let result = plan(&desired, &read_by_plan(&desired, &live, &options), &options);
            let expects_error = name.ends_with("-error");
            let snapshot = match &result {
                Ok(p) => {
                    assert!(!expects_error, "{here}: expected the plan to fail, got:\n{}", plain(p));
                    check_order(&here, p);
                    format!("{}{}", plain(p), dependencies(p))
                }
                Err(errors) => {
                    let text: String =
                        errors.iter().map(|e| format!("error: {e}\n  hint: {}\n", e.hint())).collect();
                    assert!(expects_error, "{here}: plan failed:\n{text}");
                    text
                }
            };
            insta::with_settings!({ description => format!("tests/fixtures/plan/{name}") }, {
                insta::assert_snapshot!(format!("fixture-{name}"), snapshot);
            });
            if let Ok(first) = result {
                let mut world = World::from_live(live);
                world.apply(&first, &desired);
                let again = plan(&desired, &read_by_plan(&desired, &world.live, &options), &options)
                    .unwrap_or_else(|e| panic!("{here}: plan after apply failed: {e:?}"));
                assert!(!again.has_changes(), "{here}: plan after apply is not empty:\n{}", plain(&again));
            }
        }
    }
}

#[test]
fn markdown_and_json_renderings() {
    let desired = quickstart();
    let world = World::before_golden(&desired);
    let plan = plan_of(
        &desired,
        &world,
        &PlanOptions { sites: BTreeSet::from([SiteName::new("us")]), ..PlanOptions::default() },
    );
    insta::assert_snapshot!(render::markdown(&plan));
    let back: Plan = serde_json::from_str(&render::json(&plan)).expect("JSON round-trips");
    assert_eq!(back, plan);
}

/// The plan comment's version trees: one Mermaid graph per image the plan pushes pools of.
#[test]
fn version_trees_of_the_images_pushed() {
    let desired = quickstart();
    let world = World::before_golden(&desired);
    let plan = plan_of(&desired, &world, &PlanOptions::default());
    let trees = render::version_trees(&plan, &desired);
    assert!(trees.contains("```mermaid\ngraph LR\n"), "{trees}");
    insta::assert_snapshot!(trees);
    let nothing = Plan { steps: Vec::new(), ..plan };
    assert_eq!(render::version_trees(&nothing, &desired), "");
}

mod property {
    //! For random repositories and random live states, applying the plan to the model and
    //! planning again gives no changes.

    use proptest::prelude::*;

    use super::*;
    use crate::desired::{Compute, Image, Logoff, Pool, Settings, Site, Source, Version};
    use crate::ids::PoolName;

    /// Reads choices off a tape of random bytes (proptest shrinks the tape).
    pub(super) struct Tape<'a>(pub(super) std::slice::Iter<'a, u8>);

    impl Tape<'_> {
        pub(super) fn pick(&mut self, n: usize) -> usize {
            if n == 0 { 0 } else { usize::from(*self.0.next().unwrap_or(&0)) % n }
        }
    }

    /// A site in vCenter `vcenter`, in a datacenter of its own.
    fn site(name: &str, vcenter: &str) -> Site {
        Site {
            name: SiteName::new(name),
            vcenter: format!("https://{vcenter}.example"),
            horizon: format!("https://hz-{name}.example"),
            datacenter: format!("DC-{name}"),
            compute: Compute::Cluster("C".into()),
            folder: "golden".into(),
            datastore: "ds".into(),
            ca_file: None,
            timezone: crate::desired::Zone::utc(),
            window: None,
        }
    }

    fn random_desired(t: &mut Tape<'_>) -> DesiredState {
        let site_names = ["hq", "eu", "us", "apac"];
        // Random layouts of sites over vCenters: one each, all in one, and between.
        let vcenters = ["vc-a", "vc-b", "vc-c"];
        let sites: BTreeMap<SiteName, Site> = site_names[..1 + t.pick(4)]
            .iter()
            .map(|n| (SiteName::new(*n), site(n, vcenters[t.pick(vcenters.len())])))
            .collect();
        let mut images = BTreeMap::new();
        for i in 0..1 + t.pick(3) {
            let name = ImageName::new(format!("img{i}"));
            let mut versions = BTreeMap::new();
            for v in 0..1 + t.pick(4) {
                let parent = (v > 0).then(|| VersionName::new(format!("v{}", t.pick(v))));
                let source = if t.pick(3) == 0 {
                    Source::LibraryItem { name: format!("img{i}-v{v}") }
                } else {
                    Source::Vm { vm: format!("build{i}"), snapshot: Some(format!("s{v}")) }
                };
                let vn = VersionName::new(format!("v{v}"));
                versions
                    .insert(vn.clone(), Version { name: vn, parent, source, notes: None, adopted: false });
            }
            let names: Vec<VersionName> = versions.keys().cloned().collect();
            let markers = ["prod", "pilot", "canary"][..1 + t.pick(3)]
                .iter()
                .map(|m| (MarkerName::new(*m), names[t.pick(names.len())].clone()))
                .collect();
            images.insert(
                name.clone(),
                Image { name, description: None, versions, markers, policies: BTreeMap::new() },
            );
        }
        let mut pools = BTreeMap::new();
        let site_list: Vec<&SiteName> = sites.keys().collect();
        for p in 0..t.pick(9) {
            let image = images.values().nth(t.pick(images.len())).expect("an image");
            let markers: Vec<&MarkerName> = image.markers.keys().collect();
            let name = PoolName::new(format!("pool{p}"));
            pools.insert(
                name.clone(),
                Pool {
                    name,
                    site: site_list[t.pick(site_list.len())].clone(),
                    kind: if t.pick(4) == 0 { DesiredKind::Farm } else { DesiredKind::DesktopPool },
                    horizon_name: HorizonName::new(format!("P{p}")),
                    image: image.name.clone(),
                    marker: markers[t.pick(markers.len())].clone(),
                    wave: 1 + t.pick(3) as u32,
                    logoff: Logoff::Wait,
                    window: None,
                    canary: None,
                },
            );
        }
        DesiredState {
            revision: None,
            digest: String::new(),
            settings: Settings {
                library: "golden-images".into(),
                source_site: SiteName::new("hq"),
                parallelism: 4,
                keep_previous: t.pick(3) as u32,
            },
            sites,
            images,
            pools,
        }
    }

    /// Makes the library of some vCenters other than the source's a subscriber of the source
    /// library, as an admin may have set them up before golden.
    fn subscribe_replicas(world: &mut World, desired: &DesiredState, t: &mut Tape<'_>) {
        let source = world.live.sites[&desired.settings.source_site].vcenter.clone();
        for (id, vc) in &mut world.live.vcenters {
            if *id != source && t.pick(2) == 0 {
                vc.library = Some(Library {
                    id: LibraryId::new(format!("lib-{id}")),
                    name: desired.settings.library.clone(),
                    kind: LibraryKind::Subscribed {
                        subscription_url: "https://source.example/lib.json".into(),
                        last_sync_ms: None,
                    },
                });
            }
        }
    }

    /// Moves markers at random: the next desired state, and the history that leads to it.
    fn move_markers(t: &mut Tape<'_>, desired: &DesiredState) -> (DesiredState, PlanOptions) {
        let mut next = desired.clone();
        let mut history = BTreeMap::new();
        for image in next.images.values_mut() {
            let names: Vec<VersionName> = image.versions.keys().cloned().collect();
            for (marker, version) in image.markers.iter_mut() {
                if t.pick(2) == 0 {
                    history.insert((image.name.clone(), marker.clone()), vec![version.clone()]);
                    *version = names[t.pick(names.len())].clone();
                }
            }
        }
        (next, PlanOptions { marker_history: history, ..PlanOptions::default() })
    }

    /// Plans and runs apply (with faults and kills) until a plan is empty, then checks the
    /// contract on the world. Faults stop once the tape is used up, so this ends.
    fn converge_under_faults(
        desired: &DesiredState,
        world: &mut World,
        options: &PlanOptions,
        t: &mut Tape<'_>,
    ) {
        for _ in 0..64 {
            world.settle(|| t.pick(2) == 0);
            let plan = plan_of(desired, world, options);
            if !plan.has_changes() {
                // A push under way is a step of the plan (apply follows it), so an empty plan
                // means every pool runs its image.
                assert!(!world.pushes_under_way(), "an empty plan while a push is under way");
                world.check_contract(desired, options);
                return;
            }
            world.run(&plan, desired, t);
        }
        panic!("no empty plan after 64 runs of apply");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn plan_apply_plan_converges(tape in proptest::collection::vec(any::<u8>(), 64..256)) {
            let mut t = Tape(tape.iter());
            let desired = random_desired(&mut t);
            let mut world = World::before_golden(&desired);
            subscribe_replicas(&mut world, &desired, &mut t);

            // Runs with faults and kills until a plan is empty; then the contract holds.
            converge_under_faults(&desired, &mut world, &PlanOptions::default(), &mut t);

            // Then marker moves (and their rollback windows), possibly with drift.
            let (moved, options) = move_markers(&mut t, &desired);
            if t.pick(2) == 0 {
                let sites: Vec<SiteName> = world.live.sites.keys().cloned().collect();
                let s = sites[t.pick(sites.len())].clone();
                let bases: Vec<ImageRef> = world.live.sites[&s].vms.values()
                    .filter(|v| v.meta.is_some())
                    .filter_map(|v| Some(ImageRef { vm: v.id.clone(), snapshot: v.snapshots.last()?.id.clone() }))
                    .collect();
                let pools: Vec<HorizonName> = world.live.sites[&s].pools.keys().cloned().collect();
                if !bases.is_empty() && !pools.is_empty() {
                    let pool = pools[t.pick(pools.len())].clone();
                    let base = bases[t.pick(bases.len())].clone();
                    world.site(&s).pools.get_mut(&pool).expect("pool").current = Some(base);
                }
            }
            converge_under_faults(&moved, &mut world, &options, &mut t);
        }
    }
}

#[test]
fn retire_lines_count_in_the_singular_and_the_plural() {
    let retire = |items: &[&str], vms: &[&str]| Step {
        id: StepId::new("retire/hq/win11-ent/2026.09"),
        site: SiteName::new("hq"),
        action: Action::Retire {
            image: ImageName::new("win11-ent"),
            version: VersionName::new("2026.09"),
            items: items.iter().map(|s| ItemId::new(*s)).collect(),
            vms: vms.iter().map(|s| Moref::new(*s)).collect(),
        },
        reason: String::new(),
        depends_on: Vec::new(),
    };
    assert_eq!(render::describe(&retire(&["item-1"], &["vm-2"])), "win11-ent@2026.09 (1 library item, 1 VM)");
    assert_eq!(
        render::describe(&retire(&["item-1", "item-3"], &["vm-2", "vm-4"])),
        "win11-ent@2026.09 (2 library items, 2 VMs)"
    );
    // A subscribed library's items stay: only the VM is named.
    assert_eq!(render::describe(&retire(&[], &["vm-2"])), "win11-ent@2026.09 (1 VM)");
}
