//! Every JSON Schema under `schema/`: the core's (repository files, plan, status, diff,
//! validate) and those of the documents this crate prints (history, the apply summary).
//!
//! A test fails when the committed copies drift from the types, and
//! `GOLDEN_UPDATE_SCHEMA=1 cargo test --test it schema` rewrites them.

/// Every schema as `(file name under schema/, pretty JSON with a trailing newline)`.
pub fn all() -> Vec<(&'static str, String)> {
    let mut all = golden_core::schema::all();
    all.push(("history.schema.json", golden_core::schema::render::<crate::history::History>()));
    all.push(("apply.schema.json", golden_core::schema::render::<crate::apply::display::SummaryDocument>()));
    all
}
