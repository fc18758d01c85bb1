//! `golden status`: the live view of copies and pools against the desired state.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::{Exit, Format, RepoArgs};
use crate::connect::RetryPolicy;
use crate::desired::DesiredState;
use crate::{desired, gather, status};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub(super) fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let env = |name: &str| std::env::var(name).ok();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let view = runtime.block_on(view(&desired, &args.repo.dir, &env))?;
    let text = match args.format {
        Format::Text => status::text(&view),
        Format::Markdown => status::markdown(&view),
        Format::Json => status::json(&view),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Success)
}

/// Reads every site and builds the status view. Shared with the demo.
pub(super) async fn view(
    desired: &DesiredState,
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<status::Status> {
    let history = crate::load::HistoryRead::start(dir, None);
    let sites: BTreeSet<_> = desired.sites.keys().cloned().collect();
    let clients = gather::connect_all(desired, &sites, dir, env, &RetryPolicy::default())?;
    let read = gather::read_all(desired, &clients).await;
    gather::logout_all(clients.values()).await;
    let options = history.options(desired, &BTreeSet::new()).await;
    Ok(status::status(desired, &read?.live, &options))
}
