//! `golden history`: the version tree and every marker move, from git history.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{Exit, NotImplemented};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this image
    #[arg(value_name = "IMAGE")]
    pub image: Option<String>,
    /// The repository directory
    #[arg(short = 'C', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Text,
    Mermaid,
}

pub fn run(_args: HistoryArgs) -> anyhow::Result<Exit> {
    Err(NotImplemented { command: "history" }.into())
}
