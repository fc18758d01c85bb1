//! Publish: capture every version some planned site needs into the source library, unless it is
//! there; a version published from another source than the repository names is an error.

use std::collections::{BTreeMap, BTreeSet};

use super::inputs::{Inputs, Needs};
use super::words::list;
use super::{Action, PlanError, Step, StepId, step_id};
use crate::desired::Source;
use crate::ids::VersionRef;

/// The publish steps, and the step publishing each version.
pub(super) struct Published {
    pub(super) steps: Vec<Step>,
    pub(super) of: BTreeMap<VersionRef, StepId>,
}

/// Publishes every version some planned site needs, unless the source library has it.
pub(super) fn publish(inputs: &Inputs<'_>, needs: &Needs<'_>, errors: &mut Vec<PlanError>) -> Published {
    let mut out = Published { steps: Vec::new(), of: BTreeMap::new() };
    let source_site = inputs.source_site;
    let all_needed: BTreeSet<&VersionRef> = needs.values().flat_map(|m| m.keys()).collect();
    for key @ VersionRef { image, version } in all_needed {
        let Some(v) = inputs.desired.images.get(image).and_then(|i| i.versions.get(version)) else {
            continue;
        };
        let identity = v.source.identity();
        if let Some(copy) = inputs.source_library().and_then(|l| l.copies.get(key)) {
            if let Some(published) = copy.meta_source.filter(|p| *p != identity) {
                errors.push(PlanError::SourceChanged {
                    image: image.clone(),
                    version: version.clone(),
                    published: published.to_owned(),
                    desired: identity,
                });
            }
            continue;
        }
        // Every site that needs it has a base VM of it already (adopted ones included): no
        // copy to make, so nothing to publish.
        let based =
            needs.iter().filter(|(_, m)| m.contains_key(key)).all(|(s, _)| inputs.base(s, key).is_some());
        if based {
            continue;
        }
        let src = inputs.site(source_site);
        let missing = match &v.source {
            Source::Vm { vm, snapshot } => {
                let found = src.and_then(|s| {
                    s.vms.values().find(|x| &x.name == vm && (x.meta.is_none() || x.is_source_vm()))
                });
                match (found, snapshot) {
                    (None, _) => Some(format!("no VM named `{vm}`")),
                    (Some(x), Some(s)) if !x.snapshots.iter().any(|y| &y.name == s) => {
                        Some(format!("VM `{vm}` has no snapshot named `{s}`"))
                    }
                    _ => None,
                }
            }
            Source::LibraryItem { name } => {
                let found =
                    inputs.source_library().is_some_and(|l| l.live.items.values().any(|i| &i.name == name));
                (!found).then(|| {
                    format!("no item named `{name}` in library `{}`", inputs.desired.settings.library)
                })
            }
        };
        if let Some(what) = missing {
            if src.is_some() {
                errors.push(PlanError::SourceMissing {
                    image: image.clone(),
                    version: version.clone(),
                    site: source_site.clone(),
                    what,
                });
            }
            continue;
        }
        let users = needs.values().filter_map(|m| m.get(key)).flatten().map(|p| p.name.as_str());
        let id = step_id(&["publish", image.as_str(), version.as_str()]);
        out.of.insert(key.clone(), id.clone());
        out.steps.push(Step {
            id,
            site: source_site.clone(),
            action: Action::Publish {
                image: image.clone(),
                version: version.clone(),
                source: v.source.clone(),
            },
            reason: format!("{key} is not published yet; needed by {}", list(users)),
            depends_on: Vec::new(),
        });
    }
    out
}
