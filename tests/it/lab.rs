//! `golden lab serve` as a user runs it: endpoints printed, the env file, the documented shapes
//! over plain HTTP, and a clean stop on SIGTERM that saves a state the next lab resumes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use golden::lab::{CONTROL_TOKEN_HEADER, Product};
use serde_json::Value;

use super::common::repo_root;

/// A `golden lab serve` process and the endpoints it printed.
struct Served {
    child: Child,
    /// `(site, product)` to base URL.
    endpoints: BTreeMap<(String, String), String>,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("golden"))
            .args(["lab", "serve", "--free-ports"])
            .args(args)
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("golden lab serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut endpoints = BTreeMap::new();
        for line in BufReader::new(stdout).lines().take(6) {
            let line = line.expect("a line of output");
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 3, "site, product, URL per line: {line:?}");
            endpoints.insert((parts[0].to_owned(), parts[1].to_owned()), parts[2].to_owned());
        }
        Served { child, endpoints }
    }

    fn url(&self, site: &str, product: &str) -> &str {
        &self.endpoints[&(site.to_owned(), product.to_owned())]
    }

    /// SIGTERM, as a service manager stops it; returns the exit code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success());
        self.child.wait().expect("the lab exits").code()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn vcenter_session(http: &reqwest::Client, base: &str) -> String {
    let login: Value = http
        .post(format!("{base}/rest/com/vmware/cis/session"))
        .basic_auth(golden::lab::LAB_USER, Some(golden::lab::LAB_PASSWORD))
        .send()
        .await
        .expect("session request")
        .json()
        .await
        .expect("session JSON");
    login["value"].as_str().expect("session id in value").to_owned()
}

async fn libraries(http: &reqwest::Client, base: &str, session: &str) -> Vec<Value> {
    let ids: Value = http
        .get(format!("{base}/rest/com/vmware/content/library"))
        .header("vmware-api-session-id", session)
        .send()
        .await
        .expect("library list")
        .json()
        .await
        .expect("library list JSON");
    let mut out = Vec::new();
    for id in ids["value"].as_array().expect("a list").iter().filter_map(Value::as_str) {
        let lib: Value = http
            .get(format!("{base}/rest/com/vmware/content/library/id:{id}"))
            .header("vmware-api-session-id", session)
            .send()
            .await
            .expect("library get")
            .json()
            .await
            .expect("library JSON");
        out.push(lib["value"].clone());
    }
    out
}

fn quickstart() -> String {
    repo_root().join("examples/quickstart").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_endpoints_writes_env_and_speaks_both_apis() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("lab.env");
    let lab = Served::start(&["--seed", &quickstart(), "--env-file", &env_file.display().to_string()]);
    let sites: Vec<&str> = lab.endpoints.keys().map(|(s, _)| s.as_str()).collect();
    assert_eq!(sites, ["eu", "eu", "hq", "hq", "us", "us"]);
    for url in lab.endpoints.values() {
        assert!(url.starts_with("http://127.0.0.1:"), "loopback only: {url}");
    }

    let env = std::fs::read_to_string(&env_file).expect("env file written");
    assert!(env.contains(&format!("export GOLDEN_HQ_VCENTER_URL={}\n", lab.url("hq", "vcenter"))), "{env}");
    assert!(env.contains("export GOLDEN_EU_HORIZON_DOMAIN=LAB\n"), "{env}");
    assert!(env.lines().all(|l| l.starts_with("export GOLDEN_")), "{env}");
    assert_eq!(mode(&env_file), 0o600, "the env file holds credentials and the control token");

    // The control token of the env file opens the control routes.
    let http = reqwest::Client::new();
    let hq = lab.url("hq", "vcenter");
    let token = env.lines().find_map(|l| l.strip_prefix("export GOLDEN_LAB_TOKEN=")).expect("a token");
    let counters = |token: &str| {
        let request = http.get(format!("{hq}/__lab/counters"));
        request.header(golden::lab::CONTROL_TOKEN_HEADER, token).send()
    };
    assert_eq!(counters(token).await.expect("counters").status(), 200);
    assert_eq!(counters("").await.expect("counters").status(), 403);

    let session = vcenter_session(&http, hq).await;
    let libs = libraries(&http, hq, &session).await;
    assert_eq!(libs.len(), 1, "{libs:?}");
    assert_eq!(libs[0]["name"], "golden-images");
    assert_eq!(libs[0]["type"], "LOCAL");
    assert_eq!(libs[0]["publish_info"]["published"], true);
    let publish_url = libs[0]["publish_info"]["publish_url"].as_str().expect("publish_url");
    assert!(publish_url.starts_with(hq) && publish_url.ends_with("/lib.json"), "{publish_url}");

    let unauthenticated =
        http.get(format!("{hq}/rest/com/vmware/content/library")).send().await.expect("request");
    assert_eq!(unauthenticated.status(), 401);

    let soap = http
        .post(format!("{hq}/sdk"))
        .header("content-type", "text/xml; charset=utf-8")
        .body(format!(
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:vim25="urn:vim25"><soapenv:Body><vim25:Login><vim25:_this type="SessionManager">SessionManager</vim25:_this><vim25:userName>{}</vim25:userName><vim25:password>{}</vim25:password></vim25:Login></soapenv:Body></soapenv:Envelope>"#,
            golden::lab::LAB_USER,
            golden::lab::LAB_PASSWORD
        ))
        .send()
        .await
        .expect("SOAP login");
    assert_eq!(soap.status(), 200);
    assert!(soap.headers()["set-cookie"].to_str().expect("cookie").starts_with("vmware_soap_session="));
    assert!(soap.text().await.expect("body").contains("<LoginResponse xmlns=\"urn:vim25\">"));

    // Horizon: login, then desktop pools v2 with the image each pool runs.
    let hz = lab.url("eu", "horizon");
    let tokens: Value = http
        .post(format!("{hz}/rest/login"))
        .json(&serde_json::json!({"username": golden::lab::LAB_USER, "password": golden::lab::LAB_PASSWORD, "domain": golden::lab::LAB_DOMAIN}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    let access = tokens["access_token"].as_str().expect("access_token");
    assert!(tokens["refresh_token"].is_string());
    let pools: Value = http
        .get(format!("{hz}/rest/inventory/v2/desktop-pools"))
        .bearer_auth(access)
        .send()
        .await
        .expect("desktop pools")
        .json()
        .await
        .expect("pools JSON");
    let pools = pools.as_array().expect("an array of pools");
    let names: Vec<&str> = pools.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "eu has two desktop pools (the farm is listed under farms): {names:?}");
    for pool in pools {
        assert_eq!(pool["type"], "AUTOMATED");
        assert_eq!(pool["source"], "INSTANT_CLONE");
        assert!(
            pool["provisioning_settings"]["parent_vm_id"].as_str().is_some_and(|v| v.starts_with("vm-")),
            "{pool}"
        );
        assert!(
            pool["provisioning_settings"]["base_snapshot_id"]
                .as_str()
                .is_some_and(|v| v.starts_with("snapshot-"))
        );
        assert_eq!(pool["provisioning_status_data"]["instant_clone_operation"], "NONE");
    }
    let denied = http.get(format!("{hz}/rest/inventory/v2/desktop-pools")).send().await.expect("request");
    assert_eq!(denied.status(), 401);

    assert_eq!(lab.terminate(), Some(0), "SIGTERM is a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_lab_resumes_from_its_state_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("lab.json");
    let state_arg = state.display().to_string();
    let http = reqwest::Client::new();

    let first = Served::start(&["--seed", &quickstart(), "--state", &state_arg]);
    let base = first.url("eu", "vcenter").to_owned();
    let session = vcenter_session(&http, &base).await;
    let created: Value = http
        .post(format!("{base}/rest/com/vmware/content/local-library"))
        .header("vmware-api-session-id", &session)
        .json(&serde_json::json!({"create_spec": {"name": "made-before-stop", "type": "LOCAL",
            "storage_backings": [{"type": "DATASTORE", "datastore_id": seeded_datastore("eu")}]}}))
        .send()
        .await
        .expect("create library")
        .json()
        .await
        .expect("JSON");
    let id = created["value"].as_str().expect("library id").to_owned();
    assert_eq!(first.terminate(), Some(0));
    assert!(state.exists(), "the state is saved on SIGTERM");
    assert_eq!(mode(&state), 0o600, "the state file holds sessions and tokens");

    // No --seed: the state file alone is enough.
    let second = Served::start(&["--state", &state_arg]);
    let base = second.url("eu", "vcenter");
    let session = vcenter_session(&http, base).await;
    let names: Vec<String> = libraries(&http, base, &session)
        .await
        .iter()
        .filter_map(|l| l["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, ["made-before-stop"]);
    assert!(libraries(&http, base, &session).await.iter().any(|l| l["id"] == id.as_str()));
    assert_eq!(second.terminate(), Some(0));
}

/// The permission bits of a file.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("the file exists").permissions().mode() & 0o777
}

/// Only the lab's owner steers it: the control routes want this run's token, and every route
/// wants the lab's own address in `Host`, so a web page whose name was re-bound to 127.0.0.1
/// cannot reach it. Both refusals are 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_routes_want_the_token_and_every_route_the_labs_own_host() {
    let desired = golden::desired::load(&golden::desired::Location::WorkTree {
        dir: repo_root().join("examples/quickstart"),
    })
    .expect("quickstart loads");
    let state = golden::lab::seed::from_desired(&desired, golden::lab::Timings::instant());
    let options = golden::lab::LabOptions { free_ports: true, ..Default::default() };
    let lab = golden::lab::Lab::start(state, options).await.expect("lab starts");
    let (vc, hz) =
        (lab.url("eu", Product::Vcenter).expect("vc"), lab.url("eu", Product::Horizon).expect("hz"));
    let http = reqwest::Client::new();
    let post = |url: String, token: Option<&str>, host: Option<&str>| {
        let mut request = http.post(url).json(&serde_json::json!({"ms": 0}));
        if let Some(token) = token {
            request = request.header(CONTROL_TOKEN_HEADER, token);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        async move { request.send().await.expect("the lab answers").status().as_u16() }
    };
    let token = lab.control_token();
    for url in
        [format!("{vc}/__fault"), format!("{vc}/__lab/counters"), format!("{hz}/__lab/horizon/fast-forward")]
    {
        assert_eq!(post(url.clone(), None, None).await, 403, "{url} without the token");
        assert_eq!(post(url.clone(), Some("a-guess"), None).await, 403, "{url} with a wrong token");
    }
    assert_eq!(post(format!("{vc}/__lab/counters"), Some(token), None).await, 200);
    assert_eq!(post(format!("{hz}/__lab/horizon/fast-forward"), Some(token), None).await, 204);

    let port = url::Url::parse(vc).expect("url").port().expect("a port");
    let login = format!("{vc}/rest/com/vmware/cis/session");
    for host in [format!("rebound.example:{port}"), format!("127.0.0.1:{}", port + 1)] {
        assert_eq!(post(login.clone(), None, Some(&host)).await, 403, "Host {host}");
        assert_eq!(post(format!("{vc}/__lab/counters"), Some(token), Some(&host)).await, 403, "Host {host}");
    }
    // Named as `localhost`, the lab is itself: the login is only refused for want of a password.
    assert_eq!(post(login, None, Some(&format!("localhost:{port}"))).await, 401);
    lab.shutdown().await;
}

/// The datastore moref of a seeded site. Lab morefs are deterministic for a given seed, so
/// the seeded state is the reference (reading it over SOAP would duplicate the client).
fn seeded_datastore(site: &str) -> String {
    let dir = repo_root().join("examples/quickstart");
    let desired =
        golden::desired::load(&golden::desired::Location::WorkTree { dir }).expect("quickstart loads");
    let lab = golden::lab::seed::from_desired(&desired, golden::lab::Timings::default());
    lab.vcenter_of(site)
        .expect("the site's vCenter")
        .datastore_in(&lab.sites[site].datacenter)
        .expect("a datastore")
        .id
        .clone()
}
