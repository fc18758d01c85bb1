//! Renderings of a plan: text for terminals, markdown for pull-request comments, JSON for
//! machines. Shared by the CLI and the tests; the model knows nothing of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::{Action, Plan, Step};
use crate::desired::Source;
use crate::ids::SiteName;

/// `+` creates, `~` changes, `-` removes.
fn symbol(action: &Action) -> (char, AnsiColor) {
    match action {
        Action::Publish { .. } | Action::Replicate { .. } | Action::Deploy { .. } => ('+', AnsiColor::Green),
        Action::Adopt { .. } => ('~', AnsiColor::Cyan),
        Action::Push { .. } => ('~', AnsiColor::Yellow),
        Action::Retire { .. } => ('-', AnsiColor::Red),
    }
}

/// What a step does, in one line.
pub fn describe(step: &Step) -> String {
    match &step.action {
        Action::Publish { image, version, source } => {
            let from = match source {
                Source::Vm { vm, snapshot: Some(s) } => format!("capture VM {vm} at snapshot {s}"),
                Source::Vm { vm, snapshot: None } => format!("capture VM {vm}"),
                Source::LibraryItem { name } => format!("adopt library item {name}"),
            };
            format!("{image}@{version} ({from})")
        }
        Action::Replicate { image, version, from } => format!("{image}@{version} from {from}"),
        Action::Deploy { image, version } => format!("{image}@{version} base VM and snapshot"),
        Action::Adopt { image, version, vm, snapshot } => {
            format!("{image}@{version}: take VM {vm} at snapshot {snapshot}, which pools run, as its base VM")
        }
        Action::Push { pool, horizon_name, pool_kind, image, marker, version, logoff, .. } => {
            let logoff = match logoff {
                crate::desired::Logoff::Wait => "wait for logoff",
                crate::desired::Logoff::Force => "force logoff",
            };
            format!("{pool_kind} {horizon_name} ({pool}) to {image}@{version} [{marker}], {logoff}")
        }
        Action::Retire { image, version, items, vms } => {
            // A subscribed library's items are not deleted: name only what goes.
            let mut what = Vec::new();
            if !items.is_empty() {
                what.push(count(items.len(), "library item", "library items"));
            }
            if !vms.is_empty() {
                what.push(count(vms.len(), "VM", "VMs"));
            }
            format!("{image}@{version} ({})", what.join(", "))
        }
    }
}

/// `1 VM`, `2 VMs`.
/// `1 step`, `2 steps`: a number and the noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(plan: &Plan) -> String {
    if !plan.has_changes() {
        return "No changes: the live state matches the desired state.".to_owned();
    }
    // Step kinds are verbs ("2 deploy"), the same in the singular and the plural.
    let parts: Vec<String> = plan.counts().iter().map(|(verb, n)| format!("{n} {verb}")).collect();
    format!("Plan: {} ({}).", parts.join(", "), count(plan.steps.len(), "step", "steps"))
}

fn by_site(plan: &Plan) -> BTreeMap<&SiteName, Vec<&Step>> {
    let mut out: BTreeMap<&SiteName, Vec<&Step>> = BTreeMap::new();
    for step in &plan.steps {
        out.entry(&step.site).or_default().push(step);
    }
    out
}

/// The terminal rendering; styled, and plain when the stream strips styles.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    if let Some(commit) = &plan.desired_commit {
        let _ = writeln!(out, "desired state at commit {}\n", commit.short());
    }
    for (site, steps) in by_site(plan) {
        let _ = writeln!(out, "{bold}{site}{bold:#}");
        let mut wave = None;
        for step in steps {
            if let Action::Push { wave: w, .. } = &step.action {
                if wave != Some(*w) {
                    let _ = writeln!(out, "  {dim}wave {w}{dim:#}");
                    wave = Some(*w);
                }
            }
            let (sym, color) = symbol(&step.action);
            let style = Style::new().fg_color(Some(color.into()));
            let _ = writeln!(out, "  {style}{sym} {:<9}{style:#} {}", step.action.verb(), describe(step));
            let _ = writeln!(out, "      {dim}why: {}{dim:#}", step.reason);
        }
        out.push('\n');
    }
    for warning in &plan.warnings {
        let style = Style::new().fg_color(Some(AnsiColor::Yellow.into()));
        let _ = writeln!(out, "{style}warning{style:#}: {warning}");
    }
    let _ = writeln!(out, "{}", summary(plan));
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The pull-request comment: a summary table, then the steps of each site, collapsible.
pub fn markdown(plan: &Plan) -> String {
    let mut out = String::from("### golden plan\n\n");
    if let Some(commit) = &plan.desired_commit {
        let _ = writeln!(out, "Desired state at `{}`.\n", commit.short());
    }
    let _ = writeln!(out, "{}\n", summary(plan));
    if plan.has_changes() {
        let mut kinds = vec!["publish", "replicate", "deploy", "push", "retire"];
        if plan.steps.iter().any(|s| matches!(s.action, Action::Adopt { .. })) {
            kinds.insert(2, "adopt");
        }
        let _ = writeln!(out, "| site | {} |", kinds.join(" | "));
        let _ = writeln!(out, "|---|{}", "---:|".repeat(kinds.len()));
        for (site, steps) in by_site(plan) {
            let counts: Vec<String> = kinds
                .iter()
                .map(|k| steps.iter().filter(|s| s.action.verb() == *k).count().to_string())
                .collect();
            let _ = writeln!(out, "| {site} | {} |", counts.join(" | "));
        }
        out.push('\n');
        for (site, steps) in by_site(plan) {
            let n = count(steps.len(), "step", "steps");
            let _ = writeln!(out, "<details><summary><b>{site}</b>: {n}</summary>\n");
            let _ = writeln!(out, "| | step | what | why |\n|---|---|---|---|");
            for step in steps {
                let (sym, _) = symbol(&step.action);
                let verb = match &step.action {
                    Action::Push { wave, .. } => format!("push (wave {wave})"),
                    other => other.verb().to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| `{sym}` | {verb} | {} | {} |",
                    cell(&describe(step)),
                    cell(&step.reason)
                );
            }
            out.push_str("\n</details>\n\n");
        }
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "> [!WARNING]\n> {}\n", cell(warning));
    }
    out
}

/// The plan document, pretty-printed.
pub fn json(plan: &Plan) -> String {
    // Serializing plain data with string keys cannot fail.
    let mut text = serde_json::to_string_pretty(plan).unwrap_or_default();
    text.push('\n');
    text
}

/// For a pull-request comment: the version tree of each image the plan pushes pools of (a
/// marker moved, or pools were bound anew), as a Mermaid `graph LR`: versions as nodes labelled
/// with their markers, parents as `v1 --> v2` edges, and the versions pushed to drawn bold.
/// Empty when the plan pushes nothing. The plan names images and versions; the tree is the
/// desired state's, so the CLI passes both.
pub fn version_trees(plan: &Plan, desired: &crate::desired::DesiredState) -> String {
    let mut pushed: BTreeMap<&crate::ids::ImageName, std::collections::BTreeSet<&crate::ids::VersionName>> =
        BTreeMap::new();
    for step in &plan.steps {
        if let Action::Push { image, version, .. } = &step.action {
            pushed.entry(image).or_default().insert(version);
        }
    }
    let mut out = String::new();
    for (name, targets) in pushed {
        let Some(image) = desired.images.get(name) else { continue };
        // Node ids by position: version names hold dots and dashes Mermaid ids cannot.
        let ids: BTreeMap<&crate::ids::VersionName, String> =
            image.versions.keys().enumerate().map(|(i, v)| (v, format!("v{}", i + 1))).collect();
        let _ = writeln!(out, "#### Version tree of `{name}`\n\n```mermaid\ngraph LR");
        for (version, id) in &ids {
            let markers: Vec<&str> =
                image.markers.iter().filter(|(_, t)| t == version).map(|(m, _)| m.as_str()).collect();
            let label = match markers.is_empty() {
                true => version.to_string(),
                false => format!("{version}<br/>{}", markers.join(", ")),
            };
            let _ = writeln!(out, "  {id}[\"{}\"]", label.replace('"', "#quot;"));
        }
        for (version, v) in &image.versions {
            let parent =
                v.parent.as_ref().and_then(|p| ids.get(p)).filter(|_| v.parent.as_ref() != Some(version));
            if let Some(parent) = parent {
                let _ = writeln!(out, "  {parent} --> {}", ids[version]);
            }
        }
        let bold: Vec<&str> = targets.iter().filter_map(|v| ids.get(v)).map(String::as_str).collect();
        if !bold.is_empty() {
            let _ = writeln!(out, "  classDef pushed stroke-width:3px\n  class {} pushed", bold.join(","));
        }
        out.push_str("```\n\n");
    }
    out
}
