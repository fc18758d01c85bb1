//! Retirements: remove golden's base VMs and library items that no site holds any more, after
//! the pushes that move pools away from them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::inputs::Inputs;
use super::pushes::Pushes;
use super::words::{all, are, list};
use super::{Action, Step, StepId, in_scope, step_id};
use crate::ids::{ImageName, SiteName, VersionName, VersionRef};
use crate::live::{ItemId, Moref};

/// A retirement being put together: a site's base VMs of a version, and the items of its
/// library when it is the site that retires them.
#[derive(Default)]
pub(super) struct Retirement {
    pub(super) items: Vec<ItemId>,
    pub(super) vms: Vec<Moref>,
    /// Sites that still hold the version, for which the library's item stays.
    pub(super) item_stays_for: BTreeSet<String>,
    /// Where the version is no longer needed, for the reason.
    pub(super) at: String,
    pub(super) depends_on: BTreeSet<StepId>,
}

/// Retires what nothing needs. Every site, planned or not, holds on to the versions its pools
/// need and its rollback window (both known from the desired state and git history); a site
/// that was read also holds what its pools run or are moving to, until pushes of this plan
/// move every such pool away (the retirement then waits for those pushes). A base VM goes when
/// its site does not hold its version; a library item when no site using the library holds it
/// (for the source library: no site at all, since every library replicates from it).
pub(super) fn retirements(inputs: &Inputs<'_>, pushes: &Pushes<'_>, warnings: &mut Vec<String>) -> Vec<Step> {
    let mut held: BTreeMap<&SiteName, BTreeSet<VersionRef>> = BTreeMap::new();
    let mut waits: BTreeMap<(&SiteName, VersionRef), Vec<StepId>> = BTreeMap::new();
    for site in inputs.desired.sites.keys() {
        let holds = held.entry(site).or_default();
        // Thousands of pools share a handful of versions: a key is cloned only when new.
        let keys = inputs.pools_of(site).iter().filter_map(|(_, k)| k.as_ref());
        for key in keys.chain(inputs.window_of(site).map(|(k, _)| k)) {
            if !holds.contains(key) {
                holds.insert(key.clone());
            }
        }
        let Some(s_live) = inputs.site(site) else { continue };
        // Pools by the metadata of the VM they run or are moving to (borrowed: thousands of
        // pools share a few versions).
        let mut users: BTreeMap<(&ImageName, &VersionName), usize> = BTreeMap::new();
        let version = |image| s_live.meta_of(image).map(|m| (&m.image, &m.version));
        for p in s_live.pools.values() {
            let current = p.current.as_ref().and_then(version);
            let pending = p.pending.as_ref().and_then(|x| version(&x.image)).filter(|k| Some(*k) != current);
            for key in current.into_iter().chain(pending) {
                *users.entry(key).or_default() += 1;
            }
        }
        for ((image, version), n) in users {
            let key = VersionRef::new(image, version);
            let away = pushes.away.get(&(site, key.clone())).cloned().unwrap_or_default();
            if n > away.len() {
                holds.insert(key);
            } else {
                waits.insert((site, key), away);
            }
        }
    }
    let holders = |sites: &[&SiteName], key: &VersionRef| -> BTreeSet<String> {
        sites
            .iter()
            .filter(|s| held.get(*s).is_some_and(|h| h.contains(key)))
            .map(|s| s.to_string())
            .collect()
    };
    let waits_of = |sites: &[&SiteName], key: &VersionRef| -> Vec<StepId> {
        sites.iter().filter_map(|s| waits.get(&(*s, key.clone()))).flatten().cloned().collect()
    };
    let every_site: Vec<&SiteName> = inputs.desired.sites.keys().collect();

    let mut out: BTreeMap<(&SiteName, VersionRef), Retirement> = BTreeMap::new();
    for site in &inputs.scope {
        let Some(bases) = inputs.bases.get(site) else { continue };
        let library = inputs.library_of(site);
        for (key, copy) in bases {
            if held.get(site).is_some_and(|h| h.contains(key)) || copy.vms.is_empty() {
                continue;
            }
            let r = out.entry((*site, key.clone())).or_default();
            r.vms = copy.vms.iter().map(|v| (*v).clone()).collect();
            r.depends_on.extend(waits_of(&[*site], key));
            r.at = site.to_string();
            if let Some(l) = library.filter(|l| l.has(key)) {
                let users = if l.is_source { &every_site } else { &l.sites };
                r.item_stays_for = holders(users, key);
            }
        }
    }
    // A library's items are retired by the first of its planned sites.
    for library in inputs.libraries.values() {
        let Some(site) = library.sites.iter().find(|s| in_scope(inputs.options, s)) else { continue };
        if library.subscribed() {
            continue;
        }
        let users = if library.is_source { &every_site } else { &library.sites };
        for (key, copy) in &library.copies {
            if !holders(users, key).is_empty() {
                continue;
            }
            // A site this plan did not read may still run a version nothing else needs (its
            // pools are not pushed away yet), and may share this library's vCenter: not having
            // looked must never delete what it may use.
            if !inputs.unread.is_empty() {
                let place = if library.is_source {
                    format!("at {}, the source site", inputs.source_site)
                } else {
                    format!("in the library of {}", all(library.sites.iter().map(|s| s.as_str())))
                };
                let may = if library.is_source { "may still use it" } else { "may share its vCenter" };
                warnings.push(format!(
                    "the library item of {key} stays {place}: {} not in this plan and {may}; a plan of every site retires it if no site does",
                    are(&inputs.unread)
                ));
                continue;
            }
            let r = out.entry((*site, key.clone())).or_default();
            r.items = copy.items.iter().map(|i| (*i).clone()).collect();
            r.item_stays_for.clear();
            r.depends_on.extend(waits_of(users, key));
            r.at = if !library.is_source && library.sites.len() > 1 {
                all(library.sites.iter().map(|s| s.as_str()))
            } else {
                site.to_string()
            };
        }
    }

    out.into_iter()
        .map(|((site, key), r)| {
            let mut why = if inputs.in_repo(&key) {
                format!("no marker, pool or rollback window needs {key} at {}", r.at)
            } else {
                format!("{key} is no longer in the repository")
            };
            let VersionRef { image, version } = key;
            if !r.item_stays_for.is_empty() {
                let _ = write!(
                    why,
                    "; its library item stays for {}",
                    list(r.item_stays_for.iter().map(String::as_str))
                );
            }
            Step {
                id: step_id(&["retire", site.as_str(), image.as_str(), version.as_str()]),
                site: site.clone(),
                action: Action::Retire { image, version, items: r.items, vms: r.vms },
                reason: why,
                depends_on: r.depends_on.into_iter().collect(),
            }
        })
        .collect()
}
