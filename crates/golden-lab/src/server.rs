//! Serving the lab: one loopback listener per site and product, with the knobs tests and
//! benchmarks need around every request.
//!
//! - latency: a fixed delay before each request is handled (`--latency MS`);
//! - counters: requests per endpoint and per `METHOD /path`, at `GET /__lab/counters`
//!   (`DELETE` resets them), or [`Lab::requests`] in-process;
//! - faults: rules that answer matching requests with a status and body, or delay them, the same
//!   JSON as the vcsim wrapper's `/__fault` (`POST` adds, `GET` lists with hit counts, `DELETE`
//!   clears), so a contract test can inject the same fault into either; and random faults drawn
//!   from a seed ([`Chaos`], see [`super::chaos`]), after the rules;
//! - accepted requests: per route, the requests whose handler answered 2xx, whatever became of
//!   the answer ([`Lab::accepted_by_route`]), so that a test can count what took effect.
//!
//! Only what runs on this machine may use the lab, and only its owner may steer it. Every
//! request must name the lab's own address in its `Host` header (the bound loopback address or
//! `localhost`, and the port): a web page whose DNS name was re-bound to 127.0.0.1 sends its
//! own name and is refused with 403. The control routes (`/__fault`, `/__lab/...`) also want
//! the random token of this run in the `x-golden-lab-token` header ([`Lab::control_token`];
//! `GOLDEN_LAB_TOKEN` in the env file `golden lab serve` writes).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::chaos::{self, Chaos, Dice, FaultKind};
use super::clock::Clock;
use super::{LAB_DOMAIN, LAB_PASSWORD, LAB_USER, LabState, Shared, SiteCtx};

/// Which product an endpoint simulates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Vcenter,
    Horizon,
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Product::Vcenter => "vcenter",
            Product::Horizon => "horizon",
        })
    }
}

/// How to start a lab.
#[derive(Clone, Debug, Default)]
pub struct LabOptions {
    /// Delay added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Bind free loopback ports instead of the URLs recorded in the state (`SiteLab::*_url`).
    pub free_ports: bool,
    /// vCenters of the state that are not simulated but served elsewhere (vcsim, or a real
    /// one), by name: the lab serves no endpoint for them, and the Horizon of each of their
    /// sites reads base VMs and snapshots from them (see [`super::remote`]).
    pub remote_vcenters: BTreeMap<String, Arc<dyn super::remote::RemoteVcenter>>,
    /// Random faults from the start ([`Lab::set_chaos`] changes them later).
    pub chaos: Option<Chaos>,
}

/// A rule of fault injection. Matches on method, path prefix and body text; answers with
/// `status` + `body` (+ `headers`), or only delays the request when `status` is 0. With
/// `cut` (the lab's own; the vcsim wrapper has no such field) it drops the connection instead
/// of answering: before the handler runs (no effect), or after (the request took effect and
/// its answer is lost), as [`super::chaos`] does at random.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default)]
    pub body_contains: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub delay_ms: u64,
    /// How many requests the rule hits; 0 means every one.
    #[serde(default)]
    pub count: u32,
    #[serde(default)]
    pub hits: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
}

/// When a [`FaultRule`] drops the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cut {
    /// Before the handler runs: no answer, no effect.
    Before,
    /// After the handler ran: no answer, but the request took effect.
    After,
}

#[derive(Debug, Default, Serialize)]
struct Stats {
    total: u64,
    by_route: BTreeMap<String, u64>,
    /// Requests per route whose handler answered 2xx.
    accepted_by_route: BTreeMap<String, u64>,
    #[serde(skip)]
    faults: Vec<FaultRule>,
}

/// One served endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The vCenter (a vCenter endpoint) or the site (a Horizon endpoint) it serves.
    pub name: String,
    /// The sites it serves: those in the vCenter, or the Horizon's own.
    pub sites: Vec<String>,
    pub product: Product,
    pub url: String,
    stats: Arc<Mutex<Stats>>,
}

/// The header that carries the control token on `/__fault` and `/__lab/...` requests.
pub const CONTROL_TOKEN_HEADER: &str = "x-golden-lab-token";

/// A running lab. Dropping it without [`Lab::shutdown`] stops the listeners too.
#[derive(Debug)]
pub struct Lab {
    shared: Shared,
    endpoints: Vec<Endpoint>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    token: Arc<str>,
    dice: Arc<Mutex<Dice>>,
}

#[derive(Clone)]
struct Layer {
    stats: Arc<Mutex<Stats>>,
    latency: Duration,
    /// Keeps the latency to the microsecond; `None` without latency.
    clock: Option<Clock>,
    /// The address the endpoint listens on: the only one a request's `Host` may name.
    addr: SocketAddr,
    /// What the control routes want in [`CONTROL_TOKEN_HEADER`].
    token: Arc<str>,
}

impl Lab {
    /// Binds every site's vCenter and Horizon endpoint and starts serving `state`.
    pub async fn start(state: LabState, options: LabOptions) -> anyhow::Result<Lab> {
        let shared = Shared::new(state);
        // What to serve: every vCenter (with the sites in it) and every site's Horizon.
        let served: Vec<(Product, String, Option<String>, Vec<String>)> = {
            let lab = shared.lock();
            let vcenters =
                lab.vcenters.values().filter(|v| !options.remote_vcenters.contains_key(&v.name)).map(|v| {
                    let sites = lab.sites.values().filter(|s| s.vcenter == v.name).map(|s| s.name.clone());
                    (Product::Vcenter, v.name.clone(), v.url.clone(), sites.collect())
                });
            let horizons = lab
                .sites
                .values()
                .map(|s| (Product::Horizon, s.name.clone(), s.horizon_url.clone(), vec![s.name.clone()]));
            vcenters.chain(horizons).collect()
        };
        let (stop, stopped) = watch::channel(false);
        let clock = match options.latency_ms {
            0 => None,
            _ => Some(
                Clock::start().map_err(|e| anyhow::anyhow!("cannot start the lab's latency clock: {e}"))?,
            ),
        };
        // Two v4 UUIDs: 244 random bits from the operating system's generator.
        let token: Arc<str> =
            format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()).into();
        let dice = Arc::new(Mutex::new(Dice::new(options.chaos.clone())));
        let mut lab = Lab {
            shared: shared.clone(),
            endpoints: Vec::new(),
            stop,
            tasks: Vec::new(),
            token: token.clone(),
            dice: dice.clone(),
        };
        for (product, name, configured, sites) in served {
            let addr = match (&configured, options.free_ports) {
                (Some(url), false) => loopback_addr(url)?,
                _ => SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the {product} of `{name}`: {e}"))?;
            let bound = listener.local_addr()?;
            let url = format!("http://{bound}");
            let stats = Arc::new(Mutex::new(Stats::default()));
            let ctx = SiteCtx { lab: shared.clone(), name: name.clone() };
            let routes = match product {
                Product::Vcenter => super::vcenter::router(),
                Product::Horizon => super::horizon::router(),
            };
            let layer = Layer {
                stats: stats.clone(),
                latency: Duration::from_millis(options.latency_ms),
                clock: clock.clone(),
                addr: bound,
                token: token.clone(),
            };
            let mut routes =
                routes.with_state(ctx).layer(middleware::from_fn_with_state(stats.clone(), count_accepted));
            // A Horizon whose vCenter is remote refreshes its mirror of it before each request.
            let remote = match product {
                Product::Horizon => {
                    let vcenter = shared.read().sites.get(&name).map(|s| s.vcenter.clone());
                    vcenter.and_then(|v| Some((options.remote_vcenters.get(&v)?, v)))
                }
                Product::Vcenter => None,
            };
            if let Some((remote, vcenter)) = remote {
                let mirror = super::remote::Mirror::new(shared.clone(), &vcenter, remote.clone());
                routes = routes.layer(middleware::from_fn_with_state(mirror, super::remote::refresh_first));
            }
            let chaos =
                chaos::ChaosLayer { dice: dice.clone(), lab: shared.clone(), name: name.clone(), product };
            let app: Router = routes
                .layer(middleware::from_fn_with_state(chaos, chaos::inject))
                .layer(middleware::from_fn_with_state(layer, around));
            let mut stopped = stopped.clone();
            lab.tasks.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                // A make-service hands each connection a clone of the router (one Arc);
                // serving the router itself rebuilds its route table per connection. Its
                // connect info is the handle chaos cuts a connection with.
                let app = app.into_make_service_with_connect_info::<chaos::Conn>();
                let listener = chaos::Listener(listener);
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                    tracing::error!("lab endpoint stopped: {e}");
                }
            }));
            {
                let mut state = shared.lock();
                match product {
                    Product::Vcenter => {
                        if let Some(v) = state.vcenters.get_mut(&name) {
                            v.url = Some(url.clone());
                        }
                    }
                    Product::Horizon => {
                        if let Some(s) = state.sites.get_mut(&name) {
                            s.horizon_url = Some(url.clone());
                        }
                    }
                }
            }
            lab.endpoints.push(Endpoint { name, sites, product, url, stats });
        }
        Ok(lab)
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Every site's endpoints as `(site, product, URL)`, sorted: sites that share a vCenter
    /// show the same vCenter URL.
    pub fn site_endpoints(&self) -> Vec<(&str, Product, &str)> {
        let mut out: Vec<(&str, Product, &str)> = self
            .endpoints
            .iter()
            .flat_map(|e| e.sites.iter().map(move |s| (s.as_str(), e.product, e.url.as_str())))
            .collect();
        out.sort();
        out
    }

    /// The token the control routes (`/__fault`, `/__lab/...`) want in [`CONTROL_TOKEN_HEADER`],
    /// random for each start.
    pub fn control_token(&self) -> &str {
        &self.token
    }

    /// The shared state, for tests that arrange or inspect the lab directly.
    pub fn state(&self) -> Shared {
        self.shared.clone()
    }

    /// The base URL of a site's endpoint (for a vCenter, the one its datacenter is in).
    pub fn url(&self, site: &str, product: Product) -> Option<&str> {
        self.endpoint(site, product).map(|e| e.url.as_str())
    }

    fn endpoint(&self, site: &str, product: Product) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.product == product && e.sites.iter().any(|s| s == site))
    }

    /// Requests an endpoint has served since start (or the last reset), control paths excluded.
    pub fn requests(&self, site: &str, product: Product) -> u64 {
        self.endpoint(site, product).map_or(0, |e| lock(&e.stats).total)
    }

    /// Requests per `METHOD /path` at an endpoint.
    pub fn requests_by_route(&self, site: &str, product: Product) -> BTreeMap<String, u64> {
        self.endpoint(site, product).map(|e| lock(&e.stats).by_route.clone()).unwrap_or_default()
    }

    /// Requests per `METHOD /path` at an endpoint that its handler answered with 2xx: those
    /// that took effect, whether or not the answer reached the client.
    pub fn accepted_by_route(&self, site: &str, product: Product) -> BTreeMap<String, u64> {
        self.endpoint(site, product).map(|e| lock(&e.stats).accepted_by_route.clone()).unwrap_or_default()
    }

    pub fn reset_counters(&self) {
        for e in &self.endpoints {
            lock(&e.stats).reset();
        }
    }

    /// Starts random faults afresh from `chaos`'s seed, or stops them (`None`).
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        chaos::lock(&self.dice).set(chaos);
    }

    /// The random faults injected since the lab started, by kind.
    pub fn faults_injected(&self) -> BTreeMap<FaultKind, u64> {
        chaos::lock(&self.dice).injected()
    }

    /// Adds a fault rule to an endpoint.
    pub fn add_fault(&self, site: &str, product: Product, rule: FaultRule) {
        if let Some(e) = self.endpoint(site, product) {
            lock(&e.stats).faults.push(rule);
        }
    }

    /// The environment a client needs: URL overrides and the credentials the lab accepts, for
    /// every site, and the control token as `GOLDEN_LAB_TOKEN`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut vars = vec![("GOLDEN_LAB_TOKEN".to_owned(), self.token.to_string())];
        for e in &self.endpoints {
            let product = match e.product {
                Product::Vcenter => "VCENTER",
                Product::Horizon => "HORIZON",
            };
            for site in &e.sites {
                let prefix = golden_core::ids::SiteName::new(site.clone()).env_prefix();
                vars.push((format!("{prefix}_{product}_URL"), e.url.clone()));
                vars.push((format!("{prefix}_{product}_USER"), LAB_USER.to_owned()));
                vars.push((format!("{prefix}_{product}_PASSWORD"), LAB_PASSWORD.to_owned()));
                if e.product == Product::Horizon {
                    vars.push((format!("{prefix}_HORIZON_DOMAIN"), LAB_DOMAIN.to_owned()));
                }
            }
        }
        vars.sort();
        vars
    }

    /// Stops every listener and returns the final state.
    pub async fn shutdown(mut self) -> LabState {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.shared.lock().clone()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stats {
    fn reset(&mut self) {
        self.total = 0;
        self.by_route.clear();
        self.accepted_by_route.clear();
    }
}

/// Counts the requests the handler answered with 2xx, by route: the innermost layer, so
/// that what a fault answered instead is not counted.
async fn count_accepted(State(stats): State<Arc<Mutex<Stats>>>, request: Request, next: Next) -> Response {
    let route = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    if response.status().is_success() {
        *lock(&stats).accepted_by_route.entry(route).or_default() += 1;
    }
    response
}

/// The loopback socket address of a lab URL; the lab never binds anything but loopback.
fn loopback_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("lab URL {url} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let port = parsed.port_or_known_default().unwrap_or(0);
    let ip: std::net::IpAddr = match host {
        "localhost" => [127, 0, 0, 1].into(),
        h => h.trim_matches(|c| c == '[' || c == ']').parse().map_err(|_| {
            anyhow::anyhow!("lab URL {url} is not a loopback address; the lab only binds 127.0.0.1 or [::1]")
        })?,
    };
    if !ip.is_loopback() {
        anyhow::bail!("lab URL {url} is not a loopback address; the lab only binds 127.0.0.1 or [::1]");
    }
    Ok(SocketAddr::new(ip, port))
}

/// Whether a `Host` header names the endpoint at `addr`: its own IP address or `localhost`,
/// and its port (the default, 80, when none is written).
fn addressed_to(host: Option<&HeaderValue>, addr: SocketAddr) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else { return false };
    let Ok(url) = url::Url::parse(&format!("http://{host}/")) else { return false };
    let name_matches = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip) == addr.ip(),
        Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip) == addr.ip(),
        None => false,
    };
    name_matches && url.port_or_known_default() == Some(addr.port())
}

/// The middleware around every lab request: the Host check, control paths (with their token),
/// counters, latency, faults.
async fn around(State(layer): State<Layer>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if !addressed_to(request.headers().get(axum::http::header::HOST), layer.addr) {
        let refusal = format!("the lab answers only requests addressed to {} (the Host header)", layer.addr);
        return (StatusCode::FORBIDDEN, refusal).into_response();
    }
    if path == "/__fault" || path.starts_with("/__lab/") {
        let given = request.headers().get(CONTROL_TOKEN_HEADER).map(HeaderValue::as_bytes);
        if given != Some(layer.token.as_bytes()) {
            let refusal = format!(
                "control routes want the lab's token in the {CONTROL_TOKEN_HEADER} header \
                 (GOLDEN_LAB_TOKEN in the env file of `golden lab serve`)"
            );
            return (StatusCode::FORBIDDEN, refusal).into_response();
        }
    }
    if path == "/__lab/counters" {
        let mut stats = lock(&layer.stats);
        if method == Method::DELETE {
            stats.reset();
        }
        let counters = serde_json::json!({
            "total": stats.total,
            "by_route": stats.by_route,
            "accepted_by_route": stats.accepted_by_route,
        });
        return axum::Json(counters).into_response();
    }
    if path == "/__fault" {
        return fault_admin(&layer, request).await;
    }
    {
        let mut stats = lock(&layer.stats);
        stats.total += 1;
        *stats.by_route.entry(format!("{method} {path}")).or_default() += 1;
    }
    if let Some(clock) = &layer.clock {
        clock.sleep_until(arrived + layer.latency).await;
    }
    let has_rules = !lock(&layer.stats).faults.is_empty();
    if !has_rules {
        return next.run(request).await;
    }
    // Buffer the body so rules can match on it, then hand it on unchanged.
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let hit = {
        let mut stats = lock(&layer.stats);
        let text = String::from_utf8_lossy(&bytes);
        stats
            .faults
            .iter_mut()
            .find(|r| {
                (r.count == 0 || r.hits < r.count)
                    && (r.method.is_empty() || r.method.eq_ignore_ascii_case(method.as_str()))
                    && path.starts_with(&r.path_prefix)
                    && text.contains(&r.body_contains)
            })
            .map(|r| {
                r.hits += 1;
                r.clone()
            })
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let Some(rule) = hit else { return next.run(request).await };
    if rule.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rule.delay_ms)).await;
    }
    if let Some(cut) = rule.cut {
        return chaos::drop_connection(cut, request, next).await;
    }
    if rule.status == 0 {
        return next.run(request).await;
    }
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type =
        if rule.body.trim_start().starts_with('<') { "text/xml; charset=utf-8" } else { "application/json" };
    let mut response = (status, [("content-type", content_type)], rule.body).into_response();
    for (name, value) in &rule.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

async fn fault_admin(layer: &Layer, request: Request) -> Response {
    let method = request.method().clone();
    match method {
        Method::POST => {
            let Ok(bytes) = to_bytes(request.into_body(), 1024 * 1024).await else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            match serde_json::from_slice::<FaultRule>(&bytes) {
                Ok(mut rule) => {
                    rule.hits = 0;
                    lock(&layer.stats).faults.push(rule.clone());
                    axum::Json(rule).into_response()
                }
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }
        Method::GET => axum::Json(lock(&layer.stats).faults.clone()).into_response(),
        Method::DELETE => {
            lock(&layer.stats).faults.clear();
            StatusCode::OK.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_must_name_the_endpoint_in_its_host_header() {
        let v4: SocketAddr = ([127, 0, 0, 1], 18441).into();
        let v6: SocketAddr = "[::1]:18441".parse().expect("an address");
        let host = |h: &'static str| Some(HeaderValue::from_static(h));
        for (header, addr) in [("127.0.0.1:18441", v4), ("localhost:18441", v4), ("[::1]:18441", v6)] {
            assert!(addressed_to(host(header).as_ref(), addr), "{header}");
        }
        for header in ["evil.example:18441", "127.0.0.1:18442", "127.0.0.2:18441", "127.0.0.1", "[::1]:18441"]
        {
            assert!(!addressed_to(host(header).as_ref(), v4), "{header}");
        }
        assert!(!addressed_to(None, v4), "no Host header");
    }

    #[test]
    fn only_loopback_urls_are_bound() {
        assert!(loopback_addr("http://127.0.0.1:18441").is_ok());
        assert!(loopback_addr("http://localhost:1").is_ok());
        assert!(loopback_addr("http://[::1]:1").is_ok());
        assert!(loopback_addr("http://10.0.0.1:1").is_err());
        assert!(loopback_addr("https://vc.corp.example").is_err());
    }
}
