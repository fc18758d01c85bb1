//! Copies: replicate into each vCenter's library and deploy at each site the versions its pools
//! need and its rollback window keeps warm, one replicate per library and version.

use std::collections::{BTreeMap, BTreeSet};

use super::inputs::{Inputs, Needs};
use super::publish::Published;
use super::words::{all, list};
use super::{Action, Step, StepId, step_id};
use crate::ids::{SiteName, VersionRef};
use crate::live::VcenterId;

/// The replicate and deploy steps, and the step deploying each version at each site.
pub(super) struct Copies<'a> {
    pub(super) steps: Vec<Step>,
    pub(super) deploy_of: BTreeMap<(&'a SiteName, VersionRef), StepId>,
}

/// A copy a site lacks: replicated into its library (unless it is there, or the site uses the
/// source library), then deployed as the site's base VM.
pub(super) struct Missing<'a> {
    pub(super) site: &'a SiteName,
    pub(super) key: VersionRef,
    /// Why the site wants the version.
    pub(super) why: String,
    /// Wanted only to keep a rollback warm.
    pub(super) warm: bool,
    /// The library the version must be replicated into first.
    pub(super) replicate_into: Option<&'a VcenterId>,
    pub(super) deploy: bool,
}

/// Makes the copies the planned sites lack: the versions they need, and their rollback windows.
pub(super) fn copies<'a>(
    inputs: &Inputs<'a>,
    needs: &Needs<'a>,
    published: &Published,
    warnings: &mut Vec<String>,
) -> Copies<'a> {
    let mut missing: Vec<Missing<'a>> = Vec::new();
    let vcenter_of = |site: &SiteName| inputs.site(site).map(|s| &s.vcenter);
    for (site, keys) in needs {
        for (key, users) in keys {
            // A site with a base VM (or one to adopt) needs no library copy to make it.
            let deploy = inputs.base(site, key).is_none();
            let replicate = deploy && !inputs.uses_source_library(site) && !inputs.has_item(site, key);
            if !replicate && !deploy {
                continue;
            }
            let names = users.iter().map(|p| p.name.as_str());
            missing.push(Missing {
                site,
                key: key.clone(),
                why: format!("needed by {}", list(names)),
                warm: false,
                replicate_into: if replicate { vcenter_of(site) } else { None },
                deploy,
            });
        }
    }

    // Keep the rollback window warm: a copy (library item, base VM and snapshot) at each site
    // of every version a marker bound there pointed at before, so that rolling back is a push.
    // A missing piece is made again from the source library. A version that is not in the
    // source library is not published for that: it may never have been (the marker moved before
    // golden's first apply), and publishing it would capture and ship an image no pool ran
    // under golden. The plan then says once what a rollback to it would take.
    let keep = inputs.desired.settings.keep_previous;
    let mut cold: BTreeMap<&VersionRef, Cold> = BTreeMap::new();
    for site in &inputs.scope {
        for (key, markers) in inputs.window_of(site) {
            let needed = needs.get(site).is_some_and(|n| n.contains_key(key));
            if !inputs.in_repo(key) || needed || inputs.base(site, key).is_some() {
                continue;
            }
            let markers: BTreeSet<&str> = markers.iter().map(|m| m.as_str()).collect();
            let has_item = inputs.has_item(site, key);
            if !has_item && !inputs.is_published(key) && !published.of.contains_key(key) {
                let c = cold.entry(key).or_default();
                c.markers.extend(markers.iter().map(|m| (*m).to_owned()));
                c.deploy_at.insert(site.as_str().to_owned());
                if !inputs.uses_source_library(site) {
                    c.replicate_to.insert(site.as_str().to_owned());
                }
                continue;
            }
            let replicate = !has_item && !inputs.uses_source_library(site);
            missing.push(Missing {
                site,
                key: key.clone(),
                why: format!(
                    "kept warm for a rollback of marker {} of {} (keep_previous = {keep})",
                    list(markers.iter().copied()),
                    key.image
                ),
                warm: true,
                replicate_into: if replicate { vcenter_of(site) } else { None },
                deploy: true,
            });
        }
    }
    for (key, c) in &cold {
        let markers: BTreeSet<&str> = c.markers.iter().map(String::as_str).collect();
        let mut then = vec![format!("publish it at {}", inputs.source_site)];
        if !c.replicate_to.is_empty() {
            then.push(format!("replicate it to {}", all(c.replicate_to.iter().map(String::as_str))));
        }
        then.push(format!("deploy it at {}", all(c.deploy_at.iter().map(String::as_str))));
        warnings.push(format!(
            "no warm copy of {key}, kept for a rollback of marker {} (keep_previous = {keep}): it is not published, so a rollback to it would first {}",
            list(markers.iter().copied()),
            then.join(", then ")
        ));
    }

    // One replicate step per library and version, however many of the library's sites want
    // the version; it runs as the first of them by name, whose datastore holds the library if
    // the step has to create it.
    let mut wanted: BTreeMap<(&VcenterId, &VersionRef), Vec<&Missing>> = BTreeMap::new();
    for m in &missing {
        if let Some(vc) = m.replicate_into {
            wanted.entry((vc, &m.key)).or_default().push(m);
        }
    }
    let mut out = Copies { steps: Vec::new(), deploy_of: BTreeMap::new() };
    let mut replicate_of: BTreeMap<(&VcenterId, &VersionRef), StepId> = BTreeMap::new();
    for ((vc, key @ VersionRef { image, version }), mut wants) in wanted {
        wants.sort_by_key(|m| m.site);
        let site = wants[0].site;
        let reason = match wants.as_slice() {
            [one] if one.warm => format!("copy of {key} missing at {}; {}", one.site, one.why),
            [one] => format!("copy of {key} missing at {}", one.site),
            many => format!(
                "copy of {key} missing in the library {} share (one vCenter)",
                all(many.iter().map(|m| m.site.as_str()).collect::<BTreeSet<_>>())
            ),
        };
        let id = step_id(&["replicate", site.as_str(), image.as_str(), version.as_str()]);
        replicate_of.insert((vc, key), id.clone());
        out.steps.push(Step {
            id,
            site: site.clone(),
            action: Action::Replicate {
                image: image.clone(),
                version: version.clone(),
                from: inputs.source_site.clone(),
            },
            reason,
            depends_on: published.of.get(key).cloned().into_iter().collect(),
        });
    }
    // Adoptions: golden's tag on the VM a pool already runs, for the sites in the plan.
    for ((site, key @ VersionRef { image, version }), running) in &inputs.adopt {
        if !inputs.scope.contains(site) {
            continue;
        }
        let id = step_id(&["adopt", site.as_str(), image.as_str(), version.as_str()]);
        out.deploy_of.insert((*site, key.clone()), id.clone());
        let users = needs.get(*site).and_then(|n| n.get(key)).into_iter().flatten().map(|p| p.name.as_str());
        out.steps.push(Step {
            id,
            site: (*site).clone(),
            action: Action::Adopt {
                image: image.clone(),
                version: version.clone(),
                vm: running.vm.clone(),
                snapshot: running.snapshot.clone(),
            },
            reason: format!(
                "{} already run {key} from before golden: its VM becomes golden's base VM, nothing is copied or pushed",
                list(users)
            ),
            depends_on: Vec::new(),
        });
    }
    for m in missing.iter().filter(|m| m.deploy) {
        let VersionRef { image, version } = &m.key;
        let depends_on: Vec<StepId> = match m.replicate_into {
            Some(vc) => replicate_of.get(&(vc, &m.key)).cloned().into_iter().collect(),
            None if inputs.uses_source_library(m.site) => {
                published.of.get(&m.key).cloned().into_iter().collect()
            }
            None => Vec::new(),
        };
        let id = step_id(&["deploy", m.site.as_str(), image.as_str(), version.as_str()]);
        out.deploy_of.insert((m.site, m.key.clone()), id.clone());
        out.steps.push(Step {
            id,
            site: m.site.clone(),
            action: Action::Deploy { image: image.clone(), version: version.clone() },
            reason: format!("no base VM of {} at {}; {}", m.key, m.site, m.why),
            depends_on,
        });
    }
    out
}

/// A version of a rollback window that no site in the plan has a copy of and that is not
/// published: what a rollback to it would take.
#[derive(Default)]
pub(super) struct Cold {
    pub(super) markers: BTreeSet<String>,
    pub(super) replicate_to: BTreeSet<String>,
    pub(super) deploy_at: BTreeSet<String>,
}
