//! A hostile or broken server, and hostile local files: golden refuses them with a clear error,
//! never panics, never waits without end, and never repeats what may have been done.
//!
//! The servers are the lab's, on loopback, bent with its fault rules (`/__fault`); the files are
//! temporary git repositories.

use std::collections::BTreeMap;
use std::time::Duration;

use golden::connect::{Credentials, RetryPolicy, Retryable, Secret, SiteConnection};
use golden::desired::{Compute, Location, Logoff, Site, load};
use golden::horizon::{HorizonClient, HorizonError, PushSpec};
use golden::ids::{ImageName, SiteName, VersionName};
use golden::lab::server::FaultRule;
use golden::lab::{LAB_DOMAIN, LAB_PASSWORD, LAB_USER, Lab, LabOptions, Product, Timings};
use golden::live::{GoldenMeta, ImageRef, LibraryId, Moref};
use golden::vcenter::{VcenterClient, VcenterError};
use serde_json::Value;

use super::common::{TempRepo, copy_dir, golden, quickstart_lab, repo_root, run};

const SITE: &str = "hq";

/// The quickstart's lab, each request taking `latency_ms`.
async fn quickstart_lab_with(latency_ms: u64) -> Lab {
    let desired = load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") }).expect("loads");
    let state = golden::lab::seed::from_desired(&desired, Timings::instant());
    let options = LabOptions { free_ports: true, latency_ms, ..LabOptions::default() };
    Lab::start(state, options).await.expect("the lab starts")
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy { attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_millis(50) }
}

/// An HTTP client that gives up on an answer after `timeout`.
fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().expect("http client")
}

fn horizon(lab: &Lab, http: reqwest::Client, retry: RetryPolicy) -> HorizonClient {
    let url = url::Url::parse(lab.url(SITE, Product::Horizon).expect("horizon")).expect("url");
    let credentials = Credentials {
        user: LAB_USER.to_owned(),
        password: Secret::new(LAB_PASSWORD),
        domain: Some(LAB_DOMAIN.to_owned()),
    };
    HorizonClient::new(SiteName::new(SITE), url, credentials, http, retry)
}

fn vcenter(lab: &Lab, http: reqwest::Client, retry: RetryPolicy) -> VcenterClient {
    let url = url::Url::parse(lab.url(SITE, Product::Vcenter).expect("vcenter")).expect("url");
    let credentials =
        Credentials { user: LAB_USER.to_owned(), password: Secret::new(LAB_PASSWORD), domain: None };
    VcenterClient::new(SiteName::new(SITE), url, credentials, http, retry)
}

fn route(lab: &Lab, product: Product, route: &str) -> u64 {
    lab.requests_by_route(SITE, product).get(route).copied().unwrap_or(0)
}

/// The hits of every fault rule of an endpoint, as its `/__fault` lists them.
async fn fault_hits(lab: &Lab, product: Product) -> Vec<u64> {
    let url = format!("{}/__fault", lab.url(SITE, product).expect("endpoint"));
    let request =
        reqwest::Client::new().get(url).header(golden::lab::CONTROL_TOKEN_HEADER, lab.control_token());
    let rules: Vec<Value> = request.send().await.expect("list faults").json().await.expect("json");
    rules.iter().map(|r| r["hits"].as_u64().unwrap_or(0)).collect()
}

const DESKTOP_POOLS: &str = "/rest/inventory/v2/desktop-pools";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizon_answer_larger_than_the_limit_is_refused() {
    let lab = quickstart_lab().await;
    let body = "x".repeat(golden::connect::MAX_BODY + 1);
    lab.add_fault(
        SITE,
        Product::Horizon,
        FaultRule {
            method: "GET".into(),
            path_prefix: DESKTOP_POOLS.into(),
            status: 200,
            body,
            ..FaultRule::default()
        },
    );
    let err =
        horizon(&lab, reqwest::Client::new(), quick_retries()).desktop_pools().await.expect_err("too large");
    assert!(matches!(err, HorizonError::Unreasonable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot list desktop pools at site `hq`: the answer is larger than 64 MiB, more than any vCenter or Horizon answer golden reads"
    );
    assert_eq!(route(&lab, Product::Horizon, &format!("GET {DESKTOP_POOLS}")), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizon_that_always_has_more_pages_is_read_up_to_the_cap() {
    let lab = quickstart_lab().await;
    lab.add_fault(
        SITE,
        Product::Horizon,
        FaultRule {
            method: "GET".into(),
            path_prefix: DESKTOP_POOLS.into(),
            status: 200,
            body: r#"[{"id":"p-1","name":"Again"}]"#.into(),
            headers: BTreeMap::from([("HAS_MORE_RECORDS".to_owned(), "true".to_owned())]),
            ..FaultRule::default()
        },
    );
    let err =
        horizon(&lab, reqwest::Client::new(), quick_retries()).desktop_pools().await.expect_err("no end");
    assert_eq!(
        err.to_string(),
        "cannot list desktop pools at site `hq`: horizon still has more records after 100 pages of 1000"
    );
    assert_eq!(route(&lab, Product::Horizon, &format!("GET {DESKTOP_POOLS}")), 100);
}

/// `X-Rate-Limit-Retry-After-Seconds: 1e20` would panic in `Duration::from_secs_f64`; it is
/// read as the longest wait golden allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_retry_after_is_capped_not_a_panic() {
    let lab = quickstart_lab().await;
    for value in ["1e20", "NaN", "-5"] {
        lab.add_fault(
            SITE,
            Product::Horizon,
            FaultRule {
                method: "GET".into(),
                path_prefix: DESKTOP_POOLS.into(),
                status: 429,
                headers: BTreeMap::from([("X-Rate-Limit-Retry-After-Seconds".to_owned(), value.to_owned())]),
                count: 1,
                ..FaultRule::default()
            },
        );
        let err = horizon(&lab, reqwest::Client::new(), RetryPolicy::none())
            .desktop_pools()
            .await
            .expect_err("429");
        let expected = (value == "1e20").then_some(golden::connect::MAX_RETRY_AFTER);
        assert_eq!(err.retry_after(), expected, "{value}");
    }
}

/// A push whose answer is lost may have been scheduled: it is not sent again, while a read
/// whose answer is lost is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_may_have_reached_horizon_is_not_sent_twice() {
    let lab = quickstart_lab().await;
    let client = horizon(&lab, http(Duration::from_millis(300)), quick_retries());
    let pool = client.desktop_pools().await.expect("pools").into_iter().next().expect("a pool");
    let slow = |method: &str, path: String, count: u32| FaultRule {
        method: method.into(),
        path_prefix: path,
        delay_ms: 1_000,
        count,
        ..FaultRule::default()
    };
    let push = format!("/rest/inventory/v1/desktop-pools/{}/action/schedule-push-image", pool.id);
    lab.add_fault(SITE, Product::Horizon, slow("POST", push.clone(), 0));
    let image = ImageRef { vm: Moref::new("vm-1"), snapshot: Moref::new("snapshot-1") };
    let err = client.push_image(&pool.id, &PushSpec::now(image, Logoff::Wait)).await.expect_err("timed out");
    assert!(matches!(err, HorizonError::Transport { .. }), "{err:?}");
    assert_eq!(route(&lab, Product::Horizon, &format!("POST {push}")), 1, "the push was sent once");

    lab.reset_counters();
    lab.add_fault(SITE, Product::Horizon, slow("GET", DESKTOP_POOLS.into(), 1));
    client.desktop_pools().await.expect("the read is retried");
    assert_eq!(route(&lab, Product::Horizon, &format!("GET {DESKTOP_POOLS}")), 2);
}

/// The same on vCenter: a create whose answer is lost is not sent again (it would make a
/// second item), a find is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_may_have_reached_vcenter_is_not_sent_twice() {
    let lab = quickstart_lab().await;
    let client = vcenter(&lab, http(Duration::from_millis(300)), quick_retries());
    client.login().await.expect("login");
    let items = "/rest/com/vmware/content/library/item";
    lab.add_fault(
        SITE,
        Product::Vcenter,
        FaultRule {
            method: "POST".into(),
            path_prefix: items.into(),
            delay_ms: 1_000,
            ..FaultRule::default()
        },
    );
    let meta = GoldenMeta {
        image: ImageName::new("win11-ent"),
        version: VersionName::new("2026.12"),
        source: "vm:win11-build@sealed".into(),
    };
    let err = client.create_item(&LibraryId::new("lib-1"), "win11-ent-2026.12", "ovf", &meta).await;
    assert!(matches!(err, Err(VcenterError::Transport { .. })), "{err:?}");
    assert_eq!(route(&lab, Product::Vcenter, &format!("POST {items}")), 1, "the create was sent once");

    let find = "/rest/com/vmware/content/library";
    lab.add_fault(
        SITE,
        Product::Vcenter,
        FaultRule {
            method: "POST".into(),
            path_prefix: find.into(),
            delay_ms: 1_000,
            count: 1,
            ..FaultRule::default()
        },
    );
    lab.reset_counters();
    client.find_library("golden-nowhere").await.expect("the find is retried");
    assert_eq!(route(&lab, Product::Vcenter, &format!("POST {find}")), 2);
}

/// After the sessions expire, calls made together log in once per API, not once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_find_the_session_expired_share_one_login() {
    // With latency, every call is refused before the first new login is answered.
    let lab = quickstart_lab_with(20).await;
    let client = vcenter(&lab, reqwest::Client::new(), quick_retries());
    client.login().await.expect("login");
    let vm = {
        let state = lab.state();
        let state = state.lock();
        let vc = state.vcenter_of(SITE).expect("hq's vcenter");
        Moref::new(vc.vms.values().next().expect("a vm").id.clone())
    };
    lab.state().lock().vcenter_of_mut(SITE).expect("hq's vcenter").sessions.clear();
    lab.reset_counters();
    // A rule that only counts SOAP logins.
    lab.add_fault(
        SITE,
        Product::Vcenter,
        FaultRule {
            method: "POST".into(),
            path_prefix: "/sdk".into(),
            body_contains: "<vim25:Login>".into(),
            ..FaultRule::default()
        },
    );
    let reads = (0..8).map(|_| async {
        let (rest, soap) = tokio::join!(client.find_library("golden-nowhere"), client.is_powered_on(&vm));
        rest.expect("the find works after a new login");
        soap.expect("the read works after a new login");
    });
    futures::future::join_all(reads).await;
    assert_eq!(route(&lab, Product::Vcenter, "POST /rest/com/vmware/cis/session"), 1, "one rest login");
    assert_eq!(fault_hits(&lab, Product::Vcenter).await, [1], "one soap login");
}

/// A symbolic link committed to the repository is refused at `--ref`, naming it, as it is in
/// the working tree.
#[cfg(unix)]
#[test]
fn a_symbolic_link_in_the_repository_is_refused_by_name() {
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), repo.path());
    std::os::unix::fs::symlink("/dev/zero", repo.path().join("images/zero.toml")).expect("link");
    repo.commit("a link");
    let blob_mode = {
        let head = repo.repo.head().expect("head").peel_to_tree().expect("tree");
        head.get_path(std::path::Path::new("images/zero.toml")).expect("committed").filemode()
    };
    assert_eq!(blob_mode, 0o120000, "git records the link as a link");

    for args in [&["validate"][..], &["validate", "--ref", "HEAD"][..]] {
        let out = run(golden(repo.path()).args(args));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("images/zero.toml is a symbolic link"), "{args:?}: {}", out.stderr);
    }
}

/// With `--ref`, the site's `ca_file` is the one of that commit, not the working tree's.
#[test]
fn the_ca_file_is_read_from_the_ref() {
    let repo = TempRepo::new();
    repo.write("ca.pem", "committed\n");
    repo.commit("a CA");
    let commit = repo.repo.head().expect("head").peel_to_commit().expect("commit").id().to_string();
    repo.write("ca.pem", "edited in the working tree\n");
    let site = Site {
        name: SiteName::new("hq"),
        vcenter: "https://vc.example".to_owned(),
        horizon: "https://hz.example".to_owned(),
        datacenter: "DC".to_owned(),
        compute: Compute::Cluster("C".to_owned()),
        folder: "golden".to_owned(),
        datastore: "ds".to_owned(),
        ca_file: Some("ca.pem".to_owned()),
        timezone: golden::desired::Zone::utc(),
        window: None,
    };
    let env = |name: &str| {
        name.starts_with("GOLDEN_HQ_").then(|| "x".to_owned()).filter(|_| !name.ends_with("_URL"))
    };
    let at_ref = Location::GitRef { dir: repo.path().to_owned(), reference: commit };
    let conn = SiteConnection::resolve(&site, &at_ref, &env).expect("resolves");
    assert_eq!(conn.tls.ca_pem.as_deref(), Some(&b"committed\n"[..]));
    let work_tree = Location::WorkTree { dir: repo.path().to_owned() };
    let conn = SiteConnection::resolve(&site, &work_tree, &env).expect("resolves");
    assert_eq!(conn.tls.ca_pem.as_deref(), Some(&b"edited in the working tree\n"[..]));
}
