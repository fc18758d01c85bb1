//! `golden apply`: execute a saved plan, or plan and execute.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::{Exit, RepoArgs};
use crate::apply::display::{Bars, Journal, Lines, SummaryDocument, summary_table};
use crate::apply::executor::{EventSink, Events, execute_until};
use crate::apply::steps;
use crate::desired::{self, DesiredState};
use crate::gather::{self, SiteClients};
use crate::ids::SiteName;
use crate::load::{Observed, apply_context, check_fresh, connect, observe_with, read_plan};
use crate::lock::{self, Holder, LockOptions};
use crate::plan::{Plan, render};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `golden plan --out`; without it, plan first
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long)]
    pub auto_approve: bool,
    /// Steps run at once (default: settings.parallelism)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallelism: Option<u32>,
    /// Write every event of the run as JSON lines to FILE (for CI artifacts)
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// When a site is locked by another apply, wait up to DURATION (`90s`, `15m`) for it
    /// instead of failing at once
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// Output format of the closing summary (json: `schema/apply.schema.json`; the plan is
    /// then shown on stderr)
    #[arg(long, value_enum, default_value_t = ApplyFormat::Text)]
    pub format: ApplyFormat,
    /// Roll out what a promotion rule holds back, recording REASON (without PLANFILE; a
    /// saved plan carries the reason it was made with)
    #[arg(long, value_name = "REASON", value_parser = super::nonblank_reason, conflicts_with = "plan")]
    pub override_policy: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApplyFormat {
    Text,
    Json,
}

pub(super) fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    let desired = desired::load(&args.repo.location())?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(apply(args, desired))
}

async fn apply(args: ApplyArgs, desired: DesiredState) -> anyhow::Result<Exit> {
    let saved = match &args.plan {
        Some(path) => Some(read_plan(path)?),
        None => None,
    };
    let scope: BTreeSet<SiteName> = match &saved {
        Some(p) if p.sites.len() < desired.sites.len() => p.sites.iter().cloned().collect(),
        _ => BTreeSet::new(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let clients = connect(&desired, &args.repo.dir, &scope, &env)?;
    // Clones share the sessions: whatever happens below, they end when apply does.
    let sessions: Vec<SiteClients> = clients.values().cloned().collect();
    let result = apply_locked(args, desired, saved, scope, clients).await;
    gather::logout_all(&sessions).await;
    result
}

/// Takes the lock of every site it reads before reading them (see [`crate::lock`]), so that
/// the plan is made and carried out while no other apply changes those sites; releases them
/// at the end, whatever the outcome.
async fn apply_locked(
    args: ApplyArgs,
    desired: DesiredState,
    saved: Option<Plan>,
    scope: BTreeSet<SiteName>,
    clients: std::collections::BTreeMap<SiteName, SiteClients>,
) -> anyhow::Result<Exit> {
    let options = LockOptions { wait: args.lock_timeout.unwrap_or_default(), ..LockOptions::default() };
    let holder = Holder::this_run(SystemTime::now(), options.ttl);
    let mut locks = lock::acquire_all(&clients, &holder, &options).await?;
    let sites: Vec<&str> = locks.sites().map(SiteName::as_str).collect();
    tracing::info!("locked {} as {holder}", sites.join(", "));
    let result = async {
        // A saved plan is checked against a plan made as it was: with its override, if any.
        let reason = match &saved {
            Some(plan) => plan.policy.iter().find_map(|c| c.overridden.clone()),
            None => args.override_policy.clone(),
        };
        let reference = args.repo.reference.as_deref();
        let observed =
            observe_with(&desired, &args.repo.dir, reference, &scope, reason.as_deref(), clients).await?;
        // The plan shown before applying shows what its pushes touch; a saved plan has it.
        let observed = if saved.is_none() { observed.read_blast().await } else { observed };
        apply_observed(args, desired, saved, observed).await
    }
    .await;
    let released = locks.release().await;
    let exit = result?;
    released?;
    Ok(exit)
}

async fn apply_observed(
    args: ApplyArgs,
    desired: DesiredState,
    saved: Option<Plan>,
    observed: Observed,
) -> anyhow::Result<Exit> {
    let plan = match saved {
        Some(saved) => {
            check_fresh(&saved, &observed.plan, &desired)?;
            saved
        }
        None => observed.plan.clone(),
    };
    let mut stdout = anstream::stdout();
    let json = args.format == ApplyFormat::Json;
    // With JSON on stdout, the plan people read goes to stderr.
    let mut plan_out: Box<dyn Write> =
        if json { Box::new(anstream::stderr()) } else { Box::new(anstream::stdout()) };
    if !plan.has_changes() {
        writeln!(plan_out, "{}", render::text(&plan).trim_end())?;
        if json {
            stdout.write_all(SummaryDocument::nothing_to_do().json().as_bytes())?;
        }
        return Ok(Exit::Success);
    }
    if args.plan.is_none() {
        plan_out.write_all(render::text(&plan).as_bytes())?;
    }
    drop(plan_out);
    confirm(&plan, args.auto_approve)?;

    let ctx = apply_context(desired, observed)?;
    let mut subscribers: Vec<Box<dyn EventSink>> = Vec::new();
    if std::io::stderr().is_terminal() {
        subscribers.push(Box::new(Bars::new(&plan)));
    } else {
        subscribers.push(Box::new(Lines));
    }
    if let Some(path) = &args.report {
        subscribers.push(Box::new(
            Journal::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        ));
    }
    let events = Events::new(subscribers);
    let parallelism = args.parallelism.unwrap_or(ctx.desired.settings.parallelism) as usize;
    // Ctrl-C from here on stops the run in order (see `Interrupts`) rather than killing it:
    // locks are released and sessions logged out after it, as after any run.
    let (presses, interrupts) = tokio::sync::watch::channel(0u32);
    let listener = tokio::spawn(async move {
        let mut count = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            count += 1;
            if presses.send(count).is_err() {
                break;
            }
        }
    });
    let run = |step, progress| steps::run_step(&ctx, step, progress);
    let summary = execute_until(&plan, parallelism, run, &events, interrupts).await;
    listener.abort();
    let closing = if json { SummaryDocument::of(&summary).json() } else { summary_table(&summary) };
    stdout.write_all(closing.as_bytes())?;
    if summary.interrupted {
        writeln!(
            anstream::stderr(),
            "apply interrupted: {} not done; run apply again to finish (every step is safe to repeat)",
            crate::plan::render::count(summary.skipped.len(), "step", "steps")
        )?;
        return Ok(Exit::Interrupted);
    }
    if summary.succeeded() {
        Ok(Exit::Success)
    } else {
        Err(crate::apply::ApplyFailed { failed: summary.failed.len(), skipped: summary.skipped.len() }.into())
    }
}

fn confirm(plan: &Plan, auto_approve: bool) -> anyhow::Result<()> {
    if auto_approve {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("refusing to apply without confirmation: stdin is not a terminal; pass --auto-approve");
    }
    let mut err = anstream::stderr();
    write!(err, "Apply these {} steps? Only 'yes' is accepted: ", plan.steps.len())?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("apply cancelled; nothing was changed");
    }
    Ok(())
}
