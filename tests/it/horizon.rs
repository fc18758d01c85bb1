//! Contract suite of the Horizon client against the lab's Horizon, started in-process.
//!
//! Time-dependent behaviour (push phases, cancel windows) is walked through with the lab's
//! `fast_forward` instead of sleeping: timings are a minute long, and the pod's clock is moved
//! past each phase boundary, so no assertion depends on how fast the machine is.

use std::collections::BTreeMap;
use std::time::Duration;

use golden::connect::{Credentials, RetryPolicy, Secret};
use golden::desired::{Logoff, PoolKind};
use golden::horizon::{HorizonClient, HorizonError, HorizonVersion, PushSpec};
use golden::ids::SiteName;
use golden::lab::horizon::{HorizonSim, PoolKind as SimKind};
use golden::lab::server::FaultRule;
use golden::lab::vcenter::{Placement, VcenterSim};
use golden::lab::{
    CONTROL_TOKEN_HEADER, LAB_DOMAIN, LAB_PASSWORD, LAB_USER, Lab, LabOptions, LabState, Product, SiteLab,
    Timings, VcenterLab,
};
use golden::live::{HorizonId, ImageRef, LivePool, Moref, Operation, PendingState};
use serde_json::{Value, json};

const SITE: &str = "hq";
const MINUTE: u64 = 60_000;

/// A hand-built site: a vCenter with a legacy image and a build VM with two sealed snapshots,
/// and a Horizon with `pools` desktop pools (the first is `Finance-IC`) and one farm.
struct World {
    lab: Lab,
    pool: HorizonId,
    farm: HorizonId,
    old: ImageRef,
    new: ImageRef,
    /// A snapshot of the legacy VM, so not of the build VM.
    foreign_snapshot: Moref,
}

async fn world(pools: usize, timings: Timings) -> World {
    let mut vc = VcenterSim::new("4d1c3c1e-0000-4000-8000-000000000001");
    let dc = vc.add_datacenter(&Placement {
        datacenter: "DC-HQ",
        cluster: "Cluster-A",
        resource_pool: None,
        folder: "golden",
        datastore: "vsan-hq",
    });
    let legacy = vc.add_vm("legacy-win11", &dc, None).expect("vm");
    let initial = vc.add_snapshot(&legacy, "initial", "", 1).expect("snapshot");
    let build = vc.add_vm("win11-build", &dc, None).expect("vm");
    vc.add_snapshot(&build, "sealed-2026-10", "", 2).expect("snapshot");
    let sealed = vc.add_snapshot(&build, "sealed-2026-11", "", 3).expect("snapshot");
    let mut hz = HorizonSim::new("horizon-vc-1", "vc-hq.lab");
    let pool = hz.add_pool(SimKind::DesktopPool, "Finance-IC", &dc, &legacy, &initial);
    for n in 1..pools {
        hz.add_pool(SimKind::DesktopPool, &format!("Pool-{n:04}"), &dc, &legacy, &initial);
    }
    let farm = hz.add_pool(SimKind::Farm, "SAP-Farm", &dc, &legacy, &initial);
    let site =
        SiteLab { name: SITE.into(), vcenter: SITE.into(), datacenter: dc, horizon: hz, horizon_url: None };
    let vcenter = VcenterLab { name: SITE.into(), sim: vc, url: None };
    let state = LabState {
        vcenters: BTreeMap::from([(SITE.to_owned(), vcenter)]),
        sites: BTreeMap::from([(SITE.to_owned(), site)]),
        timings,
    };
    let lab = Lab::start(state, LabOptions { latency_ms: 0, free_ports: true, ..LabOptions::default() })
        .await
        .expect("lab starts");
    World {
        lab,
        pool: HorizonId::new(pool),
        farm: HorizonId::new(farm),
        old: ImageRef { vm: Moref::new(legacy), snapshot: Moref::new(initial.clone()) },
        new: ImageRef { vm: Moref::new(build), snapshot: Moref::new(sealed) },
        foreign_snapshot: Moref::new(initial),
    }
}

/// Timings long enough that no phase ends on its own during a test.
fn slow() -> Timings {
    Timings { push_publish_ms: MINUTE, push_apply_ms: MINUTE, ..Timings::instant() }
}

fn retry() -> RetryPolicy {
    RetryPolicy { attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(2) }
}

fn client_with(lab: &Lab, site: &str, password: &str, retry: RetryPolicy) -> HorizonClient {
    let url = url::Url::parse(lab.url(site, Product::Horizon).expect("horizon endpoint")).expect("url");
    let credentials = Credentials {
        user: LAB_USER.to_owned(),
        password: Secret::new(password),
        domain: Some(LAB_DOMAIN.to_owned()),
    };
    HorizonClient::new(SiteName::new(site), url, credentials, reqwest::Client::new(), retry)
}

fn client(lab: &Lab) -> HorizonClient {
    client_with(lab, SITE, LAB_PASSWORD, retry())
}

/// Runs `f` on the site's simulated Horizon, in-process.
fn sim<R>(lab: &Lab, f: impl FnOnce(&mut HorizonSim) -> R) -> R {
    let state = lab.state();
    let mut state = state.lock();
    f(&mut state.sites.get_mut(SITE).expect("site").horizon)
}

fn route(lab: &Lab, route: &str) -> u64 {
    lab.requests_by_route(SITE, Product::Horizon).get(route).copied().unwrap_or(0)
}

/// The error and all its causes, as `main` prints them.
fn chain(err: &HorizonError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `POST` to one of the lab's control routes, with its token.
fn control_post(lab: &Lab, path: &str) -> reqwest::RequestBuilder {
    let url = format!("{}{path}", lab.url(SITE, Product::Horizon).expect("horizon endpoint"));
    reqwest::Client::new().post(url).header(CONTROL_TOKEN_HEADER, lab.control_token())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_works_and_a_wrong_password_is_a_clear_error_without_the_password() {
    let w = world(1, slow()).await;
    client(&w.lab).login().await.expect("lab credentials are accepted");

    let wrong = client_with(&w.lab, SITE, "Hunter2-not-it", retry());
    let err = wrong.desktop_pools().await.expect_err("wrong password");
    assert!(matches!(err, HorizonError::Login { .. }), "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    let text = chain(&err);
    assert!(text.starts_with("horizon at site `hq` refused the login of `LAB\\golden-lab`"), "{text}");
    assert!(text.contains("Authentication failed"), "the server's reason is the cause: {text}");
    assert!(!text.contains("Hunter2") && !format!("{err:?}").contains("Hunter2"), "{text}");
    // One login each: a refused login is not retried.
    assert_eq!(route(&w.lab, "POST /rest/login"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_a_refused_refresh_logs_in_again() {
    let w = world(3, slow()).await;
    let c = client(&w.lab);
    assert_eq!(c.desktop_pools().await.expect("lists").len(), 3);
    assert_eq!((route(&w.lab, "POST /rest/login"), route(&w.lab, "POST /rest/refresh")), (1, 0));

    // Access token expired, session alive: one 401, one refresh, the call repeated.
    sim(&w.lab, HorizonSim::expire_access_tokens);
    assert_eq!(c.desktop_pools().await.expect("lists after refresh").len(), 3);
    assert_eq!((route(&w.lab, "POST /rest/login"), route(&w.lab, "POST /rest/refresh")), (1, 1));

    // Session over too (through the lab's HTTP control): refresh refused, then a new login.
    let expired = control_post(&w.lab, "/__lab/horizon/expire-tokens")
        .json(&json!({"sessions": true}))
        .send()
        .await
        .expect("control call");
    assert_eq!(expired.status(), 204);
    assert_eq!(c.desktop_pools().await.expect("lists after a new login").len(), 3);
    assert_eq!((route(&w.lab, "POST /rest/login"), route(&w.lab, "POST /rest/refresh")), (2, 2));
    assert_eq!(route(&w.lab, "GET /rest/inventory/v2/desktop-pools"), 5, "1 + (401 + retry) * 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_2500_pools_costs_three_pages_and_one_login() {
    let w = world(2500, slow()).await;
    let c = client(&w.lab);
    let pools = c.desktop_pools().await.expect("lists");
    assert_eq!(pools.len(), 2500);
    assert_eq!(w.lab.requests(SITE, Product::Horizon), 4, "login + 3 pages of 1000");
    assert!(pools.windows(2).all(|p| p[0].name <= p[1].name), "sorted by name");
    assert!(pools.iter().all(|p| p.kind == PoolKind::DesktopPool && p.instant_clone));
    assert!(pools.iter().all(|p| p.current.as_ref() == Some(&w.old) && p.operation == Operation::None));

    // Farms are a separate listing, read once the server's version is known: two more
    // requests, and `pools` is both, sorted.
    w.lab.reset_counters();
    let all = client(&w.lab).pools().await.expect("lists both");
    assert_eq!(all.len(), 2501);
    assert!(all.windows(2).all(|p| p[0].name <= p[1].name));
    let farm = all.iter().find(|p| p.kind == PoolKind::Farm).expect("the farm");
    assert_eq!((farm.name.as_str(), farm.current.as_ref()), ("SAP-Farm", Some(&w.old)));
    assert_eq!(w.lab.requests(SITE, Product::Horizon), 6, "login + version + 3 pool pages + 1 farm page");
}

fn pending_of(pool: &LivePool) -> (PendingState, &ImageRef) {
    let pending = pool.pending.as_ref().expect("a pending image");
    (pending.state, &pending.image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_goes_through_publish_and_makes_the_new_image_current() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Wait)).await.expect("push accepted");

    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pool.operation, Operation::PushImage);
    assert_eq!(pending_of(&pool), (PendingState::PendingPublish, &w.new));
    assert_eq!(pool.current.as_ref(), Some(&w.old));

    // A different image while the push runs is refused; the same one again is a reschedule.
    let other = ImageRef { vm: w.new.vm.clone(), snapshot: Moref::new("snapshot-nope") };
    let err = c.push_image(&w.pool, &PushSpec::now(other, Logoff::Wait)).await.expect_err("busy");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));

    sim(&w.lab, |h| h.fast_forward(30_000));
    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pending_of(&pool).0, PendingState::Publishing);
    let progress = pool.pending.as_ref().and_then(|p| p.progress).expect("progress");
    assert!((1..100).contains(&progress), "{progress}");

    sim(&w.lab, |h| h.fast_forward(40_000));
    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!((pool.operation, pending_of(&pool).0), (Operation::PushImage, PendingState::Ready));

    sim(&w.lab, |h| h.fast_forward(60_000));
    let pools = c.pools().await.expect("lists");
    let pool = pools.iter().find(|p| p.id == w.pool).expect("the pool");
    assert_eq!(pool.current.as_ref(), Some(&w.new));
    assert_eq!(
        (pool.operation, pool.pending.as_ref(), pool.last_error.as_ref()),
        (Operation::None, None, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_surfaces_its_error_in_the_live_pool() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    let marked = control_post(&w.lab, &format!("/__lab/horizon/pools/{}/fail-next-push", w.pool))
        .json(&json!({"error": "Clone creation failed: datastore vsan-hq is full"}))
        .send()
        .await
        .expect("control call");
    assert_eq!(marked.status(), 204);
    c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Force)).await.expect("push accepted");
    sim(&w.lab, |h| h.fast_forward(MINUTE as i64));

    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pool.operation, Operation::None);
    assert_eq!(pool.current.as_ref(), Some(&w.old), "the old image stays current");
    assert_eq!(pending_of(&pool), (PendingState::Failed, &w.new));
    let error = pool.pending.as_ref().and_then(|p| p.error.as_deref());
    assert_eq!(error, Some("Clone creation failed: datastore vsan-hq is full"));
    assert_eq!(pool.last_error.as_deref(), Some("Clone creation failed: datastore vsan-hq is full"));

    // The failed pending image stays until cancelled: another push is refused until then,
    // and starts afresh after.
    let refused = c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Force)).await;
    let err = refused.expect_err("a push over a failed pending image is refused");
    assert!(chain(&err).contains("cancel it"), "{}", chain(&err));
    c.cancel_push(&w.pool).await.expect("the failed pending image is cancelled");
    assert_eq!(c.desktop_pool(&w.pool).await.expect("reads").pending, None);
    c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Force)).await.expect("push accepted");
    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pending_of(&pool).0, PendingState::PendingPublish);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_push_can_be_cancelled_before_it_starts_but_not_after() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    let in_an_hour = golden::lab::now_ms() + 3_600_000;
    let spec = PushSpec { start_time_ms: Some(in_an_hour), ..PushSpec::now(w.new.clone(), Logoff::Wait) };
    c.push_image(&w.pool, &spec).await.expect("push accepted");
    c.cancel_push(&w.pool).await.expect("cancel accepted");

    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pool.operation, Operation::CancelPush);
    sim(&w.lab, |h| h.fast_forward(MINUTE as i64));
    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!((pool.operation, pool.pending.as_ref()), (Operation::None, None));
    assert_eq!(pool.current.as_ref(), Some(&w.old));

    let err = c.cancel_push(&w.pool).await.expect_err("nothing to cancel");
    assert!(err.server_message().is_some_and(|m| m.contains("no scheduled push image")), "{err:?}");

    // A push without a start time starts at once: too late to cancel.
    c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Wait)).await.expect("push accepted");
    let err = c.cancel_push(&w.pool).await.expect_err("already started");
    assert!(chain(&err).contains("has already started"), "{}", chain(&err));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn farm_maintenance_moves_the_farm_to_the_new_image() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    c.schedule_maintenance(&w.farm, &PushSpec::now(w.new.clone(), Logoff::Force)).await.expect("accepted");
    let farm = c.farm(&w.farm).await.expect("reads");
    assert_eq!((farm.kind, farm.operation), (PoolKind::Farm, Operation::PushImage));
    assert_eq!(pending_of(&farm), (PendingState::PendingPublish, &w.new));

    sim(&w.lab, |h| h.fast_forward(2 * MINUTE as i64));
    let farm = c.farm(&w.farm).await.expect("reads");
    assert_eq!(farm.current.as_ref(), Some(&w.new));
    assert_eq!((farm.operation, farm.pending.as_ref()), (Operation::None, None));

    // A maintenance scheduled for later can be cancelled.
    let later = golden::lab::now_ms() + 3_600_000;
    let spec = PushSpec { start_time_ms: Some(later), ..PushSpec::now(w.old.clone(), Logoff::Wait) };
    c.schedule_maintenance(&w.farm, &spec).await.expect("accepted");
    c.cancel_maintenance(&w.farm).await.expect("cancelled");
    assert_eq!(c.farm(&w.farm).await.expect("reads").operation, Operation::CancelPush);
    sim(&w.lab, |h| h.fast_forward(MINUTE as i64));
    let farm = c.farm(&w.farm).await.expect("reads");
    assert_eq!((farm.operation, farm.current.as_ref()), (Operation::None, Some(&w.new)));

    // Pool and farm ids are not interchangeable.
    let err = c.push_image(&w.farm, &PushSpec::now(w.new.clone(), Logoff::Wait)).await.expect_err("a farm");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
}

fn throttle(count: u32) -> FaultRule {
    FaultRule {
        method: "GET".into(),
        path_prefix: "/rest/inventory/v2/desktop-pools".into(),
        status: 429,
        body: json!({
            "status": "TOO_MANY_REQUESTS",
            "timestamp": 1_700_000_000_000_i64,
            "errors": [{"error_key": "common.api-throttle-limit.exceeded.error",
                        "error_message": "API throttle limit exceeded"}],
        })
        .to_string(),
        headers: BTreeMap::from([("X-Rate-Limit-Retry-After-Seconds".to_owned(), "1".to_owned())]),
        count,
        ..FaultRule::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_call_waits_as_told_and_is_retried() {
    let w = world(2, slow()).await;
    w.lab.add_fault(SITE, Product::Horizon, throttle(1));
    let pools = client(&w.lab).desktop_pools().await.expect("succeeds on the second attempt");
    assert_eq!(pools.len(), 2);
    assert_eq!(route(&w.lab, "GET /rest/inventory/v2/desktop-pools"), 2);

    // Without retries the 429 shows, with the server's wait and message.
    w.lab.add_fault(SITE, Product::Horizon, throttle(1));
    let err =
        client_with(&w.lab, SITE, LAB_PASSWORD, RetryPolicy::none()).desktop_pools().await.expect_err("429");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(golden::connect::Retryable::retry_after(&err), Some(Duration::from_secs(1)));
    assert_eq!(err.server_message(), Some("API throttle limit exceeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_error_envelopes_surface_their_text() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    // The simulator's own 400 uses `errors[]`.
    let bad = ImageRef { vm: w.new.vm.clone(), snapshot: w.foreign_snapshot.clone() };
    let err = c.push_image(&w.pool, &PushSpec::now(bad, Logoff::Wait)).await.expect_err("foreign snapshot");
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("cannot schedule a push image to desktop pool `{}` at site `hq`", w.pool))
    );
    assert!(text.ends_with(&format!("does not belong to base VM {}.", w.new.vm)), "{text}");

    // A pre-2203 server answers with `error_messages`.
    w.lab.add_fault(
        SITE,
        Product::Horizon,
        FaultRule {
            method: "POST".into(),
            path_prefix: "/rest/inventory/v1/desktop-pools/".into(),
            status: 400,
            body: json!({"error_messages": ["Desktop pool is being deleted."]}).to_string(),
            count: 1,
            ..FaultRule::default()
        },
    );
    let err = c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Wait)).await.expect_err("legacy");
    assert_eq!(err.server_message(), Some("Desktop pool is being deleted."));
    assert!(chain(&err).contains("horizon answered 400 Bad Request: Desktop pool is being deleted."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_lab_serves_pools_base_vms_snapshots_and_virtual_centers() {
    let lab = super::common::quickstart_lab().await;

    let eu = client_with(&lab, "eu", LAB_PASSWORD, retry());
    let pools = eu.pools().await.expect("lists");
    let names: Vec<(&str, PoolKind)> = pools.iter().map(|p| (p.name.as_str(), p.kind)).collect();
    assert_eq!(
        names,
        [
            ("Finance-IC", PoolKind::DesktopPool),
            ("Office-IC", PoolKind::DesktopPool),
            ("SAP-Farm", PoolKind::Farm)
        ]
    );
    assert!(pools.iter().all(|p| p.instant_clone && p.current.is_some()));

    let hq = client_with(&lab, "hq", LAB_PASSWORD, retry());
    let vcs = hq.virtual_centers().await.expect("lists");
    assert_eq!(vcs.len(), 1);
    assert_eq!(vcs[0].server_name, "127.0.0.1");
    let vms = hq.base_vms(&vcs[0].id).await.expect("lists");
    let build = vms.iter().find(|v| v.name == "win11-build").expect("the build VM");
    assert!(build.incompatible_reasons.is_empty() && build.path.ends_with("/win11-build"));
    let snapshots = hq.base_snapshots(&vcs[0].id, &build.id).await.expect("lists");
    let names: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sealed-2026-09", "sealed-2026-10", "sealed-2026-10-vpn"]);
    assert_eq!(snapshots[1].path, "/sealed-2026-09/sealed-2026-10");

    let image = ImageRef { vm: build.id.clone(), snapshot: snapshots[1].id.clone() };
    // Base VMs come from the site's own vCenter: the build VM exists at hq only.
    let eu_vc = eu.virtual_centers().await.expect("lists")[0].id.clone();
    assert!(eu.base_vms(&eu_vc).await.expect("lists").iter().all(|v| v.name != "win11-build"));
    let finance = pools.iter().find(|p| p.name.as_str() == "Finance-IC").expect("pool");
    let err =
        eu.push_image(&finance.id, &PushSpec::now(image.clone(), Logoff::Wait)).await.expect_err("not at eu");
    // Morefs are per vCenter: at eu the same id is another VM (or none), so the push is refused.
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err:?}");

    // Instant timings: a push has gone through by the next read.
    let hq_pool = hq.desktop_pools().await.expect("lists").into_iter().next().expect("an hq pool");
    hq.push_image(&hq_pool.id, &PushSpec::now(image.clone(), Logoff::Wait)).await.expect("accepted");
    let after = hq.desktop_pool(&hq_pool.id).await.expect("reads");
    assert_eq!((after.current.as_ref(), after.operation), (Some(&image), Operation::None));

    let err = hq.base_vms(&HorizonId::new("no-such-vc")).await.expect_err("unknown vCenter");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_in_flight_survives_saving_and_resuming_the_lab() {
    let w = world(1, slow()).await;
    client(&w.lab).push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Wait)).await.expect("accepted");
    let saved = serde_json::to_string(&w.lab.shutdown().await).expect("state is plain data");
    let state: LabState = serde_json::from_str(&saved).expect("and reads back");
    let lab = Lab::start(state, LabOptions { latency_ms: 0, free_ports: true, ..LabOptions::default() })
        .await
        .expect("resumes");
    let c = client(&lab);
    assert_eq!(c.desktop_pool(&w.pool).await.expect("reads").operation, Operation::PushImage);
    sim(&lab, |h| h.fast_forward(2 * MINUTE as i64));
    assert_eq!(c.desktop_pool(&w.pool).await.expect("reads").current.as_ref(), Some(&w.new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_and_the_next_call_logs_in_again() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    c.desktop_pools().await.expect("lists");
    c.logout().await.expect("logs out");
    assert_eq!(route(&w.lab, "POST /rest/logout"), 1);
    c.desktop_pools().await.expect("lists");
    assert_eq!(route(&w.lab, "POST /rest/login"), 2);
    assert_eq!(route(&w.lab, "POST /rest/refresh"), 0, "no stale token was sent");
}

/// The simulator's own rules, checked on the wire: auth, paging, filter, v1 and envelopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_keeps_the_documented_rest_rules() {
    let w = world(25, slow()).await;
    let http = reqwest::Client::new();
    let base = w.lab.url(SITE, Product::Horizon).expect("endpoint").to_owned();

    let anonymous = http.get(format!("{base}/rest/inventory/v2/desktop-pools")).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["status"], "UNAUTHORIZED");
    assert!(body["timestamp"].is_i64() && body["errors"][0]["error_message"].is_string(), "{body}");

    // The schema's array-typed password is accepted too.
    let login = json!({"username": LAB_USER, "password": [LAB_PASSWORD], "domain": "lab"});
    let tokens: Value = http
        .post(format!("{base}/rest/login"))
        .json(&login)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = tokens["access_token"].as_str().expect("access token").to_owned();
    assert!(tokens["refresh_token"].is_string());
    let get = |query: &str| {
        http.get(format!("{base}/rest/inventory/v2/desktop-pools{query}")).bearer_auth(&token).send()
    };

    let first = get("?page=1&size=10").await.expect("sent");
    assert_eq!(first.headers().get("HAS_MORE_RECORDS").map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(first.json::<Vec<Value>>().await.expect("json").len(), 10);
    let last = get("?page=3&size=10").await.expect("sent");
    assert!(last.headers().get("HAS_MORE_RECORDS").is_none());
    assert_eq!(last.json::<Vec<Value>>().await.expect("json").len(), 5);
    for bad in ["?page=4&size=10", "?page=1", "?size=10", "?page=1&size=1001", "?page=0&size=10"] {
        let response = get(bad).await.expect("sent");
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "BAD_REQUEST", "{bad}");
    }
    let filter =
        json!({"type": "And", "filters": [{"type": "Equals", "name": "name", "value": "Finance-IC"}]});
    let found: Vec<Value> = get(&format!("?filter={}", urlencode(&filter.to_string())))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["provisioning_settings"]["parent_vm_id"], w.old.vm.as_str());
    assert_eq!(found[0]["provisioning_status_data"]["instant_clone_pending_image_state"], Value::Null);

    let v1: Value = http
        .get(format!("{base}/rest/inventory/v1/desktop-pools/{}", w.pool))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!((v1["name"].as_str(), v1["source"].as_str()), (Some("Finance-IC"), Some("INSTANT_CLONE")));
    assert!(v1.get("provisioning_settings").is_none(), "v1 has no image fields");

    let push = |body: Value| {
        http.post(format!("{base}/rest/inventory/v1/desktop-pools/{}/action/schedule-push-image", w.pool))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let no_logoff =
        push(json!({"parent_vm_id": w.new.vm, "snapshot_id": w.new.snapshot})).await.expect("sent");
    assert_eq!(no_logoff.status(), 400);
    let snapshots = http
        .get(format!("{base}/rest/external/v1/base-snapshots?vcenter_id=horizon-vc-1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(snapshots.status(), 400, "base_vm_id is required");
    let unknown = http
        .get(format!("{base}/rest/inventory/v2/farms/nope"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), 404);
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// ---- Horizon versions ----

const CONNECTION_SERVERS_V1: &str = "GET /rest/monitor/v1/connection-servers";
const FARMS_V1: &str = "GET /rest/inventory/v1/farms";
const FARMS_V2: &str = "GET /rest/inventory/v2/farms";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_the_connection_server_version_once() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    let version = c.version().await.expect("reads").expect("the lab says its version");
    assert_eq!(version, HorizonVersion::new(8, 12, 0), "the lab's default, 2312");
    assert_eq!(version.to_string(), "8.12 (2312)");

    // Kept for the client's life, clones included: pool listings do not ask again.
    assert_eq!(c.pools().await.expect("lists").len(), 2);
    assert_eq!(c.clone().pools().await.expect("lists").len(), 2);
    assert_eq!(route(&w.lab, CONNECTION_SERVERS_V1), 1);
    assert_eq!((route(&w.lab, FARMS_V2), route(&w.lab, FARMS_V1)), (2, 0), "a current server: v2 farms");

    // Another client asks again, and sees what the server says now.
    sim(&w.lab, |h| h.version = "8.5.0".into());
    let other = client(&w.lab).version().await.expect("reads");
    assert_eq!(other.map(|v| v.to_string()).as_deref(), Some("8.5 (2203)"));
    assert_eq!(route(&w.lab, CONNECTION_SERVERS_V1), 2);
}

/// A site on Horizon 8.1 (2012), without farms: `(world, client)`.
async fn horizon_2012_without_farms() -> (World, HorizonClient) {
    let w = world(3, slow()).await;
    sim(&w.lab, |h| {
        h.version = "8.1.0".into();
        h.pools.retain(|_, p| p.kind != SimKind::Farm);
    });
    let c = client(&w.lab);
    (w, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2012_server_without_farms_lists_its_desktop_pools() {
    let (w, c) = horizon_2012_without_farms().await;
    assert_eq!(c.version().await.expect("reads"), Some(HorizonVersion::new(8, 1, 0)));
    let pools = c.pools().await.expect("no farms: the desktop pools are the answer");
    assert_eq!(pools.len(), 3);
    assert!(pools.iter().all(|p| p.kind == PoolKind::DesktopPool && p.current.as_ref() == Some(&w.old)));
    // Farms were looked for through v1 only.
    assert_eq!((route(&w.lab, FARMS_V1), route(&w.lab, FARMS_V2)), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2012_server_with_a_farm_is_a_clear_error_naming_both_versions() {
    let (w, c) = horizon_2012_without_farms().await;
    let dc = w.lab.state().lock().sites[SITE].datacenter.clone();
    sim(&w.lab, |h| h.add_pool(SimKind::Farm, "RDS-Farm", &dc, w.old.vm.as_str(), w.old.snapshot.as_str()));

    let err = c.pools().await.expect_err("farms cannot be read from 2012");
    assert!(matches!(err, HorizonError::TooOld { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.starts_with("cannot list farms at site `hq`"), "{text}");
    assert!(text.contains("horizon 8.1 (2012)"), "the server's version: {text}");
    assert!(text.contains("this needs horizon 8.2 (2103) or later"), "the minimum: {text}");
    assert!(text.contains("1 farm (`RDS-Farm`)"), "which farms: {text}");
    assert!(!golden::connect::Retryable::is_retryable(&err), "waiting does not upgrade a server");
    let hints = golden::error::hints(&anyhow::Error::new(err));
    assert_eq!(hints, ["upgrade the connection servers of site `hq` to horizon 8.2 (2103) or later"]);
    assert_eq!(route(&w.lab, FARMS_V2), 0, "no v2 farms asked of a 2012 server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_horizon_7_server_is_named_and_refused() {
    let w = world(1, slow()).await;
    sim(&w.lab, |h| h.version = "7.13.1".into());
    let c = client(&w.lab);
    // Horizon 7 has no versioned monitor: the client falls back on the unversioned one.
    assert_eq!(c.version().await.expect("reads"), Some(HorizonVersion::new(7, 13, 1)));
    assert_eq!(route(&w.lab, CONNECTION_SERVERS_V1), 1);
    assert_eq!(route(&w.lab, "GET /rest/monitor/connection-servers"), 1);

    let err = c.pools().await.expect_err("no v2 desktop pools before 8.0");
    let text = chain(&err);
    assert!(matches!(err, HorizonError::TooOld { .. }), "{text}");
    assert!(text.starts_with("cannot list desktop pools at site `hq`"), "{text}");
    assert!(text.contains("horizon 7.13.1") && text.contains("horizon 8.2 (2103) or later"), "{text}");
    assert_eq!(route(&w.lab, FARMS_V1) + route(&w.lab, FARMS_V2), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_say_its_version_is_read_as_a_current_one() {
    let w = world(1, slow()).await;
    let forbidden = |path: &str| FaultRule {
        method: "GET".into(),
        path_prefix: path.into(),
        status: 403,
        body: json!({"status": "FORBIDDEN", "errors": [{"error_key": "k", "error_message": "no"}]})
            .to_string(),
        ..FaultRule::default()
    };
    w.lab.add_fault(SITE, Product::Horizon, forbidden("/rest/monitor/"));
    let c = client(&w.lab);
    assert_eq!(c.version().await.expect("a refusal is not an error"), None);
    assert_eq!(c.pools().await.expect("lists").len(), 2);
    assert_eq!(route(&w.lab, FARMS_V2), 1);
}

/// Farms are read from 2103 but take a new image only from 2111 (schedule-maintenance): on a
/// 2106 server the client names that minimum without sending the request, and the lab answers
/// the action with 404 like a server without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_on_2106_is_read_but_its_maintenance_names_2111() {
    let w = world(1, slow()).await;
    sim(&w.lab, |h| h.version = "8.3.0".into());
    let c = client(&w.lab);
    let farm = c.farm(&w.farm).await.expect("a 2106 server lists its farms");
    assert_eq!(farm.kind, PoolKind::Farm);
    let err = c
        .schedule_maintenance(&w.farm, &PushSpec::now(w.new.clone(), Logoff::Force))
        .await
        .expect_err("no farm maintenance before 2111");
    let text = chain(&err);
    assert!(text.contains("8.3 (2106)") && text.contains("8.4 (2111) or later"), "{text}");
    let sent =
        w.lab.requests_by_route(SITE, Product::Horizon).keys().any(|r| r.contains("schedule-maintenance"));
    assert!(!sent, "the request was not sent");

    let (http, base, token) = raw_login(&w.lab).await;
    let body = json!({"maintenance_mode": "IMMEDIATE", "logoff_policy": "FORCE_LOGOFF"});
    let path = format!("{base}/rest/inventory/v1/farms/{}/action/schedule-maintenance", w.farm);
    let answer = http.post(path).bearer_auth(token).json(&body).send().await.expect("sent");
    assert_eq!(answer.status().as_u16(), 404, "the lab has no farm maintenance before 2111");
}

/// Logs in to the site's lab Horizon over plain HTTP, for requests golden's client would not
/// send: the client, the server root and an access token.
async fn raw_login(lab: &Lab) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::new();
    let base = lab.url(SITE, Product::Horizon).expect("endpoint").to_owned();
    let login = json!({"username": LAB_USER, "password": LAB_PASSWORD, "domain": LAB_DOMAIN});
    let tokens: Value = http
        .post(format!("{base}/rest/login"))
        .json(&login)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = tokens["access_token"].as_str().expect("access token").to_owned();
    (http, base, token)
}

/// A push is refused while another one is under way on the pool (Horizon runs one operation
/// at a time; only a not yet started push of the same image may be rescheduled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_push_while_one_is_under_way_is_refused() {
    let w = world(1, slow()).await;
    let c = client(&w.lab);
    c.push_image(&w.pool, &PushSpec::now(w.new.clone(), Logoff::Force)).await.expect("push accepted");
    let err = c.push_image(&w.pool, &PushSpec::now(w.old.clone(), Logoff::Force)).await.expect_err("busy");
    assert!(chain(&err).contains("Another operation is in progress"), "{}", chain(&err));
    let pool = c.desktop_pool(&w.pool).await.expect("reads");
    assert_eq!(pending_of(&pool), (PendingState::PendingPublish, &w.new), "the first push goes on");
}

/// The lab keeps to what a 2012 server serves: no v2 farms, v1 farms, the monitor's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2012_lab_refuses_v2_farms_like_the_real_server() {
    let w = world(1, slow()).await;
    let (http, base, token) = raw_login(&w.lab).await;
    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(&token).send();
    let status = |path: String| async { get(path).await.expect("sent").status().as_u16() };

    // Current (the default): every version served.
    assert_eq!(status("/rest/inventory/v2/farms".into()).await, 200);

    sim(&w.lab, |h| h.version = "8.1.0".into());
    assert_eq!(status("/rest/inventory/v2/farms".into()).await, 404);
    assert_eq!(status(format!("/rest/inventory/v2/farms/{}", w.farm)).await, 404);
    let refused: Value =
        get("/rest/inventory/v2/farms".into()).await.expect("sent").json().await.expect("json");
    assert_eq!(refused["status"], "NOT_FOUND", "{refused}");
    let v1: Vec<Value> =
        get("/rest/inventory/v1/farms".into()).await.expect("sent").json().await.expect("json");
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0]["name"], "SAP-Farm");
    assert!(v1[0].get("automated_farm_settings").is_none(), "v1 farms show no image: {}", v1[0]);
    assert_eq!(status("/rest/inventory/v2/desktop-pools".into()).await, 200, "pools v2 came with 8.0");
    let servers: Vec<Value> =
        get("/rest/monitor/v1/connection-servers".into()).await.expect("sent").json().await.expect("json");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["details"]["version"], "8.1.0");

    // Horizon 7: no v2 desktop pools and no versioned monitor either; the unversioned one stays.
    sim(&w.lab, |h| h.version = "7.13.1".into());
    assert_eq!(status("/rest/inventory/v2/desktop-pools".into()).await, 404);
    assert_eq!(status("/rest/monitor/v1/connection-servers".into()).await, 404);
    assert_eq!(status("/rest/inventory/v1/farms".into()).await, 200);
    let servers: Vec<Value> =
        get("/rest/monitor/connection-servers".into()).await.expect("sent").json().await.expect("json");
    assert_eq!(servers[0]["details"]["version"], "7.13.1");
}
