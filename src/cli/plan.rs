//! `golden plan`: read desired and live state and print the steps. Implemented with the planner.

use std::path::PathBuf;

use clap::Args;

use super::{Exit, Format, NotImplemented, RepoArgs};

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

pub fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    // Validate first: a broken repository is reported as such, not as a missing feature.
    crate::desired::load(&args.repo.location())?;
    Err(NotImplemented { command: "plan" }.into())
}
