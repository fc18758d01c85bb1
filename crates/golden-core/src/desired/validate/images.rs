//! `images/<image>.toml`: versions with their sources and parents (a tree, no cycle), and
//! markers that point at versions of the image.

use std::collections::BTreeMap;

use super::parse::{At, Parsed};
use super::{Validator, list, one_of};
use crate::desired::files::{ImageFile, VersionFile};
use crate::desired::{Image, Source, Version};
use crate::ids::{ImageName, MarkerName, NameKind, VersionName, check_name};

impl Validator {
    pub(super) fn image(&mut self, stem: &str, parsed: &Parsed<'_, ImageFile>) -> Option<Image> {
        let before = self.diags.len();
        if let Err(e) = check_name(NameKind::Image, stem) {
            self.push(
                parsed
                    .diag(&[], At::Key, format!("{e} (the image name is the file name)"))
                    .hint("rename the file"),
            );
            return None;
        }
        let raw = &parsed.value;
        let names: Vec<&str> = raw.versions.keys().map(String::as_str).collect();
        let mut versions = BTreeMap::new();
        for (name, version) in &raw.versions {
            if let Err(e) = check_name(NameKind::Version, name) {
                self.push(parsed.diag(&["versions", name], At::Key, e).hint("rename the version"));
                continue;
            }
            if let Some(v) = self.version(stem, name, version, &names, parsed) {
                versions.insert(v.name.clone(), v);
            }
        }
        self.cycles(stem, raw, parsed);

        let mut markers = BTreeMap::new();
        for (marker, target) in &raw.markers {
            let path = ["markers", marker.as_str()];
            if let Err(e) = check_name(NameKind::Marker, marker) {
                self.push(parsed.diag(&path, At::Key, e).hint("rename the marker"));
                continue;
            }
            if !raw.versions.contains_key(target) {
                self.push(
                    parsed
                        .diag(&path, At::Value, format!("marker `{marker}` points at version `{target}`, which image `{stem}` does not define"))
                        .hint(format!("add [versions.\"{target}\"] or point `{marker}` at one of: {}", list(&names))),
                );
                continue;
            }
            markers.insert(MarkerName::new(marker.clone()), VersionName::new(target.clone()));
        }
        let policies = self.policies(stem, parsed);
        (self.diags.len() == before).then(|| Image {
            name: ImageName::new(stem),
            description: raw.description.clone(),
            versions,
            markers,
            policies,
        })
    }

    pub(super) fn version(
        &mut self,
        image: &str,
        name: &str,
        raw: &VersionFile,
        names: &[&str],
        parsed: &Parsed<'_, ImageFile>,
    ) -> Option<Version> {
        let path = |key: &'static str| ["versions", name, key];
        let mut ok = true;
        if let Some(parent) = &raw.parent {
            if parent == name {
                self.push(
                    parsed
                        .diag(
                            &path("parent"),
                            At::Value,
                            format!("version `{name}` of image `{image}` is its own parent"),
                        )
                        .hint("name the version it was built from, or remove `parent`"),
                );
                ok = false;
            } else if !names.contains(&parent.as_str()) {
                self.push(
                    parsed
                        .diag(
                            &path("parent"),
                            At::Value,
                            format!(
                                "parent `{parent}` of version `{name}` is not a version of image `{image}`"
                            ),
                        )
                        .hint(one_of("versions", names)),
                );
                ok = false;
            }
        }
        let source_hint = "use source = { vm = \"<vm>\", snapshot = \"<snapshot>\" } or source = { library_item = \"<item>\" }";
        let source = match &raw.source {
            None => {
                self.push(
                    parsed
                        .diag(
                            &["versions", name],
                            At::Key,
                            format!("version `{name}` of image `{image}` has no source"),
                        )
                        .hint(source_hint),
                );
                None
            }
            Some(s) => {
                let blank = |n: &Option<String>| n.as_ref().is_some_and(|x| x.trim().is_empty());
                let any_blank = blank(&s.vm) || blank(&s.snapshot) || blank(&s.library_item);
                let checked = match (&s.vm, &s.snapshot, &s.library_item) {
                    (Some(_), _, None) | (None, None, Some(_)) if any_blank => {
                        Err(("has an empty name", source_hint.to_owned()))
                    }
                    (Some(vm), snapshot, None) => {
                        Ok(Source::Vm { vm: vm.clone(), snapshot: snapshot.clone() })
                    }
                    (None, None, Some(item)) => Ok(Source::LibraryItem { name: item.clone() }),
                    (None, Some(_), _) => Err(("names a snapshot but no `vm`", source_hint.to_owned())),
                    (Some(_), _, Some(_)) => {
                        Err(("names both a `vm` and a `library_item`", format!("keep one; {source_hint}")))
                    }
                    (None, None, None) => Err(("is empty", source_hint.to_owned())),
                };
                match checked {
                    Ok(source) => Some(source),
                    Err((what, hint)) => {
                        let message = format!("the source of version `{name}` {what}");
                        self.push(parsed.diag(&path("source"), At::Value, message).hint(hint));
                        None
                    }
                }
            }
        };
        let adopted = raw.adopted.unwrap_or(false);
        if adopted && !matches!(source, Some(Source::Vm { snapshot: Some(_), .. })) {
            let message = format!("version `{name}` is adopted, but its source is not a VM and snapshot");
            let hint = "an adopted version names the VM and snapshot pools run: source = { vm = \"<vm>\", snapshot = \"<snapshot>\" }";
            self.push(parsed.diag(&path("adopted"), At::Value, message).hint(hint));
            ok = false;
        }
        Some(Version {
            name: VersionName::new(name),
            parent: raw.parent.clone().map(VersionName::new),
            source: source?,
            notes: raw.notes.clone(),
            adopted,
        })
        .filter(|_| ok)
    }

    /// Reports each cycle of the parent relation once, at the smallest version in it.
    pub(super) fn cycles(&mut self, image: &str, raw: &ImageFile, parsed: &Parsed<'_, ImageFile>) {
        let parent = |v: &str| raw.versions.get(v).and_then(|x| x.parent.as_deref()).filter(|p| *p != v);
        for cycle in parent_cycles(raw.versions.keys().map(String::as_str), parent) {
            let Some(first) = cycle.first().copied() else { continue };
            let shown: Vec<&str> = cycle.iter().copied().chain([first]).collect();
            self.push(
                parsed
                    .diag(
                        &["versions", first, "parent"],
                        At::Value,
                        format!("the version tree of image `{image}` has a cycle: {}", shown.join(" → ")),
                    )
                    .hint("a version's parent must be an older version; break the cycle"),
            );
        }
    }
}

/// Each cycle of the `parent` relation over `versions`, once: its members from the smallest,
/// each followed by its parent. Every version is walked once (walks stop where an earlier walk
/// went), so a chain of 10,000 versions costs 10,000 steps, not the 10,000² of walking it
/// again from every version.
fn parent_cycles<'a>(
    versions: impl Iterator<Item = &'a str>,
    parent: impl Fn(&'a str) -> Option<&'a str>,
) -> Vec<Vec<&'a str>> {
    // The walk that first reached each version.
    let mut reached: BTreeMap<&str, usize> = BTreeMap::new();
    let mut cycles = Vec::new();
    for (walk, start) in versions.enumerate() {
        let mut at = start;
        loop {
            match reached.get(at) {
                // Back on this walk's own path: `at` is on a cycle.
                Some(w) if *w == walk => {
                    let mut cycle = vec![at];
                    let mut next = parent(at);
                    while let Some(n) = next.filter(|n| *n != at) {
                        cycle.push(n);
                        next = parent(n);
                    }
                    let smallest = cycle.iter().enumerate().min_by_key(|(_, v)| **v).map_or(0, |(i, _)| i);
                    cycle.rotate_left(smallest);
                    cycles.push(cycle);
                    break;
                }
                // An earlier walk went on from here, and found whatever there is to find.
                Some(_) => break,
                None => {
                    reached.insert(at, walk);
                    match parent(at) {
                        Some(p) => at = p,
                        None => break,
                    }
                }
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Cycles are found once each, from their smallest member, in a number of steps linear in
    /// the versions: a long chain is not walked again from each of its versions.
    #[test]
    fn cycles_are_found_in_linear_steps() {
        let n = 5_000;
        let names: Vec<String> = (0..n).map(|i| format!("v{i:05}")).collect();
        // A chain in which each version's parent is the one before it, closed into a cycle at
        // its start (the parent of v00000 is v00002), and a separate two-cycle.
        let mut parents: BTreeMap<&str, &str> =
            names.windows(2).map(|w| (w[1].as_str(), w[0].as_str())).collect();
        parents.insert("v00000", "v00002");
        parents.insert("x", "y");
        parents.insert("y", "x");
        let steps = Cell::new(0usize);
        let parent = |v: &str| {
            steps.set(steps.get() + 1);
            parents.get(v).copied()
        };
        let all: Vec<&str> = names.iter().map(String::as_str).chain(["x", "y"]).collect();
        let cycles = parent_cycles(all.iter().copied(), parent);
        assert_eq!(cycles, [vec!["v00000", "v00002", "v00001"], vec!["x", "y"]]);
        assert!(steps.get() <= 3 * all.len(), "{} steps for {} versions", steps.get(), all.len());
    }
}
