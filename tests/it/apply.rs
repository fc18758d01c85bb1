//! Apply's steps against the lab seeded from the quickstart: a plan applied step by step leaves
//! nothing to plan, a marker move is applied the same way, every step is safe to repeat, and
//! Horizon's failures and slow library syncs are handled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use golden::apply::steps::run_step;
use golden::apply::{Context, Outcome, Progress, StepError, Target, Timeouts};
use golden::connect::RetryPolicy;
use golden::desired::Logoff;
use golden::desired::{DesiredState, Location, load};
use golden::gather::{SiteClients, connect_all, read_all};
use golden::horizon::PushSpec;
use golden::ids::{ImageName, MarkerName, SiteName, VersionName};
use golden::lab::{Lab, LabOptions, LabState, Product, Timings};
use golden::live::{ImageRef, ItemId, LiveState, Moref};
use golden::plan::{Action, Plan, PlanOptions, Step, StepId, plan};

use super::common::repo_root;

fn quickstart() -> DesiredState {
    load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") }).expect("quickstart loads")
}

fn timeouts() -> Timeouts {
    let short = Duration::from_secs(10);
    Timeouts {
        task: short,
        replication: short,
        push: short,
        poll: Duration::from_millis(20),
        guest_shutdown: short,
    }
}

/// Records what steps report.
#[derive(Default)]
struct Recorder {
    notes: Mutex<Vec<(StepId, String)>>,
    percents: Mutex<Vec<(StepId, u8)>>,
}

impl Progress for Recorder {
    fn note(&self, step: &StepId, message: &str) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push((step.clone(), message.to_owned()));
    }

    fn percent(&self, step: &StepId, percent: u8) {
        self.percents.lock().unwrap_or_else(|e| e.into_inner()).push((step.clone(), percent));
    }
}

impl Recorder {
    fn notes_of(&self, step: &str) -> Vec<String> {
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes.iter().filter(|(s, _)| s.as_str() == step).map(|(_, n)| n.clone()).collect()
    }
}

/// A lab, the apply context on it, and separate clients to read the live state with.
struct Harness {
    lab: Lab,
    ctx: Context,
    readers: BTreeMap<SiteName, SiteClients>,
}

impl Harness {
    async fn start(timings: Timings) -> Harness {
        Harness::start_with(timings, |_| {}).await
    }

    /// Starts a lab seeded from the quickstart, changed by `prepare` before it starts.
    async fn start_with(timings: Timings, prepare: impl FnOnce(&mut LabState)) -> Harness {
        let mut desired = quickstart();
        // The harness plans without git history, where the quickstart's promotion rule
        // (`[policy.prod]`) cannot be shown to hold and keeps prod back; these tests are about
        // apply (the rule has its own scenarios and the demo).
        for image in desired.images.values_mut() {
            image.policies.clear();
        }
        let mut state = golden::lab::seed::from_desired(&desired, timings);
        prepare(&mut state);
        let lab = Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() })
            .await
            .expect("lab starts");
        let env: BTreeMap<String, String> = lab.env().into_iter().collect();
        let lookup = |name: &str| env.get(name).cloned();
        let sites: BTreeSet<SiteName> = desired.sites.keys().cloned().collect();
        let dir = repo_root().join("examples/quickstart");
        let connect = || connect_all(&desired, &sites, &dir, &lookup, &RetryPolicy::none()).expect("clients");
        let (clients, readers) = (connect(), connect());
        for c in clients.values() {
            c.vcenter.login().await.expect("vcenter login");
            c.horizon.login().await.expect("horizon login");
        }
        let inventories = read_all(&desired, &clients).await.expect("live state").inventories;
        let mut targets = BTreeMap::new();
        for (name, clients) in clients {
            let site = desired.sites[&name].clone();
            let placement = inventories[&name]
                .placement(&site.datacenter, &site.compute, &site.folder, &site.datastore)
                .expect("placement resolves");
            targets.insert(name, Target::new(site, clients, placement));
        }
        let ctx = Context { desired, targets, timeouts: timeouts(), libraries: Default::default() };
        Harness { lab, ctx, readers }
    }

    /// The live state of the repository's sites, as `golden plan` reads it.
    async fn live(&self) -> LiveState {
        let mut readers = self.readers.clone();
        readers.retain(|site, _| self.ctx.desired.sites.contains_key(site));
        read_all(&self.ctx.desired, &readers).await.expect("live state").live
    }

    async fn plan(&self, options: &PlanOptions) -> Plan {
        plan(&self.ctx.desired, &self.live().await, options).expect("a plan")
    }

    /// Runs every step in plan order (which honours dependencies and waves); panics on the
    /// first error.
    async fn apply(&self, plan: &Plan, progress: &Recorder) -> Vec<(StepId, Outcome)> {
        let mut outcomes = Vec::new();
        for step in &plan.steps {
            match run_step(&self.ctx, step, progress).await {
                Ok(outcome) => outcomes.push((step.id.clone(), outcome)),
                Err(e) => panic!("step {} failed: {e}", step.id),
            }
        }
        outcomes
    }

    fn lab_state(&self) -> LabState {
        self.lab.state().lock().clone()
    }

    /// Per site, names of library items (per library) and of VMs that occur more than once.
    fn duplicates(&self) -> Vec<String> {
        let mut dups = Vec::new();
        for (site, v) in &self.lab_state().vcenters {
            let mut items: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for i in v.sim.content.items.values() {
                *items.entry((i.library_id.as_str(), i.name.as_str())).or_default() += 1;
            }
            // VM names per folder: sites sharing a vCenter have a folder each.
            let mut vms: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for v in v.sim.vms.values() {
                *vms.entry((v.folder.as_str(), v.name.as_str())).or_default() += 1;
            }
            dups.extend(
                items
                    .iter()
                    .filter(|(_, n)| **n > 1)
                    .map(|((_, name), n)| format!("{site}: item {name} ×{n}")),
            );
            dups.extend(
                vms.iter()
                    .filter(|(_, n)| **n > 1)
                    .map(|((folder, name), n)| format!("{site}: vm {name} ×{n} in folder {folder}")),
            );
        }
        dups
    }

    fn count_vms(&self) -> usize {
        self.lab_state().vcenters.values().map(|v| v.sim.vms.len()).sum()
    }

    fn count_items(&self) -> usize {
        self.lab_state().vcenters.values().map(|v| v.sim.content.items.len()).sum()
    }
}

fn kinds(plan: &Plan) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for s in &plan.steps {
        *counts.entry(s.action.verb()).or_default() += 1;
    }
    counts
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.id.as_str()).collect()
}

/// Applies `first`; the plan right after must be empty. Returns the steps that did work.
async fn converge(h: &Harness, first: &Plan, options: &PlanOptions, progress: &Recorder) -> Vec<Step> {
    let mut synced_at = BTreeSet::new();
    let mut worked = Vec::new();
    for ((id, outcome), step) in h.apply(first, progress).await.into_iter().zip(&first.steps) {
        // One sync of a subscribed library brings every published version along, so only the
        // first replication to a site is sure to have work to do.
        let may_be_done =
            matches!(step.action, Action::Replicate { .. }) && !synced_at.insert(step.site.clone());
        assert!(
            may_be_done || matches!(outcome, Outcome::Done(_)),
            "{id} had nothing to do on first run: {outcome:?}"
        );
        worked.push(step.clone());
    }
    let after = h.plan(options).await;
    assert!(!after.has_changes(), "the plan is not empty after apply: {:?}", ids(&after));
    worked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_then_a_marker_move_and_a_rerun_change_nothing_twice() {
    let mut h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let first = h.plan(&PlanOptions::default()).await;
    assert_eq!(
        kinds(&first),
        BTreeMap::from([("publish", 5), ("replicate", 3), ("deploy", 7), ("push", 8)]),
        "first deploy"
    );
    let cleanup = converge(&h, &first, &PlanOptions::default(), &progress).await;

    // Every pool runs a golden base VM of the version its marker points at.
    let live = h.live().await;
    for pool in h.ctx.desired.pools.values() {
        let site = &live.sites[&pool.site];
        let lp = &site.pools[&pool.horizon_name];
        let current = lp.current.as_ref().expect("an image");
        let meta = site.vms[&current.vm].meta.as_ref().expect("golden's base VM");
        let marker = &h.ctx.desired.images[&pool.image].markers[&pool.marker];
        assert_eq!((&meta.image, &meta.version), (&pool.image, marker), "pool {}", pool.name);
        let vm = &site.vms[&current.vm];
        assert_eq!(vm.name, format!("golden-{}-{}", pool.image, marker));
        assert_eq!(vm.snapshots.last().map(|s| s.id.clone()), Some(current.snapshot.clone()));
        assert_eq!(vm.snapshots.last().map(|s| s.name.clone()), Some(format!("golden-{marker}")));
    }

    // An item a base VM was deployed from is known from the VM's annotation: a new read asks
    // for none of them one by one, and knows each as reading it would.
    h.lab.reset_counters();
    let again = h.live().await;
    assert!(again.sites.values().any(|s| s.vms.values().any(|v| v.deployed_from.is_some())));
    // Each site reads its vCenter's library; sites sharing a vCenter share its endpoint, and
    // an item named by a base VM anywhere in that vCenter is known without a read.
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (site, s) in &again.sites {
        let from_vms: BTreeSet<&ItemId> = again
            .sites
            .values()
            .filter(|other| other.vcenter == s.vcenter)
            .flat_map(|other| other.vms.values())
            .filter_map(|v| v.deployed_from.as_ref().map(|i| &i.id))
            .collect();
        let library = again.vcenter_of(site).expect("the site's vCenter was read");
        let others = library.items.keys().filter(|id| !from_vms.contains(id)).count() as u64;
        let endpoint = h.lab.url(site.as_str(), Product::Vcenter).expect("an endpoint");
        *expected.entry(endpoint).or_default() += others;
    }
    for site in again.sites.keys() {
        let endpoint = h.lab.url(site.as_str(), Product::Vcenter).expect("an endpoint");
        let routes = h.lab.requests_by_route(site.as_str(), Product::Vcenter);
        let item_reads: u64 = routes
            .iter()
            .filter(|(route, _)| route.starts_with("GET /rest/com/vmware/content/library/item/id:"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(item_reads, expected[endpoint], "{site}: items read one by one");
    }
    for site in again.sites.keys() {
        let library = again.vcenter_of(site).expect("the site's vCenter was read");
        for item in library.items.values() {
            let read = h.readers[site].vcenter.get_item(&item.id).await.expect("the item reads");
            assert_eq!(&read, item, "{site}: item {} as the live state knows it", item.id);
        }
    }
    // Replication went through subscriptions; the Packer item was adopted, not copied.
    for site in ["eu", "us"] {
        let library =
            live.vcenter_of(&SiteName::new(site)).and_then(|v| v.library.as_ref()).expect("library");
        assert!(matches!(library.kind, golden::live::LibraryKind::Subscribed { .. }), "{site}: {library:?}");
    }
    let hq = live.vcenter_of(&SiteName::new("hq")).expect("hq's vCenter");
    let packer = hq.items.values().find(|i| i.name == "win11-2026.11").expect("the Packer item");
    assert_eq!(packer.meta.as_ref().map(|m| m.source.as_str()), Some("library_item:win11-2026.11"));
    assert_eq!(hq.items.len(), 5, "four captures and the adopted item: {:?}", hq.items);
    let adopted: Vec<String> = progress.notes_of("publish/win11-ent/2026.11");
    assert!(adopted.iter().any(|n| n.starts_with("adopting item `win11-2026.11`")), "{adopted:?}");
    assert!(progress.percents.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(_, p)| *p == 100));

    // Marker move: prod of win11-ent 2026.10 → 2026.11, with 2026.10 kept warm for rollback.
    let (image, prod) = (ImageName::new("win11-ent"), MarkerName::new("prod"));
    h.ctx
        .desired
        .images
        .get_mut(&image)
        .expect("image")
        .markers
        .insert(prod.clone(), VersionName::new("2026.11"));
    let options = PlanOptions {
        marker_history: BTreeMap::from([((image.clone(), prod), vec![VersionName::new("2026.10")])]),
        ..PlanOptions::default()
    };
    let moved = h.plan(&options).await;
    let pushes: BTreeSet<String> = moved
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Push { .. }))
        .map(|s| s.id.to_string())
        .collect();
    let expected: BTreeSet<String> =
        ["push/eu/eu-office", "push/hq/hq-office", "push/us/us-callcenter", "push/us/us-office"]
            .map(str::to_owned)
            .into();
    assert_eq!(pushes, expected, "only pools on prod of win11-ent move: {:?}", ids(&moved));
    let move_kinds = kinds(&moved);
    assert!(!move_kinds.contains_key("publish") && !move_kinds.contains_key("retire"), "{move_kinds:?}");
    assert!(
        moved.steps.iter().all(|s| matches!(
            &s.action,
            Action::Push { .. } | Action::Replicate { .. } | Action::Deploy { .. }
        ) && match &s.action {
            Action::Replicate { version, .. } | Action::Deploy { version, .. } =>
                version.as_str() == "2026.11",
            _ => true,
        }),
        "copies of 2026.11 and pushes only: {:?}",
        ids(&moved)
    );
    let cleanup_after_move = converge(&h, &moved, &options, &progress).await;
    let live = h.live().await;
    for (site, pool) in [("eu", "Office-IC"), ("hq", "Office-IC"), ("us", "CallCenter-IC")] {
        let s = &live.sites[&SiteName::new(site)];
        let current = s.pools[pool].current.as_ref().expect("image");
        assert_eq!(s.vms[&current.vm].meta.as_ref().map(|m| m.version.as_str()), Some("2026.11"));
    }

    // Every step applied so far, again: nothing to do, nothing created twice. (The first
    // plan's pushes of pools that have moved since are no longer wanted, so they are left out.)
    let (vms, items) = (h.count_vms(), h.count_items());
    let superseded = |s: &Step| {
        matches!(s.action, Action::Push { .. }) && moved.steps.iter().any(|m| m.id == s.id && m != s)
    };
    let all = first.steps.iter().chain(&cleanup).chain(&moved.steps).chain(&cleanup_after_move);
    let mut rerun = 0;
    for step in all.filter(|s| !superseded(s)) {
        let outcome = run_step(&h.ctx, step, &progress).await;
        assert!(matches!(outcome, Ok(Outcome::AlreadyDone(_))), "{}: {outcome:?}", step.id);
        rerun += 1;
    }
    assert!(rerun >= first.steps.len(), "{rerun} steps re-run");
    assert_eq!((h.count_vms(), h.count_items()), (vms, items), "a re-run created objects");
    assert_eq!(h.duplicates(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_horizon_fails_names_horizons_error() {
    let h = Harness::start(Timings::instant()).await;
    {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let eu = &mut state.sites.get_mut("eu").expect("eu").horizon;
        let id = eu.pool_id("Finance-IC").expect("pool");
        assert!(eu.fail_next_push(&id, "clone creation failed: datastore vsan-eu is full"));
    }
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    let mut failure = None;
    for step in &plan.steps {
        match run_step(&h.ctx, step, &progress).await {
            Ok(_) => {}
            Err(e) => {
                failure = Some((step.id.clone(), e));
                break;
            }
        }
    }
    let (id, error) = failure.expect("the push fails");
    assert_eq!(id.as_str(), "push/eu/eu-finance");
    let StepError::Failed(text) = &error else { panic!("not a step failure: {error:?}") };
    assert!(text.contains("clone creation failed: datastore vsan-eu is full"), "{text}");
    assert!(
        text.contains("Finance-IC") && text.contains("`eu`") && text.contains("push/eu/eu-finance"),
        "{text}"
    );

    // Planning again retries the failed push, which cancels the failed pending image first
    // (Horizon takes no new image over it) and now succeeds.
    let again = h.plan(&PlanOptions::default()).await;
    let retry = again.steps.iter().find(|s| s.id == id).expect("the push is planned again");
    assert!(retry.reason.contains("failed"), "{}", retry.reason);
    assert!(matches!(run_step(&h.ctx, retry, &progress).await, Ok(Outcome::Done(_))));
    let notes = progress.notes_of("push/eu/eu-finance");
    assert!(notes.iter().any(|n| n.contains("cancelling the failed pending image")), "{notes:?}");
}

/// The publish and replicate steps of one version towards `site`, from a first-deploy plan.
fn copy_steps<'a>(plan: &'a Plan, site: &str, version: &str) -> Vec<&'a Step> {
    plan.steps
        .iter()
        .filter(|s| match &s.action {
            Action::Publish { image, version: v, .. } => {
                image.as_str() == "win11-ent" && v.as_str() == version
            }
            Action::Replicate { image, version: v, .. } => {
                image.as_str() == "win11-ent" && v.as_str() == version && s.site.as_str() == site
            }
            _ => false,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_waits_for_a_slow_library_sync() {
    let timings = Timings { library_sync_ms: 300, ..Timings::instant() };
    let h = Harness::start(timings).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    let steps = copy_steps(&plan, "eu", "2026.10");
    assert_eq!(steps.len(), 2, "{:?}", ids(&plan));
    assert!(matches!(run_step(&h.ctx, steps[0], &progress).await, Ok(Outcome::Done(_))));
    let started = Instant::now();
    let (outcome, seen_mid_sync) = tokio::join!(run_step(&h.ctx, steps[1], &progress), async {
        // While the copy's metadata is at eu and its content is not, a plan still sees a
        // replication to do (and the lab refuses to deploy from it).
        let uncached = || {
            let state = h.lab_state();
            let eu = state.vcenter_of("eu").expect("eu's vCenter");
            eu.content.items.values().any(|i| i.source_id.is_some() && !i.cached(golden::lab::now_ms()))
        };
        while !uncached() {
            if started.elapsed() > Duration::from_secs(10) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(h.plan(&PlanOptions::default()).await)
    });
    let outcome = outcome.expect("replicates");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    // The sync brings the metadata after 300 ms and the content 300 ms later: the step ends
    // with the content (less the lab's rounding to whole milliseconds).
    assert!(
        started.elapsed() >= Duration::from_millis(580),
        "returned before the content was there: {:?}",
        started.elapsed()
    );
    let mid = seen_mid_sync.expect("the copy was listed before its content");
    assert_eq!(copy_steps(&mid, "eu", "2026.10").len(), 1, "mid-sync plan: {:?}", ids(&mid));
    let notes = progress.notes_of("replicate/eu/win11-ent/2026.10");
    assert!(notes.iter().any(|n| n.starts_with("subscribing library `golden-images`")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("waiting for library")), "{notes:?}");
    let live = h.live().await;
    let eu = live.vcenter_of(&SiteName::new("eu")).expect("eu's vCenter");
    assert!(eu.items.values().any(|i| i.meta.as_ref().is_some_and(|m| m.version.as_str() == "2026.10")));
    // Again: the copy is found, no new sync or library.
    let again = run_step(&h.ctx, steps[1], &progress).await.expect("re-run");
    assert!(matches!(again, Outcome::AlreadyDone(_)), "{again:?}");
    let libraries = h.lab_state().vcenter_of("eu").expect("eu's vCenter").content.libraries.len();
    assert_eq!(libraries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_with_a_local_library_gets_its_copy_pulled_by_vcenter() {
    let timings = Timings { library_sync_ms: 100, ..Timings::instant() };
    let h = Harness::start_with(timings, |state| {
        let dc = state.sites["eu"].datacenter.clone();
        let eu = state.vcenter_of_mut("eu").expect("eu's vCenter");
        let datastore = eu.datastore_in(&dc).expect("a datastore").id.clone();
        eu.add_local_library("golden-images", &datastore, false, golden::lab::now_ms()).expect("library");
    })
    .await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    let steps = copy_steps(&plan, "eu", "2026.10");
    assert_eq!(steps.len(), 2, "{:?}", ids(&plan));
    for step in &steps {
        let outcome = run_step(&h.ctx, step, &progress).await.expect("step runs");
        assert!(matches!(outcome, Outcome::Done(_)), "{}: {outcome:?}", step.id);
    }

    // The copy at eu is an item of eu's local library with the source's files, byte for byte,
    // each pulled by eu's vCenter.
    let state = h.lab_state();
    let hq = &state.vcenter_of("hq").expect("hq's vCenter").content;
    let eu = &state.vcenter_of("eu").expect("eu's vCenter").content;
    let source = hq.items.values().find(|i| i.name == "win11-ent-2026.10").expect("source item");
    let copy = eu.items.values().find(|i| i.name == "win11-ent-2026.10").expect("pulled item");
    assert_eq!(eu.libraries.len(), 1, "no subscribed library was added");
    assert_eq!(copy.library_id, *eu.libraries.keys().next().expect("library"));
    let files = |i: &golden::lab::vcenter::content::Item| -> Vec<(String, Vec<u8>)> {
        i.files.iter().map(|(n, f)| (n.clone(), f.bytes.clone())).collect()
    };
    assert!(!source.files.is_empty());
    assert_eq!(files(copy), files(source));
    assert_eq!(copy.description, source.description, "the copy carries golden's metadata");
    let notes = progress.notes_of("replicate/eu/win11-ent/2026.10");
    let pulls = notes.iter().filter(|n| n.starts_with("waiting for vcenter to pull")).count();
    assert_eq!(pulls, source.files.len(), "{notes:?}");

    let again = run_step(&h.ctx, steps[1], &progress).await.expect("re-run");
    assert!(matches!(again, Outcome::AlreadyDone(_)), "{again:?}");
    assert_eq!(h.duplicates(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_leaves_what_golden_does_not_own() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let (legacy, packer) = {
        let state = h.lab_state();
        let hq = state.vcenter_of("hq").expect("hq's vCenter");
        let legacy = hq.vms.values().find(|v| v.name == "legacy-win11-ent").expect("legacy vm").id.clone();
        let packer = hq.content.items.values().find(|i| i.name == "win11-2026.11").expect("item").id.clone();
        (legacy, packer)
    };
    let step = Step {
        id: StepId::new("retire/hq/win11-ent/2026.11"),
        site: SiteName::new("hq"),
        action: Action::Retire {
            image: ImageName::new("win11-ent"),
            version: VersionName::new("2026.11"),
            items: vec![ItemId::new(packer.clone()), ItemId::new("no-such-item")],
            vms: vec![Moref::new(legacy.clone()), Moref::new("vm-99999")],
        },
        reason: "test".into(),
        depends_on: Vec::new(),
    };
    let outcome = run_step(&h.ctx, &step, &progress).await.expect("retire runs");
    assert!(matches!(outcome, Outcome::AlreadyDone(_)), "{outcome:?}");
    let state = h.lab_state();
    assert!(
        state.vcenter_of("hq").expect("hq's vCenter").vms.contains_key(&legacy),
        "the legacy VM is not golden's"
    );
    assert!(
        state.vcenter_of("hq").expect("hq's vCenter").content.items.contains_key(&packer),
        "an unadopted item is not golden's"
    );
    let notes = progress.notes_of("retire/hq/win11-ent/2026.11");
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("already gone")));
}

/// Retiring a version a subscriber holds too: the item is deleted at the publisher and the
/// subscribers are synced, so that it goes everywhere (vCenter refuses to delete a subscribed
/// item); a base VM someone powered on is shut down, then deleted (vCenter refuses to delete a
/// running VM). Nothing fails and the next plan is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retirement_removes_the_item_everywhere_and_stops_a_running_base_vm() {
    let mut h = Harness::start(Timings::instant()).await;
    h.ctx.desired.settings.keep_previous = 0;
    let progress = Recorder::default();
    converge(&h, &h.plan(&PlanOptions::default()).await, &PlanOptions::default(), &progress).await;
    let old = |v: &golden::lab::vcenter::content::Item| v.name.contains("2026.08-hf1");
    let holding = |state: &LabState| -> Vec<String> {
        let mut at: Vec<String> = state
            .vcenters
            .values()
            .filter(|vc| vc.sim.content.items.values().any(old))
            .map(|vc| vc.name.clone())
            .collect();
        at.sort();
        at
    };
    assert_eq!(holding(&h.lab_state()).len(), 2, "the publisher and the subscriber hold the version");
    // Someone powers eu's base VM of the version on.
    {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let eu = state.vcenter_of_mut("eu").expect("eu's vCenter");
        let vm =
            eu.vms.values_mut().find(|v| v.name == "golden-ws2022-rds-2026.08-hf1").expect("the base VM");
        vm.powered_on = true;
    }

    let image = h.ctx.desired.images.get_mut(&ImageName::new("ws2022-rds")).expect("image");
    image.markers.insert(MarkerName::new("legacy"), VersionName::new("2026.10"));
    let plan = h.plan(&PlanOptions::default()).await;
    assert_eq!(
        kinds(&plan).get("retire"),
        Some(&2),
        "the base VM at eu and the item at hq: {:?}",
        ids(&plan)
    );
    converge(&h, &plan, &PlanOptions::default(), &progress).await;

    assert_eq!(
        holding(&h.lab_state()),
        Vec::<String>::new(),
        "the item is gone at the publisher and the subscriber"
    );
    let state = h.lab_state();
    let eu = state.vcenter_of("eu").expect("eu's vCenter");
    assert!(!eu.vms.values().any(|v| v.name == "golden-ws2022-rds-2026.08-hf1"), "the base VM is deleted");
    let at_eu = progress.notes_of("retire/eu/ws2022-rds/2026.08-hf1");
    assert!(at_eu.iter().any(|n| n.contains("is running: shutting it down")), "{at_eu:?}");
    let at_hq = progress.notes_of("retire/hq/ws2022-rds/2026.08-hf1");
    assert!(at_hq.iter().any(|n| n.contains("syncing the subscribed library")), "{at_hq:?}");
}

/// A run killed while vCenter captures: the export goes on in vCenter, and the next run finds
/// the item it began, waits for its files and captures nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_cut_short_is_finished_by_the_next_run_not_repeated() {
    let h = Harness::start(Timings { capture_ms: 600, ..Timings::instant() }).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    let publish = step(&plan, "publish/win11-ent/2026.10");
    h.lab.reset_counters();
    let cut = tokio::time::timeout(Duration::from_millis(150), run_step(&h.ctx, publish, &progress)).await;
    assert!(cut.is_err(), "the run is killed mid-capture");
    let outcome = run_step(&h.ctx, publish, &progress).await.expect("the next run publishes");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let notes = progress.notes_of("publish/win11-ent/2026.10");
    assert!(notes.iter().any(|n| n.contains("still being captured")), "{notes:?}");
    let routes = h.lab.requests_by_route("hq", Product::Vcenter);
    assert_eq!(
        routes.get("POST /rest/com/vmware/vcenter/ovf/library-item"),
        Some(&1),
        "one capture: {routes:?}"
    );
    let state = h.lab_state();
    let items: Vec<_> = state
        .vcenter_of("hq")
        .expect("hq's vCenter")
        .content
        .items
        .values()
        .filter(|i| i.name.ends_with("2026.10") && i.name.starts_with("win11-ent"))
        .collect();
    assert_eq!(items.len(), 1, "one item: {items:?}");
    assert!(!items[0].files.is_empty(), "with its files");
    let hq = state.vcenter_of("hq").expect("hq's vCenter");
    assert!(
        !hq.vms.values().any(|v| v.name.starts_with("golden-publish-")),
        "the temporary VM is cleaned up"
    );
}

/// A version built as a VM template (Packer's default) deploys at every site: golden
/// publishes it as an OVF copy (libraries replicate no VM templates between vCenters) through a
/// temporary VM it deletes after, and every site deploys the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_template_built_by_packer_deploys_at_every_site() {
    let mut h = Harness::start_with(Timings::instant(), |state| {
        let dc = state.sites["hq"].datacenter.clone();
        let vc = state.vcenter_of_mut("hq").expect("hq's vCenter");
        let template = vc.add_vm("packer-win11-2026.11", &dc, None).expect("a template VM");
        if let Some(vm) = vc.vms.get_mut(&template) {
            vm.template = true;
            vm.powered_on = false;
        }
        let item =
            vc.content.items.values_mut().find(|i| i.name == "win11-2026.11").expect("the Packer item");
        item.kind = "vm-template".into();
        item.files.clear();
        item.template_vm = Some(template);
    })
    .await;
    // Every win11-ent pool, at every site, on the template's version.
    let image = h.ctx.desired.images.get_mut(&ImageName::new("win11-ent")).expect("image");
    for version in image.markers.values_mut() {
        *version = VersionName::new("2026.11");
    }
    let progress = Recorder::default();
    converge(&h, &h.plan(&PlanOptions::default()).await, &PlanOptions::default(), &progress).await;

    let notes = progress.notes_of("publish/win11-ent/2026.11");
    assert!(notes.iter().any(|n| n.contains("is a VM template")), "{notes:?}");
    let live = h.live().await;
    let hq = live.vcenter_of(&SiteName::new("hq")).expect("hq's vCenter");
    let template = hq.items.values().find(|i| i.name == "win11-2026.11").expect("the template item");
    assert_eq!(
        (template.kind.as_str(), &template.meta),
        ("vm-template", &None),
        "the template stays as it is"
    );
    let copy = hq
        .items
        .values()
        .find(|i| i.meta.as_ref().is_some_and(|m| m.version.as_str() == "2026.11"))
        .expect("the published copy");
    assert_eq!(copy.kind, "ovf");
    // Every pool bound to 2026.11 runs a base VM of it at its own site.
    let mut sites = BTreeSet::new();
    for pool in h.ctx.desired.pools.values() {
        let target = &h.ctx.desired.images[&pool.image].markers[&pool.marker];
        if target.as_str() != "2026.11" {
            continue;
        }
        let site = &live.sites[&pool.site];
        let current = site.pools[&pool.horizon_name].current.as_ref().expect("an image");
        let meta = site.vms[&current.vm].meta.as_ref().expect("golden's base VM");
        assert_eq!(meta.version.as_str(), "2026.11", "pool {}", pool.name);
        sites.insert(pool.site.clone());
    }
    assert_eq!(sites.len(), h.ctx.desired.sites.len(), "2026.11 runs at every site: {sites:?}");
    let state = h.lab_state();
    assert!(
        state.vcenters.values().all(|vc| !vc.sim.vms.values().any(|v| v.name.starts_with("golden-publish-"))),
        "no temporary VM is left"
    );
}

/// A version names a VM and its snapshot: what is published is what the snapshot holds, not
/// what the build VM did after it (the snapshot is cloned to a temporary stopped VM, which is
/// captured and deleted); the build VM is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_captures_the_named_snapshot_not_later_state() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let sealed = {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let hq = state.vcenter_of_mut("hq").expect("hq's vCenter");
        let build = hq.vms.values_mut().find(|v| v.name == "win11-build").expect("the build VM");
        let sealed =
            build.snapshots.iter().find(|s| s.name == "sealed-2026-10").expect("the snapshot").disk.clone();
        build.disk = "win11-build after sealing: a hotfix nobody tested".into();
        sealed
    };
    let plan = h.plan(&PlanOptions::default()).await;
    let outcome =
        run_step(&h.ctx, step(&plan, "publish/win11-ent/2026.10"), &progress).await.expect("publishes");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");

    let state = h.lab_state();
    let hq = state.vcenter_of("hq").expect("hq's vCenter");
    let item = hq.content.items.values().find(|i| i.name == "win11-ent-2026.10").expect("the published item");
    let disk = String::from_utf8_lossy(&item.files["disk-0.vmdk"].bytes).into_owned();
    assert_eq!(disk, sealed, "the item holds the snapshot");
    assert!(!hq.vms.values().any(|v| v.name.starts_with("golden-publish-")), "the temporary VM is deleted");
    let build = hq.vms.values().find(|v| v.name == "win11-build").expect("the build VM");
    assert!(build.powered_on, "the build VM is left running");
    assert_eq!(build.disk, "win11-build after sealing: a hotfix nobody tested");
}

/// The step of `plan` with this id.
fn step<'a>(plan: &'a Plan, id: &str) -> &'a Step {
    plan.steps.iter().find(|s| s.id.as_str() == id).unwrap_or_else(|| panic!("no step {id}: {:?}", ids(plan)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_already_underway_is_followed_not_repeated() {
    let timings = Timings { push_publish_ms: 500, push_apply_ms: 200, ..Timings::instant() };
    let h = Harness::start(timings).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    for id in ["publish/win11-ent/2026.11", "deploy/hq/win11-ent/2026.11"] {
        run_step(&h.ctx, step(&plan, id), &progress).await.expect("step runs");
    }
    // An admin (or an earlier run cut short) already pushed the version.
    let live = h.live().await;
    let hq = &live.sites[&SiteName::new("hq")];
    let base = hq
        .vms
        .values()
        .find(|v| v.meta.as_ref().is_some_and(|m| m.version.as_str() == "2026.11"))
        .expect("base VM");
    let image =
        ImageRef { vm: base.id.clone(), snapshot: base.snapshots.last().expect("snapshot").id.clone() };
    let pool = &hq.pools["IT-Pilot-IC"];
    let horizon = &h.ctx.targets[&SiteName::new("hq")].clients.horizon;
    // Measured from before the push is sent: the push takes 700 ms, whatever the load.
    let sent = Instant::now();
    horizon.push_image(&pool.id, &PushSpec::now(image.clone(), Logoff::Force)).await.expect("push");
    let outcome = run_step(&h.ctx, step(&plan, "push/hq/hq-it"), &progress).await.expect("push step");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    // The lab keeps time in whole milliseconds: allow it that much early, and more.
    assert!(sent.elapsed() >= Duration::from_millis(650), "did not wait for the push: {:?}", sent.elapsed());
    let notes = progress.notes_of("push/hq/hq-it");
    assert!(notes.iter().any(|n| n.contains("already moving")), "{notes:?}");
    let pushes: u64 = h
        .lab
        .requests_by_route("hq", Product::Horizon)
        .iter()
        .filter(|(route, _)| route.contains("schedule-push-image"))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(pushes, 1, "golden pushed again");
    let percents: Vec<u8> = progress
        .percents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(s, _)| s.as_str() == "push/hq/hq-it")
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(percents.last(), Some(&100), "{percents:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "progress goes forward: {percents:?}");
    let after = h.live().await;
    assert_eq!(after.sites[&SiteName::new("hq")].pools["IT-Pilot-IC"].current, Some(image));
}

/// Schedule-push-image requests the lab's Horizon at `site` received.
fn pushes_sent(h: &Harness, site: &str) -> u64 {
    h.lab
        .requests_by_route(site, Product::Horizon)
        .iter()
        .filter(|(route, _)| route.contains("schedule-push-image"))
        .map(|(_, n)| *n)
        .sum()
}

/// Horizon takes one operation at a time: a push finds another one under way on the pool
/// (an admin's), waits for it to end, then sends golden's own snapshot of the version, even
/// though a later snapshot was taken of the base VM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_waits_for_another_operation_then_sends_the_versions_own_snapshot() {
    let timings = Timings { push_publish_ms: 300, push_apply_ms: 200, ..Timings::instant() };
    let h = Harness::start(timings).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    for id in ["publish/win11-ent/2026.11", "deploy/hq/win11-ent/2026.11"] {
        run_step(&h.ctx, step(&plan, id), &progress).await.expect("step runs");
    }
    let target = &h.ctx.targets[&SiteName::new("hq")];
    let live = h.live().await;
    let hq = &live.sites[&SiteName::new("hq")];
    let base = hq
        .vms
        .values()
        .find(|v| v.meta.as_ref().is_some_and(|m| m.version.as_str() == "2026.11"))
        .expect("base VM");
    let golden_snapshot = base.snapshots.last().expect("golden's snapshot").clone();
    assert_eq!(golden_snapshot.name, "golden-2026.11");
    // Someone snapshots the base VM afterwards (a test, a patch tried out).
    let vc = &target.clients.vcenter;
    vc.create_snapshot(&base.id, "admin-try", "not golden's").await.expect("a later snapshot");
    // And an admin pushes another image to the pool just before golden does.
    let build = hq.vms.values().find(|v| v.name == "win11-build").expect("build VM");
    let other = ImageRef { vm: build.id.clone(), snapshot: build.snapshots[0].id.clone() };
    let pool = &hq.pools["IT-Pilot-IC"];
    let sent = Instant::now();
    target.clients.horizon.push_image(&pool.id, &PushSpec::now(other, Logoff::Force)).await.expect("push");

    let outcome = run_step(&h.ctx, step(&plan, "push/hq/hq-it"), &progress).await.expect("push step");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let notes = progress.notes_of("push/hq/hq-it");
    assert!(notes.iter().any(|n| n.contains("another operation under way")), "{notes:?}");
    // The admin's push took 500 ms before golden's could be sent (less the lab's rounding).
    assert!(sent.elapsed() >= Duration::from_millis(480), "did not wait: {:?}", sent.elapsed());
    assert_eq!(pushes_sent(&h, "hq"), 2, "the admin's push and golden's, each once");
    let after = h.live().await;
    let wanted = ImageRef { vm: base.id.clone(), snapshot: golden_snapshot.id.clone() };
    assert_eq!(after.sites[&SiteName::new("hq")].pools["IT-Pilot-IC"].current, Some(wanted));
    // The plan agrees: the pool runs the version.
    let again = h.plan(&PlanOptions::default()).await;
    assert!(again.steps.iter().all(|s| s.id.as_str() != "push/hq/hq-it"), "{:?}", ids(&again));
}

/// What Horizon would refuse or never finish is a clear step failure before any push is
/// sent: a pool with provisioning off, a snapshot Horizon says it cannot use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_horizon_cannot_take_fails_before_it_is_sent_naming_the_fix() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    for id in ["publish/win11-ent/2026.11", "deploy/hq/win11-ent/2026.11"] {
        run_step(&h.ctx, step(&plan, id), &progress).await.expect("step runs");
    }
    let pool_id = {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let hz = &mut state.sites.get_mut("hq").expect("hq").horizon;
        let id = hz.pool_id("IT-Pilot-IC").expect("pool");
        hz.pools.get_mut(&id).expect("pool").provisioning = false;
        id
    };
    let push = step(&plan, "push/hq/hq-it");
    let err = run_step(&h.ctx, push, &progress).await.expect_err("provisioning is off");
    assert!(
        err.to_string().contains("provisioning is disabled") && err.to_string().contains("enable"),
        "{err}"
    );

    // Provisioning back on, but golden's snapshot was taken with the VM's memory.
    {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let hq = state.sites.get_mut("hq").expect("hq");
        hq.horizon.pools.get_mut(&pool_id).expect("pool").provisioning = true;
        let vc = state.vcenter_of_mut("hq").expect("hq's vCenter");
        let snapshot = vc
            .vms
            .values_mut()
            .flat_map(|v| v.snapshots.iter_mut())
            .find(|s| s.name == "golden-2026.11")
            .expect("golden's snapshot");
        snapshot.powered_on = true;
    }
    let err = run_step(&h.ctx, push, &progress).await.expect_err("the snapshot is unusable");
    assert!(err.to_string().contains("POWERED_ON"), "{err}");
    assert_eq!(pushes_sent(&h, "hq"), 0, "nothing was sent to horizon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_adopts_a_tagged_vm_without_snapshot() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    run_step(&h.ctx, step(&plan, "publish/win11-ent/2026.10"), &progress).await.expect("publish");
    // A run that stopped between the deployment and the snapshot left this behind.
    let target = &h.ctx.targets[&SiteName::new("hq")];
    let vc = &target.clients.vcenter;
    let library = vc.find_library("golden-images").await.expect("find").expect("library");
    let item = vc.find_item(&library.id, "win11-ent-2026.10").await.expect("find").expect("item");
    let meta = item.meta.clone().expect("golden's item");
    let vm =
        vc.deploy_ovf(&item.id, &target.placement.deploy("golden-win11-ent-2026.10")).await.expect("deploy");
    vc.tag_vm(&vm, &meta).await.expect("tag");

    let outcome =
        run_step(&h.ctx, step(&plan, "deploy/hq/win11-ent/2026.10"), &progress).await.expect("deploy");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let notes = progress.notes_of("deploy/hq/win11-ent/2026.10");
    assert!(notes.iter().any(|n| n.starts_with("adopting base vm `golden-win11-ent-2026.10`")), "{notes:?}");
    let state = h.lab_state();
    let named: Vec<_> = state
        .vcenter_of("hq")
        .expect("hq's vCenter")
        .vms
        .values()
        .filter(|v| v.name == "golden-win11-ent-2026.10")
        .collect();
    assert_eq!(named.len(), 1, "deployed twice");
    assert_eq!(named[0].id, vm.as_str());
    let snaps: Vec<&str> = named[0].snapshots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(snaps, ["golden-2026.10"]);
}

/// A run stopped between the deployment and the tag leaves golden's VM with the annotation
/// only: the next deploy adopts it, as its annotation names golden's item of the version and
/// it has no snapshot. The same VM naming another item (a lookalike) is refused, not adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_adopts_its_own_untagged_vm_and_refuses_a_lookalike() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    run_step(&h.ctx, step(&plan, "publish/win11-ent/2026.10"), &progress).await.expect("publish");
    let target = &h.ctx.targets[&SiteName::new("hq")];
    let vc = &target.clients.vcenter;
    let library = vc.find_library("golden-images").await.expect("find").expect("library");
    let item = vc.find_item(&library.id, "win11-ent-2026.10").await.expect("find").expect("item");
    let meta = item.meta.clone().expect("golden's item");
    let spec_from = |from: &golden::live::ItemRef| {
        let mut spec = target.placement.deploy("golden-win11-ent-2026.10");
        spec.annotation = Some(golden::vcenter::deployment_annotation(&meta, from));
        spec
    };
    let deploy = step(&plan, "deploy/hq/win11-ent/2026.10");

    // A lookalike: the name and the version, but another item.
    let other =
        golden::live::ItemRef { id: ItemId::new("not-golden's"), name: "x".into(), kind: "ovf".into() };
    let lookalike = vc.deploy_ovf(&item.id, &spec_from(&other)).await.expect("deploy");
    let err = run_step(&h.ctx, deploy, &progress).await.expect_err("not adopted");
    assert!(err.to_string().contains("exists but golden does not own it"), "{err}");
    vc.delete_vm(&lookalike).await.expect("delete the lookalike");

    let from =
        golden::live::ItemRef { id: item.id.clone(), name: item.name.clone(), kind: item.kind.clone() };
    let vm = vc.deploy_ovf(&item.id, &spec_from(&from)).await.expect("deploy");
    let outcome = run_step(&h.ctx, deploy, &progress).await.expect("deploy");
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    let notes = progress.notes_of("deploy/hq/win11-ent/2026.10");
    assert!(notes.iter().any(|n| n.starts_with("adopting vm `golden-win11-ent-2026.10`")), "{notes:?}");
    let inventory = vc.inventory().await.expect("inventory");
    assert_eq!(inventory.vms[&vm].meta, Some(meta.clone()), "tagged now");
    let named = inventory.vms.values().filter(|v| v.name == "golden-win11-ent-2026.10").count();
    assert_eq!(named, 1, "deployed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_never_finishes_times_out_naming_what_it_waited_for() {
    let timings = Timings { library_sync_ms: 60_000, ..Timings::instant() };
    let mut h = Harness::start(timings).await;
    h.ctx.timeouts.replication = Duration::from_millis(200);
    let progress = Recorder::default();
    let plan = h.plan(&PlanOptions::default()).await;
    let steps = copy_steps(&plan, "eu", "2026.10");
    run_step(&h.ctx, steps[0], &progress).await.expect("publish");
    let error = run_step(&h.ctx, steps[1], &progress).await.expect_err("times out");
    assert!(matches!(error, StepError::Timeout { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("win11-ent@2026.10") && text.contains("replicate/eu/win11-ent/2026.10"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drifted_pool_is_pushed_back_and_converges() {
    let h = Harness::start(Timings::instant()).await;
    let progress = Recorder::default();
    converge(&h, &h.plan(&PlanOptions::default()).await, &PlanOptions::default(), &progress).await;
    // Someone points Office-IC at eu back to its old image by hand.
    {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let legacy = state
            .vcenter_of("eu")
            .expect("eu's vCenter")
            .vms
            .values()
            .find(|v| v.name == "legacy-win11-ent")
            .expect("legacy VM");
        let (vm, snap) = (legacy.id.clone(), legacy.snapshots[0].id.clone());
        let eu = state.sites.get_mut("eu").expect("eu");
        let id = eu.horizon.pool_id("Office-IC").expect("pool");
        let pool = eu.horizon.pools.get_mut(&id).expect("pool");
        pool.parent_vm_id = vm;
        pool.base_snapshot_id = snap;
    }
    let plan = h.plan(&PlanOptions::default()).await;
    assert_eq!(ids(&plan), ["push/eu/eu-office"]);
    converge(&h, &plan, &PlanOptions::default(), &progress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_rollback_window_the_old_copy_is_retired_and_converges() {
    let mut h = Harness::start(Timings::instant()).await;
    h.ctx.desired.settings.keep_previous = 0;
    let progress = Recorder::default();
    converge(&h, &h.plan(&PlanOptions::default()).await, &PlanOptions::default(), &progress).await;
    let image = h.ctx.desired.images.get_mut(&golden::ids::ImageName::new("ws2022-rds")).expect("image");
    image.markers.insert(golden::ids::MarkerName::new("legacy"), golden::ids::VersionName::new("2026.10"));
    let plan = h.plan(&PlanOptions::default()).await;
    let kinds = kinds(&plan);
    assert_eq!(kinds.get("retire"), Some(&2), "the base VM at eu and the item at hq: {:?}", ids(&plan));
    converge(&h, &plan, &PlanOptions::default(), &progress).await;
    let state = h.lab_state();
    assert!(
        !state
            .vcenter_of("eu")
            .expect("eu's vCenter")
            .vms
            .values()
            .any(|v| v.name == "golden-ws2022-rds-2026.08-hf1"),
        "retired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_in_wave_one_stops_wave_two_and_the_next_run_finishes() {
    use golden::apply::executor::{Events, execute};
    let h = Harness::start(Timings::instant()).await;
    let plan = h.plan(&PlanOptions::default()).await;
    {
        let shared = h.lab.state();
        let mut state = shared.lock();
        let hq = state.sites.get_mut("hq").expect("hq");
        let id = hq.horizon.pool_id("IT-Pilot-IC").expect("wave-1 pool");
        hq.horizon.fail_next_push(&id, "clone failed: datastore full");
    }
    let events = Events::new(Vec::new());
    let summary = execute(&plan, 8, |step, progress| run_step(&h.ctx, step, progress), &events).await;
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert!(summary.failed[0].1.contains("clone failed: datastore full"), "{summary:?}");
    let later_waves: Vec<&str> = summary.skipped.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(later_waves.len(), 6, "every push of waves 2 and 3 is skipped: {later_waves:?}");
    assert!(later_waves.iter().all(|s| s.starts_with("push/")));
    // The state is consistent: pools of later waves still run their old image, and the next
    // run plans only the pushes that did not happen.
    let again = h.plan(&PlanOptions::default()).await;
    assert!(again.steps.iter().all(|s| matches!(s.action, Action::Push { .. })), "{:?}", ids(&again));
    assert_eq!(again.steps.len(), 7);
    let summary = execute(&again, 8, |step, progress| run_step(&h.ctx, step, progress), &events).await;
    assert!(summary.succeeded(), "{summary:?}");
    assert!(!h.plan(&PlanOptions::default()).await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_site_gets_copies_and_pushes_without_a_new_publish_and_converges() {
    let mut h = Harness::start(Timings::instant()).await;
    let full = h.ctx.desired.clone();
    let us = SiteName::new("us");
    // Before: the repository has no site `us` (nor its pools).
    h.ctx.desired.sites.remove(&us);
    h.ctx.desired.pools.retain(|_, p| p.site != us);
    let progress = Recorder::default();
    converge(&h, &h.plan(&PlanOptions::default()).await, &PlanOptions::default(), &progress).await;
    // The pull request adds it.
    h.ctx.desired = full;
    let plan = h.plan(&PlanOptions::default()).await;
    assert!(plan.steps.iter().all(|s| s.site == us), "only the new site has work: {:?}", ids(&plan));
    assert!(!plan.steps.iter().any(|s| matches!(s.action, Action::Publish { .. })));
    converge(&h, &plan, &PlanOptions::default(), &progress).await;
}
