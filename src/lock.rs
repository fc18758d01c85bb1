//! The apply lock: one per site, held in the site's own vCenter, so that two applies (from two
//! machines, two CI jobs, a laptop) never change one site at once.
//!
//! A site's lock is the tag named after the site in golden's tag category [`LOCK_CATEGORY`]
//! (made when missing, attached to nothing). Its description holds the holder as JSON:
//! `{"owner":"user@host","run":"<uuid>","expires_at":"<RFC 3339>"}`. Taking the lock is creating
//! the tag: vCenter keeps tag names unique in a category and refuses a second create with
//! `already_exists` (vcsim alike), so of two runs exactly one gets it. Sites sharing a vCenter
//! share the category and have a tag each. The holder renews the expiry while it runs
//! ([`TTL`], every [`RENEW_EVERY`]) and deletes the tag when it is done, failed or not. A run
//! that died (killed, a lost machine) leaves a lock that expires: a later run deletes the
//! expired tag and creates its own (of two takers, the create again lets one win). `golden
//! unlock SITE` deletes a lock on purpose.
//!
//! `golden apply` takes the lock of every site it reads, in site-name order (so that two runs
//! waiting for each other's sites cannot deadlock), before it reads them: what it plans is then
//! what no other run is changing. `golden plan` and `status` never take it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::gather::SiteClients;
use crate::ids::SiteName;
use crate::vcenter::{VcenterClient, VcenterError};

/// The tag category that holds the sites' locks.
pub const LOCK_CATEGORY: &str = "golden-lock";
const CATEGORY_DESCRIPTION: &str = "golden: one tag per site while a golden apply changes it";

/// How long a lock lasts unless renewed.
pub const TTL: Duration = Duration::from_secs(10 * 60);
/// How often a held lock is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(2 * 60);

/// Who holds a lock, as its tag's description says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// `user@host` of the run.
    pub owner: String,
    /// The run's id (a fresh UUID per apply).
    pub run: String,
    /// When the lock lapses unless renewed, RFC 3339 in UTC.
    pub expires_at: String,
}

impl Holder {
    /// A holder for this process: `$USER@hostname`, a new run id, expiring `ttl` from `now`.
    pub fn this_run(now: SystemTime, ttl: Duration) -> Holder {
        let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::env::var("COMPUTERNAME").ok())
            .unwrap_or_default();
        let part = |s: &str| if s.trim().is_empty() { "unknown".to_owned() } else { s.trim().to_owned() };
        Holder {
            owner: format!("{}@{}", part(&user), part(&host)),
            run: uuid::Uuid::new_v4().to_string(),
            expires_at: String::new(),
        }
        .until(now + ttl)
    }

    /// The same holder, expiring at `at`.
    pub fn until(mut self, at: SystemTime) -> Holder {
        self.expires_at = humantime::format_rfc3339_seconds(at).to_string();
        self
    }

    /// Whether the lock has lapsed at `now`; a time that cannot be read counts as lapsed
    /// never, so that only `golden unlock` removes such a lock.
    pub fn expired(&self, now: SystemTime) -> bool {
        humantime::parse_rfc3339_weak(&self.expires_at).is_ok_and(|at| at <= now)
    }

    fn to_description(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn from_description(text: &str) -> Option<Holder> {
        serde_json::from_str(text).ok()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (run {}) until {}", self.owner, self.run, self.expires_at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("site `{site}` is locked by {holder}{}",
        waited.map(|w| format!("; waited {}", humantime::format_duration(w))).unwrap_or_default())]
    Held { site: SiteName, holder: Holder, waited: Option<Duration> },
    #[error(
        "site `{site}` is locked by a tag `{site}` in category `{LOCK_CATEGORY}` whose description is not golden's lock: {description:?}"
    )]
    Unreadable { site: SiteName, description: String },
    #[error("site `{site}`: the lock could not be kept: {detail}")]
    Lost { site: SiteName, detail: String },
    #[error(transparent)]
    Vcenter(#[from] VcenterError),
}

impl golden_core::explain::Explain for LockError {
    fn hints(&self) -> Vec<String> {
        match self {
            LockError::Held { site, .. } => vec![
                "another golden apply is changing this site: wait for it to end, or pass --lock-timeout 30m to wait for it"
                    .to_owned(),
                format!(
                    "if that run is dead (its machine gone, the job killed), its lock expires by itself; to break it now, run `golden unlock {site}`"
                ),
            ],
            LockError::Unreadable { site, .. } => {
                vec![format!("if no golden apply is running, remove it with `golden unlock {site}`")]
            }
            LockError::Lost { .. } => vec![
                "someone broke the lock (golden unlock) while this run held it; plan again once the other run is done"
                    .to_owned(),
            ],
            LockError::Vcenter(e) => golden_core::explain::Explain::hints(e),
        }
    }
}

/// How [`acquire_all`] takes and keeps locks.
#[derive(Clone, Debug)]
pub struct LockOptions {
    pub ttl: Duration,
    pub renew_every: Duration,
    /// How long to wait for a held lock; zero: fail at once.
    pub wait: Duration,
    /// How often a held lock is looked at again while waiting.
    pub poll: Duration,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions { ttl: TTL, renew_every: RENEW_EVERY, wait: Duration::ZERO, poll: Duration::from_secs(5) }
    }
}

/// One site's lock, held.
#[derive(Clone, Debug)]
struct Held {
    site: SiteName,
    vcenter: VcenterClient,
    tag: String,
}

/// Tries once to take `site`'s lock for `holder`: the lock, or who holds it. An expired lock
/// is taken over; a lock this very run holds already (a create whose answer was lost and that
/// was retried) is this run's.
async fn try_acquire(
    vc: &VcenterClient,
    site: &SiteName,
    holder: &Holder,
    now: SystemTime,
) -> Result<Result<String, Holder>, LockError> {
    let name = site.as_str();
    // A few rounds: the lock may be released or taken over between the create and the read.
    let mut last = None;
    for _ in 0..3 {
        if let Some(id) =
            vc.create_unique_tag(LOCK_CATEGORY, CATEGORY_DESCRIPTION, name, &holder.to_description()).await?
        {
            return Ok(Ok(id));
        }
        let Some(tag) = vc.find_named_tag(LOCK_CATEGORY, name).await? else { continue };
        let Some(held) = Holder::from_description(&tag.description) else {
            return Err(LockError::Unreadable { site: site.clone(), description: tag.description });
        };
        if held.run == holder.run {
            return Ok(Ok(tag.id));
        }
        if !held.expired(now) {
            return Ok(Err(held));
        }
        tracing::warn!(%site, "taking over the expired lock held by {held}");
        // Deleted by id: if another run took it over first, its new tag is not touched.
        match vc.delete_tag(&tag.id).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        last = Some(held);
    }
    match last {
        Some(held) => Ok(Err(held)),
        None => {
            Err(LockError::Lost { site: site.clone(), detail: "the lock kept changing hands".to_owned() })
        }
    }
}

/// The locks of one run, renewed in the background until [`Locks::release`].
#[derive(Debug)]
pub struct Locks {
    held: Vec<Held>,
    renewal: Option<tokio::task::JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

/// Takes the lock of every site of `clients`, in site-name order, for `holder`; waits up to
/// `options.wait` for each one held by another run. On failure the locks already taken are
/// released.
pub async fn acquire_all(
    clients: &BTreeMap<SiteName, SiteClients>,
    holder: &Holder,
    options: &LockOptions,
) -> Result<Locks, LockError> {
    let started = Instant::now();
    let mut locks = Locks { held: Vec::new(), renewal: None, lost: Arc::new(AtomicBool::new(false)) };
    for (site, c) in clients {
        loop {
            match try_acquire(&c.vcenter, site, holder, SystemTime::now()).await {
                Ok(Ok(tag)) => {
                    locks.held.push(Held { site: site.clone(), vcenter: c.vcenter.clone(), tag });
                    break;
                }
                Ok(Err(other)) if started.elapsed() < options.wait => {
                    tracing::info!(%site, "waiting for the lock held by {other}");
                    let left = options.wait.saturating_sub(started.elapsed());
                    tokio::time::sleep(options.poll.min(left)).await;
                }
                Ok(Err(other)) => {
                    let _ = locks.release().await;
                    let waited = (!options.wait.is_zero()).then(|| started.elapsed());
                    return Err(LockError::Held { site: site.clone(), holder: other, waited });
                }
                Err(e) => {
                    let _ = locks.release().await;
                    return Err(e);
                }
            }
        }
    }
    locks.renewal =
        Some(tokio::spawn(renew(locks.held.clone(), holder.clone(), options.clone(), locks.lost.clone())));
    Ok(locks)
}

/// Moves the expiry of every lock of `held` forward every `renew_every`. A lock whose tag is
/// gone was broken: that is logged at once and reported by [`Locks::release`].
async fn renew(held: Vec<Held>, holder: Holder, options: LockOptions, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(options.renew_every).await;
        let description = holder.clone().until(SystemTime::now() + options.ttl).to_description();
        for lock in &held {
            match lock.vcenter.set_tag_description(&lock.tag, &description).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {
                    tracing::error!(site = %lock.site, "the lock of this run was broken; another run may now change the site");
                    lost.store(true, Ordering::SeqCst);
                }
                Err(e) => tracing::warn!(site = %lock.site, error = %e, "cannot renew the lock"),
            }
        }
    }
}

impl Locks {
    /// The sites locked, in the order they were taken.
    pub fn sites(&self) -> impl Iterator<Item = &SiteName> {
        self.held.iter().map(|h| &h.site)
    }

    /// Stops renewing and deletes every lock. An error when a lock was broken while held; a
    /// lock that cannot be deleted is logged and left to expire.
    pub async fn release(&mut self) -> Result<(), LockError> {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
        let mut broken = None;
        for lock in self.held.drain(..) {
            match lock.vcenter.delete_tag(&lock.tag).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => broken = Some(lock.site.clone()),
                Err(e) => {
                    tracing::warn!(site = %lock.site, error = %e, "cannot release the lock; it expires by itself")
                }
            }
        }
        match broken {
            Some(site) if self.lost.load(Ordering::SeqCst) => {
                Err(LockError::Lost { site, detail: "its tag was deleted while this run held it".to_owned() })
            }
            _ => Ok(()),
        }
    }
}

/// Deletes `site`'s lock, whoever holds it: the holder it named (`None` when the site was not
/// locked; an unreadable holder comes back as its raw description in `Err`).
pub async fn unlock(
    vc: &VcenterClient,
    site: &SiteName,
) -> Result<Option<Result<Holder, String>>, LockError> {
    let Some(tag) = vc.find_named_tag(LOCK_CATEGORY, site.as_str()).await? else { return Ok(None) };
    match vc.delete_tag(&tag.id).await {
        Err(e) if !e.is_not_found() => return Err(e.into()),
        _ => {}
    }
    Ok(Some(Holder::from_description(&tag.description).ok_or(tag.description)))
}

/// The holder of `site`'s lock, if it is locked.
pub async fn holder(
    vc: &VcenterClient,
    site: &SiteName,
) -> Result<Option<Result<Holder, String>>, LockError> {
    let tag = vc.find_named_tag(LOCK_CATEGORY, site.as_str()).await?;
    Ok(tag.map(|t| Holder::from_description(&t.description).ok_or(t.description)))
}

/// Takes `site`'s lock once, without waiting: for tests and tools that hold a site by hand.
pub async fn acquire_one(vc: &VcenterClient, site: &SiteName, holder: &Holder) -> Result<String, LockError> {
    match try_acquire(vc, site, holder, SystemTime::now()).await? {
        Ok(tag) => Ok(tag),
        Err(other) => Err(LockError::Held { site: site.clone(), holder: other, waited: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_round_trips_and_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let holder = Holder::this_run(now, TTL);
        assert_eq!(holder.expires_at, "2027-01-15T08:10:00Z");
        assert_eq!(Holder::from_description(&holder.to_description()), Some(holder.clone()));
        assert!(!holder.expired(now));
        assert!(holder.expired(now + TTL));
        let unreadable = Holder { expires_at: "soon".into(), ..holder };
        assert!(!unreadable.expired(now + TTL * 100));
        assert_eq!(Holder::from_description("{\"golden\":{}}"), None);
    }
}
