//! `golden lab serve`: the local lab that serves simulated vCenter and Horizon APIs on loopback.
//!
//! The env file holds the lab's credentials and its control token, the state file its sessions
//! and tokens: both are written readable by their owner only (mode 0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::Exit;
use crate::desired::{self, Location};
use crate::lab::{Lab, LabOptions, LabState, Timings, seed};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Serve simulated vCenter and Horizon endpoints until interrupted
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Seed the lab from this repository: its sites, source VMs, pools and farms
    #[arg(long, value_name = "DIR")]
    pub seed: Option<PathBuf>,
    /// Load the lab state from FILE at start (when it exists) and save it there on exit
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Added latency per request, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// Bind free loopback ports instead of the addresses in golden.toml
    #[arg(long)]
    pub free_ports: bool,
    /// Write `export NAME=value` lines a client needs (URL overrides, lab credentials)
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

pub(super) fn run(command: LabCommand) -> anyhow::Result<Exit> {
    match command {
        LabCommand::Serve(args) => {
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(args))
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<Exit> {
    // Handlers first: a signal that arrives as soon as the endpoints are announced must stop
    // the lab cleanly (and save its state), not kill it.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let state = initial_state(&args)?;
    let lab = Lab::start(
        state,
        LabOptions { latency_ms: args.latency, free_ports: args.free_ports, ..LabOptions::default() },
    )
    .await?;
    // The env file first: whoever waits for the endpoint lines may read it at once.
    if let Some(path) = &args.env_file {
        let mut text = String::new();
        for (name, value) in lab.env() {
            // Only URL overrides when ports are not the ones golden.toml names.
            if name.ends_with("_URL") && !args.free_ports {
                continue;
            }
            text.push_str(&format!("export {name}={value}\n"));
        }
        write_private(path, text.as_bytes())?;
    }
    {
        let mut out = anstream::stdout();
        for (site, product, url) in lab.site_endpoints() {
            writeln!(out, "{site:<8} {product:<8} {url}")?;
        }
        out.flush()?;
    }
    tracing::info!("lab running; stop it with Ctrl-C or SIGTERM");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    let state = lab.shutdown().await;
    if let Some(path) = &args.state {
        save(path, &state)?;
        tracing::info!("saved lab state to {}", path.display());
    }
    Ok(Exit::Success)
}

fn initial_state(args: &ServeArgs) -> anyhow::Result<LabState> {
    if let Some(path) = args.state.as_ref().filter(|p| p.exists()) {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let state: LabState = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a lab state file; delete it to start afresh", path.display())
        })?;
        return Ok(state);
    }
    let Some(dir) = &args.seed else {
        anyhow::bail!(
            "nothing to serve: give --seed DIR (a golden repository), or --state FILE of an earlier lab"
        );
    };
    let desired = desired::load(&Location::WorkTree { dir: dir.clone() })?;
    Ok(seed::from_desired(&desired, Timings::default()))
}

fn save(path: &Path, state: &LabState) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    write_private(&tmp, &serde_json::to_vec_pretty(state)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600, also when the file exists with a wider one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let context = || format!("cannot write {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(context)?;
    // `mode` applies to a new file only.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    Ok(())
}
