//! The integration test binary (one binary for all, as ripgrep and jj do).

mod action;
mod adopt;
mod apply;
mod cli;
mod common;
mod demo;
mod faults;
mod flow;
mod git_ref;
mod history;
mod horizon;
mod hostile;
mod lab;
mod lock;
mod ownership;
mod plan;
mod policy;
mod replication;
mod resume;
mod saved_plan;
mod schema;
mod secrets;
mod status;
mod validate;
mod vcenter;
mod vcsim;
