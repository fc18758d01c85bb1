//! The whole flow as a user runs it, against three sites that share one vCenter (a datacenter
//! each): validate → plan → apply → plan (empty) → a marker move → apply → `git revert` →
//! apply → plan (empty). It runs on vcsim (VMware's simulator, three datacenters in one
//! process), with the lab's Horizon standing in for each site's Connection Server and reading
//! base VMs from vcsim, and on the lab alone. It asserts on the vCenter's and Horizon's state,
//! not on golden's output: every pool runs a base VM of its own datacenter, there is one copy
//! per site and version, nothing was pushed twice, and the source VM's snapshots are as the
//! build left them.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use golden::connect::{Credentials, RetryPolicy, Secret};
use golden::ids::SiteName;
use golden::lab::horizon::{HorizonSim, PoolKind};
use golden::lab::remote::RemoteVcenter;
use golden::lab::vcenter::{
    Cluster, Datacenter, Datastore, Folder, FolderKind, ResourcePool, VcenterSim, Vm,
};
use golden::lab::{Lab, LabOptions, LabState, Product, SiteLab, Timings, VcenterLab};
use golden::live::{GoldenMeta, Moref, Snapshot};
use golden::vcenter::{Inventory, VcenterClient};

use super::common::{Output, TempRepo, golden, run};
use super::vcsim::Vcsim;

const SITES: [&str; 3] = ["hq", "eu", "us"];
const VCSIM_USER: &str = "flow-user";
const VCSIM_PASSWORD: &str = "flow-S3cret!";

/// The names a site's placement has in one world.
struct Place {
    datacenter: String,
    cluster: String,
    folder: String,
    datastore: String,
}

/// One world to run the flow in: a vCenter (vcsim or the lab's) and the lab's Horizons.
struct World {
    lab: Lab,
    /// What golden needs in its environment: every endpoint and credential.
    env: Vec<(String, String)>,
    /// A client of the vCenter, for the assertions.
    vcenter: VcenterClient,
    places: BTreeMap<&'static str, Place>,
    source_vm: String,
    _vcsim: Option<Vcsim>,
}

fn repo_text(places: &BTreeMap<&str, Place>, source_vm: &str) -> Vec<(String, String)> {
    let mut golden = String::from("[settings]\nsource_site = \"hq\"\nkeep_previous = 1\n");
    for site in SITES {
        let p = &places[site];
        // One vCenter URL for all three; the environment points it at the world's vCenter.
        golden.push_str(&format!(
            "\n[sites.{site}]\nvcenter = \"http://127.0.0.1:9\"\nhorizon = \"http://127.0.0.1:9\"\ndatacenter = \"{}\"\ncluster = \"{}\"\nfolder = \"{}\"\ndatastore = \"{}\"\n",
            p.datacenter, p.cluster, p.folder, p.datastore
        ));
    }
    let mut pools = String::new();
    for (wave, site) in SITES.iter().enumerate() {
        pools.push_str(&format!(
            "[pools.{site}-office]\nsite = \"{site}\"\nhorizon_name = \"Office-{site}\"\nimage = \"win\"\nmarker = \"prod\"\nwave = {}\n\n",
            wave + 1
        ));
    }
    vec![
        ("golden.toml".into(), golden),
        ("images/win.toml".into(), image_text(source_vm, "v1")),
        ("pools/office.toml".into(), pools),
    ]
}

fn image_text(source_vm: &str, prod: &str) -> String {
    format!(
        "[versions.v1]\nsource = {{ vm = \"{source_vm}\", snapshot = \"sealed-1\" }}\n\n[versions.v2]\nparent = \"v1\"\nsource = {{ vm = \"{source_vm}\", snapshot = \"sealed-2\" }}\n\n[markers]\nprod = \"{prod}\"\n"
    )
}

fn client(url: &url::Url, user: &str, password: &str) -> VcenterClient {
    let credentials = Credentials { user: user.to_owned(), password: Secret::new(password), domain: None };
    VcenterClient::new(
        SiteName::new("flow"),
        url.clone(),
        credentials,
        reqwest::Client::new(),
        RetryPolicy::default(),
    )
}

/// vcsim with three datacenters; the lab serves only Horizon, reading base VMs from vcsim.
/// The build VM (with its sealed snapshots) and every pool's image before golden are made the
/// way an admin would: snapshots of VMs of the simulator's model.
async fn on_vcsim() -> Option<World> {
    let sim = Vcsim::start(&["-username", VCSIM_USER, "-password", VCSIM_PASSWORD, "-dc", "3"])?;
    let vcenter = client(&sim.url, VCSIM_USER, VCSIM_PASSWORD);
    let mut places = BTreeMap::new();
    let mut horizons = BTreeMap::new();
    let mut source_vm = String::new();
    for (site, dc) in SITES.iter().zip(&sim.inventory.datacenters) {
        let cluster = &dc.clusters[0];
        let in_cluster: Vec<_> = dc.vms.iter().filter(|v| v.name.starts_with(&cluster.name)).collect();
        let legacy = Moref::new(in_cluster[1].id.clone());
        let initial = vcenter
            .create_snapshot(&legacy, "initial", "image in use before golden")
            .await
            .expect("snapshot");
        if *site == "hq" {
            let build = Moref::new(in_cluster[0].id.clone());
            for name in ["sealed-1", "sealed-2"] {
                vcenter.create_snapshot(&build, name, "sealed build").await.expect("snapshot");
            }
            source_vm = in_cluster[0].name.clone();
        }
        let mut horizon = HorizonSim::new(&uuid::Uuid::new_v4().to_string(), "vcsim");
        horizon.add_pool(
            PoolKind::DesktopPool,
            &format!("Office-{site}"),
            &dc.id,
            legacy.as_str(),
            initial.as_str(),
        );
        horizons.insert(*site, (dc.id.clone(), horizon));
        places.insert(
            *site,
            Place {
                datacenter: dc.name.clone(),
                cluster: cluster.name.clone(),
                folder: "vm".into(),
                datastore: dc.datastores[0].name.clone(),
            },
        );
    }
    let sites = horizons
        .into_iter()
        .map(|(site, (datacenter, horizon))| {
            let lab = SiteLab {
                name: site.into(),
                vcenter: "vcsim".into(),
                datacenter,
                horizon,
                horizon_url: None,
            };
            (site.to_owned(), lab)
        })
        .collect();
    let vcsim = VcenterLab { name: "vcsim".into(), sim: Default::default(), url: None };
    let state = LabState {
        vcenters: BTreeMap::from([("vcsim".to_owned(), vcsim)]),
        sites,
        timings: Timings::instant(),
    };
    let remote: Arc<dyn RemoteVcenter> = Arc::new(Vcsim3(client(&sim.url, VCSIM_USER, VCSIM_PASSWORD)));
    let options = LabOptions {
        free_ports: true,
        remote_vcenters: BTreeMap::from([("vcsim".to_owned(), remote)]),
        ..LabOptions::default()
    };
    let lab = Lab::start(state, options).await.expect("the lab's Horizons start");
    let mut env = lab.env();
    for site in SITES {
        let prefix = SiteName::new(site).env_prefix();
        env.push((format!("{prefix}_VCENTER_URL"), sim.url.to_string()));
        env.push((format!("{prefix}_VCENTER_USER"), VCSIM_USER.into()));
        env.push((format!("{prefix}_VCENTER_PASSWORD"), VCSIM_PASSWORD.into()));
    }
    Some(World { lab, env, vcenter, places, source_vm, _vcsim: Some(sim) })
}

/// vcsim as the lab's Horizon sees it, read through golden's own client.
#[derive(Debug)]
struct Vcsim3(VcenterClient);

impl RemoteVcenter for Vcsim3 {
    fn read(&self) -> Pin<Box<dyn Future<Output = Result<VcenterSim, String>> + Send + '_>> {
        Box::pin(async move {
            let (inventory, uuid) = tokio::join!(self.0.inventory(), self.0.instance_uuid());
            let (inventory, uuid) = (inventory.map_err(|e| e.to_string())?, uuid.map_err(|e| e.to_string())?);
            Ok(mirror(&inventory, uuid.as_str()))
        })
    }
}

/// The mirror of an inventory: what Horizon reads of it, as the lab's model.
fn mirror(inventory: &Inventory, instance_uuid: &str) -> VcenterSim {
    let mut sim = VcenterSim::new(instance_uuid);
    for dc in inventory.datacenters.values() {
        sim.datacenters.insert(
            dc.id.to_string(),
            Datacenter {
                id: dc.id.to_string(),
                name: dc.name.clone(),
                vm_folder: dc.vm_folder.to_string(),
                host_folder: String::new(),
                datastore_folder: String::new(),
                network_folder: String::new(),
            },
        );
        // Folder parents are not read: every folder hangs below the root VM folder, which is
        // all Horizon's paths need.
        for f in &dc.folders {
            let parent = if f.id == dc.vm_folder { dc.id.to_string() } else { dc.vm_folder.to_string() };
            sim.folders.insert(
                f.id.to_string(),
                Folder {
                    id: f.id.to_string(),
                    name: f.name.clone(),
                    parent: Some(parent),
                    kind: FolderKind::Vm,
                },
            );
        }
        for c in &dc.clusters {
            sim.clusters.insert(
                c.id.to_string(),
                Cluster {
                    id: c.id.to_string(),
                    name: c.name.clone(),
                    datacenter: dc.id.to_string(),
                    resource_pool: c.resource_pool.to_string(),
                    hosts: Vec::new(),
                },
            );
        }
        for p in &dc.resource_pools {
            let id = p.id.to_string();
            let pool = ResourcePool {
                id: id.clone(),
                name: p.name.clone(),
                parent: String::new(),
                cluster: String::new(),
            };
            sim.resource_pools.insert(id, pool);
        }
        for d in &dc.datastores {
            let id = d.id.to_string();
            sim.datastores
                .insert(id.clone(), Datastore { id, name: d.name.clone(), datacenter: dc.id.to_string() });
        }
        for (id, folder) in &dc.vms {
            let Some(vm) = inventory.vms.get(id) else { continue };
            let snapshots: Vec<golden::lab::vcenter::Snapshot> = vm
                .snapshots
                .iter()
                .zip(1..)
                .map(|(s, num)| golden::lab::vcenter::Snapshot {
                    id: s.id.to_string(),
                    num,
                    name: s.name.clone(),
                    description: String::new(),
                    parent: s.parent.as_ref().map(ToString::to_string),
                    created_ms: 0,
                    disk: String::new(),
                    powered_on: false,
                })
                .collect();
            sim.vms.insert(
                id.to_string(),
                Vm {
                    id: id.to_string(),
                    name: vm.name.clone(),
                    datacenter: dc.id.to_string(),
                    folder: folder.to_string(),
                    resource_pool: None,
                    host: String::new(),
                    datastore: String::new(),
                    template: vm.template,
                    powered_on: vm.powered_on,
                    guest_id: "windows9_64Guest".into(),
                    annotation: String::new(),
                    current_snapshot: snapshots.last().map(|s| s.id.clone()),
                    snapshots,
                    disk: String::new(),
                },
            );
        }
    }
    sim
}

/// The lab alone, seeded from the same repository: one simulated vCenter for the three sites.
async fn on_lab(repo: &Path) -> World {
    let desired = golden::desired::load(&golden::desired::Location::WorkTree { dir: repo.to_owned() })
        .expect("the flow's repository is valid");
    let state = golden::lab::seed::from_desired(&desired, Timings::instant());
    assert_eq!(state.vcenters.len(), 1, "the three sites share one lab vCenter");
    let lab = Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() }).await.expect("lab");
    let url = url::Url::parse(lab.url("hq", Product::Vcenter).expect("a vCenter")).expect("url");
    let vcenter = client(&url, golden::lab::LAB_USER, golden::lab::LAB_PASSWORD);
    let env = lab.env();
    World { lab, env, vcenter, places: lab_places(), source_vm: "win11-build".into(), _vcsim: None }
}

fn lab_places() -> BTreeMap<&'static str, Place> {
    SITES
        .iter()
        .map(|site| {
            let up = site.to_uppercase();
            let place = Place {
                datacenter: format!("DC-{up}"),
                cluster: format!("Cluster-{up}"),
                folder: "golden".into(),
                datastore: format!("ds-{site}"),
            };
            (*site, place)
        })
        .collect()
}

async fn golden_in(world: &World, dir: &Path, args: &[&str]) -> Output {
    let (env, dir) = (world.env.clone(), dir.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run(golden(&dir).envs(env).args(&args))).await.expect("golden ran")
}

async fn expect(world: &World, dir: &Path, args: &[&str], code: i32) {
    let out = golden_in(world, dir, args).await;
    assert_eq!(out.code, code, "golden {}:\n{}\n{}", args.join(" "), out.stdout, out.stderr);
}

/// golden's base VMs in each datacenter, by version.
fn copies(inventory: &Inventory) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for dc in inventory.datacenters.values() {
        for vm in dc.vms.keys().filter_map(|id| inventory.vms.get(id)) {
            if let Some(GoldenMeta { version, .. }) = &vm.meta {
                *out.entry((dc.name.clone(), version.to_string())).or_default() += 1;
            }
        }
    }
    out
}

/// Checks that every pool runs `version` from a base VM of its own site's datacenter, and
/// that each datacenter holds one copy of each version in `kept`.
async fn check(world: &World, version: &str, kept: &[&str]) {
    let inventory = world.vcenter.inventory().await.expect("the vCenter's inventory");
    let expected: BTreeMap<(String, String), usize> = SITES
        .iter()
        .flat_map(|s| kept.iter().map(move |v| ((world.places[s].datacenter.clone(), (*v).to_owned()), 1)))
        .collect();
    assert_eq!(copies(&inventory), expected, "one copy per site and version");
    let state = world.lab.state().read().clone();
    for site in SITES {
        let dc = inventory.datacenter(&world.places[site].datacenter).expect("the site's datacenter");
        for pool in state.sites[site].horizon.pools.values() {
            let vm = Moref::new(pool.parent_vm_id.clone());
            assert!(
                dc.vms.contains_key(&vm),
                "{site}: pool {} runs {vm}, not a VM of {}",
                pool.name,
                dc.name
            );
            let base = &inventory.vms[&vm];
            let runs = base.meta.as_ref().map(|m| m.version.to_string());
            assert_eq!(runs.as_deref(), Some(version), "{site}: pool {} runs {}", pool.name, base.name);
            let snapshot = base.snapshots.last().map(|s| s.id.to_string());
            assert_eq!(
                snapshot.as_deref(),
                Some(pool.base_snapshot_id.as_str()),
                "{site}: the base snapshot"
            );
        }
    }
}

/// The source VM's snapshot tree, as the build left it.
async fn source_snapshots(world: &World) -> Vec<Snapshot> {
    let inventory = world.vcenter.inventory().await.expect("inventory");
    let vm = inventory.vms.values().find(|v| v.name == world.source_vm).expect("the source VM");
    vm.snapshots.clone()
}

/// Pushes Horizon accepted, per site.
fn pushes(world: &World) -> BTreeMap<&'static str, u64> {
    SITES
        .iter()
        .map(|site| {
            let routes = world.lab.requests_by_route(site, Product::Horizon);
            let n = routes
                .iter()
                .filter(|(r, _)| r.ends_with("/action/schedule-push-image"))
                .map(|(_, n)| n)
                .sum();
            (*site, n)
        })
        .collect()
}

async fn flow(world: &World, repo: &TempRepo) {
    let dir = repo.path();
    let before = source_snapshots(world).await;
    expect(world, dir, &["validate"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 2).await;
    expect(world, dir, &["apply", "--auto-approve"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 0).await;
    check(world, "v1", &["v1"]).await;

    repo.write("images/win.toml", &image_text(&world.source_vm, "v2"));
    let moved = repo.commit("Promote v2 to prod");
    expect(world, dir, &["apply", "--auto-approve"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 0).await;
    check(world, "v2", &["v1", "v2"]).await;

    // `git revert` of the marker move is the rollback: v1 is still warm everywhere.
    let commit = repo.repo.find_commit(moved).expect("the move");
    repo.repo.revert(&commit, None).expect("git revert");
    repo.commit("Revert \"Promote v2 to prod\"");
    expect(world, dir, &["apply", "--auto-approve"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 0).await;
    check(world, "v1", &["v1", "v2"]).await;

    // Three pushes per pool (first deploy, move, revert), none twice.
    assert_eq!(pushes(world), SITES.iter().map(|s| (*s, 3)).collect(), "pushes per site");
    assert_eq!(source_snapshots(world).await, before, "the source VM's snapshots are untouched");
}

fn repo_for(places: &BTreeMap<&str, Place>, source_vm: &str) -> TempRepo {
    let repo = TempRepo::new();
    for (path, text) in repo_text(places, source_vm) {
        repo.write(&path, &text);
    }
    repo.commit("Import golden images");
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_vcsim_with_three_sites_in_one_vcenter() {
    let Some(world) = on_vcsim().await else { return };
    let repo = repo_for(&world.places, &world.source_vm);
    tokio::time::timeout(Duration::from_secs(300), flow(&world, &repo)).await.expect("the flow finishes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_on_the_lab_with_three_sites_in_one_vcenter() {
    // The lab is seeded from the repository, so the repository comes first.
    let repo = repo_for(&lab_places(), "win11-build");
    let world = on_lab(repo.path()).await;
    tokio::time::timeout(Duration::from_secs(300), flow(&world, &repo)).await.expect("the flow finishes");
}

/// Adopting the estate on vcsim: `init --from-live` from the sites alone, a first plan that only
/// adopts the VMs the pools run (tags), no VM or snapshot made and no push; then a marker move
/// of one image plans the push of exactly its pool.
async fn adoption(world: &World) {
    let repo = TempRepo::new();
    let (path, golden_toml) = repo_text(&world.places, &world.source_vm).remove(0);
    repo.write(&path, &golden_toml);
    repo.commit("Sites");
    let dir = repo.path();
    expect(world, dir, &["init", "--from-live"], 0).await;
    expect(world, dir, &["validate"], 0).await;
    repo.commit("Adopt the estate");
    let vms = |inventory: &Inventory| -> (usize, usize) {
        (inventory.vms.len(), inventory.vms.values().map(|v| v.snapshots.len()).sum())
    };
    let before = vms(&world.vcenter.inventory().await.expect("inventory"));
    let plan = golden_in(world, dir, &["plan", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.trim_end().ends_with("Plan: 3 adopt (3 steps)."), "{}", plan.stdout);
    expect(world, dir, &["apply", "--auto-approve"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 0).await;
    let inventory = world.vcenter.inventory().await.expect("inventory");
    assert_eq!(vms(&inventory), before, "no VM or snapshot made");
    assert_eq!(pushes(world), SITES.iter().map(|s| (*s, 0)).collect(), "no push");
    assert_eq!(inventory.vms.values().filter(|v| v.meta.is_some()).count(), 3, "three VMs adopted");

    // hq's image gets a version from the build VM, and prod moves to it.
    let images = std::fs::read_dir(dir.join("images")).expect("images").count();
    assert_eq!(images, 3, "one image per base VM");
    let desired =
        golden::desired::load(&golden::desired::Location::WorkTree { dir: dir.to_owned() }).expect("valid");
    let hq = desired.pools.values().find(|p| p.site.as_str() == "hq").expect("hq's pool");
    let file = dir.join(format!("images/{}.toml", hq.image));
    let text = std::fs::read_to_string(&file).expect("image");
    let moved = text.replace("\"prod\" = \"initial\"", "\"prod\" = \"v2\"")
        + &format!(
            "\n[versions.v2]\nparent = \"initial\"\nsource = {{ vm = \"{}\", snapshot = \"sealed-1\" }}\n",
            world.source_vm
        );
    std::fs::write(&file, moved).expect("write");
    repo.commit("Promote v2");
    let plan = golden_in(world, dir, &["plan", "--format", "json"]).await;
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("JSON");
    let pushed: Vec<&str> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["kind"] == "push")
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(pushed, [format!("push/hq/{}", hq.name)], "{plan}");
    expect(world, dir, &["apply", "--auto-approve"], 0).await;
    expect(world, dir, &["plan", "--detailed-exitcode"], 0).await;
    assert_eq!(pushes(world), BTreeMap::from([("hq", 1), ("eu", 0), ("us", 0)]), "one push, at hq");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_estate_is_adopted_on_vcsim_and_a_marker_move_pushes_its_pool() {
    let Some(world) = on_vcsim().await else { return };
    tokio::time::timeout(Duration::from_secs(300), adoption(&world)).await.expect("the adoption finishes");
}
