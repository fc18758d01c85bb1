//! An existing Horizon estate as a repository: what `golden init --from-live` writes.
//!
//! Every pool or farm golden can manage (automated instant clone) runs a base VM at one of
//! its snapshots. Each base VM name is a lineage: one image, named from the VM. Each snapshot
//! in use is a version of it (`source = { vm, snapshot }`, `adopted = true`), whose parent is
//! the nearest snapshot above it in the VM's tree that is also in use. Each version in use gets
//! a marker: `prod` for the one most pools run, `also-<version>` for the others. Each pool is
//! bound to its version's marker under its Horizon name. Pools golden cannot manage are listed
//! in a comment. The names are all editable afterwards; the first plan adopts the VMs the pools
//! run (golden's tag on them), and changes no pool.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::desired::PoolKind;
use crate::ids::SiteName;

/// A pool or farm as Horizon and vCenter show it.
#[derive(Clone, Debug)]
pub struct LivePoolRun {
    pub site: SiteName,
    pub horizon_name: String,
    pub kind: PoolKind,
    /// Automated instant clone: golden can push images to it.
    pub manageable: bool,
    /// The base VM it runs, and its snapshot as a path of names from the root of the VM's
    /// snapshot tree; `None` when Horizon shows no image or the VM is not in the site's
    /// datacenter.
    pub runs: Option<(String, Vec<String>)>,
}

/// A name golden accepts (letters, digits, `-`, `_`, `.`; starting with a letter or digit), made
/// from any text; `fallback` when nothing is left.
fn name(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => out.push(c.to_ascii_lowercase()),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out = out.trim_matches(|c: char| !c.is_ascii_alphanumeric()).chars().take(64).collect::<String>();
    if out.is_empty() { fallback.to_owned() } else { out }
}

/// A TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// The repository's `images/*.toml` and `pools/*.toml`, by path.
pub fn repository(pools: &[LivePoolRun]) -> BTreeMap<String, String> {
    // image -> (vm name, version -> (snapshot path, pools running it))
    struct Lineage<'a> {
        vm: &'a str,
        versions: BTreeMap<String, (&'a [String], Vec<&'a LivePoolRun>)>,
    }
    let mut images: BTreeMap<String, Lineage> = BTreeMap::new();
    let mut unmanaged: BTreeMap<&SiteName, Vec<&LivePoolRun>> = BTreeMap::new();
    for pool in pools {
        let Some((vm, path)) = pool.runs.as_ref().filter(|(_, p)| !p.is_empty() && pool.manageable) else {
            unmanaged.entry(&pool.site).or_default().push(pool);
            continue;
        };
        let image =
            images.entry(name(vm, "image")).or_insert_with(|| Lineage { vm, versions: BTreeMap::new() });
        let leaf = path.last().map_or("", String::as_str);
        image.versions.entry(leaf.to_owned()).or_insert((path, Vec::new())).1.push(pool);
    }

    let mut files = BTreeMap::new();
    // Per site: each pool's name, the pool, its image and its marker.
    let mut bindings: BTreeMap<&SiteName, Vec<(String, &LivePoolRun, &str, String)>> = BTreeMap::new();
    for (image, lineage) in &images {
        let in_use: BTreeSet<&str> = lineage.versions.keys().map(String::as_str).collect();
        // The most used version is `prod` (ties: the last by name).
        let prod =
            lineage.versions.iter().max_by_key(|(v, (_, users))| (users.len(), *v)).map(|(v, _)| v.clone());
        let mut text = String::new();
        let _ =
            writeln!(text, "# Adopted from live: the snapshots of VM {} that pools ran.", quoted(lineage.vm));
        let mut markers = Vec::new();
        for (snapshot, (path, users)) in &lineage.versions {
            let version = name(snapshot, "v1");
            let parent = path.iter().rev().skip(1).find(|s| in_use.contains(s.as_str()));
            let _ = writeln!(text, "\n[versions.{}]", quoted(&version));
            if let Some(parent) = parent {
                let _ = writeln!(text, "parent = {}", quoted(&name(parent, "v1")));
            }
            let _ =
                writeln!(text, "source = {{ vm = {}, snapshot = {} }}", quoted(lineage.vm), quoted(snapshot));
            let _ = writeln!(text, "adopted = true");
            let marker =
                if prod.as_ref() == Some(snapshot) { "prod".to_owned() } else { format!("also-{version}") };
            markers.push((marker.clone(), version));
            for pool in users {
                let pool_name = name(&format!("{}-{}", pool.site, pool.horizon_name), "pool");
                bindings.entry(&pool.site).or_default().push((pool_name, pool, image, marker.clone()));
            }
        }
        text.push_str("\n[markers]\n");
        for (marker, version) in markers {
            let _ = writeln!(text, "{} = {}", quoted(&marker), quoted(&version));
        }
        files.insert(format!("images/{image}.toml"), text);
    }

    let sites: BTreeSet<&SiteName> = bindings.keys().chain(unmanaged.keys()).copied().collect();
    for site in sites {
        let mut text = format!("# The pools and farms of site {site}, adopted from live.\n");
        if let Some(skipped) = unmanaged.get(site) {
            text.push_str(
                "\n# Not bound: golden pushes images to automated instant-clone pools and farms only,\n",
            );
            text.push_str("# and needs the VM and snapshot they run in the site's datacenter.\n");
            for pool in skipped {
                let _ = writeln!(text, "#   {} {}", pool.kind, quoted(&pool.horizon_name));
            }
        }
        for (pool_name, pool, image, marker) in bindings.get(site).into_iter().flatten() {
            let _ = writeln!(text, "\n[pools.{}]", quoted(pool_name));
            let _ = writeln!(text, "site = {}", quoted(site.as_str()));
            if pool.kind == PoolKind::Farm {
                text.push_str("kind = \"farm\"\n");
            }
            let _ = writeln!(text, "horizon_name = {}", quoted(&pool.horizon_name));
            let _ = writeln!(text, "image = {}", quoted(image));
            let _ = writeln!(text, "marker = {}", quoted(marker));
        }
        files.insert(format!("pools/{site}.toml"), text);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(site: &str, pool: &str, vm: &str, path: &[&str]) -> LivePoolRun {
        LivePoolRun {
            site: SiteName::new(site),
            horizon_name: pool.into(),
            kind: PoolKind::DesktopPool,
            manageable: true,
            runs: Some((vm.into(), path.iter().map(|s| (*s).to_owned()).collect())),
        }
    }

    /// One image per VM, one version per snapshot in use with its parent in use, `prod` for
    /// the most used, pools bound by site; an unmanaged pool only in a comment.
    #[test]
    fn an_estate_becomes_images_versions_markers_and_pools() {
        let mut linked = run("eu", "Old Linked", "Win10 Gold", &["base"]);
        linked.manageable = false;
        let files = repository(&[
            run("hq", "Office-IC", "Win11 Gold", &["base", "Patch 11"]),
            run("eu", "Office-IC", "Win11 Gold", &["base", "Patch 11"]),
            run("eu", "Pilot-IC", "Win11 Gold", &["base", "Patch 11", "Patch 12"]),
            linked,
        ]);
        let keys: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(keys, ["images/win11-gold.toml", "pools/eu.toml", "pools/hq.toml"]);
        let image = &files["images/win11-gold.toml"];
        assert!(image.contains("[versions.\"patch-12\"]\nparent = \"patch-11\"\nsource = { vm = \"Win11 Gold\", snapshot = \"Patch 12\" }\nadopted = true"), "{image}");
        assert!(
            image.contains("[markers]\n\"prod\" = \"patch-11\"\n\"also-patch-12\" = \"patch-12\"\n"),
            "{image}"
        );
        let eu = &files["pools/eu.toml"];
        assert!(eu.contains("#   desktop pool \"Old Linked\""), "{eu}");
        assert!(eu.contains("[pools.\"eu-pilot-ic\"]\nsite = \"eu\"\nhorizon_name = \"Pilot-IC\"\nimage = \"win11-gold\"\nmarker = \"also-patch-12\""), "{eu}");
    }
}
