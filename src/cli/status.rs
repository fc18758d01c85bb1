//! `golden status`: the live view of copies and pools against the desired state.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::Args;

use super::{Exit, Format, RepoArgs};
use crate::connect::RetryPolicy;
use crate::desired::DesiredState;
use crate::ids::SiteName;
use crate::{desired, gather, status};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Read only these sites (repeatable; default: every site)
    #[arg(long = "site", value_name = "SITE")]
    pub sites: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub(super) fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let scope = crate::load::sites_in_scope(&desired, &args.sites)?;
    let env = |name: &str| std::env::var(name).ok();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let reference = args.repo.reference.as_deref();
    let view = runtime.block_on(view(&desired, &args.repo.dir, reference, &scope, &env))?;
    let text = match args.format {
        Format::Text => status::text(&view),
        Format::Markdown => status::markdown(&view),
        Format::Json => status::json(&view),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Success)
}

/// Reads the sites of `scope` (every site when it is empty) and builds the status view, with
/// the git history up to `reference` (default HEAD) telling drift from a marker move. Shared
/// with the demo.
pub(super) async fn view(
    desired: &DesiredState,
    dir: &Path,
    reference: Option<&str>,
    scope: &BTreeSet<SiteName>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<status::Status> {
    let history = crate::load::HistoryRead::start(dir, reference);
    let sites: BTreeSet<SiteName> =
        if scope.is_empty() { desired.sites.keys().cloned().collect() } else { scope.clone() };
    let clients = gather::connect_all(desired, &sites, dir, env, &RetryPolicy::default())?;
    let read = gather::read_all(desired, &clients).await;
    gather::logout_all(clients.values()).await;
    let options = history.options(desired, scope).await;
    Ok(status::status(desired, &read?.live, &options))
}
