//! Safe rollouts on the lab, Horizon's side: what the tests of scheduled pushes
//! (`scheduled.rs`) and canaries (`canary.rs`) share, and the blast radius a plan shows for
//! each push (each pool's machines and sessions, read from Horizon once per site).
//!
//! Plans are made by the planner from the lab's live state; the start time and canary size of
//! a push are then set on its step by hand, as the planner would from the pool's policy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use golden::apply::executor::{Event, EventSink, Events, Summary, execute};
use golden::apply::steps::run_step;
use golden::apply::{Context, Target, Timeouts};
use golden::connect::RetryPolicy;
use golden::desired::{DesiredState, Location, load};
use golden::gather::{SiteClients, connect_all, read_all};
use golden::ids::{HorizonName, SiteName};
use golden::lab::horizon::HorizonSim;
use golden::lab::server::FaultRule;
use golden::lab::{CONTROL_TOKEN_HEADER, Lab, LabOptions, LabState, Product, Timings};
use golden::live::{LiveState, Occupancy};
use golden::load::{Observed, plan_read};
use golden::plan::{Action, Plan, PlanOptions, StepId};

use super::common::repo_root;

/// A lab seeded from the quickstart, the apply context on it, and separate clients to read
/// the live state with.
pub(crate) struct Harness {
    pub lab: Lab,
    pub ctx: Context,
    readers: BTreeMap<SiteName, SiteClients>,
}

impl Harness {
    /// Starts a lab seeded from the quickstart (every push instant), changed by `prepare`.
    pub(crate) async fn start(prepare: impl FnOnce(&mut LabState)) -> Harness {
        let desired: DesiredState =
            load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") })
                .expect("quickstart loads");
        let mut state = golden::lab::seed::from_desired(&desired, Timings::instant());
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
        let inventories = read_all(&desired, &clients).await.expect("live state").inventories;
        let mut targets = BTreeMap::new();
        for (name, clients) in clients {
            let site = desired.sites[&name].clone();
            let placement = inventories[&name]
                .placement(&site.datacenter, &site.compute, &site.folder, &site.datastore)
                .expect("placement resolves");
            targets.insert(name, Target::new(site, clients, placement));
        }
        let short = Duration::from_secs(20);
        let timeouts = Timeouts {
            task: short,
            replication: short,
            push: short,
            poll: Duration::from_millis(20),
            guest_shutdown: short,
        };
        let ctx = Context { desired, targets, timeouts, libraries: Default::default() };
        Harness { lab, ctx, readers }
    }

    pub(crate) async fn live(&self) -> LiveState {
        read_all(&self.ctx.desired, &self.readers).await.expect("live state").live
    }

    /// The plan `golden plan` makes now. The quickstart's promotion rule (prod after pilot)
    /// cannot be shown to hold without git history; these tests are about Horizon's side, so
    /// they override it.
    pub(crate) async fn plan(&self) -> Plan {
        self.observe().await.plan
    }

    /// Reads, plans and reads the blast radius, as `golden plan` does.
    pub(crate) async fn observe(&self) -> Observed {
        let read = read_all(&self.ctx.desired, &self.readers).await.expect("live state");
        let observed = plan_read(&self.ctx.desired, self.readers.clone(), read, &options()).expect("a plan");
        observed.read_blast().await
    }

    /// Runs `plan` through the executor, as `golden apply` does.
    pub(crate) async fn execute(&self, plan: &Plan) -> Summary {
        self.execute_logged(plan).await.0
    }

    /// [`Self::execute`], with every event of the run.
    pub(crate) async fn execute_logged(&self, plan: &Plan) -> (Summary, Vec<Event>) {
        let log = Log::default();
        let events = Events::new(vec![Box::new(log.clone())]);
        let summary = execute(plan, 8, |step, progress| run_step(&self.ctx, step, progress), &events).await;
        let events = log.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (summary, events)
    }

    /// Runs `f` on a site's simulated Horizon, in-process.
    pub(crate) fn sim<R>(&self, site: &str, f: impl FnOnce(&mut HorizonSim) -> R) -> R {
        let state = self.lab.state();
        let mut state = state.lock();
        f(&mut state.sites.get_mut(site).expect("site").horizon)
    }

    /// `POST` to a control route of a site's Horizon (`/__lab/horizon/...`); wants 204.
    pub(crate) async fn control(&self, site: &str, path: &str, body: serde_json::Value) {
        let url = format!("{}{path}", self.lab.url(site, Product::Horizon).expect("horizon endpoint"));
        let answer = reqwest::Client::new()
            .post(url)
            .header(CONTROL_TOKEN_HEADER, self.lab.control_token())
            .json(&body)
            .send()
            .await
            .expect("control call");
        assert_eq!(answer.status(), 204, "{path}: {:?}", answer.text().await);
    }

    /// The id of the pool or farm `name` at `site`.
    pub(crate) fn pool_id(&self, site: &str, name: &str) -> String {
        self.sim(site, |h| h.pool_id(name)).unwrap_or_else(|| panic!("no pool {name} at {site}"))
    }

    /// The image (VM, snapshot) the pool runs at `site`, and the images its machines run.
    pub(crate) fn images(&self, site: &str, name: &str) -> ((String, String), Vec<(String, String)>) {
        let id = self.pool_id(site, name);
        self.sim(site, |h| {
            let pool = &h.pools[&id];
            let machines =
                pool.machines.iter().map(|m| (m.base_vm_id.clone(), m.base_snapshot_id.clone())).collect();
            ((pool.parent_vm_id.clone(), pool.base_snapshot_id.clone()), machines)
        })
    }

    /// Requests of `route` (`METHOD /path`, where `{id}` stands for any one segment) the
    /// Horizon of `site` got.
    pub(crate) fn route(&self, site: &str, route: &str) -> u64 {
        let matches = |seen: &str| {
            let (want, got): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), seen.split('/').collect());
            want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| *w == "{id}" || w == g)
        };
        self.lab
            .requests_by_route(site, Product::Horizon)
            .iter()
            .filter(|(r, _)| matches(r))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The planner's options: its clock at now, the promotion rules overridden.
pub(crate) fn options() -> PlanOptions {
    PlanOptions {
        now: jiff::Timestamp::now(),
        override_policy: Some("tests of Horizon's side of rollouts".into()),
        ..PlanOptions::default()
    }
}

/// Records the events of a run.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Event>>>);

impl EventSink for Log {
    fn emit(&self, event: &Event) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
    }
}

/// The notes a step wrote during a run, in order.
pub(crate) fn notes_of(events: &[Event], id: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Note { step, message } if step.as_str() == id => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// The step with `id`.
pub(crate) fn step_mut<'a>(plan: &'a mut Plan, id: &str) -> &'a mut Action {
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.to_string()).collect();
    let step = plan.steps.iter_mut().find(|s| s.id.as_str() == id);
    &mut step.unwrap_or_else(|| panic!("no step {id}: {ids:?}")).action
}

/// The push steps of `plan` other than `except`, by id.
pub(crate) fn pushes_but(plan: &Plan, except: &[&str]) -> BTreeSet<StepId> {
    plan.steps
        .iter()
        .filter(|s| matches!(s.action, Action::Push { .. }) && !except.contains(&s.id.as_str()))
        .map(|s| s.id.clone())
        .collect()
}

/// Now, in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    golden::lab::now_ms()
}

/// The machines and sessions the lab's Horizon at `site` has for `name`.
fn lab_occupancy(h: &Harness, site: &str, name: &HorizonName) -> Occupancy {
    let id = h.pool_id(site, name.as_str());
    h.sim(site, |sim| {
        let pool = &sim.pools[&id];
        let sessions = pool.machines.iter().map(|m| m.sessions.len() as u32).sum();
        Occupancy { machines: pool.machines.len() as u32, sessions }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_shows_the_machines_and_sessions_it_touches() {
    let h = Harness::start(|_| {}).await;
    // A pool changed through the lab's control: the plan shows the figures of now.
    let office = h.pool_id("eu", "Office-IC");
    h.control(
        "eu",
        &format!("/__lab/horizon/pools/{office}/occupancy"),
        serde_json::json!({"machines": 40, "sessions": 17}),
    )
    .await;
    let plan = h.plan().await;
    let mut checked = 0;
    for step in &plan.steps {
        let Action::Push { horizon_name, blast, .. } = &step.action else { continue };
        let expected = lab_occupancy(&h, step.site.as_str(), horizon_name);
        assert_eq!(blast.as_ref(), Some(&expected), "{}", step.id);
        assert!(expected.machines > 0, "{}: the seed gives every pool machines", step.id);
        checked += 1;
    }
    assert_eq!(checked, 8, "every pool of the quickstart is pushed");
    let eu_office = plan.steps.iter().find(|s| s.id.as_str() == "push/eu/eu-office").expect("eu-office push");
    let Action::Push { blast, .. } = &eu_office.action else { unreachable!("a push") };
    assert_eq!(blast, &Some(Occupancy { machines: 40, sessions: 17 }));
    // Read once per site: three lists, whatever the number of pools.
    assert_listed_once(&h, "read once, after planning");
}

/// Asserts that each site's machines, RDS servers and sessions were listed once.
fn assert_listed_once(h: &Harness, why: &str) {
    for site in ["eu", "hq", "us"] {
        for route in [
            "GET /rest/inventory/v1/machines",
            "GET /rest/inventory/v1/rds-servers",
            "GET /rest/inventory/v1/sessions",
        ] {
            assert_eq!(h.route(site, route), 1, "{site} {route}: {why}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_cannot_list_machines_plans_without_a_blast_radius() {
    // us runs Horizon 8.0 (machines and sessions without paging); eu refuses the session list
    // to golden's account (no MACHINE_VIEW).
    let h = Harness::start(|state| {
        state.sites.get_mut("us").expect("us").horizon.version = "8.0.0".into();
    })
    .await;
    let forbidden = FaultRule {
        method: "GET".into(),
        path_prefix: "/rest/inventory/v1/sessions".into(),
        status: 403,
        body: r#"{"status":"FORBIDDEN","timestamp":0,"errors":[{"error_key":"forbidden","error_message":"Access to the resource is forbidden"}]}"#.into(),
        ..FaultRule::default()
    };
    h.lab.add_fault("eu", Product::Horizon, forbidden);
    let plan = h.plan().await;
    for step in &plan.steps {
        let Action::Push { blast, .. } = &step.action else { continue };
        assert_eq!(blast.is_some(), step.site.as_str() == "hq", "{}: {blast:?}", step.id);
    }
    let unknown = |site: &str| plan.blast_radius.sites[&SiteName::new(site)].unknown;
    assert_eq!((unknown("us"), unknown("eu"), unknown("hq")), (2, 3, 0), "{:?}", plan.blast_radius);
    assert!(plan.warnings.is_empty(), "a server that cannot say is no failure: {:?}", plan.warnings);
    // Its version is known from reading its pools: an 8.0 server is not asked.
    assert_eq!(h.route("us", "GET /rest/inventory/v1/machines"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_session_list_leaves_the_blast_radius_unknown_with_a_warning() {
    let h = Harness::start(|_| {}).await;
    let broken = FaultRule {
        method: "GET".into(),
        path_prefix: "/rest/inventory/v1/sessions".into(),
        status: 500,
        body: r#"{"status":"INTERNAL_SERVER_ERROR","timestamp":0,"errors":[{"error_key":"internal","error_message":"session store unavailable"}]}"#.into(),
        ..FaultRule::default()
    };
    h.lab.add_fault("eu", Product::Horizon, broken);
    let plan = h.plan().await;
    assert_eq!(plan.blast_radius.sites[&SiteName::new("eu")].unknown, 3, "{:?}", plan.blast_radius);
    assert_eq!(plan.blast_radius.sites[&SiteName::new("hq")].unknown, 0, "{:?}", plan.blast_radius);
    let [warning] = plan.warnings.as_slice() else { panic!("one warning: {:?}", plan.warnings) };
    assert!(
        warning.starts_with("site `eu`: the machines and sessions its pushes touch are unknown"),
        "{warning}"
    );
    assert!(warning.contains("session store unavailable"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_pushes_reads_no_machines_or_sessions() {
    let h = Harness::start(|_| {}).await;
    let first = h.plan().await;
    let summary = h.execute(&first).await;
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    let calm = h.plan().await;
    assert!(!calm.has_changes(), "{}", golden::plan::render::text(&calm));
    assert_listed_once(&h, "read for the first plan's pushes only");
}
