//! The load stage: everything a plan and an apply start from.
//!
//! It turns (repository, ref, sites) into the planner's inputs: the desired state (loaded by
//! [`crate::desired`]), the live state of the sites the plan reads and their inventories
//! ([`crate::gather`]), and the options git history gives (the rollback window, earlier
//! bindings); once planned, it reads the blast radius of the plan's pushes. Saved plans are
//! read, and checked for staleness against a fresh plan, here too.
//! Every command that plans (`plan`, `apply`, `status`, `demo`) goes through this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;

use crate::apply::{Context, Target, Timeouts};
use crate::connect::RetryPolicy;
use crate::desired::DesiredState;
use crate::gather::{self, SiteClients};
use crate::ids::{CommitId, SiteName};
use crate::live::LiveState;
use crate::plan::{self, Action, FORMAT_VERSION, Plan, PlanError, PlanOptions, Step};
use crate::vcenter::Inventory;

/// Every reason a plan cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("no plan: {} must be fixed first", crate::plan::render::count(.0.len(), "problem", "problems"))]
pub struct PlanErrors(pub Vec<PlanError>);

/// The `--site` names, checked against the repository; empty means every site.
pub fn sites_in_scope(desired: &DesiredState, names: &[String]) -> anyhow::Result<BTreeSet<SiteName>> {
    let mut scope = BTreeSet::new();
    for name in names {
        let site = SiteName::new(name.clone());
        if !desired.sites.contains_key(&site) {
            let known: Vec<&str> = desired.sites.keys().map(SiteName::as_str).collect();
            anyhow::bail!("--site {name}: no such site in golden.toml (known sites: {})", known.join(", "));
        }
        scope.insert(site);
    }
    Ok(scope)
}

/// The sites a plan of `scope` reads (and sends credentials to): those in scope (every site
/// when it is empty), and the source site their versions come from.
pub fn sites_to_read(desired: &DesiredState, scope: &BTreeSet<SiteName>) -> BTreeSet<SiteName> {
    let mut read: BTreeSet<SiteName> =
        if scope.is_empty() { desired.sites.keys().cloned().collect() } else { scope.clone() };
    read.insert(desired.settings.source_site.clone());
    read
}

/// What planning read and made: the plan, plus the clients and inventories apply goes on with.
#[derive(Debug)]
pub struct Observed {
    pub plan: Plan,
    pub clients: BTreeMap<SiteName, SiteClients>,
    pub live: LiveState,
    pub inventories: BTreeMap<SiteName, Inventory>,
}

impl Observed {
    /// Reads the blast radius of the plan's pushes (their pools' machines and sessions, at
    /// the sites it pushes at) into the plan; a site that cannot say adds a warning. Not done
    /// for a saved plan's freshness check, which does not compare the figures.
    pub async fn read_blast(mut self) -> Observed {
        let sites = self.plan.push_sites();
        let (figures, warnings) = gather::occupancy(&self.live, &self.clients, &sites).await;
        self.plan.set_blast(&figures);
        self.plan.warnings.extend(warnings);
        self
    }
}

/// Reads the live state of the sites the plan needs, plans, and reads its pushes' blast
/// radius: `golden plan`.
pub async fn observe(
    desired: &DesiredState,
    dir: &Path,
    reference: Option<&str>,
    scope: &BTreeSet<SiteName>,
    override_policy: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Observed> {
    let clients = connect(desired, dir, scope, env)?;
    Ok(observe_with(desired, dir, reference, scope, override_policy, clients).await?.read_blast().await)
}

/// Clients for the sites a plan of `scope` reads; nothing is sent yet.
pub fn connect(
    desired: &DesiredState,
    dir: &Path,
    scope: &BTreeSet<SiteName>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<BTreeMap<SiteName, SiteClients>> {
    let read = sites_to_read(desired, scope);
    Ok(gather::connect_all(desired, &read, dir, env, &RetryPolicy::default())?)
}

/// [`observe`] with the clients of [`connect`], without the blast radius: `apply` locks the
/// sites in between, and reads the blast radius only when it has no saved plan.
/// `override_policy` is the reason given with `--override-policy`, if any.
pub async fn observe_with(
    desired: &DesiredState,
    dir: &Path,
    reference: Option<&str>,
    scope: &BTreeSet<SiteName>,
    override_policy: Option<&str>,
    clients: BTreeMap<SiteName, SiteClients>,
) -> anyhow::Result<Observed> {
    let history = HistoryRead::start(dir, reference);
    let read = gather::read_all(desired, &clients).await?;
    let mut options = history.options(desired, scope).await;
    options.override_policy = override_policy.map(str::to_owned);
    plan_read(desired, clients, read, &options)
}

/// Plans from what [`gather::read_all`] read with `clients`.
pub fn plan_read(
    desired: &DesiredState,
    clients: BTreeMap<SiteName, SiteClients>,
    read: gather::Read,
    options: &PlanOptions,
) -> anyhow::Result<Observed> {
    let plan = plan::plan(desired, &read.live, options).map_err(PlanErrors)?;
    Ok(Observed { plan, clients, live: read.live, inventories: read.inventories })
}

/// Git history (the rollback window, earlier bindings) walked on a thread of its own while the
/// sites are read: a long history must not delay the first request.
#[derive(Debug)]
pub struct HistoryRead(tokio::task::JoinHandle<Result<crate::history::History, crate::git::GitError>>);

impl HistoryRead {
    pub fn start(dir: &Path, reference: Option<&str>) -> HistoryRead {
        let (dir, reference) = (dir.to_owned(), reference.unwrap_or("HEAD").to_owned());
        HistoryRead(tokio::task::spawn_blocking(move || crate::history::read(&dir, &reference)))
    }

    /// The planner's options for `scope`, once the history is read.
    pub async fn options(self, desired: &DesiredState, scope: &BTreeSet<SiteName>) -> PlanOptions {
        let history = self.0.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        options_from(desired, history, scope)
    }
}

/// The planner's options for `scope`: the rollback window and the pools' earlier bindings from
/// the git history read, when there is one.
fn options_from(
    desired: &DesiredState,
    history: Result<crate::history::History, crate::git::GitError>,
    scope: &BTreeSet<SiteName>,
) -> PlanOptions {
    match history {
        Ok(history) => PlanOptions {
            sites: scope.clone(),
            marker_history: history.window_for(desired),
            pool_history: Some(history.pool_history_for(desired)),
            marker_stints: Some(history.marker_stints()),
            now: jiff::Timestamp::now(),
            override_policy: None,
        },
        Err(e) => {
            tracing::info!(
                "no git history, so no rollback window beyond current use, and no telling drift from a marker move: {e}"
            );
            PlanOptions { sites: scope.clone(), now: jiff::Timestamp::now(), ..PlanOptions::default() }
        }
    }
}

/// A saved plan no longer matches the repository or the live state (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("the saved plan is stale: {}", .changes.join("; "))]
pub struct StalePlan {
    pub changes: Vec<String>,
}

/// The largest plan file golden reads: a plan of 7,000 steps is about 3 MiB.
const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a plan saved by `golden plan --out`; one of another golden or plan format is refused.
pub fn read_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PLAN_BYTES + 1).read_to_end(&mut bytes))
        .with_context(|| format!("cannot read plan {}", path.display()))?;
    if bytes.len() as u64 > MAX_PLAN_BYTES {
        anyhow::bail!(
            "{} is larger than {} MiB, which no plan golden writes is: plan again",
            path.display(),
            MAX_PLAN_BYTES / (1024 * 1024)
        );
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a plan (not UTF-8 text)", path.display()))?;
    parse_plan(&text, &path.display().to_string())
}

/// Reads a plan from the text of file `name` (named in errors): JSON of this golden's plan
/// format, with a commit id that is one.
pub fn parse_plan(text: &str, name: &str) -> anyhow::Result<Plan> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{name} is not a plan (not JSON)"))?;
    let format = value.get("format_version").and_then(serde_json::Value::as_u64);
    let written_by =
        value.get("golden_version").and_then(serde_json::Value::as_str).unwrap_or("an unknown version");
    if format != Some(u64::from(FORMAT_VERSION)) || written_by != env!("CARGO_PKG_VERSION") {
        anyhow::bail!(
            "{name} was written by golden {written_by} (plan format {}); this is golden {} (plan format {FORMAT_VERSION}): plan again",
            format.map_or("?".to_owned(), |f| f.to_string()),
            env!("CARGO_PKG_VERSION")
        );
    }
    let plan: Plan = serde_json::from_value(value).with_context(|| format!("{name} is not a valid plan"))?;
    if let Some(commit) = &plan.desired_commit {
        let hex = commit.as_str().bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !matches!(commit.as_str().len(), 40 | 64) {
            anyhow::bail!(
                "{name} is not a valid plan: its desired_commit is not a git commit id; plan again"
            );
        }
    }
    Ok(plan)
}

/// Refuses a saved plan that is not the plan golden makes now: its commit or desired-state
/// files changed, a live object it relied on changed, or its steps are not the fresh plan's
/// (an edited plan file runs nothing).
pub fn check_fresh(saved: &Plan, fresh: &Plan, desired: &DesiredState) -> Result<(), StalePlan> {
    let mut changes = Vec::new();
    let now = desired.revision.as_ref().map(|r| r.commit.clone());
    if saved.desired_commit != now {
        changes.push(format!(
            "the desired state is now at commit {}, the plan was made at {}",
            now.as_ref().map_or("(none)", CommitId::short),
            saved.desired_commit.as_ref().map_or("(none)", CommitId::short)
        ));
    } else if saved.desired_digest != desired.digest {
        changes.push("the desired-state files changed since the plan was made".to_owned());
    }
    let current = &fresh.fingerprints;
    for (key, print) in &saved.fingerprints {
        match current.get(key) {
            None => changes.push(format!("{key} is gone")),
            Some(p) if p != print => changes.push(format!("{key} changed")),
            Some(_) => {}
        }
    }
    for key in current.keys().filter(|k| !saved.fingerprints.contains_key(*k)) {
        changes.push(format!("{key} appeared"));
    }
    changes.extend(step_changes(&saved.steps, &fresh.steps));
    if changes.is_empty() { Ok(()) } else { Err(StalePlan { changes }) }
}

/// How the saved steps differ from the fresh ones, step by step. A push's blast radius is
/// not compared: it is Horizon's figures of the moment (sessions come and go by the minute),
/// not part of the work.
fn step_changes(saved: &[Step], fresh: &[Step]) -> Vec<String> {
    let work = |step: &Step| {
        let mut step = step.clone();
        if let Action::Push { blast, .. } = &mut step.action {
            *blast = None;
        }
        step
    };
    let by_id = |steps: &[Step]| steps.iter().map(|s| (s.id.clone(), work(s))).collect::<BTreeMap<_, _>>();
    let (saved, fresh) = (by_id(saved), by_id(fresh));
    let mut changes = Vec::new();
    for (id, step) in &saved {
        match fresh.get(id) {
            None => changes.push(format!("step {id} is not in the plan golden makes now")),
            Some(now) if now != step => changes.push(format!("step {id} is not what golden plans now")),
            Some(_) => {}
        }
    }
    for id in fresh.keys().filter(|id| !saved.contains_key(*id)) {
        changes.push(format!("step {id} is planned now and is not in the saved plan"));
    }
    changes
}

/// The apply context: every read site with its clients and resolved placement.
pub fn apply_context(desired: DesiredState, observed: Observed) -> anyhow::Result<Context> {
    let mut targets = BTreeMap::new();
    let Observed { clients, inventories, .. } = observed;
    for (name, clients) in clients {
        let Some(site) = desired.sites.get(&name).cloned() else { continue };
        let Some(inventory) = inventories.get(&name) else { continue };
        let placement = inventory
            .placement(&site.datacenter, &site.compute, &site.folder, &site.datastore)
            .with_context(|| {
            format!("cannot place base VMs at site `{name}`; check its placement in golden.toml")
        })?;
        targets.insert(name, Target::new(site, clients, placement));
    }
    Ok(Context { desired, targets, timeouts: Timeouts::default(), libraries: Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An edited plan file runs nothing: a step added, removed or changed is named.
    #[test]
    fn a_saved_plan_whose_steps_are_not_the_fresh_ones_is_refused() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let desired = desired_at(commit);
        let deploy = |site: &str| Step {
            id: crate::plan::StepId::new(format!("deploy/{site}/win11-ent/2026.10")),
            site: crate::ids::SiteName::new(site),
            action: crate::plan::Action::Deploy {
                image: crate::ids::ImageName::new("win11-ent"),
                version: crate::ids::VersionName::new("2026.10"),
            },
            reason: "needed".into(),
            depends_on: Vec::new(),
        };
        let fresh = Plan {
            steps: vec![deploy("hq"), deploy("eu")],
            desired_digest: desired.digest.clone(),
            ..plan(Some(commit), &[])
        };
        assert!(check_fresh(&fresh.clone(), &fresh, &desired).is_ok());
        let mut edited = fresh.clone();
        edited.steps[0].depends_on.push(crate::plan::StepId::new("nothing"));
        edited.steps.remove(1);
        edited.steps.push(deploy("us"));
        let stale = check_fresh(&edited, &fresh, &desired).expect_err("edited steps");
        assert_eq!(
            stale.changes,
            [
                "step deploy/hq/win11-ent/2026.10 is not what golden plans now",
                "step deploy/us/win11-ent/2026.10 is not in the plan golden makes now",
                "step deploy/eu/win11-ent/2026.10 is planned now and is not in the saved plan",
            ]
        );
    }

    /// Sessions come and go by the minute: a saved plan whose pushes touched other figures
    /// when it was made still applies, whatever the push's other fields say.
    #[test]
    fn a_saved_plan_is_not_stale_for_its_blast_radius() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let desired = desired_at(commit);
        let push = |blast: Option<crate::live::Occupancy>, wave: u32| Step {
            id: crate::plan::StepId::new("push/hq/hq-office"),
            site: crate::ids::SiteName::new("hq"),
            action: Action::Push {
                pool: crate::ids::PoolName::new("hq-office"),
                horizon_name: crate::ids::HorizonName::new("Office-IC"),
                pool_kind: crate::desired::PoolKind::DesktopPool,
                image: crate::ids::ImageName::new("win11-ent"),
                marker: crate::ids::MarkerName::new("prod"),
                version: crate::ids::VersionName::new("2026.10"),
                wave,
                logoff: crate::desired::Logoff::Wait,
                start_time: None,
                canary: None,
                blast,
            },
            reason: "marker prod of win11-ent moved 2026.09 → 2026.10".into(),
            depends_on: Vec::new(),
        };
        let figures = |sessions| Some(crate::live::Occupancy { machines: 40, sessions });
        let at = |steps| Plan { steps, desired_digest: desired.digest.clone(), ..plan(Some(commit), &[]) };
        let saved = at(vec![push(figures(17), 1)]);
        for fresh in [at(vec![push(figures(3), 1)]), at(vec![push(None, 1)])] {
            assert!(check_fresh(&saved, &fresh, &desired).is_ok(), "{:?}", fresh.steps[0].action);
        }
        let stale = check_fresh(&saved, &at(vec![push(figures(17), 2)]), &desired).expect_err("another wave");
        assert_eq!(stale.changes, ["step push/hq/hq-office is not what golden plans now"]);
    }

    fn plan(commit: Option<&str>, prints: &[(&str, &str)]) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            golden_version: env!("CARGO_PKG_VERSION").to_owned(),
            desired_commit: commit.map(CommitId::new),
            desired_dirty: false,
            desired_digest: String::new(),
            sites: Vec::new(),
            fingerprints: prints
                .iter()
                .map(|(k, v)| (k.parse().expect("an object key"), (*v).to_owned()))
                .collect(),
            steps: Vec::new(),
            warnings: Vec::new(),
            policy: Vec::new(),
            held: Vec::new(),
            blast_radius: Default::default(),
        }
    }

    fn desired_at(commit: &str) -> DesiredState {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let mut desired = crate::desired::load_dir(&dir).expect("the quickstart loads");
        desired.revision =
            Some(crate::desired::Revision { commit: CommitId::new(commit), reference: None, dirty: false });
        desired
    }

    /// A saved plan is refused when the commit moved or a fingerprinted object changed, went
    /// or appeared, and each change is named.
    #[test]
    fn a_saved_plan_is_stale_when_its_commit_or_objects_changed() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let desired = desired_at(commit);
        let saved = Plan {
            desired_digest: desired.digest.clone(),
            ..plan(Some(commit), &[("hq/pool/A", "1"), ("hq/vm/vm-1", "2")])
        };
        assert!(check_fresh(&saved, &saved.clone(), &desired).is_ok());

        let fresh = plan(Some(commit), &[("hq/pool/A", "9"), ("hq/vm/vm-3", "4")]);
        let stale = check_fresh(&saved, &fresh, &desired).expect_err("objects changed");
        assert_eq!(stale.changes, ["hq/pool/A changed", "hq/vm/vm-1 is gone", "hq/vm/vm-3 appeared"]);

        // Same commit, edited files (uncommitted): the digest tells.
        let mut edited = desired_at(commit);
        edited.digest = "another".into();
        let stale = check_fresh(&saved, &saved.clone(), &edited).expect_err("the files changed");
        assert_eq!(stale.changes, ["the desired-state files changed since the plan was made"]);

        let moved = desired_at("fedcba9876543210fedcba9876543210fedcba98");
        let stale = check_fresh(&saved, &saved.clone(), &moved).expect_err("the commit moved");
        assert_eq!(
            stale.changes,
            ["the desired state is now at commit fedcba987654, the plan was made at 0123456789ab"]
        );
    }

    /// A plan file of another plan format or golden release is refused with what to do.
    #[test]
    fn a_plan_of_another_format_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("plan.json");
        let mut old = plan(None, &[]);
        old.format_version = FORMAT_VERSION + 1;
        std::fs::write(&path, crate::plan::render::json(&old)).expect("write");
        let err = read_plan(&path).expect_err("another format").to_string();
        assert!(err.contains("plan again"), "{err}");
        std::fs::write(&path, crate::plan::render::json(&plan(None, &[]))).expect("write");
        assert_eq!(read_plan(&path).expect("this format"), plan(None, &[]));
    }

    /// A plan file whose commit is not a commit id (here with a multibyte character where a
    /// shortened commit would be cut) is refused, naming the file; no panic.
    #[test]
    fn a_plan_with_a_commit_that_is_not_one_is_refused() {
        let mut bad = plan(None, &[]);
        bad.desired_commit = Some(CommitId::new("0123456789aé0123456789abcdef0123456789"));
        let err = parse_plan(&crate::plan::render::json(&bad), "plan.json").expect_err("not a commit id");
        assert_eq!(
            err.to_string(),
            "plan.json is not a valid plan: its desired_commit is not a git commit id; plan again"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;
        use std::sync::OnceLock;

        /// A real plan: the first-deploy scenario's, with steps of several kinds.
        fn sample() -> &'static Plan {
            static SAMPLE: OnceLock<Plan> = OnceLock::new();
            SAMPLE.get_or_init(|| {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plan/first-deploy");
                let desired = crate::desired::load_dir(&dir).expect("the scenario loads");
                let live = std::fs::read_to_string(dir.join("live.json")).expect("live.json");
                let live: crate::live::LiveState = serde_json::from_str(&live).expect("a live state");
                let mut plan = crate::plan::plan(&desired, &live, &PlanOptions::default()).expect("it plans");
                plan.desired_commit = Some(CommitId::new("0123456789abcdef0123456789abcdef01234567"));
                assert!(!plan.steps.is_empty());
                plan
            })
        }

        /// The JSON pointers of every leaf (string, number, boolean, null) of `value`.
        fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        leaves(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                    }
                }
                Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        leaves(v, format!("{at}/{i}"), out);
                    }
                }
                _ => out.push(at),
            }
        }

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                "\\PC{0,16}".prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
                Just(Value::from("0123456789abcdeé0123456789abcdef01234567")),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Any text is read as a plan or refused: never a panic.
            #[test]
            fn any_text_is_a_plan_or_refused(text in "\\PC{0,300}") {
                let _ = parse_plan(&text, "plan.json");
            }

            /// A plan file edited at random is read or refused; one that is read renders and
            /// is checked against a fresh plan without a panic.
            #[test]
            fn any_edit_of_a_plan_is_read_or_refused(edits in prop::collection::vec((any::<prop::sample::Index>(), leaf()), 1..8)) {
                let mut value = serde_json::to_value(sample()).expect("a plan serialises");
                let mut all = Vec::new();
                leaves(&value, String::new(), &mut all);
                for (index, new) in edits {
                    if let Some(slot) = value.pointer_mut(&all[index.index(all.len())]) {
                        *slot = new;
                    }
                }
                if let Ok(read) = parse_plan(&value.to_string(), "plan.json") {
                    let _ = crate::plan::render::text(&read);
                    let _ = crate::plan::render::markdown(&read);
                    let _ = crate::plan::render::json(&read);
                    let _ = check_fresh(&read, sample(), &desired_at("0123456789abcdef0123456789abcdef01234567"));
                }
            }
        }
    }
}
