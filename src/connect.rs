//! How golden reaches a site: endpoint URLs, credentials, TLS and the retry policy.
//!
//! Shared by the `vcenter` and `horizon` clients so that both treat secrets, certificates and
//! transient failures the same way. Credentials come only from the environment
//! (`GOLDEN_<SITE>_*`); [`Secret`] keeps them out of `Debug` output, logs and error messages.

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
            Ok(parsed)
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
        .timeout(Duration::from_secs(120));
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

/// An error that knows whether trying again may help.
pub trait Retryable {
    /// True for transient failures: timeouts, connection resets, 429, 502, 503, 504.
    fn is_retryable(&self) -> bool;
    /// How long the server asked us to wait (Horizon's `X-Rate-Limit-Retry-After-Seconds`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The one retry policy: exponential backoff for retryable errors only.
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

    /// The delay before attempt `attempt + 1` (0-based `attempt` just failed).
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(2u32.saturating_pow(attempt)).min(self.max_delay);
        // A server's explicit wait wins, but is capped so a bad header cannot stall a run.
        asked.map_or(backoff, |a| a.min(self.max_delay.saturating_mul(6)))
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
    pub async fn run<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Retryable + fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && attempt + 1 < self.attempts => {
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
        assert_eq!(p.delay(0, None), Duration::from_millis(200));
        assert_eq!(p.delay(2, None), Duration::from_millis(800));
        assert_eq!(p.delay(10, None), Duration::from_secs(10));
        assert_eq!(p.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
    }
}
