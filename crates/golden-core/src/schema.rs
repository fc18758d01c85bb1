//! JSON Schemas of the repository files and of the documents golden prints (plan, status,
//! diff, validate), generated from the Rust types that read and write them.
//!
//! The committed copies under `schema/` are what editors use (Even Better TOML / taplo); a test
//! fails when they drift from the types, and `GOLDEN_UPDATE_SCHEMA=1 cargo test schema` rewrites
//! them.

use crate::desired::files::{GoldenFile, ImageFile, PoolsFile};
use crate::plan::Plan;

/// The schema of `T` as pretty JSON with a trailing newline.
pub fn render<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    // Serializing a schema (a JSON value) cannot fail.
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Every schema of the core as `(file name under schema/, pretty JSON with a trailing newline)`.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("golden.schema.json", render::<GoldenFile>()),
        ("image.schema.json", render::<ImageFile>()),
        ("pools.schema.json", render::<PoolsFile>()),
        ("plan.schema.json", render::<Plan>()),
        ("status.schema.json", render::<crate::status::Status>()),
        ("diff.schema.json", render::<crate::diff::Diff>()),
        ("validate.schema.json", render::<crate::diag::Report>()),
    ]
}
