//! The TOML files of a desired-state repository, exactly as written.
//!
//! These types are the contract of the repo format: serde reads them and schemars turns them into
//! the JSON Schemas under `schema/`, so editors and golden agree on every key. They are loose on
//! purpose (most fields optional) so that validation can report every missing field at once with
//! a precise location instead of stopping at the first; [`super::validate`] turns them into the
//! checked domain types of [`super`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Logoff, PoolKind};

/// `golden.toml`: settings and sites.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "golden.toml")]
pub struct GoldenFile {
    pub settings: SettingsFile,
    /// One table per site: a Horizon pod and the vCenter hosting its desktops.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteFile>,
}

/// `[settings]`
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SettingsFile {
    /// Content Library name used at every site.
    #[serde(default = "default_library")]
    pub library: String,
    /// The site whose vCenter publishes versions; every other site replicates from it.
    pub source_site: String,
    /// Steps run at once by `golden apply`.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 256))]
    pub parallelism: u32,
    /// Previous versions kept as copies per marker at each site, for a warm rollback.
    #[serde(default = "default_keep_previous")]
    pub keep_previous: u32,
}

fn default_library() -> String {
    "golden-images".to_owned()
}

fn default_parallelism() -> u32 {
    8
}

fn default_keep_previous() -> u32 {
    1
}

/// `[sites.<name>]`. Credentials never go here: they come from `GOLDEN_<SITE>_*` variables.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SiteFile {
    /// vCenter base URL, e.g. `https://vc-hq.corp.example`.
    #[schemars(required)]
    pub vcenter: Option<String>,
    /// Horizon Connection Server base URL, e.g. `https://horizon-hq.corp.example`.
    #[schemars(required)]
    pub horizon: Option<String>,
    /// Datacenter that holds the base VMs.
    #[schemars(required)]
    pub datacenter: Option<String>,
    /// Cluster for base VMs (its root resource pool is used). Give this or `resource_pool`.
    pub cluster: Option<String>,
    /// Resource pool for base VMs. Give this or `cluster`.
    pub resource_pool: Option<String>,
    /// VM folder for base VMs.
    #[schemars(required)]
    pub folder: Option<String>,
    /// Datastore for library items and base VMs.
    #[schemars(required)]
    pub datastore: Option<String>,
    /// PEM file with the CA that signs this site's certificates (relative to the repo root).
    pub ca_file: Option<String>,
    /// IANA time zone the site's windows are read in, e.g. `Europe/Berlin` (default: UTC).
    pub timezone: Option<String>,
    /// Maintenance window for the site's pools, e.g. `Sat 02:00-06:00` or `Mon-Fri 22:00-04:00`:
    /// a push planned outside it is scheduled by Horizon at the next window start.
    pub window: Option<String>,
}

/// `images/<image>.toml`: one golden image, its version tree and its markers.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "images/<image>.toml")]
pub struct ImageFile {
    pub description: Option<String>,
    /// The versions of this image. Published versions are immutable: a change is a new version.
    #[serde(default)]
    pub versions: BTreeMap<String, VersionFile>,
    /// Marker name to version name, e.g. `prod = "2026.10"`.
    #[serde(default)]
    pub markers: BTreeMap<String, String>,
    /// Promotion rules by marker: `[policy.prod] after = "pilot", soak = "72h"`.
    #[serde(default)]
    pub policy: BTreeMap<String, PolicyFile>,
}

/// `[policy.<marker>]`: the marker may only point at a version that `after` has pointed at
/// for at least `soak`, with `after`'s pools running it and no failed push.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PolicyFile {
    /// The marker that must have pointed at the version first, e.g. `pilot`.
    #[schemars(required)]
    pub after: Option<String>,
    /// How long, e.g. `72h`, `3d`, `90m` (default: no wait beyond `after`'s pools running it).
    pub soak: Option<String>,
}

/// `[versions."<name>"]`
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VersionFile {
    /// The version this one was built from.
    pub parent: Option<String>,
    /// Where the version comes from.
    #[schemars(required)]
    pub source: Option<SourceFile>,
    pub notes: Option<String>,
    /// The version pools already ran before golden (written by `golden init --from-live`):
    /// golden takes each pool's current base VM as its copy at that site (tagging it) instead
    /// of publishing, copying and pushing it. Needs a `vm` and `snapshot` source.
    pub adopted: Option<bool>,
}

/// `source = { vm = "...", snapshot = "..." }` or `source = { library_item = "..." }`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SourceFile {
    /// A VM at the source site to capture.
    pub vm: Option<String>,
    /// A snapshot of `vm` to capture (default: its current state).
    pub snapshot: Option<String>,
    /// An item already in the source site's library (e.g. built by Packer).
    pub library_item: Option<String>,
}

/// `pools/*.toml`: any number of pool and farm bindings.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields, title = "pools/*.toml")]
pub struct PoolsFile {
    #[serde(default)]
    pub pools: BTreeMap<String, PoolFile>,
}

/// `[pools.<name>]`: a Horizon desktop pool or RDS farm bound to an image marker.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PoolFile {
    /// The site the pool lives at.
    pub site: String,
    #[serde(default)]
    pub kind: PoolKind,
    /// The pool's name in Horizon; defaults to the table key.
    pub horizon_name: Option<String>,
    pub image: String,
    pub marker: String,
    /// Lower waves go first; a wave starts when every push of the previous one succeeded.
    #[serde(default = "default_wave")]
    pub wave: u32,
    #[serde(default)]
    pub logoff: Logoff,
    /// Maintenance window for this pool, overriding its site's, e.g. `Sat 02:00-06:00`.
    pub window: Option<String>,
    /// Push to this many machines first (Horizon 2206+ selective push), the rest once they
    /// are available with the new image. Desktop pools only.
    #[schemars(range(min = 1))]
    pub canary: Option<u32>,
}

fn default_wave() -> u32 {
    1
}
