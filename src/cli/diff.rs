//! `golden diff REV1 REV2`: the desired-state change between two commits, in domain terms.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{Exit, Format};
use crate::desired::{self, Location};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older commit (e.g. the pull request's base)
    #[arg(value_name = "REV1")]
    pub from: String,
    /// The newer commit (default: HEAD)
    #[arg(value_name = "REV2", default_value = "HEAD")]
    pub to: String,
    /// The repository directory
    #[arg(short = 'C', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Output format (json prints the change as data)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub(super) fn run(args: DiffArgs) -> anyhow::Result<Exit> {
    let at = |reference: &str| Location::GitRef { dir: args.dir.clone(), reference: reference.to_owned() };
    let old = desired::load(&at(&args.from))?;
    let new = desired::load(&at(&args.to))?;
    let change = crate::diff::diff(&old, &new);
    let text = match args.format {
        Format::Text => crate::diff::render(&change, false),
        Format::Markdown => crate::diff::render(&change, true),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&change)?),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Success)
}
