//! How golden reaches a site: endpoint URLs, credentials, TLS and the retry policy.
//!
//! Shared by the `vcenter` and `horizon` clients so that both treat secrets, certificates and
//! transient failures the same way. Credentials come only from the environment
//! (`GOLDEN_<SITE>_*`); [`Secret`] keeps them out of `Debug` output, logs and error messages.
//!
//! Credentials go only where the site's endpoints say, and only safely: an endpoint, from
//! golden.toml or a `GOLDEN_<SITE>_*_URL` override, must be `https://` unless its host is
//! loopback ([`crate::desired::allows_plain_http`]), and no HTTP client follows a redirect. A
//! 307 or 308 would make the client send the same request (vCenter's basic-auth header or SOAP
//! login body, Horizon's login JSON) to whatever host the server names; any 3xx is an error
//! instead, naming where it pointed ([`redirect_target`]).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use golden_core::desired::layout::{Tree as _, WorkTree};

use crate::desired::{Location, Site};
use crate::ids::SiteName;

/// A credential. Its `Debug` is redacted and it has no `Display`, so it cannot end up in a log
/// line or an error message by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that sends it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A user name and password (plus a domain, for Horizon).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
    /// Horizon's NetBIOS-style domain; `None` for vCenter.
    pub domain: Option<String>,
}

/// TLS settings of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// Extra CA certificates (PEM) to trust: the site's `ca_file`, as read from the desired
    /// state's working tree or commit.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip certificate verification. Only for labs; set by `GOLDEN_<SITE>_TLS_INSECURE=true`.
    pub insecure: bool,
}

/// Everything needed to talk to one site.
#[derive(Clone, Debug)]
pub struct SiteConnection {
    pub site: SiteName,
    pub vcenter_url: url::Url,
    pub horizon_url: url::Url,
    pub vcenter: Credentials,
    pub horizon: Credentials,
    pub tls: Tls,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{name} is not set (needed to reach site `{site}`)")]
    MissingVariable { name: String, site: SiteName },
    #[error("{name} is not a usable URL: {reason}")]
    BadUrl { name: String, reason: String },
    #[error("cannot read the CA file {path} of site `{site}`")]
    CaFile { path: String, site: SiteName, source: std::io::Error },
    #[error("cannot build the HTTP client for site `{site}`")]
    Client { site: SiteName, source: reqwest::Error },
}

impl SiteConnection {
    /// Resolves a site's connection from its desired state and the environment `env`.
    ///
    /// `GOLDEN_<SITE>_VCENTER_URL` / `_HORIZON_URL` override the URLs of golden.toml; users,
    /// passwords and the Horizon domain must be set. The `ca_file` is read from `repo`, where
    /// the desired state was read: with `--ref`, from that commit, never from the working tree
    /// (whose CA nobody reviewed).
    pub fn resolve(
        site: &Site,
        repo: &Location,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SiteConnection, ConnectError> {
        let prefix = site.name.env_prefix();
        let var = |suffix: &str| -> Result<String, ConnectError> {
            let name = format!("{prefix}_{suffix}");
            env(&name)
                .filter(|v| !v.is_empty())
                .ok_or(ConnectError::MissingVariable { name, site: site.name.clone() })
        };
        let url = |suffix: &str, configured: &str| -> Result<url::Url, ConnectError> {
            let name = format!("{prefix}_{suffix}");
            let (raw, from) = match env(&name).filter(|v| !v.is_empty()) {
                Some(v) => (v, name),
                None => (configured.to_owned(), format!("the URL of site `{}`", site.name)),
            };
            let parsed = url::Url::parse(&raw)
                .map_err(|e| ConnectError::BadUrl { name: from.clone(), reason: e.to_string() })?;
            if parsed.password().is_some() || !parsed.username().is_empty() {
                // Never echo the value: it holds a credential.
                return Err(ConnectError::BadUrl { name: from, reason: "it carries credentials".to_owned() });
            }
            let reason = match parsed.scheme() {
                "https" => None,
                "http" if crate::desired::allows_plain_http(&parsed) => None,
                "http" => Some(
                    "it is plain http to a host that is not loopback, which would send credentials \
                     unencrypted; use https (http only for 127.0.0.1, ::1 or localhost)",
                ),
                _ => Some("its scheme is neither https nor http"),
            };
            match reason {
                Some(reason) => Err(ConnectError::BadUrl { name: from, reason: reason.to_owned() }),
                None => Ok(parsed),
            }
        };
        let insecure = env(&format!("{prefix}_TLS_INSECURE"))
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        Ok(SiteConnection {
            site: site.name.clone(),
            vcenter_url: url("VCENTER_URL", &site.vcenter)?,
            horizon_url: url("HORIZON_URL", &site.horizon)?,
            vcenter: Credentials {
                user: var("VCENTER_USER")?,
                password: Secret::new(var("VCENTER_PASSWORD")?),
                domain: None,
            },
            horizon: Credentials {
                user: var("HORIZON_USER")?,
                password: Secret::new(var("HORIZON_PASSWORD")?),
                domain: Some(var("HORIZON_DOMAIN")?),
            },
            tls: Tls {
                ca_pem: site.ca_file.as_deref().map(|f| read_ca(repo, f, &site.name)).transpose()?,
                insecure,
            },
        })
    }
}

/// The bytes of a site's `ca_file` (relative to the repository directory) at `repo`; a
/// symbolic link is refused, as for every file of the repository.
fn read_ca(repo: &Location, rel: &str, site: &SiteName) -> Result<Vec<u8>, ConnectError> {
    let (path, read) = match repo {
        Location::WorkTree { dir } => {
            let tree = WorkTree { dir };
            (tree.display(rel), tree.read(rel))
        }
        Location::GitRef { dir, reference } => {
            let read = crate::git::RefTree::open(dir, reference)
                .and_then(|tree| tree.read(rel))
                .map_err(std::io::Error::other);
            (format!("{reference}:{rel}"), read)
        }
    };
    let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
    read.and_then(|bytes| bytes.ok_or_else(missing)).map_err(|source| ConnectError::CaFile {
        path,
        site: site.clone(),
        source,
    })
}

/// Builds the HTTP client every golden API client uses: timeouts, TLS, user agent.
pub fn http_client(site: &SiteName, tls: &Tls) -> Result<reqwest::Client, ConnectError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("golden/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        // Never: a redirect would carry the login to another host (see the module docs).
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = &tls.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|source| ConnectError::Client { site: site.clone(), source })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if tls.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|source| ConnectError::Client { site: site.clone(), source })
}

/// Where a 3xx answer points (the origin and path of its `Location`), or `None` for any other
/// answer. Clients turn it into an error: golden never follows a redirect.
pub fn redirect_target(response: &reqwest::Response) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| response.url().join(l).ok());
    // Origin and path only: a query could carry anything the server chose to put there.
    Some(location.map_or_else(
        || "nowhere (no Location header)".to_owned(),
        |u| format!("{}{}", u.origin().ascii_serialization(), u.path()),
    ))
}

/// The most golden reads of one answer: a vCenter or Horizon answer is a few MiB at most
/// (a page of 1,000 pools, a property read of a large inventory), so anything past this is a
/// server gone wrong, or something that is not vCenter or Horizon at all.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The longest wait a server may ask for before a retry: a larger `Retry-After` is cut to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// The most requests one client sends at once for a list it reads item by item (library items,
/// tags): enough to hide the latency, few enough not to flood a vCenter with a large library.
pub const FAN_OUT: usize = 8;

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer was cut short")]
    Transport(#[source] reqwest::Error),
    #[error("the answer is larger than {}, more than any vCenter or Horizon answer golden reads", size(*.limit))]
    TooLarge { limit: usize },
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 * 1024 { format!("{} MiB", bytes / (1024 * 1024)) } else { format!("{bytes} bytes") }
}

/// Reads a response body of at most `limit` bytes, chunk by chunk, so that a server that
/// sends without end cannot exhaust memory: a larger one is refused before it is read, when
/// its length is announced, or as soon as it grows past the limit.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let announced = response.content_length().unwrap_or(0);
    if usize::try_from(announced).map_or(true, |n| n > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A server's "wait this many seconds" (a number, fractions allowed), capped at
/// [`MAX_RETRY_AFTER`]; `None` for anything else (negative, not a number, infinite).
pub fn retry_after_seconds(text: &str) -> Option<Duration> {
    let seconds = text.trim().parse::<f64>().ok()?;
    // `Duration::from_secs_f64` panics past u64 seconds: cap before converting.
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// Runs `futures` at most [`FAN_OUT`] at a time; the outputs come in the order of `futures`.
pub fn fan_out<F: Future>(futures: impl IntoIterator<Item = F>) -> impl Future<Output = Vec<F::Output>> {
    use futures::stream::StreamExt as _;
    // Collected now, so that the future returned holds no closure of the caller's: a closure
    // taking a reference inside a spawned task trips rustc's higher-ranked `Send` check.
    let futures: Vec<F> = futures.into_iter().collect();
    futures::stream::iter(futures).buffered(FAN_OUT).collect()
}

/// An error that knows whether trying again may help.
pub trait Retryable {
    /// True for transient failures: timeouts, connection resets, 429, 502, 503, 504.
    fn is_retryable(&self) -> bool;
    /// True when the request certainly had no effect: it never reached the server (the
    /// connection was refused), or the server turned it away before doing anything (429,
    /// 503). Only such failures are retried for a request that is not safe to repeat.
    fn had_no_effect(&self) -> bool {
        false
    }
    /// How long the server asked us to wait (Horizon's `X-Rate-Limit-Retry-After-Seconds`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Whether a request may be sent again when it failed in a way that may have reached the
/// server (a timeout, a connection reset, a 502 from a proxy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, and writes that do nothing more the second time (set a value, attach a tag, a
    /// request with a `client_token`).
    Safe,
    /// Writes that would act twice (create an item, clone a VM, schedule a push): sent again
    /// only after a failure that shows the first one had no effect.
    Once,
}

/// The one retry policy: backoff with full jitter, for retryable errors only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all, for tests that want to see the first failure.
    pub fn none() -> Self {
        RetryPolicy { attempts: 1, ..RetryPolicy::default() }
    }

    /// The longest backoff before attempt `attempt + 1` (0-based `attempt` just failed):
    /// doubling from `base_delay`, at most `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(2u32.saturating_pow(attempt)).min(self.max_delay)
    }

    /// The delay before attempt `attempt + 1`: a server's explicit wait when it gave one
    /// (capped at [`MAX_RETRY_AFTER`]), else "full jitter", a random time up to
    /// [`Self::ceiling`], so that clients that failed together do not retry together.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        if let Some(asked) = asked {
            return asked.min(MAX_RETRY_AFTER);
        }
        let ceiling = u64::try_from(self.ceiling(attempt).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(..=ceiling))
    }

    /// Runs `op`, safe to repeat, until it succeeds, fails with a non-retryable error, or
    /// attempts run out.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        E: Retryable + fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_as(Repeat::Safe, what, op).await
    }

    /// Runs `op` under the policy; a request that is not safe to [`Repeat`] is retried only
    /// after failures that had no effect.
    pub async fn run_as<T, E, F, Fut>(&self, repeat: Repeat, what: &str, mut op: F) -> Result<T, E>
    where
        E: Retryable + fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err)
                    if err.is_retryable()
                        && (repeat == Repeat::Safe || err.had_no_effect())
                        && attempt + 1 < self.attempts =>
                {
                    let wait = self.delay(attempt, err.retry_after());
                    tracing::debug!(what, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Compute;

    fn site() -> Site {
        Site {
            name: SiteName::new("eu-west"),
            vcenter: "https://vc.example".to_owned(),
            horizon: "https://hz.example".to_owned(),
            datacenter: "DC".to_owned(),
            compute: Compute::Cluster("C".to_owned()),
            folder: "golden".to_owned(),
            datastore: "ds".to_owned(),
            ca_file: None,
            timezone: crate::desired::Zone::utc(),
            window: None,
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let creds = Credentials { user: "u".into(), password: Secret::new("Hunter2!"), domain: None };
        assert!(!format!("{creds:?}").contains("Hunter2"));
    }

    #[test]
    fn connection_reads_the_site_variables_and_overrides() {
        let env = |name: &str| -> Option<String> {
            match name {
                "GOLDEN_EU_WEST_VCENTER_URL" => Some("http://127.0.0.1:9".into()),
                "GOLDEN_EU_WEST_HORIZON_DOMAIN" => Some("CORP".into()),
                n if n.starts_with("GOLDEN_EU_WEST_") && !n.ends_with("_URL") && !n.ends_with("INSECURE") => {
                    Some("x".into())
                }
                _ => None,
            }
        };
        let here = Location::WorkTree { dir: ".".into() };
        let conn = SiteConnection::resolve(&site(), &here, &env).expect("resolves");
        assert_eq!(conn.vcenter_url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(conn.horizon_url.as_str(), "https://hz.example/");
        assert_eq!(conn.horizon.domain.as_deref(), Some("CORP"));
        assert!(!conn.tls.insecure);

        let missing = SiteConnection::resolve(&site(), &here, &|_| None).expect_err("no credentials");
        assert_eq!(
            missing.to_string(),
            "GOLDEN_EU_WEST_VCENTER_USER is not set (needed to reach site `eu-west`)"
        );
    }

    /// An override is held to the rule golden.toml is: plain http only to a loopback host.
    #[test]
    fn an_override_to_plain_http_on_another_host_is_refused() {
        let with_override = |url: &'static str| {
            move |name: &str| -> Option<String> {
                match name {
                    "GOLDEN_EU_WEST_HORIZON_URL" => Some(url.to_owned()),
                    n if n.ends_with("_URL") || n.ends_with("INSECURE") => None,
                    _ => Some("x".to_owned()),
                }
            }
        };
        let err = SiteConnection::resolve(
            &site(),
            &Location::WorkTree { dir: ".".into() },
            &with_override("http://10.1.2.3:8443"),
        )
        .expect_err("plain http to another host");
        let text = err.to_string();
        assert!(
            text.starts_with("GOLDEN_EU_WEST_HORIZON_URL is not a usable URL: it is plain http"),
            "{text}"
        );
        assert!(text.contains("use https"), "{text}");
        let err = SiteConnection::resolve(
            &site(),
            &Location::WorkTree { dir: ".".into() },
            &with_override("ftp://10.1.2.3"),
        )
        .expect_err("another scheme");
        assert!(err.to_string().contains("neither https nor http"), "{err}");
        for fine in ["https://10.1.2.3:8443", "http://127.0.0.1:8443", "http://[::1]:1", "http://localhost:2"]
        {
            let conn = SiteConnection::resolve(
                &site(),
                &Location::WorkTree { dir: ".".into() },
                &with_override(fine),
            )
            .expect(fine);
            assert_eq!(conn.horizon_url.as_str().trim_end_matches('/'), fine);
        }
    }

    #[derive(Debug)]
    struct Flaky(bool);
    impl fmt::Display for Flaky {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "flaky")
        }
    }
    impl Retryable for Flaky {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn only_retryable_errors_are_retried() {
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let mut calls = 0;
        let r: Result<(), Flaky> = policy
            .run("test", || {
                calls += 1;
                async { Err(Flaky(true)) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 3);
        let mut calls = 0;
        let _: Result<(), Flaky> = policy
            .run("test", || {
                calls += 1;
                async { Err(Flaky(false)) }
            })
            .await;
        assert_eq!(calls, 1);
    }

    #[test]
    fn backoff_grows_and_honours_the_server() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(200));
        assert_eq!(p.ceiling(2), Duration::from_millis(800));
        assert_eq!(p.ceiling(10), Duration::from_secs(10));
        assert_eq!(p.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(p.delay(0, Some(Duration::from_secs(86_400))), MAX_RETRY_AFTER);
    }

    /// Backoff is "full jitter": random up to the ceiling, so clients that failed together
    /// spread out rather than retry in step.
    #[test]
    fn backoff_is_jittered_up_to_its_ceiling() {
        let p = RetryPolicy::default();
        let delays: std::collections::BTreeSet<Duration> = (0..200).map(|_| p.delay(3, None)).collect();
        assert!(delays.iter().all(|d| *d <= p.ceiling(3)), "{delays:?}");
        assert!(delays.len() > 100, "delays vary: {} distinct of 200", delays.len());
        assert!(delays.iter().any(|d| *d < p.ceiling(3) / 2), "some retries come early: {delays:?}");
    }

    /// A hostile or broken `Retry-After` neither panics nor stalls a run.
    #[test]
    fn retry_after_is_read_safely_and_capped() {
        assert_eq!(retry_after_seconds("2"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after_seconds(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(retry_after_seconds("1e20"), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after_seconds("3600"), Some(MAX_RETRY_AFTER));
        for bad in ["NaN", "inf", "-inf", "-1", "-0.5", "soon", "", "1e400"] {
            assert_eq!(retry_after_seconds(bad), None, "{bad}");
        }
    }

    /// A request that is not safe to repeat is retried only after failures that had no effect.
    #[tokio::test]
    async fn a_write_is_repeated_only_when_the_first_had_no_effect() {
        #[derive(Debug)]
        struct Failure {
            had_no_effect: bool,
        }
        impl fmt::Display for Failure {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "failure")
            }
        }
        impl Retryable for Failure {
            fn is_retryable(&self) -> bool {
                true
            }
            fn had_no_effect(&self) -> bool {
                self.had_no_effect
            }
        }
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = |repeat: Repeat, had_no_effect: bool| {
            let policy = policy.clone();
            async move {
                let mut calls = 0;
                let _: Result<(), Failure> = policy
                    .run_as(repeat, "test", || {
                        calls += 1;
                        async move { Err(Failure { had_no_effect }) }
                    })
                    .await;
                calls
            }
        };
        assert_eq!(calls(Repeat::Safe, false).await, 3);
        assert_eq!(calls(Repeat::Once, false).await, 1, "a timeout after sending is not sent again");
        assert_eq!(calls(Repeat::Once, true).await, 3, "a refused connection or a 429 is");
    }

    /// At most [`FAN_OUT`] futures run at once, and outputs keep their order.
    #[tokio::test]
    async fn fan_out_is_bounded_and_ordered() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let outputs = fan_out((0..50).map(|n| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                n
            }
        }))
        .await;
        assert_eq!(outputs, (0..50).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), FAN_OUT);
    }

    /// A body past the limit is refused, whether its length is announced or not.
    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let answers = [
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_owned(),
                "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".to_owned() + &"x".repeat(5000),
                // No length announced: chunked, 8 KiB in all.
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                    + &format!("400\r\n{}\r\n", "y".repeat(1024)).repeat(8)
                    + "0\r\n\r\n",
            ];
            for answer in answers {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
        let get = || http.get(format!("http://{addr}/")).send();
        let small = read_body(get().await.expect("answer"), 4096).await.expect("within the limit");
        assert_eq!(small, b"hello");
        let announced = read_body(get().await.expect("answer"), 4096).await.expect_err("too large");
        assert!(matches!(announced, BodyError::TooLarge { limit: 4096 }), "{announced:?}");
        let streamed = read_body(get().await.expect("answer"), 4096).await.expect_err("too large");
        assert!(matches!(streamed, BodyError::TooLarge { limit: 4096 }), "{streamed:?}");
    }
}
