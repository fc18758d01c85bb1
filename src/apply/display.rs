//! Subscribers of the apply event stream: progress for people, a JSON-lines journal for CI.
//!
//! On a terminal, indicatif draws an overall bar and one line per running step; elsewhere each
//! event is one plain line on stderr, readable in a CI log. The journal (`--report FILE`)
//! records every event with its time; events never carry a credential.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::executor::{Event, EventSink, Summary};
use crate::plan::{Plan, StepId};

/// One line per event on stderr.
#[derive(Debug, Default)]
pub struct Lines;

impl EventSink for Lines {
    fn emit(&self, event: &Event) {
        let line = match event {
            Event::Started { step, what, .. } => format!("start    {step}: {what}"),
            Event::Note { step, message } => format!("         {step}: {message}"),
            Event::Progress { step, percent } => format!("         {step}: {percent}%"),
            Event::Finished { step, already_done: true, message, .. } => {
                format!("ok       {step}: {message} (already done)")
            }
            Event::Finished { step, message, seconds, .. } => {
                format!("done     {step}: {message} ({seconds:.1}s)")
            }
            Event::Scheduled { step, message, .. } => format!("scheduled {step}: {message}"),
            Event::Failed { step, error, .. } => format!("FAILED   {step}: {error}"),
            Event::Skipped { step, reason } => format!("skipped  {step}: {reason}"),
            Event::Interrupted { .. } => Lines::line(event),
            Event::Ended { .. } => return,
        };
        let _ = writeln!(anstream::stderr(), "{line}");
    }
}

/// Progress bars on a terminal.
#[derive(Debug)]
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    steps: Mutex<BTreeMap<StepId, ProgressBar>>,
}

impl Bars {
    pub fn new(plan: &Plan) -> Bars {
        let multi = MultiProgress::new();
        let overall = multi.add(ProgressBar::new(plan.steps.len() as u64));
        overall.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars { multi, overall, steps: Mutex::new(BTreeMap::new()) }
    }
}

impl EventSink for Bars {
    fn emit(&self, event: &Event) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Started { step, what, .. } => {
                let bar = self.multi.add(ProgressBar::new(100));
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("{step}: {what}"));
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                steps.insert(step.clone(), bar);
            }
            Event::Note { step, message } => {
                if let Some(bar) = steps.get(step) {
                    bar.set_message(format!("{step}: {message}"));
                }
            }
            Event::Progress { step, percent } => {
                if let Some(bar) = steps.get(step) {
                    bar.set_message(format!("{step}: {percent}%"));
                }
            }
            Event::Finished { step, .. } | Event::Scheduled { step, .. } | Event::Failed { step, .. } => {
                if let Some(bar) = steps.remove(step) {
                    bar.finish_and_clear();
                }
                let _ = self.multi.println(Lines::line(event));
                self.overall.inc(1);
            }
            Event::Skipped { .. } => {
                let _ = self.multi.println(Lines::line(event));
                self.overall.inc(1);
            }
            Event::Interrupted { .. } => {
                let _ = self.multi.println(Lines::line(event));
            }
            Event::Ended { .. } => self.overall.finish_and_clear(),
        }
    }
}

impl Lines {
    fn line(event: &Event) -> String {
        match event {
            Event::Finished { step, already_done: true, .. } => format!("ok       {step} (already done)"),
            Event::Finished { step, seconds, .. } => format!("done     {step} ({seconds:.1}s)"),
            Event::Scheduled { step, at, .. } => format!("scheduled {step} for {at}"),
            Event::Failed { step, error, .. } => format!("FAILED   {step}: {error}"),
            Event::Skipped { step, reason } => format!("skipped  {step}: {reason}"),
            Event::Interrupted { running } if running.is_empty() => {
                "INTERRUPTED: no new step starts".to_owned()
            }
            Event::Interrupted { running } => format!(
                "INTERRUPTED: no new step starts; waiting for {} (Ctrl-C again abandons them, and the next apply finishes them)",
                running.iter().map(StepId::as_str).collect::<Vec<_>>().join(", ")
            ),
            Event::Started { step, .. } | Event::Note { step, .. } | Event::Progress { step, .. } => {
                step.to_string()
            }
            Event::Ended { .. } => String::new(),
        }
    }
}

/// The journal: one JSON object per event, with the time in epoch milliseconds.
#[derive(Debug)]
pub struct Journal {
    file: Mutex<std::fs::File>,
}

impl Journal {
    pub fn create(path: &std::path::Path) -> std::io::Result<Journal> {
        Ok(Journal { file: Mutex::new(std::fs::File::create(path)?) })
    }
}

impl EventSink for Journal {
    fn emit(&self, event: &Event) {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            // Milliseconds since the Unix epoch: when the event was written.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            map.insert("time_ms".into(), serde_json::json!(now.map_or(0, |d| d.as_millis())));
        }
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(file, "{value}");
    }
}

/// The closing table: what succeeded, is scheduled (and what waits for it), failed and was
/// skipped.
pub fn summary_table(summary: &Summary) -> String {
    let mut out = String::new();
    let rows: Vec<(&str, &StepId, &str)> = summary
        .done
        .iter()
        .map(|s| ("done", s, ""))
        .chain(summary.already_done.iter().map(|s| ("already done", s, "")))
        .chain(summary.scheduled.iter().map(|(s, m)| ("scheduled", s, m.as_str())))
        .chain(summary.waiting.iter().map(|(s, r)| ("waiting", s, r.as_str())))
        .chain(summary.failed.iter().map(|(s, e)| ("FAILED", s, e.as_str())))
        .chain(summary.skipped.iter().map(|(s, r)| ("skipped", s, r.as_str())))
        .collect();
    let width = rows.iter().map(|r| r.1.as_str().len()).max().unwrap_or(0);
    for (state, step, why) in rows {
        out.push_str(format!("  {state:<12} {:<width$}  {why}", step.as_str()).trim_end());
        out.push('\n');
    }
    // The scheduled figures only when there are some: most runs schedule nothing.
    let scheduled = if summary.scheduled.is_empty() && summary.waiting.is_empty() {
        String::new()
    } else {
        format!(", {} scheduled, {} waiting for them", summary.scheduled.len(), summary.waiting.len())
    };
    out.push_str(&format!(
        "Apply: {} done, {} already done{scheduled}, {} failed, {} skipped.\n",
        summary.done.len(),
        summary.already_done.len(),
        summary.failed.len(),
        summary.skipped.len()
    ));
    out
}

/// What `golden apply --format json` prints when the run ends (`schema/apply.schema.json`): the
/// closing table as data.
#[derive(Debug, Default, serde::Serialize, schemars::JsonSchema)]
pub struct SummaryDocument {
    /// True when no step failed or was skipped and the run was not stopped: every step is
    /// done, was already done, is scheduled, or waits for a scheduled one.
    pub succeeded: bool,
    /// The run was stopped with Ctrl-C.
    pub interrupted: bool,
    pub done: Vec<StepId>,
    /// Steps whose work was found done (another run, or the world already as planned).
    pub already_done: Vec<StepId>,
    /// Pushes Horizon carries out at a start time ahead (their images published), with what
    /// each step said, the time in UTC included. Not done yet.
    pub scheduled: Vec<StepNote>,
    /// Steps not run because they depend on a scheduled push (a later wave, the retirement of
    /// the image it replaces), with why; the next apply after the start time runs them.
    pub waiting: Vec<StepNote>,
    /// Each failed step with its error.
    pub failed: Vec<StepNote>,
    /// Each step not run, with why (a dependency failed, the run was stopped).
    pub skipped: Vec<StepNote>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct StepNote {
    pub step: StepId,
    pub reason: String,
}

impl SummaryDocument {
    /// The document of a finished run.
    pub fn of(summary: &Summary) -> SummaryDocument {
        let notes = |list: &[(StepId, String)]| -> Vec<StepNote> {
            list.iter()
                .map(|(step, reason)| StepNote { step: step.clone(), reason: reason.clone() })
                .collect()
        };
        SummaryDocument {
            succeeded: summary.succeeded(),
            interrupted: summary.interrupted,
            done: summary.done.clone(),
            already_done: summary.already_done.clone(),
            scheduled: notes(&summary.scheduled),
            waiting: notes(&summary.waiting),
            failed: notes(&summary.failed),
            skipped: notes(&summary.skipped),
        }
    }

    /// The document of a run with nothing to do.
    pub fn nothing_to_do() -> SummaryDocument {
        SummaryDocument { succeeded: true, ..SummaryDocument::default() }
    }

    pub fn json(&self) -> String {
        // Step ids and strings only: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}
