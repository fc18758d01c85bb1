//! `golden unlock SITE`: breaks a site's apply lock on purpose (see [`crate::lock`]), for a run
//! that died holding it, and says whose lock it removed.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::{Exit, RepoArgs};
use crate::connect::RetryPolicy;
use crate::ids::SiteName;
use crate::{desired, gather, lock};

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The site whose lock to remove
    #[arg(value_name = "SITE")]
    pub site: String,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub(super) fn run(args: UnlockArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    // Checks the name against golden.toml, with the list of sites when it is not there.
    crate::load::sites_in_scope(&desired, std::slice::from_ref(&args.site))?;
    let site = SiteName::new(args.site.clone());
    let env = |name: &str| std::env::var(name).ok();
    let sites = BTreeSet::from([site.clone()]);
    let clients = gather::connect_all(&desired, &sites, &args.repo.dir, &env, &RetryPolicy::default())?;
    let Some(c) = clients.get(&site) else { anyhow::bail!("site `{site}` has no connection settings") };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let removed = runtime.block_on(async {
        let removed = lock::unlock(&c.vcenter, &site).await;
        c.logout().await;
        removed
    })?;
    let mut out = anstream::stdout();
    match removed {
        None => writeln!(out, "site `{site}` is not locked; nothing removed")?,
        Some(Ok(holder)) => writeln!(out, "removed the lock of site `{site}` held by {holder}")?,
        Some(Err(description)) => writeln!(
            out,
            "removed the lock of site `{site}`, whose holder could not be read: {description:?}"
        )?,
    }
    Ok(Exit::Success)
}
