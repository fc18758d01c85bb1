//! The lab's Horizon in front of a vCenter the lab does not simulate (vcsim, or a real one).
//!
//! A Connection Server reads base VMs and snapshots from the vCenter it is registered with, so
//! the lab's Horizon needs a view of that vCenter: for a vCenter of its own that is its model;
//! for a remote one it is a mirror ([`VcenterSim`]) that each Horizon request refreshes first
//! from a [`RemoteVcenter`], which reads the vCenter with whatever client the caller has (the
//! tests use golden's own). The mirror holds what Horizon looks at: datacenters, VM folders,
//! clusters, resource pools, datastores, and VMs with their snapshot trees. This is what lets the
//! whole flow run against VMware's simulator, with the lab standing in only for the Connection
//! Servers.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::Shared;
use crate::vcenter::VcenterSim;

/// A vCenter the lab's Horizon reads from.
pub trait RemoteVcenter: Debug + Send + Sync {
    /// Reads the vCenter as the lab's model of it; the error says what failed.
    fn read(&self) -> Pin<Box<dyn Future<Output = Result<VcenterSim, String>> + Send + '_>>;
}

/// The mirror of one remote vCenter, kept in the lab state under its name.
#[derive(Clone, Debug)]
pub(crate) struct Mirror {
    lab: Shared,
    vcenter: String,
    remote: Arc<dyn RemoteVcenter>,
    /// One refresh at a time: a burst of Horizon requests reads the vCenter once each, in turn.
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

impl Mirror {
    pub(crate) fn new(lab: Shared, vcenter: &str, remote: Arc<dyn RemoteVcenter>) -> Mirror {
        Mirror { lab, vcenter: vcenter.to_owned(), remote, refreshing: Arc::default() }
    }

    async fn refresh(&self) -> Result<(), String> {
        let _one = self.refreshing.lock().await;
        let sim = self.remote.read().await?;
        if let Some(v) = self.lab.lock().vcenters.get_mut(&self.vcenter) {
            v.sim = sim;
        }
        Ok(())
    }
}

/// Middleware of a Horizon endpoint whose vCenter is remote: refreshes the mirror, then
/// handles the request. A vCenter that cannot be read leaves the last mirror in place.
pub(crate) async fn refresh_first(State(mirror): State<Mirror>, request: Request, next: Next) -> Response {
    if let Err(e) = mirror.refresh().await {
        tracing::warn!(vcenter = %mirror.vcenter, error = %e, "lab: cannot refresh the mirror of a remote vcenter");
    }
    next.run(request).await
}
