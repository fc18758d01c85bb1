//! `golden.toml`: settings and sites, each site complete (endpoints, datacenter, compute,
//! folder, datastore) and free of credentials.

use std::collections::{BTreeMap, HashMap};

use super::parse::{At, Parsed};
use super::{Validator, one_of};
use crate::desired::files::{GoldenFile, SiteFile};
use crate::desired::{Compute, Settings, Site, allows_plain_http};
use crate::ids::{NameKind, SiteName, check_name};

impl Validator {
    pub(super) fn sites(&mut self, golden: &Parsed<'_, GoldenFile>) -> BTreeMap<SiteName, Site> {
        let mut sites = BTreeMap::new();
        let mut prefixes: HashMap<String, String> = HashMap::new();
        if golden.value.sites.is_empty() {
            self.push(
                golden
                    .diag(&["sites"], At::Key, "no sites are defined")
                    .hint("add a [sites.<name>] table per Horizon pod: vcenter, horizon, datacenter, cluster, folder, datastore"),
            );
        }
        for (name, raw) in &golden.value.sites {
            let path = ["sites", name.as_str()];
            if let Err(e) = check_name(NameKind::Site, name) {
                self.push(golden.diag(&path, At::Key, e).hint("rename the site table"));
                continue;
            }
            let site_name = SiteName::new(name.clone());
            let prefix = site_name.env_prefix();
            if let Some(other) = prefixes.insert(prefix.clone(), name.clone()) {
                self.push(
                    golden
                        .diag(
                            &path,
                            At::Key,
                            format!("sites `{other}` and `{name}` share the environment prefix {prefix}_"),
                        )
                        .hint("rename one of them: credentials would be ambiguous"),
                );
            }
            if let Some(site) = self.site(golden, &site_name, raw) {
                sites.insert(site_name, site);
            }
        }
        sites
    }

    pub(super) fn site(
        &mut self,
        golden: &Parsed<'_, GoldenFile>,
        name: &SiteName,
        raw: &SiteFile,
    ) -> Option<Site> {
        let path = |key: &'static str| ["sites", name.as_str(), key];
        let mut missing = Vec::new();
        let mut field = |v: &mut Self, key: &'static str, value: &Option<String>| -> Option<String> {
            match value.as_deref() {
                None => {
                    missing.push(key);
                    None
                }
                Some(s) if s.trim().is_empty() => {
                    v.push(
                        golden
                            .diag(&path(key), At::Value, format!("`{key}` of site `{name}` is empty"))
                            .hint("give the name of the vCenter object"),
                    );
                    None
                }
                Some(s) => Some(s.to_owned()),
            }
        };
        let vcenter = field(self, "vcenter", &raw.vcenter);
        let horizon = field(self, "horizon", &raw.horizon);
        let datacenter = field(self, "datacenter", &raw.datacenter);
        let folder = field(self, "folder", &raw.folder);
        let datastore = field(self, "datastore", &raw.datastore);
        let cluster = field(self, "cluster", &raw.cluster);
        let resource_pool = field(self, "resource_pool", &raw.resource_pool);
        missing.retain(|k| *k != "cluster" && *k != "resource_pool");
        let compute = match (cluster, resource_pool, &raw.cluster, &raw.resource_pool) {
            (Some(c), None, _, None) => Some(Compute::Cluster(c)),
            (None, Some(p), None, _) => Some(Compute::ResourcePool(p)),
            (_, _, Some(_), Some(_)) => {
                self.push(
                    golden
                        .diag(
                            &path("resource_pool"),
                            At::Key,
                            format!("site `{name}` sets both `cluster` and `resource_pool`"),
                        )
                        .hint(
                            "keep one: base VMs go to the cluster's root resource pool or to the named pool",
                        ),
                );
                None
            }
            (_, _, None, None) => {
                missing.push("cluster or resource_pool");
                None
            }
            _ => None, // an empty value, already reported
        };
        if !missing.is_empty() {
            self.push(
                golden
                    .diag(&["sites", name.as_str()], At::Key, format!("site `{name}` is missing {}", missing.join(", ")))
                    .hint("every site needs vcenter, horizon, datacenter, cluster or resource_pool, folder and datastore"),
            );
        }
        for (key, url) in [("vcenter", &vcenter), ("horizon", &horizon)] {
            if let Some(url) = url {
                if let Err(e) = check_url(url) {
                    self.push(
                        golden
                            .diag(&path(key), At::Value, format!("`{key}` of site `{name}` {e}"))
                            .hint("write the base URL, e.g. https://vc-hq.corp.example"),
                    );
                }
            }
        }
        if let Some(ca) = &raw.ca_file {
            if ca.trim().is_empty() {
                self.push(
                    golden
                        .diag(&path("ca_file"), At::Value, format!("`ca_file` of site `{name}` is empty"))
                        .hint("remove it or name a PEM file"),
                );
            }
        }
        let timezone = self.timezone(golden, &path("timezone"), raw.timezone.as_ref());
        let window = self.window(golden, &path("window"), raw.window.as_ref());
        if raw.window.is_some() && window.is_none() {
            return None;
        }
        Some(Site {
            name: name.clone(),
            timezone: timezone?,
            window,
            vcenter: vcenter?,
            horizon: horizon?,
            datacenter: datacenter?,
            compute: compute?,
            folder: folder?,
            datastore: datastore?,
            ca_file: raw.ca_file.clone(),
        })
    }

    pub(super) fn settings(
        &mut self,
        golden: &Parsed<'_, GoldenFile>,
        sites: &BTreeMap<SiteName, Site>,
    ) -> Option<Settings> {
        let raw = &golden.value.settings;
        let mut ok = true;
        if raw.library.trim().is_empty() {
            self.push(
                golden
                    .diag(&["settings", "library"], At::Value, "`library` is empty")
                    .hint("name the Content Library, e.g. \"golden-images\""),
            );
            ok = false;
        }
        if raw.parallelism == 0 || raw.parallelism > 256 {
            self.push(
                golden
                    .diag(
                        &["settings", "parallelism"],
                        At::Value,
                        format!("`parallelism` is {}; it must be between 1 and 256", raw.parallelism),
                    )
                    .hint("8 is a good start"),
            );
            ok = false;
        }
        let source_site = SiteName::new(raw.source_site.clone());
        let site_names: Vec<&str> = golden.value.sites.keys().map(String::as_str).collect();
        if !golden.value.sites.contains_key(&raw.source_site) {
            self.push(
                golden
                    .diag(
                        &["settings", "source_site"],
                        At::Value,
                        format!("`source_site` names `{}`, which is not a site", raw.source_site),
                    )
                    .hint(one_of("sites", &site_names)),
            );
            ok = false;
        } else if !sites.contains_key(&source_site) {
            ok = false; // the site itself is invalid and reported
        }
        ok.then(|| Settings {
            library: raw.library.clone(),
            source_site,
            parallelism: raw.parallelism,
            keep_previous: raw.keep_previous,
        })
    }
}

/// What is wrong with a string that should be a credential-free base URL.
pub(super) fn check_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("uses scheme `{}`; use https (or http for a lab on loopback)", url.scheme()));
    }
    let Some(host) = url.host() else { return Err("has no host".to_owned()) };
    if url.scheme() == "http" && !allows_plain_http(&url) {
        return Err(format!(
            "uses plain http to `{host}`, which would send credentials unencrypted; use https \
             (http only for a lab on 127.0.0.1, ::1 or localhost)"
        ));
    }
    Ok(())
}
