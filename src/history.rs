//! Image history from git: when each version was added and every marker move, by whom.
//!
//! Walks the first-parent history of a ref (the line of merges into main) from the oldest
//! commit forward, and re-reads an image file only when its blob changed, so a repository with
//! tens of thousands of commits is read in well under a second. The same walk gives the planner
//! its rollback window (the earlier targets of each marker) and the earlier bindings of each
//! pool, with which it tells a pool golden moved from one pushed outside golden.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Sort};
use jiff::Timestamp;
use schemars::JsonSchema;
use serde::Serialize;

use crate::desired::files::{ImageFile, PoolsFile};
use crate::git::GitError;
use crate::ids::{HorizonName, ImageName, MarkerName, SiteName, VersionName};
use crate::plan::history::{EarlierBinding, PoolKey, Stint};

/// Who changed something, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Change {
    pub commit: String,
    pub author: String,
    /// Seconds since the Unix epoch (commit time).
    pub time: i64,
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MarkerMove {
    pub marker: MarkerName,
    /// `None` when the marker was created.
    pub from: Option<VersionName>,
    /// `None` when the marker was removed.
    pub to: Option<VersionName>,
    pub change: Change,
}

/// A version: its parent (as last written) and the change that added it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct VersionAdded {
    pub parent: Option<VersionName>,
    pub added: Change,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ImageHistory {
    pub description: Option<String>,
    pub versions: BTreeMap<VersionName, VersionAdded>,
    /// Marker moves, oldest first.
    pub moves: Vec<MarkerMove>,
    /// Markers as of the newest commit read.
    pub markers: BTreeMap<MarkerName, VersionName>,
}

/// The history of every image; `golden history --format json` prints it
/// (`schema/history.schema.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct History {
    pub images: BTreeMap<ImageName, ImageHistory>,
    /// The bindings of each pool or farm (by site and Horizon name), oldest first: the image
    /// and marker it was bound to after each change of `pools/*.toml` that changed it.
    #[serde(skip)]
    pub pools: BTreeMap<PoolKey, Vec<(ImageName, MarkerName)>>,
}

impl History {
    /// Earlier targets of each marker, most recent first, without repeats and without the
    /// current target: the planner's rollback window.
    pub fn marker_history(&self) -> BTreeMap<(ImageName, MarkerName), Vec<VersionName>> {
        let mut out = BTreeMap::new();
        for (image, h) in &self.images {
            let mut per_marker: BTreeMap<&MarkerName, Vec<VersionName>> = BTreeMap::new();
            for m in h.moves.iter().rev() {
                if let Some(from) = &m.from {
                    let list = per_marker.entry(&m.marker).or_default();
                    let current = h.markers.get(&m.marker);
                    if Some(from) != current && !list.contains(from) {
                        list.push(from.clone());
                    }
                }
            }
            for (marker, list) in per_marker {
                out.insert((image.clone(), marker.clone()), list);
            }
        }
        out
    }
}

impl History {
    /// The rollback window for `desired`, which may be ahead of the history read (an
    /// uncommitted marker move): each marker's earlier targets, most recent first, with the
    /// committed target first when the desired state moved away from it.
    pub fn window_for(
        &self,
        desired: &crate::desired::DesiredState,
    ) -> BTreeMap<(ImageName, MarkerName), Vec<VersionName>> {
        let mut out = BTreeMap::new();
        for (name, image) in &desired.images {
            let Some(h) = self.images.get(name) else { continue };
            for (marker, target) in &image.markers {
                let mut list: Vec<VersionName> = Vec::new();
                if let Some(committed) = h.markers.get(marker).filter(|c| *c != target) {
                    list.push(committed.clone());
                }
                for m in h.moves.iter().rev().filter(|m| &m.marker == marker) {
                    if let Some(from) = m.from.as_ref().filter(|f| *f != target && !list.contains(f)) {
                        list.push(from.clone());
                    }
                }
                if !list.is_empty() {
                    out.insert((name.clone(), marker.clone()), list);
                }
            }
        }
        out
    }
}

impl History {
    /// When each marker pointed at which version, oldest first: the evidence of promotion
    /// rules. Times are those of the commits on the first-parent line that moved the marker,
    /// so a change merged through a pull request counts from its merge.
    pub fn marker_stints(&self) -> BTreeMap<(ImageName, MarkerName), Vec<Stint>> {
        let mut out: BTreeMap<(ImageName, MarkerName), Vec<Stint>> = BTreeMap::new();
        for (image, h) in &self.images {
            for m in &h.moves {
                let Ok(at) = Timestamp::from_second(m.change.time) else { continue };
                let stints = out.entry((image.clone(), m.marker.clone())).or_default();
                if let Some(open) = stints.last_mut().filter(|s| s.until.is_none()) {
                    open.until = Some(at);
                }
                if let Some(to) = &m.to {
                    stints.push(Stint { version: to.clone(), since: at, until: None });
                }
            }
        }
        out
    }

    /// Every version `marker` of `image` pointed at in the history read.
    fn targets(&self, image: &ImageName, marker: &MarkerName) -> BTreeSet<VersionName> {
        let Some(h) = self.images.get(image) else { return BTreeSet::new() };
        let moves = h.moves.iter().filter(|m| &m.marker == marker);
        moves.flat_map(|m| m.from.iter().chain(&m.to)).cloned().collect()
    }

    /// The earlier bindings of each pool of `desired`, which may be ahead of the history read
    /// (an uncommitted change): most recent first, the committed binding first when the desired
    /// state changed it, without the current binding, each with every version its marker
    /// pointed at. Pools that were always bound as they are now have no entry.
    pub fn pool_history_for(
        &self,
        desired: &crate::desired::DesiredState,
    ) -> BTreeMap<PoolKey, Vec<EarlierBinding>> {
        let mut out = BTreeMap::new();
        for pool in desired.pools.values() {
            let key = (pool.site.clone(), pool.horizon_name.clone());
            let Some(bindings) = self.pools.get(&key) else { continue };
            let mut earlier: Vec<EarlierBinding> = Vec::new();
            for (image, marker) in bindings.iter().rev() {
                let current = *image == pool.image && *marker == pool.marker;
                if current || earlier.iter().any(|b| b.image == *image && b.marker == *marker) {
                    continue;
                }
                let mut versions = self.targets(image, marker);
                // A target the working tree gives the marker, not committed yet.
                versions.extend(desired.images.get(image).and_then(|i| i.markers.get(marker)).cloned());
                earlier.push(EarlierBinding { image: image.clone(), marker: marker.clone(), versions });
            }
            if !earlier.is_empty() {
                out.insert(key, earlier);
            }
        }
        out
    }
}

/// The bindings a `pools/*.toml` file makes: pools by site and Horizon name, and the image and
/// marker each is bound to. Empty when it does not parse (history is best effort about the
/// past; validation guards the present).
fn bindings_in(text: &str) -> Vec<(PoolKey, (ImageName, MarkerName))> {
    let Ok(file) = toml::from_str::<PoolsFile>(text) else { return Vec::new() };
    file.pools
        .into_iter()
        .map(|(name, p)| {
            let horizon_name = p.horizon_name.unwrap_or(name);
            let key = (SiteName::new(p.site), HorizonName::new(horizon_name));
            (key, (ImageName::new(p.image), MarkerName::new(p.marker)))
        })
        .collect()
}

/// Reads the history of `images/*.toml` and `pools/*.toml` below `dir`, following first parents
/// from `reference`.
pub fn read(dir: &Path, reference: &str) -> Result<History, GitError> {
    let repo = Repository::discover(dir).map_err(|_| GitError::NotARepository { dir: dir.to_owned() })?;
    let workdir = repo.workdir().map(Path::to_owned).unwrap_or_default();
    let err = |action: &str| {
        let repo = workdir.clone();
        let action = action.to_owned();
        move |source| GitError::Read { action, repo, source }
    };
    let prefix = crate::git::prefix_of(&repo, dir)?;
    let in_repo = |dir: &str| if prefix.is_empty() { dir.to_owned() } else { format!("{prefix}/{dir}") };
    let (images_path, pools_path) = (in_repo("images"), in_repo("pools"));
    let head = repo.revparse_single(reference).and_then(|o| o.peel_to_commit()).map_err(|source| {
        GitError::RefNotFound { reference: reference.to_owned(), repo: workdir.clone(), source }
    })?;

    let mut walk = repo.revwalk().map_err(err("walk history"))?;
    walk.push(head.id()).map_err(err("walk history"))?;
    walk.simplify_first_parent().map_err(err("walk history"))?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE).map_err(err("walk history"))?;

    let mut history = History::default();
    let mut last_images_tree: Option<Oid> = None;
    let mut last_pools_tree: Option<Oid> = None;
    // Blob id of each image file as last read, to re-parse only what changed.
    let mut blobs: BTreeMap<String, Oid> = BTreeMap::new();
    // Blob ids of the pools files as last read.
    let mut pool_blobs: BTreeSet<Oid> = BTreeSet::new();
    for oid in walk {
        let oid = oid.map_err(err("walk history"))?;
        let commit = repo.find_commit(oid).map_err(err("read a commit"))?;
        let tree = commit.tree().map_err(err("read a commit tree"))?;
        let subtree =
            |path: &str| tree.get_path(Path::new(path)).ok().filter(|e| e.kind() == Some(ObjectType::Tree));
        let (images_tree, pools_tree) = (subtree(&images_path), subtree(&pools_path));
        let images_id = images_tree.as_ref().map(|e| e.id());
        let pools_id = pools_tree.as_ref().map(|e| e.id());
        if pools_id != last_pools_tree {
            last_pools_tree = pools_id;
            let mut blobs_now = BTreeSet::new();
            if let Some(entry) = pools_tree {
                let dir = repo.find_tree(entry.id()).map_err(err("read pools/"))?;
                for e in dir.iter().filter(|e| e.kind() == Some(ObjectType::Blob)) {
                    if !e.name().is_ok_and(|n| n.ends_with(".toml")) {
                        continue;
                    }
                    blobs_now.insert(e.id());
                    // A pool's binding changes only where its file does, so only files that
                    // changed since the last commit read are parsed.
                    if pool_blobs.contains(&e.id()) {
                        continue;
                    }
                    let Ok(b) = repo.find_blob(e.id()) else { continue };
                    let Ok(text) = std::str::from_utf8(b.content()) else { continue };
                    for (key, binding) in bindings_in(text) {
                        let seen = history.pools.entry(key).or_default();
                        if seen.last() != Some(&binding) {
                            seen.push(binding);
                        }
                    }
                }
            }
            pool_blobs = blobs_now;
        }
        if images_id == last_images_tree {
            continue;
        }
        last_images_tree = images_id;
        let change = Change {
            commit: oid.to_string(),
            author: commit.author().name().unwrap_or("unknown").to_owned(),
            time: commit.time().seconds(),
            subject: commit.summary().ok().flatten().unwrap_or_default().to_owned(),
        };
        let mut present: BTreeMap<String, Oid> = BTreeMap::new();
        if let Some(entry) = images_tree {
            let dir = repo.find_tree(entry.id()).map_err(err("read images/"))?;
            for e in dir.iter().filter(|e| e.kind() == Some(ObjectType::Blob)) {
                if let Some(stem) = e.name().ok().and_then(|n| n.strip_suffix(".toml")) {
                    present.insert(stem.to_owned(), e.id());
                }
            }
        }
        for (stem, blob) in &present {
            if blobs.get(stem) == Some(blob) {
                continue;
            }
            let Ok(b) = repo.find_blob(*blob) else { continue };
            // A file that does not parse at some commit is skipped there: history is best effort
            // about the past, and validation guards the present.
            let Ok(text) = std::str::from_utf8(b.content()) else { continue };
            let Ok(file) = toml::from_str::<ImageFile>(text) else { continue };
            record(history.images.entry(ImageName::new(stem.clone())).or_default(), &file, &change);
        }
        for gone in blobs.keys().filter(|s| !present.contains_key(*s)) {
            if let Some(h) = history.images.get_mut(gone.as_str()) {
                let removed: Vec<MarkerName> = h.markers.keys().cloned().collect();
                for marker in removed {
                    let from = h.markers.remove(&marker);
                    h.moves.push(MarkerMove { marker, from, to: None, change: change.clone() });
                }
            }
        }
        blobs = present;
    }
    Ok(history)
}

fn record(h: &mut ImageHistory, file: &ImageFile, change: &Change) {
    h.description = file.description.clone();
    for (name, v) in &file.versions {
        let parent = v.parent.clone().map(VersionName::new);
        match h.versions.get_mut(name.as_str()) {
            Some(entry) => entry.parent = parent,
            None => {
                let added = VersionAdded { parent, added: change.clone() };
                h.versions.insert(VersionName::new(name.clone()), added);
            }
        }
    }
    let now: BTreeMap<MarkerName, VersionName> =
        file.markers.iter().map(|(m, v)| (MarkerName::new(m.clone()), VersionName::new(v.clone()))).collect();
    for (marker, to) in &now {
        let from = h.markers.get(marker);
        if from != Some(to) {
            h.moves.push(MarkerMove {
                marker: marker.clone(),
                from: from.cloned(),
                to: Some(to.clone()),
                change: change.clone(),
            });
        }
    }
    for (marker, from) in &h.markers {
        if !now.contains_key(marker) {
            h.moves.push(MarkerMove {
                marker: marker.clone(),
                from: Some(from.clone()),
                to: None,
                change: change.clone(),
            });
        }
    }
    h.markers = now;
}

/// Renderings of the history: a tree for terminals, Mermaid for pull requests and READMEs.
pub mod render {
    use std::fmt::Write as _;

    use super::{Change, History, ImageHistory};
    use crate::ids::VersionName;

    fn short(change: &Change) -> &str {
        &change.commit[..change.commit.len().min(7)]
    }

    /// `YYYY-MM-DD` of a commit time (UTC).
    pub fn date(seconds: i64) -> String {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
        humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
    }

    fn children<'a>(h: &'a ImageHistory, parent: Option<&VersionName>) -> Vec<&'a VersionName> {
        let mut out: Vec<(&Change, &VersionName)> = h
            .versions
            .iter()
            .filter(|(v, e)| match parent {
                // Roots: no parent, or a parent that is not (or no longer) a version.
                None => e.parent.as_ref().is_none_or(|p| !h.versions.contains_key(p) || p == *v),
                Some(parent) => e.parent.as_ref() == Some(parent) && *v != parent,
            })
            .map(|(v, e)| (&e.added, v))
            .collect();
        out.sort_by(|a, b| (a.0.time, a.1).cmp(&(b.0.time, b.1)));
        out.into_iter().map(|(_, v)| v).collect()
    }

    fn labels(h: &ImageHistory, v: &VersionName) -> String {
        let markers: Vec<&str> = h.markers.iter().filter(|(_, t)| *t == v).map(|(m, _)| m.as_str()).collect();
        if markers.is_empty() { String::new() } else { format!(" [{}]", markers.join(", ")) }
    }

    /// The version tree and the marker moves of each image.
    pub fn text(history: &History) -> String {
        let mut out = String::new();
        for (image, h) in &history.images {
            let _ = write!(out, "{image}");
            if let Some(d) = &h.description {
                let _ = write!(out, " — {d}");
            }
            out.push('\n');
            fn walk(
                out: &mut String,
                h: &ImageHistory,
                v: &VersionName,
                prefix: &str,
                last: bool,
                depth: usize,
            ) {
                let change = &h.versions[v].added;
                let branch = if depth == 0 {
                    ""
                } else if last {
                    "└── "
                } else {
                    "├── "
                };
                let _ = writeln!(
                    out,
                    "  {prefix}{branch}{v}{}   added {} by {} ({})",
                    labels(h, v),
                    date(change.time),
                    change.author,
                    short(change)
                );
                let kids = children(h, Some(v));
                let next = if depth == 0 {
                    prefix.to_owned()
                } else {
                    format!("{prefix}{}", if last { "    " } else { "│   " })
                };
                for (i, k) in kids.iter().enumerate() {
                    walk(out, h, k, &next, i + 1 == kids.len(), depth + 1);
                }
            }
            for root in children(h, None) {
                walk(&mut out, h, root, "", true, 0);
            }
            if !h.moves.is_empty() {
                out.push_str("  marker moves:\n");
                for m in &h.moves {
                    let from = m.from.as_ref().map_or("(new)".to_owned(), ToString::to_string);
                    let to = m.to.as_ref().map_or("(removed)".to_owned(), ToString::to_string);
                    let _ = writeln!(
                        out,
                        "    {} {} {:<8} {from} → {to}   {} — {}",
                        date(m.change.time),
                        short(&m.change),
                        m.marker.as_str(),
                        m.change.author,
                        m.change.subject
                    );
                }
            }
            out.push('\n');
        }
        out
    }

    fn node(v: &VersionName) -> String {
        let id: String =
            v.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        format!("v_{id}")
    }

    /// The history as pretty JSON with a trailing newline (`schema/history.schema.json`).
    pub fn json(history: &History) -> String {
        // Names, strings and numbers only: serializing cannot fail.
        let mut text = serde_json::to_string_pretty(history).unwrap_or_default();
        text.push('\n');
        text
    }

    /// A Mermaid flowchart per image: versions as nodes, parents as edges, markers as labels.
    pub fn mermaid(history: &History) -> String {
        let mut out = String::new();
        for (image, h) in &history.images {
            let _ = writeln!(
                out,
                "```mermaid\nflowchart LR\n  subgraph {}[\"{image}\"]",
                node(&VersionName::new(image.as_str()))
            );
            for (v, super::VersionAdded { parent, added: change }) in &h.versions {
                let _ = writeln!(
                    out,
                    "    {}[\"{v}<br/><small>{} {}</small>\"]",
                    node(v),
                    date(change.time),
                    short(change)
                );
                if let Some(p) = parent.as_ref().filter(|p| h.versions.contains_key(*p) && *p != v) {
                    let _ = writeln!(out, "    {} --> {}", node(p), node(v));
                }
            }
            for (marker, v) in &h.markers {
                if h.versions.contains_key(v) {
                    let m = format!("m_{}", node(&VersionName::new(marker.as_str())));
                    let _ = writeln!(out, "    {m}([{marker}]) -.-> {}", node(v));
                }
            }
            out.push_str("  end\n```\n\n");
        }
        out
    }
}
