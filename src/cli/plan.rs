//! `golden plan`: read desired and live state and print the steps, text, markdown or JSON.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Exit, Format, RepoArgs};
use crate::desired::{self};
use crate::gather::{self};
use crate::load;
use crate::plan::render;
use crate::trusted;

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
    /// Send credentials only to sites whose endpoints are as at this git ref (for pull
    /// requests: the base branch); fail before any request if one differs
    #[arg(long, value_name = "REF")]
    pub trusted_ref: Option<String>,
    /// Roll out what a promotion rule (`[policy.<marker>]`) holds back; the plan records
    /// REASON with every rule it overrides
    #[arg(long, value_name = "REASON", value_parser = super::nonblank_reason)]
    pub override_policy: Option<String>,
}

pub(super) fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let scope = load::sites_in_scope(&desired, &args.sites)?;
    if let Some(trusted) = &args.trusted_ref {
        trusted::check(&desired, &args.repo.dir, trusted, &load::sites_to_read(&desired, &scope))?;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let env = |name: &str| std::env::var(name).ok();
    let observing = load::observe(
        &desired,
        &args.repo.dir,
        args.repo.reference.as_deref(),
        &scope,
        args.override_policy.as_deref(),
        &env,
    );
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
        // The comment on a pull request also shows where pushed versions sit in their trees.
        Format::Markdown => render::markdown(&plan) + &render::version_trees(&plan, &desired),
        Format::Json => render::json(&plan),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(if args.detailed_exitcode && plan.has_changes() { Exit::Changes } else { Exit::Success })
}
