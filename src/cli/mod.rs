//! The command line: argument types, the validated settings they become, and error reporting.
//!
//! `main` stays thin: it parses [`Cli`], calls [`main`], and exits with the code it returns.
//! Each subcommand lives in its own file and receives checked values, not raw clap structs.

mod apply;
mod completions;
mod demo;
mod diff;
mod history;
mod init;
mod lab;
mod man;
mod plan;
mod status;
mod unlock;
mod validate;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::desired::LoadError;
use crate::desired::Location;
use golden_core::explain::Kind;

/// GitOps for VDI golden images: versions, markers and pools of VMware Horizon, from git.
#[derive(Debug, Parser)]
#[command(name = "golden", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less output: only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When to colour output; `auto` honours NO_COLOR and whether the stream is a terminal
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, global = true)]
    pub color: ColorWhen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the repository of an existing estate (--from-live): images from the base VMs pools
    /// run, versions from their snapshots, pools bound to markers
    Init(init::InitArgs),
    /// Parse and check the repository; no network
    Validate(validate::ValidateArgs),
    /// Read desired and live state and print the steps that would close the gap
    Plan(plan::PlanArgs),
    /// Execute a saved plan, or plan and execute
    Apply(apply::ApplyArgs),
    /// Break a site's apply lock on purpose (a run that died holding it); prints what it removed
    Unlock(unlock::UnlockArgs),
    /// Live view: copies per site, each pool's current and desired version, drift
    Status(status::StatusArgs),
    /// The version tree and every marker move, from git history
    History(history::HistoryArgs),
    /// The desired-state change between two commits: marker moves, versions, pools, sites
    Diff(diff::DiffArgs),
    /// The local lab: simulated vCenter and Horizon endpoints on loopback
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Set up a lab and an example repo and walk plan → apply → marker move → revert
    Demo(demo::DemoArgs),
    /// Print the shell completion script (bash, zsh, fish, powershell)
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), or write one page per command with --dir
    Man(man::ManArgs),
}

/// Where the desired state is read from (`-C`, `--ref`).
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// The repository directory (holding golden.toml)
    #[arg(short = 'C', long = "dir", value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Read the desired state from this git ref instead of the working tree (no checkout)
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
}

impl RepoArgs {
    pub fn location(&self) -> Location {
        match &self.reference {
            Some(reference) => Location::GitRef { dir: self.dir.clone(), reference: reference.clone() },
            None => Location::WorkTree { dir: self.dir.clone() },
        }
    }
}

/// Output formats shared by plan and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// The process exit codes, as the README documents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success; with `--detailed-exitcode`: no changes.
    Success = 0,
    /// An error, including an invalid repository.
    Failure = 1,
    /// Changes are present (only with `--detailed-exitcode`).
    Changes = 2,
    /// The saved plan is stale.
    StalePlan = 3,
    /// Apply was stopped with Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

/// Runs the CLI and returns the process exit code. Errors are printed here, once.
pub fn main(cli: Cli) -> ExitCode {
    anstream::ColorChoice::write_global(match cli.global.color {
        ColorWhen::Auto => anstream::ColorChoice::Auto,
        ColorWhen::Always => anstream::ColorChoice::Always,
        ColorWhen::Never => anstream::ColorChoice::Never,
    });
    init_logging(&cli.global);
    let code = match run(cli) {
        Ok(exit) => exit,
        Err(err) if is_broken_pipe(&err) => Exit::Success,
        Err(err) => {
            let _ = report(&err, &mut anstream::stderr());
            match crate::error::kind(&err) {
                Kind::StalePlan => Exit::StalePlan,
                Kind::Failure => Exit::Failure,
            }
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Init(args) => init::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Unlock(args) => unlock::run(args),
        Command::Status(args) => status::run(args),
        Command::History(args) => history::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Demo(args) => demo::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
    }
}

fn init_logging(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOLDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("golden={level},warn")));
    let ansi = match global.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => anstream::AutoStream::choice(&io::stderr()) != anstream::ColorChoice::Never,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .without_time()
        .try_init();
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}

/// Prints an error: diagnostics one per line, anything else as its cause chain plus its hints
/// (every error's explanation, [`crate::error::explain`]).
fn report(err: &anyhow::Error, out: &mut dyn Write) -> io::Result<()> {
    let red = anstyle::Style::new().bold().fg_color(Some(anstyle::AnsiColor::Red.into()));
    let cyan = anstyle::Style::new().fg_color(Some(anstyle::AnsiColor::Cyan.into()));
    let hints = |out: &mut dyn Write, hints: Vec<String>| -> io::Result<()> {
        for hint in hints {
            writeln!(out, "  {cyan}hint{cyan:#}: {hint}")?;
        }
        Ok(())
    };
    // `LoadError::Invalid` is transparent, so the diagnostics are found through it.
    let diagnostics = err.chain().find_map(|e| match e.downcast_ref::<LoadError>() {
        Some(LoadError::Invalid(d)) => Some(d),
        _ => e.downcast_ref::<crate::diag::Diagnostics>(),
    });
    if let Some(diags) = diagnostics {
        diags.render(out)?;
        writeln!(out, "{red}error{red:#}: {diags}; nothing was contacted")?;
        return Ok(());
    }
    // Several errors at once: each with its own causes and hints, then the summary.
    let (many, summary): (Vec<&(dyn std::error::Error + 'static)>, &str) =
        if let Some(errors) = err.downcast_ref::<crate::load::PlanErrors>() {
            (errors.0.iter().map(|e| e as _).collect(), "")
        } else if let Some(errors) = err.downcast_ref::<crate::gather::GatherErrors>() {
            (errors.0.iter().map(|e| e as _).collect(), "; nothing was changed")
        } else {
            (Vec::new(), "")
        };
    if !many.is_empty() {
        for e in many {
            writeln!(out, "{red}error{red:#}: {e}")?;
            let mut cause = e.source();
            while let Some(c) = cause {
                writeln!(out, "  caused by: {c}")?;
                cause = c.source();
            }
            hints(out, crate::error::explain(e).map(|x| x.hints()).unwrap_or_default())?;
        }
        writeln!(out, "{red}error{red:#}: {err}{summary}")?;
        return Ok(());
    }
    writeln!(out, "{red}error{red:#}: {err}")?;
    for cause in err.chain().skip(1) {
        writeln!(out, "  caused by: {cause}")?;
    }
    hints(out, crate::error::hints(err))
}

/// `--override-policy REASON`: the reason is recorded in the plan, so it must say something.
pub(crate) fn nonblank_reason(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("give the reason the rule is overridden, e.g. --override-policy \"CVE-2026-1234 hotfix, approved by J. Doe\"".to_owned())
    } else {
        Ok(text.trim().to_owned())
    }
}
