//! golden: GitOps for VDI golden images.
//!
//! Desired state (sites, images with their version trees and markers, pools bound to markers)
//! lives as TOML in git. golden reads it ([`desired`]), reads live state from each site's vCenter
//! and Horizon ([`gather`]), plans the steps that close the gap, and applies them ([`apply`]).
//! The stages pass plain data to each other: load → plan → apply → journal.
//!
//! The pure stages (ids, desired state and its validation, the live model, the planner, the
//! plan document and its renderings) are the `golden-core` crate, re-exported here; the lab
//! (simulated vCenter and Horizon) is the `golden-lab` crate. This crate holds what does I/O:
//! git, the vCenter and Horizon clients, loading, apply and the command line.

pub use golden_core::{diag, diff, estate, ids, live, plan, status};
pub use golden_lab as lab;

pub mod apply;
pub mod cli;
pub mod connect;
pub mod desired;
pub mod error;
pub mod gather;
pub mod git;
pub mod history;
pub mod horizon;
pub mod load;
pub mod lock;
pub mod schema;
pub mod trusted;
pub mod vcenter;
pub mod wait;
