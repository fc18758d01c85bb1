//! `golden status`: the live view of copies and pools against the desired state.

use clap::Args;

use super::{Exit, Format, NotImplemented, RepoArgs};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    crate::desired::load(&args.repo.location())?;
    Err(NotImplemented { command: "status" }.into())
}
