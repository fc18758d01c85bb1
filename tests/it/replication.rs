//! Replication between two lab sites, through golden's vCenter client: a subscribed library
//! really receives the publisher's items after the configured sync time, their files another
//! sync time later (vCenter lists an item before its content is cached), and a
//! PULL transfer copies a file from another vCenter's download endpoint. (vcsim cannot show
//! either: its subscriptions never cross processes.)

use std::time::{Duration, Instant};

use golden::connect::{Credentials, RetryPolicy, Secret, Tls, http_client};
use golden::desired::{DesiredState, Location, load};
use golden::ids::{ImageName, SiteName, VersionName};
use golden::lab::{LAB_PASSWORD, LAB_USER, Lab, LabOptions, Product, Timings};
use golden::live::{GoldenMeta, LibraryKind};
use golden::vcenter::VcenterClient;

use super::common::repo_root;

const SYNC_MS: u64 = 300;
const PREPARE_MS: u64 = 100;

fn desired() -> DesiredState {
    load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") }).expect("quickstart loads")
}

async fn lab() -> Lab {
    let timings = Timings { library_sync_ms: SYNC_MS, prepare_ms: PREPARE_MS, ..Timings::instant() };
    let state = golden::lab::seed::from_desired(&desired(), timings);
    Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() }).await.expect("lab starts")
}

fn client(lab: &Lab, site: &str) -> VcenterClient {
    let name = SiteName::new(site);
    let url = url::Url::parse(lab.url(site, Product::Vcenter).expect("endpoint")).expect("url");
    let creds = Credentials { user: LAB_USER.into(), password: Secret::new(LAB_PASSWORD), domain: None };
    let http = http_client(&name, &Tls::default()).expect("http client");
    VcenterClient::new(name, url, creds, http, RetryPolicy::none())
}

fn meta() -> GoldenMeta {
    GoldenMeta {
        image: ImageName::new("win11-ent"),
        version: VersionName::new("2026.10"),
        source: "vm:win11-build@sealed-2026-10".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_library_at_another_site_receives_items_and_files() {
    let lab = lab().await;
    let (hq, eu) = (client(&lab, "hq"), client(&lab, "eu"));
    let desired = desired();

    // Publish at hq: capture the build VM into the seeded, published library.
    let library = hq.find_library("golden-images").await.expect("find").expect("seeded library");
    let LibraryKind::Local { publish_url: Some(publish_url) } = &library.kind else {
        panic!("the source library is published: {library:?}")
    };
    let inv = hq.inventory().await.expect("hq inventory");
    let build = inv.vms.values().find(|v| v.name == "win11-build").expect("build VM").id.clone();
    // vCenter exports only a stopped VM.
    hq.stop_vm(&build, Duration::from_secs(5)).await.expect("stop the build VM");
    let item =
        hq.create_ovf_from_vm(&library.id, &build, "win11-ent-2026.10", &meta()).await.expect("capture");

    // Subscribe at eu: nothing before the sync time, the item with its metadata after.
    let eu_site = &desired.sites["eu"];
    let eu_inv = eu.inventory().await.expect("eu inventory");
    let placement = eu_inv
        .placement(&eu_site.datacenter, &eu_site.compute, &eu_site.folder, &eu_site.datastore)
        .expect("placement");
    // Measured from before the subscription: the sync takes SYNC_MS, whatever the load (less
    // the lab's rounding to whole milliseconds).
    let started = Instant::now();
    let subscribed = eu
        .create_subscribed_library("golden-images", &placement.datastore, publish_url)
        .await
        .expect("subscribe");
    let copied = loop {
        let found = eu.find_item(&subscribed, "win11-ent-2026.10").await.expect("find");
        if let Some(item) = found {
            break item.id;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the sync never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(started.elapsed() >= Duration::from_millis(SYNC_MS - 20), "items arrived before the sync time");
    let got = eu.get_item(&copied).await.expect("get copied item");
    assert_eq!(got.meta, Some(meta()), "metadata travels with the item");
    assert_ne!(copied, item, "the copy is a new item of the subscriber");

    // The metadata comes first, the content SYNC_MS later: until then the copy is not
    // cached, lists no file as there, and cannot be deployed.
    assert!(!got.cached, "the content arrives after the metadata");
    assert!(eu.list_files(&copied).await.expect("files").is_empty(), "no file is there yet");
    let early = eu.deploy_ovf(&copied, &placement.deploy("golden-too-early")).await;
    assert!(early.is_err(), "a deploy before the content is there is refused: {early:?}");
    while !eu.get_item(&copied).await.expect("get copied item").cached {
        assert!(started.elapsed() < Duration::from_secs(10), "the content never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2 * SYNC_MS - 20),
        "the content arrived with the metadata"
    );
    assert!(!eu.list_files(&copied).await.expect("files").is_empty(), "the files are there");

    // The copy is deployable at eu, into eu's own placement.
    let vm =
        eu.deploy_ovf(&copied, &placement.deploy("golden-win11-ent-2026.10")).await.expect("deploy at eu");
    let after = eu.inventory().await.expect("eu inventory");
    assert!(after.vms.contains_key(&vm), "deployed VM {vm} is in eu's inventory");
    // The Packer-built item of the source library came along too.
    assert_eq!(eu.list_items(&subscribed).await.expect("list").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_copies_a_file_from_another_vcenter() {
    let lab = lab().await;
    let (hq, eu) = (client(&lab, "hq"), client(&lab, "eu"));
    let library = hq.find_library("golden-images").await.expect("find").expect("seeded library");
    let packer = hq.find_item(&library.id, "win11-2026.11").await.expect("find").expect("seeded item");
    // Preparing a file takes time: the URL is handed out only once it is usable.
    let started = Instant::now();
    let source = hq.prepare_download(&packer.id, "win11-2026.11.ovf", Duration::from_secs(10)).await;
    let source = source.expect("download URL").uri;
    assert!(started.elapsed() >= Duration::from_millis(PREPARE_MS - 20), "returned before PREPARED");

    let eu_site = &desired().sites["eu"];
    let eu_inv = eu.inventory().await.expect("eu inventory");
    let placement = eu_inv
        .placement(&eu_site.datacenter, &eu_site.compute, &eu_site.folder, &eu_site.datastore)
        .expect("placement");
    let local = eu.create_published_library("golden-images", &placement.datastore).await.expect("library");
    let target = eu.create_item(&local, "win11-ent-2026.11", "ovf", &meta()).await.expect("item");
    let started = Instant::now();
    eu.pull_file(&target, "win11-2026.11.ovf", &source, Duration::from_secs(10)).await.expect("pull");
    assert!(
        started.elapsed() >= Duration::from_millis(SYNC_MS - 20),
        "the transfer takes the configured time"
    );

    let copy = eu.prepare_download(&target, "win11-2026.11.ovf", Duration::from_secs(10)).await;
    let copy = copy.expect("download URL at eu").uri;
    let bytes = reqwest::get(&copy).await.expect("download").bytes().await.expect("bytes");
    assert!(String::from_utf8_lossy(&bytes).contains("<Name>win11-2026.11</Name>"), "the OVF arrived intact");
    eu.deploy_ovf(&target, &placement.deploy("golden-win11-ent-2026.11"))
        .await
        .expect("deploy the pulled copy");
}
