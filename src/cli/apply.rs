//! `golden apply`: execute a saved plan, or plan and execute.

use std::path::PathBuf;

use clap::Args;

use super::{Exit, NotImplemented, RepoArgs};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `golden plan --out`; without it, plan first
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub auto_approve: bool,
    /// Steps run at once (default: settings.parallelism)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallelism: Option<u32>,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    if args.plan.is_none() {
        crate::desired::load(&args.repo.location())?;
    }
    Err(NotImplemented { command: "apply" }.into())
}
