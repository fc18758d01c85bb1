//! `golden demo`: a guided walk through plan, apply, a marker move and its revert, on a lab.

use clap::Args;

use super::{Exit, NotImplemented};

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<Exit> {
    Err(NotImplemented { command: "demo" }.into())
}
