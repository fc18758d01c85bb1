//! No credential goes anywhere but the endpoint named: a redirect is never followed, and
//! `plan --trusted-ref` sends nothing to a site whose endpoints changed. (That none reaches a
//! log line is `tests/log.rs`, a test binary of its own.)

use base64::Engine;
use golden::connect::{Credentials, RetryPolicy, Secret, Tls, http_client};
use golden::horizon::HorizonClient;
use golden::ids::SiteName;
use golden::lab::{LAB_DOMAIN, LAB_USER};
use golden::vcenter::VcenterClient;

use super::common::{Recorder, TempRepo, answer, golden, run};

const WRONG_PASSWORD: &str = "Wr0ng-But-Secret!";

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
