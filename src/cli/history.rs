//! `golden history`: the version tree and every marker move (who, when, which commit), from git.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use std::io::Write;

use super::Exit;
use crate::history::{self, render};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this image
    #[arg(value_name = "IMAGE")]
    pub image: Option<String>,
    /// The repository directory
    #[arg(short = 'C', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Read history up to this ref
    #[arg(long = "ref", value_name = "REF", default_value = "HEAD")]
    pub reference: String,
    /// Output format (json: `schema/history.schema.json`)
    #[arg(long, value_enum, default_value_t = HistoryFormat::Text)]
    pub format: HistoryFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistoryFormat {
    Text,
    Mermaid,
    Json,
}

pub(super) fn run(args: HistoryArgs) -> anyhow::Result<Exit> {
    let mut history = history::read(&args.dir, &args.reference)?;
    if let Some(image) = &args.image {
        history.images.retain(|name, _| name.as_str() == image);
        if history.images.is_empty() {
            anyhow::bail!(
                "image `{image}` has no history: no images/{image}.toml in the commits of {}",
                args.reference
            );
        }
    }
    let text = match args.format {
        HistoryFormat::Text => render::text(&history),
        HistoryFormat::Mermaid => render::mermaid(&history),
        HistoryFormat::Json => render::json(&history),
    };
    anstream::stdout().write_all(text.as_bytes())?;
    Ok(Exit::Success)
}
