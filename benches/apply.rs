//! Apply benchmark: the quickstart's first deploy on a lab with realistic durations (library
//! syncs, image publishing and machine recreation take seconds; every request 20 ms).
//!
//! Prints the wall time of the apply next to the critical path of the plan's step graph: the
//! longest chain of dependent steps, each counted with the time it took in this run. Their
//! ratio is the executor's overhead (scheduling, parallelism limit); the target is within 1.2×.
//! A step's time includes waiting for its site's library lock (replicates at one site queue
//! behind the first sync), so that queueing counts as step time, not overhead.
//! Run with `cargo bench --bench apply`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use golden::apply::executor::{Event, EventSink, Events, execute};
use golden::apply::{Context, Target, Timeouts, steps};
use golden::connect::RetryPolicy;
use golden::desired::{Location, load};
use golden::gather::{connect_all, read_all};
use golden::lab::{Lab, LabOptions, Timings};
use golden::plan::{Action, PlanOptions, StepId, plan};

#[derive(Default, Clone)]
struct Durations(Arc<Mutex<BTreeMap<StepId, f64>>>);

impl EventSink for Durations {
    fn emit(&self, event: &Event) {
        if let Event::Finished { step, seconds, .. } = event {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(step.clone(), *seconds);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let desired = load(&Location::WorkTree { dir: dir.clone() })?;
    let timings = Timings {
        library_sync_ms: 3_000,
        push_publish_ms: 4_000,
        push_apply_ms: 4_000,
        ..Timings::default()
    };
    let lab = Lab::start(
        golden::lab::seed::from_desired(&desired, timings),
        LabOptions { free_ports: true, latency_ms: 20, ..LabOptions::default() },
    )
    .await?;
    let env: BTreeMap<String, String> = lab.env().into_iter().collect();
    let lookup = |name: &str| env.get(name).cloned();
    let sites = desired.sites.keys().cloned().collect();
    let clients = connect_all(&desired, &sites, &dir, &lookup, &RetryPolicy::default())?;
    let golden::gather::Read { live, inventories, .. } = read_all(&desired, &clients).await?;
    let planned = plan(&desired, &live, &PlanOptions::default()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut targets = BTreeMap::new();
    for (name, c) in clients {
        let site = desired.sites[&name].clone();
        let placement =
            inventories[&name].placement(&site.datacenter, &site.compute, &site.folder, &site.datastore)?;
        targets.insert(name, Target::new(site, c, placement));
    }
    let parallelism = desired.settings.parallelism as usize;
    let ctx = Context {
        desired,
        targets,
        timeouts: Timeouts { poll: std::time::Duration::from_millis(500), ..Timeouts::default() },
        libraries: Default::default(),
    };
    let durations = Durations::default();
    let events = Events::new(vec![Box::new(durations.clone())]);

    let start = Instant::now();
    let summary =
        execute(&planned, parallelism, |step, progress| steps::run_step(&ctx, step, progress), &events).await;
    let wall = start.elapsed().as_secs_f64();
    anyhow::ensure!(summary.succeeded(), "the apply failed: {summary:?}");

    // Longest path through the step graph (steps are in dependency order), `wave/N` expanded.
    let took = durations.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut waves: BTreeMap<u32, Vec<&StepId>> = BTreeMap::new();
    for s in &planned.steps {
        if let Action::Push { wave, .. } = &s.action {
            waves.entry(*wave).or_default().push(&s.id);
        }
    }
    let mut finish: BTreeMap<&StepId, f64> = BTreeMap::new();
    for s in &planned.steps {
        let ready = s
            .depends_on
            .iter()
            .flat_map(|d| match d.as_wave() {
                Some(w) => waves.get(&w).cloned().unwrap_or_default(),
                None => vec![d],
            })
            .filter_map(|d| finish.get(d).copied())
            .fold(0.0, f64::max);
        finish.insert(&s.id, ready + took.get(&s.id).copied().unwrap_or(0.0));
    }
    let critical = finish.values().copied().fold(0.0, f64::max);
    println!(
        "apply (quickstart first deploy, {} steps, parallelism {parallelism}): {wall:.2} s; critical path {critical:.2} s: {:.2}× (target ≤ 1.2×)",
        planned.steps.len(),
        wall / critical
    );
    Ok(())
}
