//! The desired state: what the git repository says the world should look like.
//!
//! [`layout`] reads a repository's files (a working tree here; the `golden` binary also reads
//! any git ref without checking it out) and [`validate`] checks them before any network call, producing a [`DesiredState`] whose every
//! cross-reference is known to resolve: markers point at versions, parents exist and form a tree,
//! pools name known sites, images and markers. Later stages can rely on that and never re-check.

pub mod files;
pub mod layout;
pub mod rollout;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{CommitId, HorizonName, ImageName, MarkerName, PoolName, SiteName, VersionName};

pub use layout::{RepoFiles, load_dir};
pub use rollout::{Policy, Soak, Window, Zone};

/// A validated desired state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredState {
    /// The commit the state was read from, when the repository is in git.
    pub revision: Option<Revision>,
    /// The SHA-256 of the desired-state files read (their paths and texts): what a saved plan
    /// was made from, whether committed or not.
    pub digest: String,
    pub settings: Settings,
    pub sites: BTreeMap<SiteName, Site>,
    pub images: BTreeMap<ImageName, Image>,
    pub pools: BTreeMap<PoolName, Pool>,
}

/// The git commit a desired state came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Full hex object id of the commit.
    pub commit: CommitId,
    /// The ref given with `--ref`, or `None` for the working tree.
    pub reference: Option<String>,
    /// The working tree's desired-state files differ from the commit (uncommitted edits): the
    /// state is of those files, not of the commit.
    #[serde(default)]
    pub dirty: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub library: String,
    pub source_site: SiteName,
    pub parallelism: u32,
    pub keep_previous: u32,
}

/// Whether `url` may use plain `http://`: only on a loopback host (127.0.0.0/8, `::1`,
/// `localhost`), where the credentials golden sends (vCenter's basic auth and SOAP login,
/// Horizon's login body) never leave the machine, as with the lab or an SSH tunnel. Anywhere
/// else an endpoint must be `https://`: over plain HTTP anyone on the path reads the password.
pub fn allows_plain_http(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Site {
    pub name: SiteName,
    pub vcenter: String,
    pub horizon: String,
    pub datacenter: String,
    pub compute: Compute,
    pub folder: String,
    pub datastore: String,
    pub ca_file: Option<String>,
    /// The time zone windows are read in (UTC unless the site names one).
    pub timezone: Zone,
    /// When pushes may run at the site's pools (a pool's own window wins).
    pub window: Option<Window>,
}

/// Where base VMs run: a cluster (its root resource pool) or a named resource pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compute {
    Cluster(String),
    ResourcePool(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Image {
    pub name: ImageName,
    pub description: Option<String>,
    pub versions: BTreeMap<VersionName, Version>,
    pub markers: BTreeMap<MarkerName, VersionName>,
    /// Promotion rules, by the marker they hold back.
    pub policies: BTreeMap<MarkerName, Policy>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Version {
    pub name: VersionName,
    pub parent: Option<VersionName>,
    pub source: Source,
    pub notes: Option<String>,
    /// Pools already ran it before golden: their current base VMs become golden's copies (an
    /// `adopt` step) rather than being published, copied and pushed again.
    pub adopted: bool,
}

/// Where a version's bytes come from at the source site. A plan's publish step carries it as
/// is (`{"type":"vm","vm":…,"snapshot":…}` or `{"type":"library_item","name":…}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// Capture a VM, at a snapshot or at its current state.
    Vm { vm: String, snapshot: Option<String> },
    /// Adopt an item already in the source library.
    LibraryItem { name: String },
}

impl Source {
    /// The identity golden records for the source in what it publishes, e.g.
    /// `vm:win11-build@sealed-2026-10`: a published version whose recorded source differs from
    /// the repository's is an error, since published versions are immutable.
    pub fn identity(&self) -> String {
        match self {
            Source::Vm { vm, snapshot: Some(s) } => format!("vm:{vm}@{s}"),
            Source::Vm { vm, snapshot: None } => format!("vm:{vm}"),
            Source::LibraryItem { name } => format!("library_item:{name}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub name: PoolName,
    pub site: SiteName,
    pub kind: PoolKind,
    pub horizon_name: HorizonName,
    pub image: ImageName,
    pub marker: MarkerName,
    pub wave: u32,
    pub logoff: Logoff,
    /// When pushes may run (else the site's window; none: at once).
    pub window: Option<Window>,
    /// Push to this many machines first, the rest once they are available.
    pub canary: Option<u32>,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    /// An instant-clone desktop pool.
    #[default]
    DesktopPool,
    /// An automated instant-clone RDS farm.
    Farm,
}

impl fmt::Display for PoolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolKind::DesktopPool => "desktop pool",
            PoolKind::Farm => "farm",
        })
    }
}

/// What happens to logged-on users when a pool moves to a new image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Logoff {
    /// Wait for users to log off (Horizon `WAIT_FOR_LOGOFF`).
    #[default]
    Wait,
    /// Log users off (Horizon `FORCE_LOGOFF`).
    Force,
}

impl DesiredState {
    /// Counts for the one-line summary of `golden validate`.
    pub fn summary(&self) -> String {
        let versions: usize = self.images.values().map(|i| i.versions.len()).sum();
        let markers: usize = self.images.values().map(|i| i.markers.len()).sum();
        format!(
            "{} sites, {} images, {} versions, {} markers, {} pools",
            self.sites.len(),
            self.images.len(),
            versions,
            markers,
            self.pools.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::allows_plain_http;

    #[test]
    fn plain_http_is_allowed_on_loopback_hosts_only() {
        let allowed = |u: &str| allows_plain_http(&url::Url::parse(u).expect("a URL"));
        for loopback in ["http://127.0.0.1:8080", "http://127.9.8.7", "http://[::1]:1", "http://LOCALHOST:1"]
        {
            assert!(allowed(loopback), "{loopback}");
        }
        for remote in
            ["http://10.0.0.1", "http://vc.corp.example", "http://127.0.0.1.evil.example", "http://[::2]"]
        {
            assert!(!allowed(remote), "{remote}");
        }
    }
}
