//! `golden init --from-live`: writes the repository of an existing Horizon estate (see
//! [`golden_core::estate`]) into a directory holding a `golden.toml` with its settings and
//! sites. The first plan after it adopts the VMs the pools run and changes no pool.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::{Exit, RepoArgs};
use crate::connect::RetryPolicy;
use crate::estate::{LivePoolRun, repository};
use crate::live::{ImageRef, Moref, Vm};
use crate::{desired, gather};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Read every site's pools and farms and the base VMs and snapshots they run
    #[arg(long, required = true)]
    pub from_live: bool,
    /// Print the files instead of writing them
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub(super) fn run(args: InitArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    if !desired.images.is_empty() || !desired.pools.is_empty() {
        anyhow::bail!(
            "{} already has images or pools; init --from-live starts from a golden.toml with [settings] and [sites] only",
            args.repo.dir.display()
        );
    }
    let env = |name: &str| std::env::var(name).ok();
    let sites: BTreeSet<_> = desired.sites.keys().cloned().collect();
    let clients = gather::connect_all(&desired, &sites, &args.repo.dir, &env, &RetryPolicy::default())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let read = runtime.block_on(async {
        let read = gather::read_all(&desired, &clients).await;
        gather::logout_all(clients.values()).await;
        read
    })?;

    let mut runs = Vec::new();
    for (name, site) in &desired.sites {
        let (Some(live), Some(inventory)) = (read.live.sites.get(name), read.inventories.get(name)) else {
            continue;
        };
        let datacenter = inventory.datacenter(&site.datacenter)?;
        for pool in live.pools.values() {
            let vm = pool.current.as_ref().and_then(|c| {
                let vm = inventory.vms_in(&datacenter.id).find(|v| v.id == c.vm)?;
                Some((vm.name.clone(), snapshot_path(vm, c)?))
            });
            runs.push(LivePoolRun {
                site: name.clone(),
                horizon_name: pool.name.to_string(),
                kind: pool.kind,
                manageable: pool.instant_clone,
                runs: vm,
            });
        }
    }
    let files = repository(&runs);
    let mut out = anstream::stdout();
    if args.dry_run {
        for (path, text) in &files {
            writeln!(out, "==> {path} <==\n{text}")?;
        }
        return Ok(Exit::Success);
    }
    for (path, text) in &files {
        let target = args.repo.dir.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("cannot write {}", target.display()))?;
        writeln!(out, "wrote {path}")?;
    }
    writeln!(
        out,
        "next: golden validate, then golden plan: it adopts the VMs the pools run (golden's tag on them) and changes no pool"
    )?;
    Ok(Exit::Success)
}

/// The names of the snapshots from the root of `vm`'s tree down to the one `image` names.
fn snapshot_path(vm: &Vm, image: &ImageRef) -> Option<Vec<String>> {
    let by_id = |id: &Moref| vm.snapshots.iter().find(|s| &s.id == id);
    let mut path = Vec::new();
    let mut at = by_id(&image.snapshot);
    while let Some(snapshot) = at {
        if path.len() > vm.snapshots.len() {
            return None; // a cycle: not a tree vCenter would show
        }
        path.push(snapshot.name.clone());
        at = snapshot.parent.as_ref().and_then(by_id);
    }
    path.reverse();
    (!path.is_empty()).then_some(path)
}
