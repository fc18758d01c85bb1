//! Validation: from raw files to a [`DesiredState`] whose references all resolve.
//!
//! Runs before any network call. Every problem is collected (not only the first) and pinned to
//! `file:line:column` through the spans of the TOML parser; messages say what is wrong and a hint
//! says what to do. Checks that depend on a file that failed to parse are skipped, so one syntax
//! error does not cascade into a page of "unknown image" noise.
//!
//! The set of known keys is not written down here: unknown keys are found by `serde_ignored`
//! while deserializing the [`files`](super::files) types, and "did you mean" hints come from
//! the JSON Schema generated from those same types.
//!
//! One file per concern: `parse` (TOML to typed files with spans, unknown keys, schema
//! hints), `credentials` (nothing secret in the repository), `sites` (`golden.toml`),
//! `images` (version trees and markers), `pools` (bindings to markers), `rollout` (windows,
//! time zones, canaries and promotion rules).

mod credentials;
mod images;
mod parse;
mod pools;
mod rollout;
mod sites;

use std::collections::{BTreeMap, BTreeSet};

use super::files::{GoldenFile, ImageFile, PoolsFile};
use super::{DesiredState, Image, RepoFiles};
use crate::diag::{Diagnostic, Diagnostics};
use crate::ids::ImageName;
use parse::schema_of;

/// Checks `files` and builds the desired state, or returns every problem found.
pub fn validate(files: &RepoFiles) -> Result<DesiredState, Diagnostics> {
    let mut v = Validator::default();

    let golden = match &files.golden {
        Some(file) => v.parse::<GoldenFile>(file, &schema_of::<GoldenFile>()),
        None => {
            v.diags.push(Diagnostic::file(&files.golden_display, "file not found").hint(
                "a golden repository has golden.toml at its root, plus images/*.toml and \
                     pools/*.toml; check -C",
            ));
            None
        }
    };
    let sites = golden.as_ref().map(|g| v.sites(g));
    let settings = golden.as_ref().and_then(|g| v.settings(g, sites.as_ref()?));

    let image_schema = schema_of::<ImageFile>();
    let mut images = BTreeMap::new();
    // Images whose file exists but failed to parse: references to them are not reported.
    let mut broken_images = BTreeSet::new();
    for file in &files.images {
        let stem = file.path.trim_start_matches("images/").trim_end_matches(".toml");
        match v.parse::<ImageFile>(file, &image_schema) {
            Some(parsed) => {
                if let Some(image) = v.image(stem, &parsed) {
                    images.insert(image.name.clone(), image);
                } else {
                    broken_images.insert(stem.to_owned());
                }
            }
            None => {
                broken_images.insert(stem.to_owned());
            }
        }
    }

    let pools_schema = schema_of::<PoolsFile>();
    let parsed_pools: Vec<_> =
        files.pools.iter().filter_map(|f| v.parse::<PoolsFile>(f, &pools_schema)).collect();
    // Pools are checked against the site names written in golden.toml, valid or not, so an
    // invalid site is reported once rather than again by every pool that names it.
    let site_names: Option<BTreeSet<&str>> =
        golden.as_ref().map(|g| g.value.sites.keys().map(String::as_str).collect());
    let known = Known { sites: site_names.as_ref(), images: &images, broken_images: &broken_images };
    let pools = v.pools(&parsed_pools, &known);

    let mut diags = v.diags;
    match (settings, sites) {
        (Some(settings), Some(sites)) if diags.is_empty() => Ok(DesiredState {
            revision: files.revision.clone(),
            digest: files.digest(),
            settings,
            sites,
            images,
            pools,
        }),
        _ => {
            // A repository that produced no diagnostic always yields settings and sites; this
            // guards the invariant should a rule forget to report.
            if diags.is_empty() {
                diags.push(Diagnostic::file(&files.golden_display, "settings or sites are missing"));
            }
            diags.sort();
            Err(diags)
        }
    }
}

#[derive(Default)]
struct Validator {
    diags: Diagnostics,
}

/// What pools may refer to.
struct Known<'a> {
    sites: Option<&'a BTreeSet<&'a str>>,
    images: &'a BTreeMap<ImageName, Image>,
    broken_images: &'a BTreeSet<String>,
}

impl Validator {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() { "(none defined)".to_owned() } else { names.join(", ") }
}

fn one_of(what: &str, names: &[&str]) -> String {
    format!("known {what}: {}", list(names))
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::credentials::credential_value;
    use super::parse::{known_keys, schema_of, strsim_best};
    use super::*;

    #[test]
    fn credential_values_are_recognised_without_false_alarms() {
        assert!(credential_value("https://admin:hunter2@vc.example").is_some());
        assert!(
            credential_value("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N")
                .is_some()
        );
        assert!(credential_value("https://vc.example").is_none());
        assert!(credential_value("2026.10").is_none());
    }

    #[test]
    fn known_keys_follow_refs_and_maps() {
        let schema = schema_of::<GoldenFile>();
        let keys = known_keys(&schema, &["sites", "hq"]);
        assert!(keys.contains(&"datastore".to_owned()), "{keys:?}");
        assert!(known_keys(&schema, &["settings"]).contains(&"parallelism".to_owned()));
        assert_eq!(
            strsim_best("paralelism", &known_keys(&schema, &["settings"])).as_deref(),
            Some("parallelism")
        );
    }
}
