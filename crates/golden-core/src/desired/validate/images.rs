//! `images/<image>.toml`: versions with their sources and parents (a tree, no cycle), and
//! markers that point at versions of the image.

use std::collections::{BTreeMap, BTreeSet};

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
        (self.diags.len() == before).then(|| Image {
            name: ImageName::new(stem),
            description: raw.description.clone(),
            versions,
            markers,
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
        Some(Version {
            name: VersionName::new(name),
            parent: raw.parent.clone().map(VersionName::new),
            source: source?,
            notes: raw.notes.clone(),
        })
        .filter(|_| ok)
    }

    /// Reports each cycle of the parent relation once, at the smallest version in it.
    pub(super) fn cycles(&mut self, image: &str, raw: &ImageFile, parsed: &Parsed<'_, ImageFile>) {
        let parent = |v: &str| raw.versions.get(v).and_then(|x| x.parent.as_deref()).filter(|p| *p != v);
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        for start in raw.versions.keys() {
            let mut chain: Vec<&str> = vec![start];
            let mut current = start.as_str();
            while let Some(p) = parent(current) {
                if let Some(pos) = chain.iter().position(|c| *c == p) {
                    let cycle = &chain[pos..];
                    let first = cycle.iter().min().copied().unwrap_or(p);
                    if cycle.iter().all(|c| !reported.contains(c)) {
                        reported.extend(cycle.iter().copied());
                        // Walk the cycle from its smallest member, for a stable message.
                        let mut shown = vec![first];
                        let mut at = first;
                        while let Some(next) = parent(at).filter(|n| *n != first) {
                            shown.push(next);
                            at = next;
                        }
                        shown.push(first);
                        self.push(
                            parsed
                                .diag(
                                    &["versions", first, "parent"],
                                    At::Value,
                                    format!(
                                        "the version tree of image `{image}` has a cycle: {}",
                                        shown.join(" → ")
                                    ),
                                )
                                .hint("a version's parent must be an older version; break the cycle"),
                        );
                    }
                    break;
                }
                chain.push(p);
                current = p;
            }
        }
    }
}
