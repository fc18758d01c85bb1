//! `golden plan`: read desired and live state and print the steps, text, markdown or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{Exit, Format, RepoArgs};
use crate::connect::RetryPolicy;
use crate::desired::{self, DesiredState};
use crate::gather::{self, SiteClients};
use crate::ids::SiteName;
use crate::plan::{self, Plan, PlanError, PlanOptions, render};
use crate::vcenter::Inventory;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Plan only these sites (repeatable)
    #[arg(long = "site", value_name = "SITE")]
    pub sites: Vec<String>,
    /// Save the plan as JSON for `golden apply PLANFILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 when there are no changes, 2 when there are
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Every reason a plan cannot be made.
#[derive(Debug, thiserror::Error)]
#[error("no plan: {} must be fixed first", crate::plan::render::count(.0.len(), "problem", "problems"))]
pub struct PlanErrors(pub Vec<PlanError>);

pub fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let scope = sites_in_scope(&desired, &args.sites)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let env = |name: &str| std::env::var(name).ok();
    let observing = observe(&desired, &args.repo.dir, args.repo.reference.as_deref(), &scope, &env);
    let plan = runtime.block_on(async {
        let observed = observing.await?;
        gather::logout_all(observed.clients.values()).await;
        Ok::<_, anyhow::Error>(observed.plan)
    })?;
    if let Some(path) = &args.out {
        std::fs::write(path, render::json(&plan))
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!("saved the plan to {}", path.display());
    }
    let text = match args.format {
        Format::Text => render::text(&plan),
        Format::Markdown => render::markdown(&plan),
        Format::Json => render::json(&plan),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(if args.detailed_exitcode && plan.has_changes() { Exit::Changes } else { Exit::Success })
}

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
    let history = HistoryRead::start(dir, reference);
    // The sites to read: those in scope, and the source site their versions come from.
    let mut read: BTreeSet<SiteName> =
        if scope.is_empty() { desired.sites.keys().cloned().collect() } else { scope.clone() };
    read.insert(desired.settings.source_site.clone());
    let clients = gather::connect_all(desired, &read, dir, env, &RetryPolicy::default())?;
    let read = gather::read_all(desired, &clients).await?;
    let options = history.options(desired, scope).await;
    let plan = plan::plan(desired, &read.live, &options).map_err(PlanErrors)?;
    Ok(Observed { plan, clients, inventories: read.inventories })
}

/// Git history (the rollback window, earlier bindings) walked on a thread of its own while the
/// sites are read: a long history must not delay the first request.
pub(super) struct HistoryRead(tokio::task::JoinHandle<Result<crate::history::History, crate::git::GitError>>);

impl HistoryRead {
    pub(super) fn start(dir: &Path, reference: Option<&str>) -> HistoryRead {
        let (dir, reference) = (dir.to_owned(), reference.unwrap_or("HEAD").to_owned());
        HistoryRead(tokio::task::spawn_blocking(move || crate::history::read(&dir, &reference)))
    }

    /// The planner's options for `scope`, once the history is read.
    pub(super) async fn options(self, desired: &DesiredState, scope: &BTreeSet<SiteName>) -> PlanOptions {
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
