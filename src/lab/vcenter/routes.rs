//! HTTP routes of the lab's vCenter. (Filled in by the vCenter simulator work.)

use axum::Router;

use crate::lab::SiteCtx;

/// The vCenter endpoint's routes: `/rest/...` and `/sdk`.
pub fn router() -> Router<SiteCtx> {
    Router::new()
}
