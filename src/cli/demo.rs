//! `golden demo`: a guided walk through the whole workflow on a lab, in a throwaway repository.
//!
//! validate → plan → apply → status → a commit moving `prod` → plan (the promotion rule holds
//! the pushes back; copies are staged) → apply with `--override-policy` (only the affected
//! pools move) → `git revert` → plan → apply → plan (no changes). The example repository is built
//! into the binary, so the demo runs anywhere with no VMware software and no network.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use clap::Args;

use super::Exit;
use crate::apply::display::{Lines, summary_table};
use crate::apply::executor::{Events, execute};
use crate::apply::steps;
use crate::desired::{self, DesiredState, Location};
use crate::gather::{self, SiteClients};
use crate::lab::{Lab, LabOptions, Timings};
use crate::load::{Observed, apply_context, observe};
use crate::plan::{Plan, render};

#[derive(Debug, Args)]
pub struct DemoArgs {}

/// The quickstart example, as shipped in `examples/quickstart/`.
const EXAMPLE: &[(&str, &str)] = &[
    ("golden.toml", include_str!("../../examples/quickstart/golden.toml")),
    ("images/win11-ent.toml", include_str!("../../examples/quickstart/images/win11-ent.toml")),
    ("images/ws2022-rds.toml", include_str!("../../examples/quickstart/images/ws2022-rds.toml")),
    ("pools/hq.toml", include_str!("../../examples/quickstart/pools/hq.toml")),
    ("pools/eu.toml", include_str!("../../examples/quickstart/pools/eu.toml")),
    ("pools/us.toml", include_str!("../../examples/quickstart/pools/us.toml")),
];

pub(super) fn run(_args: DemoArgs) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(demo())?;
    Ok(Exit::Success)
}

fn say(step: usize, text: &str) -> anyhow::Result<()> {
    let bold = anstyle::Style::new().bold();
    writeln!(anstream::stdout(), "\n{bold}==> {step}. {text}{bold:#}")?;
    Ok(())
}

async fn demo() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("golden-demo-").tempdir().context("cannot make a temp dir")?;
    let repo = init_repo(dir.path())?;
    let location = Location::WorkTree { dir: dir.path().to_owned() };

    say(
        1,
        &format!(
            "The example repository (3 sites, 2 images, 8 pools) is committed in {}.",
            dir.path().display()
        ),
    )?;
    let desired = desired::load(&location)?;
    writeln!(anstream::stdout(), "valid: {}", desired.summary())?;

    // A lab in this process: every site's vCenter and Horizon on free loopback ports, with
    // library syncs and image pushes that take a moment, as real ones do.
    let timings =
        Timings { library_sync_ms: 150, push_publish_ms: 200, push_apply_ms: 200, ..Timings::default() };
    let lab = Lab::start(
        crate::lab::seed::from_desired(&desired, timings),
        LabOptions { free_ports: true, ..LabOptions::default() },
    )
    .await?;
    let env: BTreeMap<String, String> = lab.env().into_iter().collect();
    let lookup = |name: &str| env.get(name).cloned();
    say(2, "A lab stands in for every site's vCenter and Horizon:")?;
    for (site, product, url) in lab.site_endpoints() {
        writeln!(anstream::stdout(), "    {site:<4} {product:<8} {url}")?;
    }

    say(
        3,
        "golden plan: first deploy. Publish at hq, replicate once into the library eu and us share (one vCenter), deploy base VMs in each datacenter, push pools in waves.",
    )?;
    round(dir.path(), &lookup, true, None).await?;
    say(4, "golden status: every pool runs the version its marker names.")?;
    status(dir.path(), &lookup).await?;

    say(5, "A pull request moves marker prod of win11-ent from 2026.10 to 2026.11 and merges.")?;
    let image = dir.path().join("images/win11-ent.toml");
    let text = std::fs::read_to_string(&image)?;
    std::fs::write(&image, text.replacen("prod = \"2026.10\"", "prod = \"2026.11\"", 1))?;
    let moved = commit(&repo, "Promote win11-ent 2026.11 to prod")?;
    say(
        6,
        "golden plan: the promotion rule [policy.prod] (after pilot, soak 72h) holds the move back, and says when it will hold. Meanwhile golden stages 2026.11 at prod's sites, so the push is quick once it may go.",
    )?;
    let held = round(dir.path(), &lookup, true, None).await?;
    if held.held.is_empty() || held.steps.iter().any(|s| matches!(s.action, crate::plan::Action::Push { .. }))
    {
        anyhow::bail!("the promotion rule should hold the prod pushes back");
    }
    let reason = "demo: a fix that cannot wait 72 hours, approved by the change board";
    say(
        7,
        &format!(
            "A fix that cannot wait: `golden apply --override-policy \"{reason}\"` rolls prod out now; the plan records the rule it overrode and why."
        ),
    )?;
    round(dir.path(), &lookup, true, Some(reason)).await?;

    say(8, "Something is wrong with 2026.11: `git revert` of the marker move is the rollback.")?;
    revert(&repo, moved)?;
    say(
        9,
        "golden plan: pushes back to 2026.10, with no replication: the previous copy was kept warm. A rollback always passes the promotion rule.",
    )?;
    let plan = round(dir.path(), &lookup, true, None).await?;
    if plan.steps.iter().any(|s| !matches!(s.action, crate::plan::Action::Push { .. })) {
        anyhow::bail!("the rollback plan should only push pools back, but it has other steps");
    }

    say(10, "golden plan once more: nothing to do.")?;
    let last = round(dir.path(), &lookup, false, None).await?;
    if last.has_changes() {
        anyhow::bail!("the final plan should be empty, but it has {} steps", last.steps.len());
    }
    lab.shutdown().await;
    say(
        11,
        "Done. Your turn: `golden lab serve --seed examples/quickstart`, then plan and apply against it.",
    )?;
    Ok(())
}

/// Plans (printing the plan) and, when asked and there is something to do, applies;
/// `override_policy` as `--override-policy` gives it.
async fn round(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    apply: bool,
    override_policy: Option<&str>,
) -> anyhow::Result<Plan> {
    let desired = desired::load(&Location::WorkTree { dir: dir.to_owned() })?;
    let observed = observe(&desired, dir, None, &BTreeSet::new(), override_policy, env).await?;
    let sessions: Vec<SiteClients> = observed.clients.values().cloned().collect();
    let result = plan_and_apply(desired, observed, apply, override_policy).await;
    gather::logout_all(&sessions).await;
    result
}

/// Prints the plan and, when asked, applies it as `golden apply --auto-approve` would (with
/// `--override-policy` when a reason is given, as the printed command says).
async fn plan_and_apply(
    desired: DesiredState,
    observed: Observed,
    apply: bool,
    override_policy: Option<&str>,
) -> anyhow::Result<Plan> {
    let plan = observed.plan.clone();
    anstream::stdout().write_all(render::text(&plan).as_bytes())?;
    if apply && plan.has_changes() {
        let overriding = override_policy.map(|r| format!(" --override-policy \"{r}\"")).unwrap_or_default();
        writeln!(anstream::stdout(), "\n    golden apply --auto-approve{overriding}")?;
        let parallelism = desired.settings.parallelism as usize;
        let ctx = apply_context(desired, observed)?;
        let events = Events::new(vec![Box::new(Lines)]);
        let summary =
            execute(&plan, parallelism, |step, progress| steps::run_step(&ctx, step, progress), &events)
                .await;
        anstream::stdout().write_all(summary_table(&summary).as_bytes())?;
        if !summary.succeeded() {
            anyhow::bail!("the demo's apply failed");
        }
    }
    Ok(plan)
}

async fn status(dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    let desired = desired::load(&Location::WorkTree { dir: dir.to_owned() })?;
    let view = super::status::view(&desired, dir, None, &Default::default(), env).await?;
    anstream::stdout().write_all(crate::status::text(&view).as_bytes())?;
    Ok(())
}

fn init_repo(dir: &Path) -> anyhow::Result<git2::Repository> {
    for (path, text) in EXAMPLE {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(file, text)?;
    }
    let repo = git2::Repository::init(dir).context("cannot create the demo repository")?;
    commit(&repo, "Import golden images")?;
    Ok(repo)
}

fn signature() -> anyhow::Result<git2::Signature<'static>> {
    Ok(git2::Signature::now("golden demo", "demo@golden.invalid")?)
}

fn commit(repo: &git2::Repository, message: &str) -> anyhow::Result<git2::Oid> {
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = signature()?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    Ok(repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?)
}

/// `git revert <commit>`: the inverse change, committed on top.
fn revert(repo: &git2::Repository, oid: git2::Oid) -> anyhow::Result<()> {
    let commit = repo.find_commit(oid)?;
    repo.revert(&commit, None)?;
    let message = format!("Revert \"{}\"", commit.summary().ok().flatten().unwrap_or_default());
    let mut index = repo.index()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = signature()?;
    let head = repo.head()?.peel_to_commit()?;
    repo.commit(Some("HEAD"), &sig, &sig, &message, &tree, &[&head])?;
    repo.cleanup_state()?;
    Ok(())
}
