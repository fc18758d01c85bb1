//! Live state: what a site's vCenter and Horizon really hold, in golden's own terms.
//!
//! The `vcenter` and `horizon` clients convert their wire types into these at their edge, so the
//! planner never sees an API type. Everything is normalised while loading (sorted, ids as opaque
//! strings) so that plans and snapshots are deterministic.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::desired::PoolKind;
use crate::ids::{HorizonName, ImageName, SiteName, VersionName, VersionRef, string_id};

string_id!(
    /// A vCenter managed object reference value (`vm-42`, `snapshot-7`, `group-v3`, or a
    /// datastore path such as vcsim's `/tmp/...@folder-5`). Opaque: never parsed.
    Moref
);
string_id!(
    /// A Content Library id (a UUID in vCenter).
    LibraryId
);
string_id!(
    /// A library item id (a UUID in vCenter); never a library's, so that the two cannot be
    /// swapped in a call.
    ItemId
);
string_id!(
    /// A vCenter's instance UUID (`ServiceContent.about.instanceUuid`). Sites whose vCenters
    /// report the same one share that vCenter, whatever their URLs say (aliases, load
    /// balancers), and with it golden's one library there.
    VcenterId
);
string_id!(
    /// A Horizon object id (pool, farm, virtual center), a UUID on real servers.
    HorizonId
);

/// The metadata golden writes on what it creates: which image and version an object holds.
///
/// Stored as JSON in a library item's description and as a vCenter tag on base VMs. An object
/// without it is not golden's and is never changed or deleted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GoldenMeta {
    pub image: ImageName,
    pub version: VersionName,
    /// Where the version came from at the source site, e.g. `vm:win11-build@sealed-2026-10` or
    /// `library_item:win11-2026.11`: a published version whose source differs is an error.
    pub source: String,
}

impl GoldenMeta {
    /// The version the object holds.
    pub fn version_ref(&self) -> VersionRef {
        VersionRef::new(&self.image, &self.version)
    }

    /// The VM the version was captured from, and its snapshot, when the source is a VM
    /// (`vm:<vm>@<snapshot>` or `vm:<vm>`, as `Source::identity` writes it).
    pub fn source_vm(&self) -> Option<(&str, Option<&str>)> {
        let rest = self.source.strip_prefix("vm:")?;
        Some(rest.rsplit_once('@').map_or((rest, None), |(vm, snapshot)| (vm, Some(snapshot))))
    }
}

/// Everything read from one site: what lives in its datacenter and its Horizon pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteLive {
    /// The vCenter the site's datacenter is in; its library is in [`LiveState::vcenters`].
    pub vcenter: VcenterId,
    /// VMs of the site's datacenter that matter to golden: base VMs it owns, and (at the
    /// source site) VMs named as sources. A VM of another datacenter is never listed here,
    /// whatever its metadata says.
    pub vms: BTreeMap<Moref, Vm>,
    /// Desktop pools and farms, by their Horizon name.
    pub pools: BTreeMap<HorizonName, LivePool>,
}

/// What a push to a pool or farm touches: its machines (desktop VMs, or a farm's RDS hosts)
/// and the user sessions on them now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Occupancy {
    pub machines: u32,
    pub sessions: u32,
}

impl std::ops::AddAssign for Occupancy {
    fn add_assign(&mut self, other: Occupancy) {
        self.machines += other.machines;
        self.sessions += other.sessions;
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub id: LibraryId,
    pub name: String,
    pub kind: LibraryKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryKind {
    /// A local library, published when `publish_url` is set.
    Local { publish_url: Option<String> },
    /// A library subscribed to another vCenter's published library.
    Subscribed { subscription_url: String, last_sync_ms: Option<i64> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryItem {
    pub id: ItemId,
    pub library: LibraryId,
    pub name: String,
    /// `ovf` or `vm-template`.
    pub kind: String,
    /// golden's metadata, when golden created (or adopted) the item.
    pub meta: Option<GoldenMeta>,
    /// Whether the item's content is all at this vCenter (vCenter's `cached`, or every file
    /// listed as cached). A subscribed library lists an item as soon as a sync brings its
    /// metadata; its files arrive later, and until then the copy is not there.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub cached: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    pub id: Moref,
    pub name: String,
    pub template: bool,
    pub powered_on: bool,
    /// golden's version of this VM, when golden owns it: the VM carries one of golden's tags
    /// (vSphere does not copy tags to a clone; it does copy the annotation).
    pub meta: Option<GoldenMeta>,
    /// What the annotation claims when no golden tag backs it: a hint only (a clone of a base
    /// VM, or a deploy whose run stopped before tagging). Never pushed, counted or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<GoldenMeta>,
    /// The library item a base VM was deployed from, as its annotation records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_from: Option<ItemRef>,
    /// Every snapshot of the VM, flattened in tree order (parents before children).
    pub snapshots: Vec<Snapshot>,
}

/// A library item as a base VM's annotation names it: enough to know the item without reading
/// it, since its metadata is the VM's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub id: ItemId,
    pub name: String,
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: Moref,
    pub name: String,
    pub parent: Option<Moref>,
}

/// The name of the snapshot golden takes of a version's base VM.
pub fn base_snapshot_name(version: &VersionName) -> String {
    format!("golden-{version}")
}

impl Vm {
    /// The snapshot a base VM of `version` gives pools: the one golden took for the version,
    /// whatever was taken after it; for a VM golden adopted (the version's own source VM,
    /// which pools ran before golden), the snapshot the version names; else the latest.
    pub fn base_snapshot(&self, version: &VersionName) -> Option<&Snapshot> {
        let name = base_snapshot_name(version);
        let source = self.meta.as_ref().and_then(GoldenMeta::source_vm);
        let adopted = source.and_then(|(vm, snapshot)| snapshot.filter(|_| vm == self.name));
        self.snapshots
            .iter()
            .find(|s| s.name == name)
            .or_else(|| self.snapshots.iter().find(|s| Some(s.name.as_str()) == adopted))
            .or(self.snapshots.last())
    }

    /// Whether this VM is the source a version of golden's names (`vm:<name>...`): the
    /// admin's VM, adopted, never one golden deployed.
    pub fn is_source_vm(&self) -> bool {
        self.meta.as_ref().and_then(GoldenMeta::source_vm).is_some_and(|(vm, _)| vm == self.name)
    }
}

/// An image as Horizon names it: a parent VM and one of its snapshots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    pub vm: Moref,
    pub snapshot: Moref,
}

/// A desktop pool or farm as Horizon reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePool {
    pub id: HorizonId,
    pub name: HorizonName,
    pub kind: PoolKind,
    /// False for pools golden cannot push to (not instant clone, not automated).
    pub instant_clone: bool,
    /// Horizon's `enable_provisioning`: a pool with provisioning off makes no new machines,
    /// so a push to it would never finish.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub provisioning: bool,
    /// Horizon's id of the vCenter the pool's machines live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcenter: Option<HorizonId>,
    pub current: Option<ImageRef>,
    pub pending: Option<PendingImage>,
    pub operation: Operation,
    pub last_error: Option<String>,
}

/// A new image being pushed to a pool or farm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingImage {
    pub image: ImageRef,
    pub state: PendingState,
    /// Publish progress, 0 to 100.
    pub progress: Option<u8>,
    pub error: Option<String>,
    /// When Horizon starts replacing machines (`instant_clone_push_image_settings.start_time`,
    /// epoch ms): a push scheduled for later when it is in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
}

/// Horizon's `instant_clone_pending_image_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PendingState {
    PendingPublish,
    Publishing,
    Ready,
    ReadyHeld,
    Failed,
    Unpublishing,
}

/// Horizon's `instant_clone_operation`, for pools and farms alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    None,
    InitialPublish,
    /// Pools: `SCHEDULE_PUSH_IMAGE`; farms: `RECURRING_SCHEDULED_MAINTENANCE`.
    PushImage,
    /// Pools: `CANCEL_SCHEDULED_PUSH_IMAGE`; farms: `CANCEL_SCHEDULED_MAINTENANCE`.
    CancelPush,
    InfrastructureChange,
    FinalUnpublish,
    /// A value this version of golden does not know; treated as "busy".
    Other,
}

/// What golden reads of one vCenter as a whole: its library, which every site of that vCenter
/// shares (replication is between vCenters; the sites of one vCenter share its failure domain).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcenterLive {
    /// The library named by `settings.library`, if it exists in this vCenter.
    pub library: Option<Library>,
    /// Library items in that library, by id.
    pub items: BTreeMap<ItemId, LibraryItem>,
}

/// Live state of every site that was read, and of their vCenters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    pub sites: BTreeMap<SiteName, SiteLive>,
    /// Every vCenter a site that was read is in, by instance UUID.
    pub vcenters: BTreeMap<VcenterId, VcenterLive>,
}

impl SiteLive {
    /// golden's metadata of the VM an image reference names, when golden owns that VM.
    pub fn meta_of(&self, image: &ImageRef) -> Option<&GoldenMeta> {
        self.vms.get(&image.vm)?.meta.as_ref()
    }

    /// The version an image reference (a pool's current or pending image) is, when golden owns
    /// the VM.
    pub fn version_of(&self, image: &ImageRef) -> Option<VersionRef> {
        self.meta_of(image).map(GoldenMeta::version_ref)
    }
}

impl LiveState {
    /// The library of the vCenter `site` is in, when the site was read.
    pub fn vcenter_of(&self, site: &SiteName) -> Option<&VcenterLive> {
        self.vcenters.get(&self.sites.get(site)?.vcenter)
    }

    /// A short, stable hash of every live object of `sites` and of their vCenters' libraries,
    /// by object key (`<site>/pool/<name>`, `<site>/vm/<id>`, `vcenter/<uuid>/item/<id>`,
    /// `vcenter/<uuid>/library/<id>`). A plan records them so that apply can tell what changed
    /// since.
    pub fn fingerprints(&self, sites: &[&SiteName]) -> BTreeMap<ObjectKey, String> {
        let mut out = BTreeMap::new();
        let mut hasher = Hasher(Vec::with_capacity(4096));
        let mut vcenters = BTreeSet::new();
        for (site, s) in sites.iter().filter_map(|site| Some((*site, self.sites.get(*site)?))) {
            for (name, pool) in &s.pools {
                out.insert(ObjectKey::Pool(site.clone(), name.clone()), hasher.hash(pool));
            }
            for (id, vm) in &s.vms {
                out.insert(ObjectKey::Vm(site.clone(), id.clone()), hasher.hash(vm));
            }
            vcenters.insert(&s.vcenter);
        }
        for (uuid, vc) in vcenters.into_iter().filter_map(|id| Some((id, self.vcenters.get(id)?))) {
            for (id, item) in &vc.items {
                out.insert(ObjectKey::Item(uuid.clone(), id.clone()), hasher.hash(item));
            }
            if let Some(lib) = &vc.library {
                out.insert(ObjectKey::Library(uuid.clone(), lib.id.clone()), hasher.hash(lib));
            }
        }
        out
    }
}

/// A live object a plan relied on, as a saved plan keys its fingerprint: `<site>/pool/<horizon
/// name>`, `<site>/vm/<moref>`, `vcenter/<uuid>/item/<id>` and `vcenter/<uuid>/library/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKey {
    Pool(SiteName, HorizonName),
    Vm(SiteName, Moref),
    Item(VcenterId, ItemId),
    Library(VcenterId, LibraryId),
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectKey::Pool(site, name) => write!(f, "{site}/pool/{name}"),
            ObjectKey::Vm(site, id) => write!(f, "{site}/vm/{id}"),
            ObjectKey::Item(vcenter, id) => write!(f, "vcenter/{vcenter}/item/{id}"),
            ObjectKey::Library(vcenter, id) => write!(f, "vcenter/{vcenter}/library/{id}"),
        }
    }
}

impl std::str::FromStr for ObjectKey {
    type Err = String;

    fn from_str(key: &str) -> Result<Self, String> {
        let wrong = || format!("`{key}` is not an object key");
        let (first, rest) = key.split_once('/').ok_or_else(wrong)?;
        let (second, name) = rest.split_once('/').ok_or_else(wrong)?;
        // A vCenter key is read from its end: ids have no `/`, a vCenter's id might.
        let vcenter = rest.rsplit_once('/').and_then(|(head, id)| Some((head.rsplit_once('/')?, id)));
        Ok(match (first, second, vcenter) {
            (site, "pool", _) => ObjectKey::Pool(SiteName::new(site), HorizonName::new(name)),
            (site, "vm", _) => ObjectKey::Vm(SiteName::new(site), Moref::new(name)),
            ("vcenter", _, Some(((uuid, "item"), id))) => {
                ObjectKey::Item(VcenterId::new(uuid), ItemId::new(id))
            }
            ("vcenter", _, Some(((uuid, "library"), id))) => {
                ObjectKey::Library(VcenterId::new(uuid), LibraryId::new(id))
            }
            _ => return Err(wrong()),
        })
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Fingerprints objects: the first 8 bytes of the SHA-256 of an object's JSON, in hex, written
/// into one buffer reused for every object (a live object always serialises).
struct Hasher(Vec<u8>);

impl Hasher {
    fn hash(&mut self, value: &impl Serialize) -> String {
        use sha2::{Digest, Sha256};
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.clear();
        let _ = serde_json::to_writer(&mut self.0, value);
        let digest = Sha256::digest(&self.0);
        digest[..8]
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .map(char::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Object keys read back as written, whatever the names hold after the kind.
    #[test]
    fn object_keys_round_trip() {
        let keys = [
            ObjectKey::Pool(SiteName::new("eu"), HorizonName::new("Finance/Desktops")),
            ObjectKey::Vm(SiteName::new("vcenter"), Moref::new("vm-42")),
            ObjectKey::Item(VcenterId::new("4217-ab"), ItemId::new("a1")),
            ObjectKey::Item(VcenterId::new("uuid-of-http://127.0.0.1:18441"), ItemId::new("a1")),
            ObjectKey::Library(VcenterId::new("4217-ab"), LibraryId::new("l1")),
        ];
        for key in keys {
            assert_eq!(key.to_string().parse::<ObjectKey>(), Ok(key.clone()), "{key}");
        }
        assert_eq!(ObjectKey::Vm(SiteName::new("eu"), Moref::new("vm-1")).to_string(), "eu/vm/vm-1");
        assert!("eu/disk/1".parse::<ObjectKey>().is_err());
        assert!("vcenter/4217/tag/1".parse::<ObjectKey>().is_err());
        assert!("eu".parse::<ObjectKey>().is_err());
    }
}
