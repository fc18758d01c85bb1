//! `golden validate`: parse and check the repository without touching the network.

use std::io::Write;

use clap::{Args, ValueEnum};

use super::{Exit, RepoArgs};
use crate::desired::{self, LoadError};
use crate::diag::{self, Diagnostics, Report};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Output format: json prints the problems as data, github as workflow commands (annotations)
    #[arg(long, value_enum, default_value_t = ValidateFormat::Text)]
    pub format: ValidateFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Text,
    Json,
    Github,
}

pub(super) fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let state = match (desired::load(&args.repo.location()), args.format) {
        (Ok(state), _) => state,
        (Err(LoadError::Invalid(diags)), ValidateFormat::Json | ValidateFormat::Github) => {
            return invalid(&args, &diags);
        }
        (Err(e), _) => return Err(e.into()),
    };
    let mut stdout = anstream::stdout();
    match args.format {
        ValidateFormat::Text => {
            let at = match (&state.revision, &args.repo.reference) {
                (Some(rev), Some(reference)) => format!(" at {reference} ({})", rev.commit.short()),
                _ => String::new(),
            };
            writeln!(stdout, "valid{at}: {}", state.summary())?;
        }
        ValidateFormat::Json => {
            let report = Report { valid: true, summary: Some(state.summary()), diagnostics: Vec::new() };
            stdout.write_all(report.json().as_bytes())?;
        }
        // No problem, no annotation.
        ValidateFormat::Github => {}
    }
    Ok(Exit::Success)
}

/// Prints the problems as data on stdout (the summary goes to stderr) and fails.
fn invalid(args: &ValidateArgs, diags: &Diagnostics) -> anyhow::Result<Exit> {
    let text = match args.format {
        ValidateFormat::Github => {
            // GitHub names files from the repository root: a ref's files are `REF:PATH` with
            // PATH from the root already, a working tree's are `DIR/PATH` with PATH from `-C DIR`.
            let prefix = crate::git::prefix(&args.repo.dir).unwrap_or_default();
            let shown = format!("{}/", args.repo.dir.to_string_lossy().trim_end_matches('/'));
            let path = |file: &str| match &args.repo.reference {
                Some(reference) => file.strip_prefix(&format!("{reference}:")).unwrap_or(file).to_owned(),
                None => {
                    let rel = file.strip_prefix(&shown).unwrap_or(file);
                    if prefix.is_empty() { rel.to_owned() } else { format!("{prefix}/{rel}") }
                }
            };
            diag::github(diags, &path)
        }
        ValidateFormat::Json | ValidateFormat::Text => {
            Report { valid: false, summary: None, diagnostics: diags.iter().cloned().collect() }.json()
        }
    };
    anstream::stdout().write_all(text.as_bytes())?;
    writeln!(anstream::stderr(), "error: {diags}")?;
    Ok(Exit::Failure)
}
