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
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::desired::Site;
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
    /// Extra CA certificates (PEM) to trust, from the site's `ca_file`.
    pub ca_file: Option<PathBuf>,
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
    #[error("cannot read the CA file {} of site `{site}`", path.display())]
    CaFile { path: PathBuf, site: SiteName, source: std::io::Error },
    #[error("cannot build the HTTP client for site `{site}`")]
    Client { site: SiteName, source: reqwest::Error },
}

impl SiteConnection {
    /// Resolves a site's connection from its desired state and the environment `env`.
    ///
    /// `GOLDEN_<SITE>_VCENTER_URL` / `_HORIZON_URL` override the URLs of golden.toml; users,
    /// passwords and the Horizon domain must be set.
    pub fn resolve(
        site: &Site,
        repo_dir: &Path,
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
            tls: Tls { ca_file: site.ca_file.as_ref().map(|f| repo_dir.join(f)), insecure },
        })
    }
}

/// Builds the HTTP client every golden API client uses: timeouts, TLS, user agent.
pub fn http_client(site: &SiteName, tls: &Tls) -> Result<reqwest::Client, ConnectError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("golden/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        // Never: a redirect would carry the login to another host (see the module docs).
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|source| ConnectError::CaFile {
            path: path.clone(),
            site: site.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
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
        let conn = SiteConnection::resolve(&site(), Path::new("."), &env).expect("resolves");
        assert_eq!(conn.vcenter_url.as_str(), "http://127.0.0.1:9/");
        assert_eq!(conn.horizon_url.as_str(), "https://hz.example/");
        assert_eq!(conn.horizon.domain.as_deref(), Some("CORP"));
        assert!(!conn.tls.insecure);

        let missing =
            SiteConnection::resolve(&site(), Path::new("."), &|_| None).expect_err("no credentials");
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
        let err = SiteConnection::resolve(&site(), Path::new("."), &with_override("http://10.1.2.3:8443"))
            .expect_err("plain http to another host");
        let text = err.to_string();
        assert!(
            text.starts_with("GOLDEN_EU_WEST_HORIZON_URL is not a usable URL: it is plain http"),
            "{text}"
        );
        assert!(text.contains("use https"), "{text}");
        let err = SiteConnection::resolve(&site(), Path::new("."), &with_override("ftp://10.1.2.3"))
            .expect_err("another scheme");
        assert!(err.to_string().contains("neither https nor http"), "{err}");
        for fine in ["https://10.1.2.3:8443", "http://127.0.0.1:8443", "http://[::1]:1", "http://localhost:2"]
        {
            let conn = SiteConnection::resolve(&site(), Path::new("."), &with_override(fine)).expect(fine);
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
        assert_eq!(p.delay(0, None), Duration::from_millis(200));
        assert_eq!(p.delay(2, None), Duration::from_millis(800));
        assert_eq!(p.delay(10, None), Duration::from_secs(10));
        assert_eq!(p.delay(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
    }
}
