//! No credential in any log line: both clients and the lab run at the highest verbosity (every
//! target at TRACE, reqwest and hyper included) through logins, failures, retries and token
//! refreshes, and the captured log must not contain a password, a Basic-auth header, a session
//! id or a token. No credential goes anywhere but the endpoint named: a redirect is never
//! followed, and `plan --trusted-ref` sends nothing to a site whose endpoints changed.

use std::collections::BTreeSet;
use std::io::Write;
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

use super::common::{Recorder, TempRepo, answer, golden, repo_root, run};

const WRONG_PASSWORD: &str = "Wr0ng-But-Secret!";

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

/// No client follows a redirect: a server that answers every login with a 307 to another
/// (recording) server gets one request per login and no retry, the other server gets nothing,
/// and each login fails with an error naming the status and where it pointed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_an_error_and_is_never_followed() {
    let lure = Recorder::start(|_| answer("200 OK", &[])).await;
    let target = format!("{}/login-here", lure.url);
    let location = format!("location: {target}");
    let redirecting = Recorder::start(move |_| answer("307 Temporary Redirect", &[location.as_str()])).await;
    let site = SiteName::new("eu");
    let http = http_client(&site, &Tls::default()).expect("http");
    let base = url::Url::parse(&redirecting.url).expect("url");
    let creds = |domain: Option<&str>| Credentials {
        user: LAB_USER.into(),
        password: Secret::new(WRONG_PASSWORD),
        domain: domain.map(str::to_owned),
    };
    // Retries allowed, to show that a redirect is not retried either.
    let retry = RetryPolicy { base_delay: std::time::Duration::from_millis(1), ..RetryPolicy::default() };
    let vc = VcenterClient::new(site.clone(), base.clone(), creds(None), http.clone(), retry.clone());
    let hz = HorizonClient::new(site, base, creds(Some(LAB_DOMAIN)), http, retry);
    let errors = [
        vc.login_rest().await.expect_err("redirected").to_string(),
        vc.login_soap().await.expect_err("redirected").to_string(),
        hz.login().await.expect_err("redirected").to_string(),
    ];
    for err in &errors {
        assert!(err.contains("307"), "{err}");
        assert!(err.contains(&format!("a redirect to {target}; golden never follows redirects")), "{err}");
    }
    assert_eq!(lure.requests(), Vec::<String>::new(), "a redirect was followed");
    let sent = redirecting.requests();
    assert_eq!(sent.len(), 3, "one request per login: {sent:#?}");
    assert!(
        sent.iter().any(|r| r.contains(WRONG_PASSWORD)),
        "the recorder saw Horizon's login body: {sent:#?}"
    );
}

/// golden.toml with `sites`, each `(name, vcenter URL, horizon URL)`; the first is the source.
fn golden_toml(sites: &[(&str, &str, &str)]) -> String {
    let mut text = format!("[settings]\nsource_site = \"{}\"\n", sites[0].0);
    for (name, vcenter, horizon) in sites {
        text.push_str(&format!(
            "\n[sites.{name}]\nvcenter = \"{vcenter}\"\nhorizon = \"{horizon}\"\ndatacenter = \"DC\"\n\
             cluster = \"C\"\nfolder = \"golden\"\ndatastore = \"ds\"\n"
        ));
    }
    text
}

/// `golden plan --trusted-ref REF` on a pull request that points site `hq`'s vCenter at a
/// listener of its own and adds site `us`: exit 1 naming both and what changed, and not one
/// request to any listener. The same plan trusting the pull request itself (its endpoints
/// agree) sends the credentials on, which shows the listeners would have seen them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_with_a_trusted_ref_sends_no_credential_to_changed_endpoints() {
    const SECRET: &str = "Pr0duction-Secret!";
    let unauthorized = |_: &str| answer("401 Unauthorized", &[]);
    let (trusted, lure) = (Recorder::start(unauthorized).await, Recorder::start(unauthorized).await);
    let repo = TempRepo::new();
    let (t, l) = (trusted.url.as_str(), lure.url.as_str());
    repo.write("golden.toml", &golden_toml(&[("hq", t, t), ("eu", t, t)]));
    let base = repo.commit("sites").to_string();
    repo.write("golden.toml", &golden_toml(&[("hq", l, t), ("eu", t, t), ("us", t, t)]));
    repo.commit("a pull request moves hq's vcenter and adds us");

    let mut env = Vec::new();
    for site in ["HQ", "EU", "US"] {
        for (var, value) in [
            ("VCENTER_USER", "svc-golden"),
            ("VCENTER_PASSWORD", SECRET),
            ("HORIZON_USER", "svc-golden"),
            ("HORIZON_PASSWORD", SECRET),
            ("HORIZON_DOMAIN", "CORP"),
        ] {
            env.push((format!("GOLDEN_{site}_{var}"), value.to_owned()));
        }
    }
    let plan = |trusted_ref: String| {
        let (dir, env) = (repo.path().to_owned(), env.clone());
        tokio::task::spawn_blocking(move || {
            run(golden(&dir).envs(env).args(["plan", "--trusted-ref", &trusted_ref]))
        })
    };

    let refused = plan(base.clone()).await.expect("golden ran");
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    for expected in [
        format!(
            "the endpoints of 2 sites differ from those at trusted ref `{base}`, so golden sent no credentials"
        ),
        format!("site `hq`: vcenter is `{l}` here, `{t}` at `{base}`"),
        format!("site `us` is not in golden.toml at `{base}`"),
    ] {
        assert!(refused.stderr.contains(&expected), "{expected:?} missing in:\n{}", refused.stderr);
    }
    assert!(!refused.stderr.contains("site `eu`"), "eu is unchanged:\n{}", refused.stderr);
    assert_eq!((trusted.requests(), lure.requests()), (Vec::new(), Vec::new()), "a request was sent");

    let agreed = plan("HEAD".to_owned()).await.expect("golden ran");
    assert_eq!(agreed.code, 1, "the listeners refuse every login:\n{}", agreed.stderr);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("svc-golden:{SECRET}"));
    assert!(lure.requests().iter().any(|r| r.contains(&basic)), "hq's vcenter login went to the lure");
    assert!(
        trusted.requests().iter().any(|r| r.contains(SECRET)),
        "a horizon login went to the trusted listener"
    );
}
