//! `golden diff`: what changed in the desired state between two commits, in domain terms.
//!
//! Marker moves, versions added or removed, pools added, removed or rebound, sites added or
//! removed, and which pools at which site now follow a different version. Text that changed
//! (notes, descriptions) is shown as a word diff. Meant for pull-request comments next to the
//! plan, so it needs no network.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::Serialize;

use crate::desired::{DesiredState, Pool};
use crate::ids::{ImageName, MarkerName, PoolName, SiteName, VersionName};

/// The desired-state change between two commits; `golden diff --format json` prints it
/// (`schema/diff.schema.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Diff {
    pub sites_added: Vec<SiteName>,
    pub sites_removed: Vec<SiteName>,
    pub versions_added: Vec<(ImageName, VersionName)>,
    pub versions_removed: Vec<(ImageName, VersionName)>,
    /// A version whose source, parent or notes changed: `(image, version, what)`.
    pub versions_changed: Vec<(ImageName, VersionName, String)>,
    pub marker_moves: Vec<MarkerMove>,
    pub pools_added: Vec<PoolName>,
    pub pools_removed: Vec<PoolName>,
    /// Pools now bound to another image or marker: `(pool, before, after)` as `image:marker`.
    pub pools_rebound: Vec<(PoolName, String, String)>,
    /// Per site, the pools whose desired version changed: `(pool, before, after)`.
    pub affected: BTreeMap<SiteName, Vec<(PoolName, Option<String>, String)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MarkerMove {
    pub image: ImageName,
    pub marker: MarkerName,
    pub from: Option<VersionName>,
    pub to: Option<VersionName>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }
}

fn target(state: &DesiredState, pool: &Pool) -> Option<String> {
    let v = state.images.get(&pool.image)?.markers.get(&pool.marker)?;
    Some(format!("{}@{v}", pool.image))
}

/// A word-level diff of two texts: `[-removed-]{+added+}`.
fn word_diff(old: &str, new: &str) -> String {
    let diff = similar::TextDiff::from_words(old, new);
    let mut out = String::new();
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Equal => out.push_str(change.value()),
            similar::ChangeTag::Delete => {
                let _ = write!(out, "[-{}-]", change.value());
            }
            similar::ChangeTag::Insert => {
                let _ = write!(out, "{{+{}+}}", change.value());
            }
        }
    }
    out
}

/// The change from `old` to `new`.
pub fn diff(old: &DesiredState, new: &DesiredState) -> Diff {
    let mut d = Diff::default();
    let keys = |a: &BTreeSet<SiteName>, b: &BTreeSet<SiteName>| a.difference(b).cloned().collect::<Vec<_>>();
    let old_sites: BTreeSet<SiteName> = old.sites.keys().cloned().collect();
    let new_sites: BTreeSet<SiteName> = new.sites.keys().cloned().collect();
    d.sites_added = keys(&new_sites, &old_sites);
    d.sites_removed = keys(&old_sites, &new_sites);

    let images: BTreeSet<&ImageName> = old.images.keys().chain(new.images.keys()).collect();
    for image in images {
        let (o, n) = (old.images.get(image), new.images.get(image));
        let versions: BTreeSet<&VersionName> = o
            .iter()
            .flat_map(|i| i.versions.keys())
            .chain(n.iter().flat_map(|i| i.versions.keys()))
            .collect();
        for v in versions {
            match (o.and_then(|i| i.versions.get(v)), n.and_then(|i| i.versions.get(v))) {
                (None, Some(_)) => d.versions_added.push((image.clone(), v.clone())),
                (Some(_), None) => d.versions_removed.push((image.clone(), v.clone())),
                (Some(a), Some(b)) => {
                    if a.source != b.source {
                        let what = format!("source {} → {}", a.source.identity(), b.source.identity());
                        d.versions_changed.push((image.clone(), v.clone(), what));
                    }
                    if a.parent != b.parent {
                        let show = |p: &Option<VersionName>| {
                            p.as_ref().map_or("(none)".to_owned(), ToString::to_string)
                        };
                        let what = format!("parent {} → {}", show(&a.parent), show(&b.parent));
                        d.versions_changed.push((image.clone(), v.clone(), what));
                    }
                    if a.notes != b.notes {
                        let what = format!(
                            "notes: {}",
                            word_diff(
                                a.notes.as_deref().unwrap_or_default(),
                                b.notes.as_deref().unwrap_or_default()
                            )
                        );
                        d.versions_changed.push((image.clone(), v.clone(), what));
                    }
                }
                (None, None) => {}
            }
        }
        let markers: BTreeSet<&MarkerName> =
            o.iter().flat_map(|i| i.markers.keys()).chain(n.iter().flat_map(|i| i.markers.keys())).collect();
        for m in markers {
            let from = o.and_then(|i| i.markers.get(m)).cloned();
            let to = n.and_then(|i| i.markers.get(m)).cloned();
            if from != to {
                d.marker_moves.push(MarkerMove { image: image.clone(), marker: m.clone(), from, to });
            }
        }
    }

    let pools: BTreeSet<&PoolName> = old.pools.keys().chain(new.pools.keys()).collect();
    for name in pools {
        match (old.pools.get(name), new.pools.get(name)) {
            (None, Some(p)) => {
                d.pools_added.push(name.clone());
                if let Some(t) = target(new, p) {
                    d.affected.entry(p.site.clone()).or_default().push((name.clone(), None, t));
                }
            }
            (Some(_), None) => d.pools_removed.push(name.clone()),
            (Some(a), Some(b)) => {
                if (&a.image, &a.marker) != (&b.image, &b.marker) {
                    d.pools_rebound.push((
                        name.clone(),
                        format!("{}:{}", a.image, a.marker),
                        format!("{}:{}", b.image, b.marker),
                    ));
                }
                let (before, after) = (target(old, a), target(new, b));
                if let Some(after) = after.filter(|t| Some(t) != before.as_ref()) {
                    d.affected.entry(b.site.clone()).or_default().push((name.clone(), before, after));
                }
            }
            (None, None) => {}
        }
    }
    d
}

/// The diff for a terminal, or (with `markdown`) for a pull-request comment.
pub fn render(d: &Diff, markdown: bool) -> String {
    if d.is_empty() {
        return "No change to the desired state.\n".to_owned();
    }
    let mut out = String::new();
    let (h, item) = if markdown { ("#### ", "- ") } else { ("", "  ") };
    let mut section = |title: &str, lines: Vec<String>| {
        if !lines.is_empty() {
            let _ = writeln!(out, "{h}{title}");
            for l in lines {
                let _ = writeln!(out, "{item}{l}");
            }
            out.push('\n');
        }
    };
    let show = |v: &Option<VersionName>| v.as_ref().map_or("(none)".to_owned(), ToString::to_string);
    section(
        "marker moves",
        d.marker_moves
            .iter()
            .map(|m| format!("{} {}: {} → {}", m.image, m.marker, show(&m.from), show(&m.to)))
            .collect(),
    );
    section("versions added", d.versions_added.iter().map(|(i, v)| format!("{i}@{v}")).collect());
    section("versions removed", d.versions_removed.iter().map(|(i, v)| format!("{i}@{v}")).collect());
    section("versions changed", d.versions_changed.iter().map(|(i, v, w)| format!("{i}@{v}: {w}")).collect());
    section("sites added", d.sites_added.iter().map(ToString::to_string).collect());
    section("sites removed", d.sites_removed.iter().map(ToString::to_string).collect());
    section("pools added", d.pools_added.iter().map(ToString::to_string).collect());
    section("pools removed", d.pools_removed.iter().map(ToString::to_string).collect());
    section("pools rebound", d.pools_rebound.iter().map(|(p, a, b)| format!("{p}: {a} → {b}")).collect());
    let affected: Vec<String> = d
        .affected
        .iter()
        .flat_map(|(site, pools)| {
            pools.iter().map(move |(p, before, after)| {
                format!("{site}: {p} {} → {after}", before.as_deref().unwrap_or("(new)"))
            })
        })
        .collect();
    section("pools that will move", affected);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::load_dir;

    #[test]
    fn a_marker_move_names_the_pools_it_moves() {
        let dir = crate::repo_root().join("examples/quickstart");
        let old = load_dir(&dir).expect("quickstart");
        let mut new = old.clone();
        let image = new.images.get_mut(&ImageName::new("win11-ent")).expect("image");
        image.markers.insert(MarkerName::new("prod"), VersionName::new("2026.11"));
        let v = image.versions.get_mut(&VersionName::new("2026.11")).expect("version");
        v.notes = Some("November cumulative update, Teams 2.2".into());
        let d = diff(&old, &new);
        assert_eq!(d.marker_moves.len(), 1);
        let moved: Vec<&str> = d.affected.values().flatten().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(moved, ["eu-office", "hq-office", "us-callcenter", "us-office"]);
        let text = render(&d, false);
        assert!(text.contains("win11-ent prod: 2026.10 → 2026.11"), "{text}");
        assert!(text.contains("notes: November cumulative update, Teams [-2.1-]{+2.2+}"), "{text}");
        assert!(render(&d, true).starts_with("#### marker moves\n- win11-ent prod"));
        assert!(diff(&old, &old).is_empty());
    }
}
