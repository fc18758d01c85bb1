//! golden's pure core: everything between reading a repository's files and the plan.
//!
//! Desired state (sites, images with their version trees and markers, pools bound to markers)
//! is parsed and validated from TOML ([`desired`]); live state is golden's own model of what the
//! vCenters and Horizon pods hold ([`live`]); the planner is a pure function of both
//! ([`plan::plan`]), and the plan is versioned data with its renderings. Nothing here talks to
//! a network, git or a clock: the `golden` binary loads the inputs and applies the plan.

pub mod desired;
pub mod diag;
pub mod diff;
pub mod estate;
pub mod explain;
pub mod ids;
pub mod live;
pub mod plan;
pub mod schema;
pub mod status;

/// The repository root, where the examples and test fixtures are.
#[cfg(test)]
pub(crate) fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
