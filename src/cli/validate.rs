//! `golden validate`: parse and check the repository without touching the network.

use std::io::Write;

use clap::Args;

use super::{Exit, RepoArgs};
use crate::desired;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub(super) fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let state = desired::load(&args.repo.location())?;
    let at = match (&state.revision, &args.repo.reference) {
        (Some(rev), Some(reference)) => {
            format!(" at {reference} ({})", rev.commit.short())
        }
        _ => String::new(),
    };
    writeln!(anstream::stdout(), "valid{at}: {}", state.summary())?;
    Ok(Exit::Success)
}
