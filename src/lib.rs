//! golden: GitOps for VDI golden images.
//!
//! Desired state (sites, images with their version trees and markers, pools bound to markers)
//! lives as TOML in git. golden reads it ([`desired`]), reads live state from each site's vCenter
//! and Horizon, plans the steps that close the gap, and applies them. The stages pass plain data
//! to each other: load → plan → apply → journal.

pub mod apply;
pub mod cli;
pub mod connect;
pub mod desired;
pub mod diag;
pub mod diff;
pub mod gather;
pub mod git;
pub mod history;
pub mod horizon;
pub mod ids;
pub mod lab;
pub mod live;
pub mod plan;
pub mod schema;
pub mod status;
pub mod vcenter;
