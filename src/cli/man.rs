//! `golden man`: the man page, generated from the argument types: one page to stdout, or with
//! `--dir` one page per command (`golden.1`, `golden-plan.1`, `golden-lab-serve.1`, ...).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};

use super::{Cli, Exit};

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into DIR instead of printing golden(1) to stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub(super) fn run(args: ManArgs) -> anyhow::Result<Exit> {
    match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            tracing::info!("wrote the man pages into {}", dir.display());
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            anstream::stdout().write_all(&page)?;
        }
    }
    Ok(Exit::Success)
}
