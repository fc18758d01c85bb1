//! `golden lab`: the local lab that serves simulated vCenter and Horizon APIs on loopback.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Exit, NotImplemented};

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
    /// Load the lab state from FILE at start and save it there on exit
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

pub fn run(command: LabCommand) -> anyhow::Result<Exit> {
    match command {
        LabCommand::Serve(_) => Err(NotImplemented { command: "lab serve" }.into()),
    }
}
