//! The load stage: everything a plan and an apply start from.
//!
//! It turns (repository, ref, sites) into the planner's inputs: the desired state (loaded by
//! [`crate::desired`]), the live state of the sites the plan reads and their inventories
//! ([`crate::gather`]), and the options git history gives (the rollback window, earlier
//! bindings). Saved plans are read, and checked for staleness against a fresh plan, here too.
//! Every command that plans (`plan`, `apply`, `status`, `demo`) goes through this module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;

use crate::apply::{Context, Target, Timeouts};
use crate::connect::RetryPolicy;
use crate::desired::DesiredState;
use crate::gather::{self, SiteClients};
use crate::ids::{CommitId, SiteName};
use crate::plan::{self, FORMAT_VERSION, Plan, PlanError, PlanOptions};
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
    pub inventories: BTreeMap<SiteName, Inventory>,
}

/// Reads the live state of the sites the plan needs and plans. Shared with `apply`.
pub async fn observe(
    desired: &DesiredState,
    dir: &Path,
    reference: Option<&str>,
    scope: &BTreeSet<SiteName>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Observed> {
    let clients = connect(desired, dir, scope, env)?;
    observe_with(desired, dir, reference, scope, clients).await
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

/// [`observe`] with the clients of [`connect`]: `apply` locks the sites in between.
pub async fn observe_with(
    desired: &DesiredState,
    dir: &Path,
    reference: Option<&str>,
    scope: &BTreeSet<SiteName>,
    clients: BTreeMap<SiteName, SiteClients>,
) -> anyhow::Result<Observed> {
    let history = HistoryRead::start(dir, reference);
    let read = gather::read_all(desired, &clients).await?;
    let options = history.options(desired, scope).await;
    let plan = plan::plan(desired, &read.live, &options).map_err(PlanErrors)?;
    Ok(Observed { plan, clients, inventories: read.inventories })
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
        },
        Err(e) => {
            tracing::info!(
                "no git history, so no rollback window beyond current use, and no telling drift from a marker move: {e}"
            );
            PlanOptions { sites: scope.clone(), ..PlanOptions::default() }
        }
    }
}

/// A saved plan no longer matches the repository or the live state (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("the saved plan is stale: {}", .changes.join("; "))]
pub struct StalePlan {
    pub changes: Vec<String>,
}

/// Reads a plan saved by `golden plan --out`; one of another golden or plan format is refused.
pub fn read_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read plan {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a plan (not JSON)", path.display()))?;
    let format = value.get("format_version").and_then(serde_json::Value::as_u64);
    let written_by =
        value.get("golden_version").and_then(serde_json::Value::as_str).unwrap_or("an unknown version");
    if format != Some(u64::from(FORMAT_VERSION)) || written_by != env!("CARGO_PKG_VERSION") {
        anyhow::bail!(
            "{} was written by golden {written_by} (plan format {}); this is golden {} (plan format {FORMAT_VERSION}): plan again",
            path.display(),
            format.map_or("?".to_owned(), |f| f.to_string()),
            env!("CARGO_PKG_VERSION")
        );
    }
    serde_json::from_value(value).with_context(|| format!("{} is not a valid plan", path.display()))
}

/// Refuses a saved plan whose commit or live objects changed since it was made.
pub fn check_fresh(saved: &Plan, fresh: &Plan, desired: &DesiredState) -> Result<(), StalePlan> {
    let mut changes = Vec::new();
    let now = desired.revision.as_ref().map(|r| r.commit.clone());
    if saved.desired_commit != now {
        changes.push(format!(
            "the desired state is now at commit {}, the plan was made at {}",
            now.as_ref().map_or("(none)", CommitId::short),
            saved.desired_commit.as_ref().map_or("(none)", CommitId::short)
        ));
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
    if changes.is_empty() { Ok(()) } else { Err(StalePlan { changes }) }
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

    fn plan(commit: Option<&str>, prints: &[(&str, &str)]) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            golden_version: env!("CARGO_PKG_VERSION").to_owned(),
            desired_commit: commit.map(CommitId::new),
            sites: Vec::new(),
            fingerprints: prints
                .iter()
                .map(|(k, v)| (k.parse().expect("an object key"), (*v).to_owned()))
                .collect(),
            steps: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn desired_at(commit: &str) -> DesiredState {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let mut desired = crate::desired::load_dir(&dir).expect("the quickstart loads");
        desired.revision = Some(crate::desired::Revision { commit: CommitId::new(commit), reference: None });
        desired
    }

    /// A saved plan is refused when the commit moved or a fingerprinted object changed, went
    /// or appeared, and each change is named.
    #[test]
    fn a_saved_plan_is_stale_when_its_commit_or_objects_changed() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let desired = desired_at(commit);
        let saved = plan(Some(commit), &[("hq/pool/A", "1"), ("hq/vm/vm-1", "2")]);
        assert!(check_fresh(&saved, &saved.clone(), &desired).is_ok());

        let fresh = plan(Some(commit), &[("hq/pool/A", "9"), ("hq/vm/vm-3", "4")]);
        let stale = check_fresh(&saved, &fresh, &desired).expect_err("objects changed");
        assert_eq!(stale.changes, ["hq/pool/A changed", "hq/vm/vm-1 is gone", "hq/vm/vm-3 appeared"]);

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
}
