//! The executor: runs a plan's steps in dependency order, at most `parallelism` at once, never
//! two on the same object, and reports every happening as a typed [`Event`].
//!
//! A run is one attempt. A failed step fails nothing else by itself; what depends on it (the
//! later waves, through their `wave/N` dependency) is skipped, and the summary says so. Recovery
//! is planning again: every step is idempotent, so a re-run converges.
//!
//! A push scheduled for later ([`Outcome::Scheduled`]) is not done: what depends on it is
//! skipped too, with a reason that names the wave and the start time ("waits for wave 1
//! (push/eu/eu-finance), scheduled for ...; run apply again after it"), but it is counted as
//! waiting, not as skipped: nothing went wrong, so the run still succeeds (exit 0).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use super::{Outcome, Progress, StepError};
use crate::ids::SiteName;
use crate::plan::{Action, Plan, Step, StepId};

/// Everything that happens during a run, in order. The terminal display and the JSON-lines
/// report are two subscribers of this stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        step: StepId,
        site: SiteName,
        kind: String,
        what: String,
    },
    Note {
        step: StepId,
        message: String,
    },
    Progress {
        step: StepId,
        percent: u8,
    },
    Finished {
        step: StepId,
        already_done: bool,
        message: String,
        seconds: f64,
    },
    /// The step's part is done and Horizon does the rest at `at` (a scheduled push).
    Scheduled {
        step: StepId,
        message: String,
        at: String,
        seconds: f64,
    },
    Failed {
        step: StepId,
        error: String,
        seconds: f64,
    },
    Skipped {
        step: StepId,
        reason: String,
    },
    /// Ctrl-C: no step starts any more; `running` are waited for (a second Ctrl-C abandons them).
    Interrupted {
        running: Vec<StepId>,
    },
    /// The last event of every run. `skipped` leaves out the steps that wait for a scheduled
    /// one (`waiting`).
    Ended {
        interrupted: bool,
        done: usize,
        scheduled: usize,
        waiting: usize,
        failed: usize,
        skipped: usize,
    },
}

/// How many times the user asked apply to stop (Ctrl-C). The first stops starting steps and
/// waits for the running ones; the second abandons them. Either way is safe: every step is
/// idempotent, and the next apply finishes what was cut short (a push under way is followed).
pub type Interrupts = tokio::sync::watch::Receiver<u32>;

/// The next interrupt's count; never, once nobody can send one.
async fn next_interrupt(interrupts: &mut Interrupts) -> u32 {
    if interrupts.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    *interrupts.borrow_and_update()
}

/// Subscriber of the event stream.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: &Event);
}

/// How a run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub done: Vec<StepId>,
    pub already_done: Vec<StepId>,
    /// Pushes scheduled for later, with what the step said.
    pub scheduled: Vec<(StepId, String)>,
    /// Steps not run because a step they depend on is scheduled for later, with why.
    pub waiting: Vec<(StepId, String)>,
    pub failed: Vec<(StepId, String)>,
    pub skipped: Vec<(StepId, String)>,
    /// The run was stopped with Ctrl-C.
    pub interrupted: bool,
}

impl Summary {
    /// Nothing failed, was skipped or was interrupted. A scheduled push and what waits for it
    /// are not failures: the next apply after its start time goes on.
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && !self.interrupted
    }
}

/// The object a step works on; two steps on one object never run at once.
fn object(step: &Step) -> String {
    match &step.action {
        Action::Publish { image, version, .. } => format!("copy/{}/{image}/{version}", step.site),
        Action::Replicate { image, version, .. }
        | Action::Deploy { image, version }
        | Action::Adopt { image, version, .. }
        | Action::Retire { image, version, .. } => format!("copy/{}/{image}/{version}", step.site),
        Action::Push { horizon_name, .. } => format!("pool/{}/{horizon_name}", step.site),
    }
}

/// The event stream: fans every event out to its subscribers, and is the [`Progress`] that
/// running steps report to.
pub struct Events {
    subscribers: Vec<Box<dyn EventSink>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("subscribers", &self.subscribers.len()).finish()
    }
}

impl Events {
    pub fn new(subscribers: Vec<Box<dyn EventSink>>) -> Events {
        Events { subscribers }
    }

    pub fn emit(&self, event: &Event) {
        for s in &self.subscribers {
            s.emit(event);
        }
    }
}

impl Progress for Events {
    fn note(&self, step: &StepId, message: &str) {
        self.emit(&Event::Note { step: step.clone(), message: message.to_owned() });
    }

    fn percent(&self, step: &StepId, percent: u8) {
        self.emit(&Event::Progress { step: step.clone(), percent });
    }
}

/// Runs `plan` with `run` doing each step.
pub async fn execute<'a, F, Fut>(plan: &'a Plan, parallelism: usize, run: F, events: &'a Events) -> Summary
where
    F: Fn(&'a Step, &'a dyn Progress) -> Fut,
    Fut: Future<Output = Result<Outcome, StepError>> + 'a,
{
    let (_never, interrupts) = tokio::sync::watch::channel(0);
    execute_until(plan, parallelism, run, events, interrupts).await
}

/// [`execute`], stopped by `interrupts` (see [`Interrupts`]).
pub async fn execute_until<'a, F, Fut>(
    plan: &'a Plan,
    parallelism: usize,
    run: F,
    events: &'a Events,
    mut interrupts: Interrupts,
) -> Summary
where
    F: Fn(&'a Step, &'a dyn Progress) -> Fut,
    Fut: Future<Output = Result<Outcome, StepError>> + 'a,
{
    let parallelism = parallelism.max(1);
    let sink = events;
    let progress: &'a dyn Progress = events;
    // `wave/N` stands for every push of wave N.
    let mut waves: BTreeMap<u32, Vec<StepId>> = BTreeMap::new();
    for step in &plan.steps {
        if let Action::Push { wave, .. } = &step.action {
            waves.entry(*wave).or_default().push(step.id.clone());
        }
    }
    let deps: BTreeMap<&StepId, Vec<StepId>> = plan
        .steps
        .iter()
        .map(|s| {
            let expanded = s
                .depends_on
                .iter()
                .flat_map(|d| match d.as_wave() {
                    Some(w) => waves.get(&w).cloned().unwrap_or_default(),
                    None => vec![d.clone()],
                })
                .collect();
            (&s.id, expanded)
        })
        .collect();

    // The wave of each push, for the reason of a step that waits for a scheduled one.
    let wave_of: BTreeMap<&StepId, u32> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Push { wave, .. } => Some((&s.id, *wave)),
            _ => None,
        })
        .collect();

    let mut summary = Summary::default();
    let mut ok: BTreeSet<StepId> = BTreeSet::new();
    let mut bad: BTreeMap<StepId, String> = BTreeMap::new();
    // Steps that will not be done in this run without having failed: a push scheduled for
    // later, and what waits for it, each with the reason its dependants give.
    let mut held: BTreeMap<StepId, String> = BTreeMap::new();
    let mut pending: Vec<&Step> = plan.steps.iter().collect();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut running = FuturesUnordered::new();
    let mut in_flight: BTreeSet<StepId> = BTreeSet::new();
    let mut stopping = false;

    loop {
        // Skip what can no longer run; start what may (nothing once interrupted).
        let mut i = 0;
        while i < pending.len() && !stopping {
            let step = pending[i];
            let needs = &deps[&step.id];
            if let Some(dep) = needs.iter().find(|d| bad.contains_key(*d)) {
                let reason = format!("{dep} did not succeed");
                sink.emit(&Event::Skipped { step: step.id.clone(), reason: reason.clone() });
                bad.insert(step.id.clone(), reason.clone());
                summary.skipped.push((step.id.clone(), reason));
                pending.remove(i);
                // A skip can unblock skips earlier in the list: look again from the start.
                i = 0;
                continue;
            }
            if let Some(reason) = needs.iter().find_map(|d| held.get(d)).cloned() {
                sink.emit(&Event::Skipped { step: step.id.clone(), reason: reason.clone() });
                held.insert(step.id.clone(), reason.clone());
                summary.waiting.push((step.id.clone(), reason));
                pending.remove(i);
                i = 0;
                continue;
            }
            let ready = needs.iter().all(|d| ok.contains(d)) && !busy.contains(&object(step));
            if ready && running.len() < parallelism {
                pending.remove(i);
                busy.insert(object(step));
                sink.emit(&Event::Started {
                    step: step.id.clone(),
                    site: step.site.clone(),
                    kind: step.action.verb().to_owned(),
                    what: crate::plan::render::describe(step),
                });
                let started = Instant::now();
                let fut = run(step, progress);
                in_flight.insert(step.id.clone());
                running.push(async move { (step, started, fut.await) });
                continue;
            }
            i += 1;
        }
        let next = tokio::select! {
            next = running.next() => next,
            presses = next_interrupt(&mut interrupts) => {
                if presses >= 2 {
                    // Abandoned: each is safe to cut short, and the next apply finishes it.
                    for step in std::mem::take(&mut in_flight) {
                        let reason = "abandoned at the second Ctrl-C; the next apply finishes it".to_owned();
                        sink.emit(&Event::Skipped { step: step.clone(), reason: reason.clone() });
                        summary.skipped.push((step, reason));
                    }
                    stopping = true;
                    break;
                }
                if !stopping {
                    stopping = true;
                    sink.emit(&Event::Interrupted { running: in_flight.iter().cloned().collect() });
                }
                continue;
            }
        };
        let Some((step, started, result)) = next else { break };
        in_flight.remove(&step.id);
        busy.remove(&object(step));
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(outcome) => {
                let (already_done, message) = match outcome {
                    Outcome::Done(m) => (false, m),
                    Outcome::AlreadyDone(m) => (true, m),
                    Outcome::Scheduled { message, at } => {
                        sink.emit(&Event::Scheduled {
                            step: step.id.clone(),
                            message: message.clone(),
                            at: at.clone(),
                            seconds,
                        });
                        let reason = match wave_of.get(&step.id) {
                            Some(wave) => format!(
                                "waits for wave {wave} ({}), scheduled for {at}; run apply again after it",
                                step.id
                            ),
                            None => {
                                format!("waits for {}, scheduled for {at}; run apply again after it", step.id)
                            }
                        };
                        held.insert(step.id.clone(), reason);
                        summary.scheduled.push((step.id.clone(), message));
                        continue;
                    }
                };
                sink.emit(&Event::Finished { step: step.id.clone(), already_done, message, seconds });
                if already_done {
                    summary.already_done.push(step.id.clone());
                } else {
                    summary.done.push(step.id.clone());
                }
                ok.insert(step.id.clone());
            }
            Err(e) => {
                let error = error_text(&e);
                sink.emit(&Event::Failed { step: step.id.clone(), error: error.clone(), seconds });
                summary.failed.push((step.id.clone(), error.clone()));
                bad.insert(step.id.clone(), error);
            }
        }
    }
    drop(running);
    // Anything left was not started: apply was interrupted, or it waited on a step that never
    // came (an unknown dependency).
    for step in pending {
        let reason = if stopping {
            "not started: apply was interrupted".to_owned()
        } else {
            "its dependencies are not in the plan".to_owned()
        };
        sink.emit(&Event::Skipped { step: step.id.clone(), reason: reason.clone() });
        summary.skipped.push((step.id.clone(), reason));
    }
    summary.interrupted = stopping;
    sink.emit(&Event::Ended {
        interrupted: stopping,
        done: summary.done.len() + summary.already_done.len(),
        scheduled: summary.scheduled.len(),
        waiting: summary.waiting.len(),
        failed: summary.failed.len(),
        skipped: summary.skipped.len(),
    });
    summary
}

/// An error with its causes, on one line.
fn error_text(e: &StepError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::desired::{Logoff, PoolKind};
    use crate::ids::{ImageName, MarkerName, PoolName, VersionName};

    fn deploy(site: &str, version: &str, deps: &[&str]) -> Step {
        Step {
            id: StepId::new(format!("deploy/{site}/img/{version}")),
            site: SiteName::new(site),
            action: Action::Deploy { image: ImageName::new("img"), version: VersionName::new(version) },
            reason: String::new(),
            depends_on: deps.iter().map(|d| StepId::new(*d)).collect(),
        }
    }

    fn push(site: &str, pool: &str, wave: u32, deps: &[&str]) -> Step {
        Step {
            id: StepId::new(format!("push/{site}/{pool}")),
            site: SiteName::new(site),
            action: Action::Push {
                pool: PoolName::new(pool),
                horizon_name: crate::ids::HorizonName::new(pool),
                pool_kind: PoolKind::DesktopPool,
                image: ImageName::new("img"),
                marker: MarkerName::new("prod"),
                version: VersionName::new("v1"),
                wave,
                logoff: Logoff::Wait,
                start_time: None,
                canary: None,
                blast: None,
            },
            reason: String::new(),
            depends_on: deps.iter().map(|d| StepId::new(*d)).collect(),
        }
    }

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            format_version: 1,
            golden_version: "test".into(),
            desired_commit: None,
            desired_dirty: false,
            desired_digest: String::new(),
            sites: Vec::new(),
            fingerprints: BTreeMap::new(),
            steps,
            warnings: Vec::new(),
            policy: Vec::new(),
            held: Vec::new(),
            blast_radius: Default::default(),
        }
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<Event>>);
    impl EventSink for std::sync::Arc<Log> {
        fn emit(&self, event: &Event) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
        }
    }

    /// Runs `plan` with steps that sleep 10 ms and fail when their id is in `failing`;
    /// returns the summary, the events, and the most steps that ever ran at once.
    async fn run_fake(plan: &Plan, parallelism: usize, failing: &[&str]) -> (Summary, Vec<Event>, usize) {
        let log = std::sync::Arc::new(Log::default());
        let events = Events::new(vec![Box::new(log.clone())]);
        let running = Mutex::new((0usize, 0usize));
        let failing: Vec<String> = failing.iter().map(|s| (*s).to_owned()).collect();
        let summary = execute(
            plan,
            parallelism,
            |step, progress| {
                let failing = &failing;
                let running = &running;
                async move {
                    {
                        let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                        r.0 += 1;
                        r.1 = r.1.max(r.0);
                    }
                    progress.note(&step.id, "working");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.lock().unwrap_or_else(|e| e.into_inner()).0 -= 1;
                    if failing.contains(&step.id.to_string()) {
                        Err(StepError::Failed("lab said no".into()))
                    } else if step.id.as_str().starts_with("push/") && step.id.as_str().ends_with("-later") {
                        let at = "2026-12-03 02:00:00 UTC".to_owned();
                        Ok(Outcome::Scheduled { message: format!("scheduled for {at}"), at })
                    } else {
                        Ok(Outcome::Done("ok".into()))
                    }
                }
            },
            &events,
        )
        .await;
        let events = log.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let max = running.lock().unwrap_or_else(|e| e.into_inner()).1;
        (summary, events, max)
    }

    fn position(events: &[Event], wanted: impl Fn(&Event) -> bool) -> usize {
        events.iter().position(wanted).unwrap_or(usize::MAX)
    }

    /// Runs `plan` (one step at a time), pressing Ctrl-C `presses` times while the first step
    /// runs; the steps end only once the presses are made (and never after a second press).
    async fn interrupted(presses: u32) -> (Summary, Vec<Event>) {
        let log = std::sync::Arc::new(Log::default());
        let events = Events::new(vec![Box::new(log.clone())]);
        let p = plan(vec![deploy("eu", "v1", &[]), deploy("eu", "v2", &[]), deploy("eu", "v3", &[])]);
        let (tx, rx) = tokio::sync::watch::channel(0);
        let (started, release) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let press = async {
            started.notified().await;
            for n in 1..=presses {
                let _ = tx.send(n);
                tokio::task::yield_now().await;
            }
            if presses < 2 {
                // Once the run has taken the interrupt in: the step may end then.
                let seen = || {
                    let events = log.0.lock().unwrap_or_else(|e| e.into_inner());
                    events.iter().any(|e| matches!(e, Event::Interrupted { .. }))
                };
                while !seen() {
                    tokio::task::yield_now().await;
                }
                release.notify_waiters();
            }
        };
        let run = |_: &Step, _: &dyn Progress| async {
            let released = release.notified();
            started.notify_one();
            released.await;
            Ok(Outcome::Done("ok".into()))
        };
        let (summary, ()) = tokio::join!(execute_until(&p, 1, run, &events, rx), press);
        let events = log.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (summary, events)
    }

    /// A first Ctrl-C lets the running step finish and starts no other; the run ends with an
    /// event saying it was interrupted.
    #[tokio::test]
    async fn ctrl_c_stops_starting_steps_and_waits_for_the_running_one() {
        let (summary, events) = interrupted(1).await;
        assert!(summary.interrupted && !summary.succeeded());
        assert_eq!(summary.done, [StepId::new("deploy/eu/img/v1")]);
        let skipped: Vec<(&str, &str)> =
            summary.skipped.iter().map(|(s, r)| (s.as_str(), r.as_str())).collect();
        assert_eq!(
            skipped,
            [
                ("deploy/eu/img/v2", "not started: apply was interrupted"),
                ("deploy/eu/img/v3", "not started: apply was interrupted")
            ]
        );
        assert!(events.contains(&Event::Interrupted { running: vec![StepId::new("deploy/eu/img/v1")] }));
        assert_eq!(
            events.last(),
            Some(&Event::Ended {
                interrupted: true,
                done: 1,
                scheduled: 0,
                waiting: 0,
                failed: 0,
                skipped: 2
            }),
            "{events:?}"
        );
    }

    /// A second Ctrl-C abandons the running step too.
    #[tokio::test]
    async fn a_second_ctrl_c_abandons_the_running_step() {
        let (summary, events) = interrupted(2).await;
        assert!(summary.done.is_empty(), "{summary:?}");
        assert_eq!(summary.skipped.len(), 3);
        assert!(summary.skipped[0].1.starts_with("abandoned"), "{summary:?}");
        assert!(matches!(events.last(), Some(Event::Ended { interrupted: true, done: 0, .. })), "{events:?}");
    }

    #[tokio::test]
    async fn dependencies_and_waves_order_the_run() {
        let p = plan(vec![
            deploy("eu", "v1", &[]),
            push("eu", "a", 1, &["deploy/eu/img/v1"]),
            push("eu", "b", 2, &["deploy/eu/img/v1", "wave/1"]),
        ]);
        let (summary, events, _) = run_fake(&p, 4, &[]).await;
        assert!(summary.succeeded(), "{summary:?}");
        let finished = |id: &'static str| move |e: &Event| matches!(e, Event::Finished { step, .. } if step.as_str() == id);
        let started = |id: &'static str| move |e: &Event| matches!(e, Event::Started { step, .. } if step.as_str() == id);
        assert!(position(&events, finished("deploy/eu/img/v1")) < position(&events, started("push/eu/a")));
        assert!(position(&events, finished("push/eu/a")) < position(&events, started("push/eu/b")));
        assert!(events.iter().any(|e| matches!(e, Event::Note { message, .. } if message == "working")));
    }

    #[tokio::test]
    async fn parallelism_bounds_the_running_steps() {
        let steps = (0..6).map(|i| deploy("eu", &format!("v{i}"), &[])).collect();
        let (summary, _, max) = run_fake(&plan(steps), 2, &[]).await;
        assert_eq!(summary.done.len(), 6);
        assert_eq!(max, 2);
    }

    #[tokio::test]
    async fn a_failed_push_stops_later_waves_but_not_independent_steps() {
        let p = plan(vec![
            deploy("eu", "v1", &[]),
            deploy("us", "v1", &[]),
            push("eu", "a", 1, &["deploy/eu/img/v1"]),
            push("us", "b", 2, &["deploy/us/img/v1", "wave/1"]),
            push("us", "c", 3, &["wave/2"]),
        ]);
        let (summary, _, _) = run_fake(&p, 4, &["push/eu/a"]).await;
        assert_eq!(summary.failed, [(StepId::new("push/eu/a"), "lab said no".to_owned())]);
        let skipped: Vec<&str> = summary.skipped.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(skipped, ["push/us/b", "push/us/c"]);
        assert!(summary.done.contains(&StepId::new("deploy/us/img/v1")), "{summary:?}");
    }

    /// A scheduled push is not done: the later waves and what else depends on it wait, with a
    /// reason naming the wave and the time, and the run still succeeds.
    #[tokio::test]
    async fn a_scheduled_push_holds_back_its_dependants_and_the_run_succeeds() {
        let mut retire = deploy("eu", "v0", &["push/eu/a-later"]);
        retire.id = StepId::new("retire/eu/img/v0");
        let p = plan(vec![
            deploy("eu", "v1", &[]),
            push("eu", "a-later", 1, &["deploy/eu/img/v1"]),
            push("eu", "b", 1, &["deploy/eu/img/v1"]),
            push("us", "c", 2, &["wave/1"]),
            push("us", "d", 3, &["wave/2"]),
            retire,
        ]);
        let (summary, events, _) = run_fake(&p, 4, &[]).await;
        assert!(summary.succeeded(), "{summary:?}");
        assert_eq!(
            summary.scheduled,
            [(StepId::new("push/eu/a-later"), "scheduled for 2026-12-03 02:00:00 UTC".to_owned())]
        );
        assert_eq!(summary.done, [StepId::new("deploy/eu/img/v1"), StepId::new("push/eu/b")]);
        let mut waiting: Vec<(&str, &str)> =
            summary.waiting.iter().map(|(s, r)| (s.as_str(), r.as_str())).collect();
        waiting.sort();
        let reason = "waits for wave 1 (push/eu/a-later), scheduled for 2026-12-03 02:00:00 UTC; run apply again after it";
        assert_eq!(waiting, [("push/us/c", reason), ("push/us/d", reason), ("retire/eu/img/v0", reason)]);
        assert!(summary.skipped.is_empty(), "{summary:?}");
        assert!(events.iter().any(
            |e| matches!(e, Event::Skipped { step, reason: r } if step.as_str() == "push/us/d" && r == reason)
        ));
        assert_eq!(
            events.last(),
            Some(&Event::Ended {
                interrupted: false,
                done: 2,
                scheduled: 1,
                waiting: 3,
                failed: 0,
                skipped: 0
            })
        );
    }

    #[tokio::test]
    async fn two_steps_on_one_object_never_overlap() {
        let mut retire = deploy("eu", "v1", &[]);
        retire.id = StepId::new("retire/eu/img/v1");
        retire.action = Action::Retire {
            image: ImageName::new("img"),
            version: VersionName::new("v1"),
            items: vec![],
            vms: vec![],
        };
        let (_, events, max) = run_fake(&plan(vec![deploy("eu", "v1", &[]), retire]), 4, &[]).await;
        assert_eq!(max, 1, "{events:?}");
    }
}
