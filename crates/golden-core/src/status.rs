//! `golden status`: where every version has copies, and what every pool runs against what it
//! should run. A pure view of (desired, live, git history), rendered as text, markdown or JSON.
//!
//! Copies are shown per site (a base VM and its snapshot in the site's datacenter) and per
//! library (one per vCenter, shared by the sites in that vCenter).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;

use crate::desired::DesiredState;
use crate::ids::{HorizonName, SiteName};
use crate::live::{ImageRef, LiveState, SiteLive, VcenterId};
use crate::plan::PlanOptions;
use crate::plan::history::{Provenance, provenance};

/// A version's presence at one site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// No base VM.
    Missing,
    /// A base VM and its snapshot (ready for pools).
    Deployed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VersionRow {
    pub image: String,
    pub version: String,
    pub markers: Vec<String>,
    /// False for copies golden owns of a version no longer in the repository.
    pub in_repo: bool,
    /// The base VM at each site read.
    pub sites: BTreeMap<SiteName, CopyState>,
    /// The libraries (by vCenter instance UUID, see [`Status::libraries`]) holding an item of it.
    pub libraries: Vec<VcenterId>,
}

/// One vCenter's library and the sites that share it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct LibraryRow {
    pub vcenter: VcenterId,
    pub sites: Vec<SiteName>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PoolRow {
    pub site: SiteName,
    pub horizon_name: HorizonName,
    /// The binding in the repository; `None` for a pool golden does not manage.
    pub pool: Option<String>,
    pub current: String,
    pub pending: Option<String>,
    /// When Horizon starts the pending push (epoch ms, UTC), when it is scheduled for later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<i64>,
    pub desired: Option<String>,
    pub state: PoolState,
    /// Pushed outside golden (`state` is `drift`); kept for readers of the JSON.
    pub drift: bool,
}

/// Where a bound pool stands against its desired version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    /// Not bound in the repository.
    Unmanaged,
    /// Runs its desired version.
    InSync,
    /// Horizon is pushing its desired version.
    Pushing,
    /// Horizon has a push of its desired version scheduled for a window start.
    Scheduled,
    /// golden's next apply pushes it: a marker moved, the pool was bound anew, golden has not
    /// pushed it yet, or a push failed.
    Behind,
    /// Runs a version none of its markers ever pointed at in git history: pushed outside golden.
    Drift,
}

/// A VM whose annotation says it is golden's copy of a version, without golden's tag: a clone
/// of a base VM (vSphere copies notes, not tags) or notes written by hand. golden never pushes,
/// counts or deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ClaimRow {
    pub site: SiteName,
    pub vm: String,
    pub id: String,
    /// The version its annotation claims, `image@version`.
    pub claims: String,
}

/// The status view; `golden status --format json` prints it (`schema/status.schema.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Status {
    pub versions: Vec<VersionRow>,
    /// Every vCenter read, with the sites in it: its library is theirs.
    pub libraries: Vec<LibraryRow>,
    pub pools: Vec<PoolRow>,
    /// VMs that claim to be golden's in their annotation only.
    /// Absent when there are none (`default` keeps it optional in the schema).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untagged_claims: Vec<ClaimRow>,
}

/// What to do about an untagged claim, as `golden status` says it.
pub const CLAIM_FIX: &str = "golden ignores these VMs: clear the golden JSON from the notes of a clone; a base VM golden deployed but did not tag is adopted by the next apply";

fn image_name(site: &SiteLive, image: &ImageRef) -> String {
    match site.vms.get(&image.vm).and_then(|v| v.meta.as_ref()) {
        Some(m) => format!("{}@{}", m.image, m.version),
        None => format!("not golden's ({} @ {})", image.vm, image.snapshot),
    }
}

/// The status view of `live` against `desired`.
pub fn status(desired: &DesiredState, live: &LiveState, options: &PlanOptions) -> Status {
    let missing = || live.sites.keys().map(|s| (s.clone(), CopyState::Missing)).collect();
    let mut versions: BTreeMap<(String, String), VersionRow> = BTreeMap::new();
    for image in desired.images.values() {
        for v in image.versions.keys() {
            let markers = image.markers.iter().filter(|(_, t)| *t == v).map(|(m, _)| m.to_string()).collect();
            versions.insert(
                (image.name.to_string(), v.to_string()),
                VersionRow {
                    image: image.name.to_string(),
                    version: v.to_string(),
                    markers,
                    in_repo: true,
                    sites: missing(),
                    libraries: Vec::new(),
                },
            );
        }
    }
    // A row for each version golden has copies of, in the repository or not.
    fn row<'a>(
        versions: &'a mut BTreeMap<(String, String), VersionRow>,
        meta: &crate::live::GoldenMeta,
        missing: impl Fn() -> BTreeMap<SiteName, CopyState>,
    ) -> &'a mut VersionRow {
        versions.entry((meta.image.to_string(), meta.version.to_string())).or_insert_with(|| VersionRow {
            image: meta.image.to_string(),
            version: meta.version.to_string(),
            markers: Vec::new(),
            in_repo: false,
            sites: missing(),
            libraries: Vec::new(),
        })
    }
    for (site, s) in &live.sites {
        for vm in s.vms.values().filter(|v| !v.snapshots.is_empty()) {
            if let Some(meta) = &vm.meta {
                row(&mut versions, meta, missing).sites.insert(site.clone(), CopyState::Deployed);
            }
        }
    }
    for (vcenter, v) in &live.vcenters {
        for meta in v.items.values().filter_map(|i| i.meta.as_ref()) {
            let libraries = &mut row(&mut versions, meta, missing).libraries;
            if !libraries.contains(vcenter) {
                libraries.push(vcenter.clone());
            }
        }
    }
    let libraries = live
        .vcenters
        .keys()
        .map(|vcenter| LibraryRow {
            vcenter: vcenter.clone(),
            sites: live.sites.iter().filter(|(_, s)| &s.vcenter == vcenter).map(|(n, _)| n.clone()).collect(),
        })
        .collect();

    let mut pools = Vec::new();
    for (site, s) in &live.sites {
        for lp in s.pools.values() {
            let bound = desired.pools.values().find(|p| &p.site == site && p.horizon_name == lp.name);
            let current = lp.current.as_ref().map_or("none".to_owned(), |c| image_name(s, c));
            let scheduled = lp.pending.as_ref().and_then(|p| scheduled_for(p, options));
            let pending = lp.pending.as_ref().map(|p| {
                // Horizon's own name of the state, e.g. PUBLISHING.
                let state = serde_json::to_value(p.state).ok().and_then(|v| v.as_str().map(str::to_owned));
                let mut text = format!("{} {}", image_name(s, &p.image), state.unwrap_or_default());
                if let Some(progress) = p.progress {
                    let _ = write!(text, " {progress}%");
                }
                if let Some(e) = &p.error {
                    let _ = write!(text, ": {e}");
                }
                if let Some(at) = scheduled {
                    let _ = write!(text, ", scheduled for {}", crate::plan::render::time(at));
                }
                text
            });
            let desired_version = bound.and_then(|p| {
                let v = desired.images.get(&p.image)?.markers.get(&p.marker)?;
                Some(format!("{}@{v}", p.image))
            });
            let moving_there = lp.pending.as_ref().is_some_and(|p| {
                Some(image_name(s, &p.image)) == desired_version
                    && !matches!(p.state, crate::live::PendingState::Failed)
            });
            let state = match bound {
                None => PoolState::Unmanaged,
                Some(_) if desired_version.as_ref() == Some(&current) => PoolState::InSync,
                Some(_) if moving_there && scheduled.is_some() => PoolState::Scheduled,
                Some(_) if moving_there => PoolState::Pushing,
                Some(pool) => {
                    let runs = lp.current.as_ref().and_then(|c| s.version_of(c));
                    let drift = runs.is_some_and(|key| provenance(pool, &key, options) == Provenance::Drift);
                    if drift { PoolState::Drift } else { PoolState::Behind }
                }
            };
            pools.push(PoolRow {
                site: site.clone(),
                horizon_name: lp.name.clone(),
                pool: bound.map(|p| p.name.to_string()),
                current,
                pending,
                scheduled_for: scheduled,
                desired: desired_version,
                state,
                drift: state == PoolState::Drift,
            });
        }
    }
    let untagged_claims = live
        .sites
        .iter()
        .flat_map(|(site, s)| s.vms.values().map(move |vm| (site, vm)))
        .filter_map(|(site, vm)| {
            let claim = vm.claim.as_ref()?;
            Some(ClaimRow {
                site: site.clone(),
                vm: vm.name.clone(),
                id: vm.id.to_string(),
                claims: format!("{}@{}", claim.image, claim.version),
            })
        })
        .collect();
    Status { versions: versions.into_values().collect(), libraries, pools, untagged_claims }
}

fn claim_rows(status: &Status) -> Vec<Vec<String>> {
    let rows = status.untagged_claims.iter();
    rows.map(|c| vec![c.site.to_string(), c.vm.clone(), c.id.clone(), c.claims.clone()]).collect()
}

const CLAIM_HEADER: [&str; 4] = ["site", "vm", "id", "annotation claims"];

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn copy_cell(state: CopyState) -> &'static str {
    match state {
        CopyState::Missing => "-",
        CopyState::Deployed => "deployed",
    }
}

/// The header and rows of the copies table, and the rows of the pools table, shared by the
/// text and markdown renderings. The copies table has a column per site (its base VM) and one
/// per library (named by the sites that share it).
fn rows(status: &Status) -> (Vec<String>, Vec<Vec<String>>, Vec<Vec<String>>) {
    let sites: Vec<&SiteName> = status.versions.first().map(|v| v.sites.keys().collect()).unwrap_or_default();
    let mut header: Vec<String> = vec!["version".into(), "markers".into()];
    header.extend(sites.iter().map(|s| s.to_string()));
    header.extend(status.libraries.iter().map(|l| {
        let names: Vec<&str> = l.sites.iter().map(SiteName::as_str).collect();
        format!("library {}", names.join("+"))
    }));
    let versions = status
        .versions
        .iter()
        .map(|v| {
            let mut row = vec![
                format!("{}@{}{}", v.image, v.version, if v.in_repo { "" } else { " (not in repo)" }),
                v.markers.join(","),
            ];
            row.extend(v.sites.values().map(|s| copy_cell(*s).to_owned()));
            row.extend(
                status
                    .libraries
                    .iter()
                    .map(|l| if v.libraries.contains(&l.vcenter) { "item" } else { "-" }.to_owned()),
            );
            row
        })
        .collect();
    let pools = status
        .pools
        .iter()
        .map(|p| {
            vec![
                p.site.to_string(),
                p.horizon_name.to_string(),
                p.pool.clone().unwrap_or_else(|| "(not managed)".to_owned()),
                p.current.clone(),
                p.pending.clone().unwrap_or_else(|| "-".to_owned()),
                p.desired.clone().unwrap_or_else(|| "-".to_owned()),
                match p.state {
                    PoolState::Unmanaged | PoolState::InSync => String::new(),
                    PoolState::Pushing => "pushing".to_owned(),
                    PoolState::Scheduled => "scheduled".to_owned(),
                    PoolState::Behind => "behind".to_owned(),
                    PoolState::Drift => "DRIFT".to_owned(),
                },
            ]
        })
        .collect();
    (header, versions, pools)
}

const POOL_HEADER: [&str; 7] = ["site", "horizon pool", "binding", "current", "pending", "desired", ""];

pub fn text(status: &Status) -> String {
    let (header, versions, pools) = rows(status);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let count = |state: PoolState| status.pools.iter().filter(|p| p.state == state).count();
    let claims = match status.untagged_claims.is_empty() {
        true => String::new(),
        false => format!(
            "\nuntagged claims (annotation says golden, no golden tag)\n{}  {CLAIM_FIX}\n",
            table(&CLAIM_HEADER, &claim_rows(status))
        ),
    };
    format!(
        "copies\n{}\npools\n{}\n{} pools: {} in sync, {} pushing, {} scheduled, {} behind, {} drifted, {} not managed\n{claims}",
        table(&header, &versions),
        table(&POOL_HEADER, &pools),
        status.pools.len(),
        count(PoolState::InSync),
        count(PoolState::Pushing),
        count(PoolState::Scheduled),
        count(PoolState::Behind),
        count(PoolState::Drift),
        count(PoolState::Unmanaged),
    )
}

pub fn markdown(status: &Status) -> String {
    let (header, versions, pools) = rows(status);
    let md = |header: Vec<&str>, rows: &[Vec<String>]| -> String {
        let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    };
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let claims = match status.untagged_claims.is_empty() {
        true => String::new(),
        false => format!(
            "\n#### untagged claims\n\n{}\n{CLAIM_FIX}\n",
            md(CLAIM_HEADER.to_vec(), &claim_rows(status))
        ),
    };
    format!(
        "### golden status\n\n#### copies\n\n{}\n#### pools\n\n{}{claims}",
        md(header, &versions),
        md(POOL_HEADER.to_vec(), &pools)
    )
}

pub fn json(status: &Status) -> String {
    let mut text = serde_json::to_string_pretty(status).unwrap_or_default();
    text.push('\n');
    text
}

/// When Horizon starts a pending push it holds for later: its start time, if after the
/// options' clock.
fn scheduled_for(pending: &crate::live::PendingImage, options: &PlanOptions) -> Option<i64> {
    pending.start_time.filter(|ms| *ms > options.now.as_millisecond())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::plan::tests::fixtures;

    /// The state `golden status` gives the pool `horizon_name` at `site` of a planner fixture.
    fn state_in(fixture: &str, site: &str, horizon_name: &str) -> PoolState {
        let dir = crate::repo_root().join("tests/fixtures/plan").join(fixture);
        let f = fixtures::read(&dir);
        let view = status(&f.desired, &f.live, &f.options);
        let row =
            view.pools.iter().find(|p| p.site.as_str() == site && p.horizon_name.as_str() == horizon_name);
        row.unwrap_or_else(|| panic!("{fixture}: no pool {horizon_name} at {site}")).state
    }

    /// Sites of one vCenter share a library: status shows it once, named by its sites, beside
    /// each site's own base VMs.
    #[test]
    fn copies_are_shown_per_site_and_per_library() {
        let dir = crate::repo_root().join("tests/fixtures/plan/sites-sharing-a-vcenter");
        let f = fixtures::read(&dir);
        let view = status(&f.desired, &f.live, &f.options);
        let libraries: Vec<(&str, Vec<&str>)> = view
            .libraries
            .iter()
            .map(|l| (l.vcenter.as_str(), l.sites.iter().map(SiteName::as_str).collect()))
            .collect();
        assert_eq!(libraries, [("uuid-hq", vec!["hq"]), ("uuid-shared", vec!["eu", "us"])]);
        let v10 = view.versions.iter().find(|v| v.version == "2026.10").expect("2026.10");
        let held: Vec<&str> = v10.libraries.iter().map(VcenterId::as_str).collect();
        assert_eq!(held, ["uuid-hq", "uuid-shared"]);
        let at = |site: &str| v10.sites[&SiteName::new(site)];
        assert_eq!(
            (at("eu"), at("hq"), at("us")),
            (CopyState::Deployed, CopyState::Missing, CopyState::Deployed)
        );
        let text = text(&view);
        let row = text.lines().find(|l| l.contains("win11-ent@2026.11")).expect("a row for 2026.11");
        assert!(text.contains("library eu+us"), "{text}");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["win11-ent@2026.11", "prod", "-", "-", "-", "item", "-"]
        );
    }

    #[test]
    fn drift_is_claimed_only_on_evidence_from_git_history() {
        assert_eq!(state_in("drifted-pool", "hq", "Office-IC"), PoolState::Drift);
        // A moved marker, a first deploy, a pool bound anew: golden's next apply pushes them.
        assert_eq!(state_in("marker-move", "hq", "Office-IC"), PoolState::Behind);
        assert_eq!(state_in("marker-moved-without-history", "hq", "Office-IC"), PoolState::Behind);
        assert_eq!(state_in("first-deploy", "hq", "Office-IC"), PoolState::Behind);
        assert_eq!(state_in("push-in-progress", "hq", "Office-IC"), PoolState::Pushing);
        assert_eq!(state_in("push-scheduled-in-horizon", "hq", "Office-IC"), PoolState::Scheduled);
    }
}
