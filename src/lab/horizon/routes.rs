//! HTTP routes of the lab's Horizon. (Filled in by the Horizon simulator work.)

use axum::Router;

use crate::lab::SiteCtx;

/// The Horizon endpoint's routes: `/rest/...`.
pub fn router() -> Router<SiteCtx> {
    Router::new()
}
