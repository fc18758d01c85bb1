//! No credential in any log line: both clients and the lab run at the highest verbosity (every
//! target at TRACE, reqwest and hyper included) through logins, failures, retries and token
//! refreshes, and the captured log must not contain a password, a Basic-auth header, a session
//! id or a token.
//!
//! A test binary of its own: it installs a tracing subscriber for its thread, and tracing's
//! per-callsite interest cache is shared by the whole process, so tests running beside it in
//! one process could hide lines from it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use golden::connect::{Credentials, RetryPolicy, Secret, Tls, http_client};
use golden::desired::{Location, Logoff, load};
use golden::horizon::{HorizonClient, PushSpec};
use golden::ids::SiteName;
use golden::lab::server::FaultRule;
use golden::lab::{LAB_DOMAIN, LAB_PASSWORD, LAB_USER, Lab, LabOptions, Product, Timings};
use golden::live::{HorizonId, ImageRef};
use golden::vcenter::VcenterClient;

const WRONG_PASSWORD: &str = "Wr0ng-But-Secret!";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every secret the lab handed out so far: vCenter sessions, Horizon refresh and access tokens.
fn issued(lab: &Lab) -> BTreeSet<String> {
    let shared = lab.state();
    let state = shared.lock();
    let mut out = BTreeSet::new();
    for vcenter in state.vcenters.values() {
        out.extend(vcenter.sim.sessions.iter().cloned());
    }
    for site in state.sites.values() {
        out.extend(site.horizon.sessions.keys().cloned());
        out.extend(site.horizon.access_tokens.keys().cloned());
    }
    out
}

#[test]
fn no_credential_reaches_a_log_line_at_trace_level() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // One thread, so the lab's handlers and the clients all log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut secrets = runtime.block_on(async {
        let desired =
            load(&Location::WorkTree { dir: repo_root().join("examples/quickstart") }).expect("quickstart");
        let state = golden::lab::seed::from_desired(&desired, Timings::instant());
        let lab =
            Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() }).await.expect("lab");
        let site = SiteName::new("eu");
        let http = http_client(&site, &Tls::default()).expect("http");
        let url = |p| url::Url::parse(lab.url("eu", p).expect("endpoint")).expect("url");
        let creds = |password: &str, domain: Option<&str>| Credentials {
            user: LAB_USER.into(),
            password: Secret::new(password),
            domain: domain.map(str::to_owned),
        };
        let quick = RetryPolicy { base_delay: std::time::Duration::from_millis(1), ..RetryPolicy::default() };
        let mut secrets = BTreeSet::new();

        // vCenter: good and bad logins, reads, a write, an injected 401 that forces a re-login.
        let vc = VcenterClient::new(
            site.clone(),
            url(Product::Vcenter),
            creds(LAB_PASSWORD, None),
            http.clone(),
            quick.clone(),
        );
        vc.login().await.expect("vcenter login");
        let inventory = vc.inventory().await.expect("inventory");
        assert!(!inventory.vms.is_empty());
        secrets.extend(issued(&lab));
        lab.add_fault(
            "eu",
            Product::Vcenter,
            FaultRule {
                path_prefix: "/rest/com/vmware/content".into(),
                status: 401,
                count: 1,
                ..FaultRule::default()
            },
        );
        vc.find_library("golden-none").await.expect("a call after re-login");
        let bad = VcenterClient::new(
            site.clone(),
            url(Product::Vcenter),
            creds(WRONG_PASSWORD, None),
            http.clone(),
            quick.clone(),
        );
        let err = bad.login().await.expect_err("wrong password");
        tracing::error!("vcenter login failed: {err}; debug: {err:?}; client: {bad:?}");

        // Horizon: login, list, push, token expiry (refresh), session expiry (re-login), 429.
        let hz = HorizonClient::new(
            site.clone(),
            url(Product::Horizon),
            creds(LAB_PASSWORD, Some(LAB_DOMAIN)),
            http.clone(),
            quick.clone(),
        );
        hz.login().await.expect("horizon login");
        let pools = hz.pools().await.expect("pools");
        secrets.extend(issued(&lab));
        let pool = pools.iter().find(|p| p.name.as_str() == "Office-IC").expect("pool");
        let current = pool.current.clone().expect("current image");
        hz.push_image(
            &pool.id,
            &PushSpec::now(ImageRef { vm: current.vm.clone(), snapshot: current.snapshot }, Logoff::Wait),
        )
        .await
        .expect("push");
        lab.state().lock().sites.get_mut("eu").expect("eu").horizon.expire_access_tokens();
        hz.pools().await.expect("pools after refresh");
        secrets.extend(issued(&lab));
        lab.state().lock().sites.get_mut("eu").expect("eu").horizon.expire_sessions();
        hz.desktop_pool(&pool.id).await.expect("pool after re-login");
        secrets.extend(issued(&lab));
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("X-Rate-Limit-Retry-After-Seconds".to_owned(), "0".to_owned());
        lab.add_fault(
            "eu",
            Product::Horizon,
            FaultRule {
                path_prefix: "/rest/inventory".into(),
                status: 429,
                headers,
                count: 1,
                ..FaultRule::default()
            },
        );
        hz.farms().await.expect("farms after a 429");
        let bad = HorizonClient::new(
            site.clone(),
            url(Product::Horizon),
            creds(WRONG_PASSWORD, Some(LAB_DOMAIN)),
            http,
            quick,
        );
        let err = bad.login().await.expect_err("wrong password");
        tracing::error!("horizon login failed: {err}; debug: {err:?}");
        let _ = hz.base_vms(&HorizonId::new("no-such-vcenter")).await;
        hz.logout().await.expect("logout");
        secrets.extend(issued(&lab));
        lab.shutdown().await;
        secrets
    });

    let text = String::from_utf8_lossy(&log.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(text.lines().count() > 20, "the log captured the run:\n{text}");
    assert!(text.contains("vcenter login failed"), "errors were logged:\n{text}");
    secrets.insert(LAB_PASSWORD.to_owned());
    secrets.insert(WRONG_PASSWORD.to_owned());
    for password in [LAB_PASSWORD, WRONG_PASSWORD] {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{LAB_USER}:{password}"));
        secrets.insert(basic);
    }
    assert!(secrets.len() >= 8, "tokens and sessions were collected: {}", secrets.len());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a credential reached the log: {secret:?} in\n{text}");
    }
}
