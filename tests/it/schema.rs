//! The committed JSON Schemas under schema/ must match the Rust types that read the files.

use super::common::repo_root;

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = repo_root().join("schema");
    let update = std::env::var_os("GOLDEN_UPDATE_SCHEMA").is_some();
    for (name, generated) in golden::schema::all() {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).expect("create schema/");
            std::fs::write(&path, &generated).expect("write schema");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "schema/{name} is stale; regenerate with `GOLDEN_UPDATE_SCHEMA=1 cargo test --test it schema`"
        );
    }
}

#[test]
fn schemas_describe_the_repo_format() {
    let all = golden::schema::all();
    let golden_schema: serde_json::Value =
        serde_json::from_str(&all[0].1).expect("golden.schema.json is JSON");
    let site = &golden_schema["$defs"]["SiteFile"];
    let required: Vec<&str> =
        site["required"].as_array().expect("required list").iter().filter_map(|v| v.as_str()).collect();
    for key in ["vcenter", "horizon", "datacenter", "folder", "datastore"] {
        assert!(required.contains(&key), "{key} is required: {required:?}");
    }
    assert_eq!(site["additionalProperties"], serde_json::Value::Bool(false));
}
