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
        Action::Push {
            pool,
            horizon_name,
            pool_kind,
            image,
            marker,
            version,
            logoff,
            start_time,
            canary,
            blast,
            ..
        } => {
            let logoff = match logoff {
                crate::desired::Logoff::Wait => "wait for logoff",
                crate::desired::Logoff::Force => "force logoff",
            };
            let mut text =
                format!("{pool_kind} {horizon_name} ({pool}) to {image}@{version} [{marker}], {logoff}");
            if let Some(at) = start_time {
                let _ = write!(text, ", scheduled for {}", time(*at));
            }
            if let Some(n) = canary {
                let _ = write!(text, ", {} first", count(*n as usize, "canary machine", "canary machines"));
            }
            if let Some(b) = blast {
                let _ = write!(
                    text,
                    " ({}, {})",
                    count(b.machines as usize, "machine", "machines"),
                    count(b.sessions as usize, "session", "sessions")
                );
            }
            text
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

/// An instant of the plan (epoch ms) as people read it: `2026-12-05 01:00 UTC`.
pub fn time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => crate::desired::rollout::utc(t),
        Err(_) => format!("{ms} ms after the epoch"),
    }
}

fn summary(plan: &Plan) -> String {
    let held = match plan.held.len() {
        0 => String::new(),
        n => format!(" {} held back (see below).", count(n, "push", "pushes")),
    };
    if !plan.has_changes() {
        if !plan.held.is_empty() {
            return format!("No changes now:{held}");
        }
        return "No changes: the live state matches the desired state.".to_owned();
    }
    // Step kinds are verbs ("2 deploy"), the same in the singular and the plural.
    let parts: Vec<String> = plan.counts().iter().map(|(verb, n)| format!("{n} {verb}")).collect();
    format!("Plan: {} ({}).{held}", parts.join(", "), count(plan.steps.len(), "step", "steps"))
}

/// `wave 1: 3 pools, 420 machines, 188 sessions`.
fn blast_line(label: &str, b: &super::Blast) -> String {
    if b.unknown == b.pools {
        return format!(
            "{label}: {} (Horizon gave no machine or session figures)",
            count(b.pools as usize, "pool", "pools")
        );
    }
    let mut line = format!(
        "{label}: {}, {}, {}",
        count(b.pools as usize, "pool", "pools"),
        count(b.machines as usize, "machine", "machines"),
        count(b.sessions as usize, "session", "sessions")
    );
    if b.unknown > 0 {
        let _ =
            write!(line, " ({} without figures from Horizon)", count(b.unknown as usize, "pool", "pools"));
    }
    line
}

/// The blast radius of the pushes, per wave then per site, one line each.
fn blast_lines(plan: &Plan) -> Vec<String> {
    let r = &plan.blast_radius;
    if !r.waves.is_empty() && r.waves.values().all(|b| b.unknown == b.pools) {
        return vec!["Horizon gave no machine or session figures for the pools pushed".to_owned()];
    }
    let waves = r.waves.iter().map(|(w, b)| blast_line(&format!("wave {w}"), b));
    let sites = r.sites.iter().map(|(s, b)| blast_line(&format!("site {s}"), b));
    waves.chain(sites).collect()
}

/// A rule check in one line: `[policy.prod] of win11 → 2026.11 (after pilot, soak 3d): ...`.
fn rule_line(c: &super::PolicyCheck) -> String {
    let state = match (c.holds, &c.overridden) {
        (true, _) => "holds".to_owned(),
        (false, Some(reason)) => format!("does not hold; overridden: {reason}"),
        (false, None) => "does not hold".to_owned(),
    };
    let mut line = format!(
        "[policy.{}] of {} → {} (after {}, soak {}): {state}",
        c.marker, c.image, c.version, c.after, c.soak
    );
    for e in &c.evidence {
        let _ = write!(line, "; {e}");
    }
    for m in &c.missing {
        let _ = write!(line, "; missing: {m}");
    }
    if let (false, Some(at)) = (c.holds, c.holds_at) {
        let _ = write!(line, "; holds from {}", time(at));
    }
    line
}

fn held_line(h: &super::Held) -> String {
    format!(
        "{}/{} (wave {}) → {}@{} [{}]: {}",
        h.site, h.pool, h.wave, h.image, h.version, h.marker, h.reason
    )
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
    if !plan.policy.is_empty() {
        let _ = writeln!(out, "{bold}promotion rules{bold:#}");
        for check in &plan.policy {
            let _ = writeln!(out, "  {}", rule_line(check));
        }
        out.push('\n');
    }
    if !plan.held.is_empty() {
        let _ = writeln!(out, "{bold}held back{bold:#}");
        for h in &plan.held {
            let _ = writeln!(out, "  {dim}={dim:#} {}", held_line(h));
        }
        out.push('\n');
    }
    let blast = blast_lines(plan);
    if !blast.is_empty() {
        let _ = writeln!(out, "{bold}blast radius{bold:#}");
        for line in blast {
            let _ = writeln!(out, "  {line}");
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
    let blast = blast_lines(plan);
    if !blast.is_empty() {
        let _ = writeln!(out, "**Blast radius**: {}.\n", blast.join("; "));
    }
    if !plan.policy.is_empty() {
        let _ = writeln!(out, "**Promotion rules**\n");
        for check in &plan.policy {
            let mark = if check.holds {
                "✅"
            } else if check.overridden.is_some() {
                "⚠️"
            } else {
                "⏸️"
            };
            let _ = writeln!(out, "- {mark} {}", cell(&rule_line(check)));
        }
        out.push('\n');
    }
    if !plan.held.is_empty() {
        let _ = writeln!(out, "**Held back**\n\n| pool | wave | to | why |\n|---|---:|---|---|");
        for h in &plan.held {
            let _ = writeln!(
                out,
                "| {}/{} | {} | {}@{} [{}] | {} |",
                h.site,
                h.pool,
                h.wave,
                h.image,
                h.version,
                h.marker,
                cell(&h.reason)
            );
        }
        out.push('\n');
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
