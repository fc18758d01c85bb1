//! Plan benchmark: reading live state and planning for 20 sites × 250 pools, 50 images × 20
//! versions, against a lab that adds 20 ms to every request.
//!
//! Prints, for a first deploy and for a steady state (every copy in place, every pool on its
//! version), the wall time of what `golden plan` does once the repository is read (read every
//! site, plan, read the blast radius of the plan's pushes) and its request count next to the
//! lower bound: the longest chain of requests that depend on each other, times the latency.
//! Target: within 1.5× of the bound.
//! Run with `cargo bench --bench plan`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use golden::connect::RetryPolicy;
use golden::desired::{DesiredState, Location, load};
use golden::lab::vcenter::content::{File, Item};
use golden::lab::vcenter::{Category, Tag};
use golden::lab::{Lab, LabOptions, LabState, Timings, now_ms};
use golden::live::{GoldenMeta, ItemId, ItemRef};
use golden::plan::{Plan, PlanOptions};

/// The allocator the `golden` binary uses, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SITES: usize = 20;
const POOLS: usize = 250;
const IMAGES: usize = 50;
const VERSIONS: usize = 20;
const LATENCY_MS: u64 = 20;
/// The latency at which the longest chain of dependent requests is measured. 500 ms: the
/// work on the chain must stay under one latency, and a first deploy plans 7,000 steps and
/// then lists every site's machines (1,400 a site here, two pages of 1,000 on the chain,
/// rendered by the lab and parsed by golden for 20 sites on the same cores).
const CHECK_LATENCY_MS: u64 = 500;

/// The lab's latency: 20 ms, or `GOLDEN_BENCH_LATENCY_MS` (0 shows what the work alone costs).
fn latency_ms() -> u64 {
    std::env::var("GOLDEN_BENCH_LATENCY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(LATENCY_MS)
}
/// Rounds per scenario: 31, or `GOLDEN_BENCH_ROUNDS` (more for a profile dominated by reads).
fn round_count() -> usize {
    std::env::var("GOLDEN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(31)
}

fn generate(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut golden = String::from("[settings]\nsource_site = \"s0\"\n");
    for s in 0..SITES {
        write!(
            golden,
            "\n[sites.s{s}]\nvcenter = \"http://127.0.0.1:{}\"\nhorizon = \"http://127.0.0.1:1\"\ndatacenter = \"DC{s}\"\ncluster = \"C{s}\"\nfolder = \"golden\"\ndatastore = \"ds{s}\"\n",
            10000 + s
        )?;
    }
    std::fs::write(dir.join("golden.toml"), golden)?;
    std::fs::create_dir_all(dir.join("images"))?;
    for i in 0..IMAGES {
        let mut text = String::new();
        for v in 0..VERSIONS {
            write!(text, "[versions.\"v{v}\"]\nsource = {{ vm = \"build-{i}\", snapshot = \"s{v}\" }}\n")?;
            if v > 0 {
                writeln!(text, "parent = \"v{}\"", v - 1)?;
            }
            text.push('\n');
        }
        write!(text, "[markers]\nprod = \"v{}\"\npilot = \"v{}\"\n", VERSIONS - 2, VERSIONS - 1)?;
        std::fs::write(dir.join(format!("images/img{i}.toml")), text)?;
    }
    std::fs::create_dir_all(dir.join("pools"))?;
    for s in 0..SITES {
        let mut text = String::new();
        for p in 0..POOLS {
            let marker = if p % 10 == 0 { "pilot" } else { "prod" };
            write!(
                text,
                "[pools.s{s}-p{p}]\nsite = \"s{s}\"\nimage = \"img{}\"\nmarker = \"{marker}\"\nwave = {}\n\n",
                p % IMAGES,
                1 + p % 3
            )?;
        }
        std::fs::write(dir.join(format!("pools/s{s}.toml")), text)?;
    }
    Ok(())
}

/// Puts every copy the desired state needs in place, owned by golden, and every pool on it.
fn steady(desired: &DesiredState, lab: &mut LabState) {
    let now = now_ms();
    let LabState { vcenters, sites, .. } = lab;
    for (site_name, site) in sites.iter_mut() {
        // The bench's sites have a vCenter each.
        let Some(vc) = vcenters.get_mut(&site.vcenter).map(|v| &mut v.sim) else { continue };
        let datastore = vc.datastore_in(&site.datacenter).map(|d| d.id.clone()).unwrap_or_default();
        let library =
            vc.add_local_library("golden-images", &datastore, site_name == "s0", now).unwrap_or_default();
        let category = "urn:vmomi:InventoryServiceCategory:golden:GLOBAL".to_owned();
        vc.tagging.categories.insert(
            category.clone(),
            Category {
                id: category.clone(),
                name: "golden".into(),
                description: String::new(),
                cardinality: "SINGLE".into(),
                associable_types: vec!["VirtualMachine".into()],
            },
        );
        let mut bases = BTreeMap::new();
        for pool in desired.pools.values().filter(|p| p.site.as_str() == site_name) {
            let version = desired.images[&pool.image].markers[&pool.marker].clone();
            let key = (pool.image.clone(), version.clone());
            let base = bases.entry(key).or_insert_with(|| {
                let meta = GoldenMeta {
                    image: pool.image.clone(),
                    version: version.clone(),
                    source: format!(
                        "vm:build-{}@s{}",
                        pool.image.as_str().trim_start_matches("img"),
                        version.as_str().trim_start_matches('v')
                    ),
                };
                let description = golden::vcenter::meta_to_description(&meta);
                let files = BTreeMap::from([("x.ovf".to_owned(), File { bytes: Vec::new() })]);
                let name = format!("{}-{}", meta.image, meta.version);
                let item = Item::new(&library, &name, "ovf", &description, files, now);
                let deployed_from =
                    ItemRef { id: ItemId::new(item.id.clone()), name: name.clone(), kind: "ovf".into() };
                vc.content.items.insert(item.id.clone(), item);
                let vm = vc
                    .add_vm(&format!("golden-{}-{}", meta.image, meta.version), &site.datacenter, None)
                    .unwrap_or_default();
                // As golden deploys them: metadata and the item in the annotation, and a tag.
                if let Some(v) = vc.vms.get_mut(&vm) {
                    v.annotation = golden::vcenter::deployment_annotation(&meta, &deployed_from);
                }
                let snapshot = vc.add_snapshot(&vm, "golden", "", now).unwrap_or_default();
                let tag = format!("urn:vmomi:InventoryServiceTag:{}:GLOBAL", uuid::Uuid::new_v4());
                vc.tagging.tags.insert(
                    tag.clone(),
                    Tag {
                        id: tag.clone(),
                        name: format!("{}@{}", meta.image, meta.version),
                        description,
                        category_id: category.clone(),
                    },
                );
                vc.tagging.attached.entry(tag).or_default().insert(("VirtualMachine".to_owned(), vm.clone()));
                (vm, snapshot)
            });
            let id = site.horizon.pool_id(pool.horizon_name.as_str()).unwrap_or_default();
            if let Some(p) = site.horizon.pools.get_mut(&id) {
                p.parent_vm_id = base.0.clone();
                p.base_snapshot_id = base.1.clone();
            }
        }
    }
}

async fn run(
    label: &str,
    desired: &DesiredState,
    state: LabState,
    dir: &std::path::Path,
    chain: u64,
    lab_runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let sites = desired.sites.keys().cloned().collect();
    // The chain is checked, not only reasoned: at 500 ms a request, the work is small next to
    // the waiting, so a read's wall time over the latency counts the dependent requests. Every
    // one of them waits the full latency, so the count is the whole part of the quotient, as
    // long as the work (here on a cold process) stays under one latency.
    let measured = {
        let slow = LabOptions { free_ports: true, latency_ms: CHECK_LATENCY_MS, ..LabOptions::default() };
        let lab = lab_runtime.spawn(Lab::start(state.clone(), slow)).await??;
        let env: BTreeMap<String, String> = lab.env().into_iter().collect();
        let lookup = |name: &str| env.get(name).cloned();
        let clients = golden::gather::connect_all(desired, &sites, dir, &lookup, &RetryPolicy::default())?;
        let start = Instant::now();
        observe(desired, clients).await?;
        (start.elapsed().as_secs_f64() * 1e3 / CHECK_LATENCY_MS as f64).floor() as u64
    };
    if measured != chain {
        anyhow::bail!("{label}: the read waited for {measured} dependent requests, not the {chain} reasoned");
    }
    let latency = latency_ms();
    let options = LabOptions { free_ports: true, latency_ms: latency, ..LabOptions::default() };
    let lab = lab_runtime.spawn(Lab::start(state, options)).await??;
    let env: BTreeMap<String, String> = lab.env().into_iter().collect();
    let lookup = |name: &str| env.get(name).cloned();
    // Several rounds, each with fresh clients (new connections, new logins); the median is
    // printed so one slow round (a page fault storm, the other core busy) does not decide.
    // Wall ms, phases, steps, requests, CPU ms (golden's, the lab's).
    type Round = (f64, Phases, usize, u64, (f64, f64));
    let mut rounds: Vec<Round> = Vec::new();
    let count = round_count();
    for _ in 0..count {
        let clients = golden::gather::connect_all(desired, &sites, dir, &lookup, &RetryPolicy::default())?;
        let before: u64 = lab.endpoints().iter().map(|e| lab.requests(&e.name, e.product)).sum();
        let (start, cpu_start) = (Instant::now(), cpu_ms());
        let (planned, phases) = observe(desired, clients).await?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let after: u64 = lab.endpoints().iter().map(|e| lab.requests(&e.name, e.product)).sum();
        let cpu_end = cpu_ms();
        let cpu = (cpu_end.0 - cpu_start.0, cpu_end.1 - cpu_start.1);
        rounds.push((wall, phases, planned.steps.len(), after - before, cpu));
    }
    // Each figure's own median, so that one slow round does not decide any of them.
    let median = |pick: &dyn Fn(&Round) -> f64| {
        let mut figures: Vec<f64> = rounds.iter().map(pick).collect();
        figures.sort_by(f64::total_cmp);
        figures[figures.len() / 2]
    };
    let (read, planning, blast) = (median(&|r| r.1.read), median(&|r| r.1.plan), median(&|r| r.1.blast));
    let (golden_cpu, lab_cpu) = (median(&|r| r.4.0), median(&|r| r.4.1));
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, _, steps, requests, _) = rounds[rounds.len() / 2];
    let per_site =
        lab.endpoints().iter().map(|e| lab.requests(&e.name, e.product)).max().unwrap_or(0) / count as u64;
    let bound = (chain * latency) as f64;
    println!(
        "plan ({label}): {steps} steps, {wall:.0} ms (median of {count}, fastest {:.0} ms; medians by phase: read {read:.0} ms, plan {planning:.0} ms, blast radius {blast:.0} ms), {requests} requests (at most {per_site} per endpoint), CPU {golden_cpu:.0} ms in golden and {lab_cpu:.0} ms in the lab (medians); lower bound {bound:.0} ms ({chain} dependent requests, as counted at {CHECK_LATENCY_MS} ms, × {latency} ms): {:.2}× (target ≤ 1.5×)",
        rounds[0].0,
        wall / bound
    );
    Ok(())
}

/// How long each phase of [`observe`] took, in ms.
#[derive(Clone, Copy)]
struct Phases {
    read: f64,
    plan: f64,
    blast: f64,
}

/// What `golden plan` does once the desired state and history are read: reads the sites,
/// plans, and reads the blast radius of the plan's pushes. Returns the plan and how long each
/// phase took.
async fn observe(
    desired: &DesiredState,
    clients: BTreeMap<golden::ids::SiteName, golden::gather::SiteClients>,
) -> anyhow::Result<(Plan, Phases)> {
    let ms = |since: Instant| since.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let read = golden::gather::read_all(desired, &clients).await?;
    let read_ms = ms(start);
    let start = Instant::now();
    let observed = golden::load::plan_read(desired, clients, read, &PlanOptions::default())?;
    let plan_ms = ms(start);
    let start = Instant::now();
    let plan = observed.read_blast().await.plan;
    Ok((plan, Phases { read: read_ms, plan: plan_ms, blast: ms(start) }))
}

/// CPU time this process's threads have used so far, in ms: golden's (its runtime and the
/// bench's own thread, which plans) and the lab's (threads named `lab…`), from each thread's
/// `/proc/self/task/*/schedstat` (nanoseconds on the CPU); zeros where there is no procfs.
/// Threads that have exited are not counted; the bench's threads live as long as it does.
fn cpu_ms() -> (f64, f64) {
    let (mut golden, mut lab) = (0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let Some(ns) = read("schedstat").split_whitespace().next().and_then(|n| n.parse::<f64>().ok()) else {
            continue;
        };
        if read("comm").starts_with("lab") { lab += ns / 1e6 } else { golden += ns / 1e6 }
    }
    (golden, lab)
}

fn main() -> anyhow::Result<()> {
    // The lab runs on threads of its own, so a profile tells its work from golden's; the
    // machine's cores are still shared, as they would be by a CI runner and a vCenter.
    let lab_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lab")
        .enable_all()
        .build()?;
    let golden_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("golden")
        .enable_all()
        .build()?;
    golden_runtime.block_on(bench(&lab_runtime))
}

async fn bench(lab_runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    generate(dir.path())?;
    let desired = load(&Location::WorkTree { dir: dir.path().to_owned() })?;
    let first = golden::lab::seed::from_desired(&desired, Timings::instant());
    let mut settled = first.clone();
    steady(&desired, &mut settled);
    // The longest dependent chains the APIs impose (no request can start before the answer it
    // needs), checked by `run` at a high latency. First deploy, 5: over SOAP, service content →
    // login → one property read walking the inventory (there is no library yet: over REST,
    // login → list libraries, and login → list tag categories); then, once planned, the blast
    // radius of its pushes at Horizon (logged in already): machines page 1 → page 2. Steady
    // state, 5: login → list tag categories → get each → list the category's tags → list the
    // objects they are attached to; nothing is pushed, so no machine or session is read. (No
    // item is read: every item is named by the base VM deployed from it; no tag is read:
    // every base VM's annotation names its version.)
    // `cargo bench --bench plan -- steady` runs only the scenarios whose label contains "steady".
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--")).unwrap_or_default();
    if "first deploy".contains(&filter) {
        run("first deploy", &desired, first, dir.path(), 5, lab_runtime).await?;
    }
    if "steady state, no changes".contains(&filter) {
        run("steady state, no changes", &desired, settled, dir.path(), 5, lab_runtime).await?;
    }
    Ok(())
}
