//! `golden status`: the live view of copies and pools against the desired state.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::{Exit, Format, RepoArgs};
use crate::connect::RetryPolicy;
use crate::{desired, gather, status};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let sites: BTreeSet<_> = desired.sites.keys().cloned().collect();
    let env = |name: &str| std::env::var(name).ok();
    let clients = gather::connect_all(&desired, &sites, &args.repo.dir, &env, &RetryPolicy::default())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let (live, _) = runtime.block_on(gather::read_all(&desired, &clients))?;
    let view = status::status(&desired, &live);
    let text = match args.format {
        Format::Text => status::text(&view),
        Format::Markdown => status::markdown(&view),
        Format::Json => status::json(&view),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Success)
}
