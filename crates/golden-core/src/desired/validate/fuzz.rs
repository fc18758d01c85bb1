//! Property tests of the TOML loader: whatever the repository's files hold, validation reads
//! them or reports diagnostics, and never panics.
//!
//! The files start as the quickstart's and are edited at random: lines replaced by pieces of
//! TOML golden knows (so the edits reach the rules, not only the TOML parser) or by any text.
//! The case count is small so that CI stays fast; a failure is kept by proptest for replay.

use std::path::Path;

use proptest::prelude::*;

use crate::desired::layout::{RepoFiles, WorkTree};

/// Pieces of golden's TOML, some of them wrong in the ways people get them wrong.
const PIECES: &[&str] = &[
    "[versions.\"2026.12\"]",
    "[versions.\"2026.12\".source]",
    "parent = \"2026.12\"",
    "parent = \"2026.10\"",
    "prod = \"2026.12\"",
    "[markers]",
    "[sites.eu]",
    "[[pools]]",
    "horizon_name = \"Finance-IC\"",
    "horizon_name = \"finance-ic\"",
    "marker = \"prod\"",
    "image = \"win11-ent\"",
    "site = \"nowhere\"",
    "vm = \"win11-build\"",
    "snapshot = \"sealed\"",
    "library_item = \"x\"",
    "vcenter = \"http://[::1\"",
    "ca_file = \"../../etc/passwd\"",
    "password = \"Hunter2\"",
    "kind = \"farm\"",
    "a.b.c = 1e400",
    "x = \"\\u0000é💥\"",
    "= \"",
    "[",
    "\"",
    "",
];

/// One edit: which line (of the file picked by `file`), and what to put there.
fn edit() -> impl Strategy<Value = (prop::sample::Index, prop::sample::Index, String)> {
    let text = prop_oneof![prop::sample::select(PIECES).prop_map(str::to_owned), "\\PC{0,24}"];
    (any::<prop::sample::Index>(), any::<prop::sample::Index>(), text)
}

fn quickstart() -> RepoFiles {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart");
    match RepoFiles::read(&WorkTree { dir: &dir }, None) {
        Ok(files) => files,
        Err(e) => panic!("the quickstart reads: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Edited repositories validate or give diagnostics: never a panic.
    #[test]
    fn any_edit_of_a_repository_validates_or_is_diagnosed(edits in prop::collection::vec(edit(), 1..6)) {
        let mut files = quickstart();
        for (file, line, text) in edits {
            let mut all: Vec<_> = files.golden.iter_mut().chain(&mut files.images).chain(&mut files.pools).collect();
            let n = all.len();
            let source = &mut all[file.index(n)];
            let mut lines: Vec<&str> = source.text.lines().collect();
            let at = line.index(lines.len() + 1);
            if at < lines.len() {
                lines[at] = &text;
            } else {
                lines.push(&text);
            }
            source.text = lines.join("\n");
        }
        let _ = super::validate(&files);
    }

    /// Any text at all as each file is read or diagnosed too.
    #[test]
    fn any_text_as_a_file_validates_or_is_diagnosed(golden in "\\PC{0,200}", image in "\\PC{0,200}", pool in "\\PC{0,200}") {
        let mut files = quickstart();
        if let Some(g) = files.golden.as_mut() {
            g.text = golden;
        }
        files.images[0].text = image;
        files.pools[0].text = pool;
        let _ = super::validate(&files);
    }
}
