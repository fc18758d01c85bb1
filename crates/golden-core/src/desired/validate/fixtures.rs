//! Every validation rule on a repository that breaks it.
//!
//! Each fixture under `tests/fixtures/invalid/<case>/` is a small repository with one problem
//! (one case has several, in several files). Its `EXPECT` file lists text the diagnostics must
//! contain, starting with the exact `file:line:column`; the whole rendering is also snapshotted.
//! `golden validate` itself (exit code, the summary line, colour) is tested once on the binary.

use std::path::Path;

use crate::desired::layout::{LoadError, load_dir};

#[test]
fn every_malformed_repository_is_refused_naming_file_line_and_problem() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/invalid");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).expect("fixtures exist").map(|e| e.expect("dir entry").path()).collect();
    cases.sort();
    assert!(cases.len() >= 20, "expected 20+ malformed repositories, found {}", cases.len());
    for case in cases {
        let name = case.file_name().expect("case name").to_string_lossy().into_owned();
        let expect = std::fs::read_to_string(case.join("EXPECT")).expect("each case has EXPECT");
        let diagnostics = match load_dir(&case) {
            Err(LoadError::Invalid(d)) => d,
            Err(other) => panic!("{name}: not a validation error: {other}"),
            Ok(_) => panic!("{name}: the repository was accepted"),
        };
        let mut rendered = Vec::new();
        diagnostics.render(&mut anstream::StripStream::new(&mut rendered)).expect("render");
        // Files are named as `golden validate` run in the repository names them.
        let rendered =
            String::from_utf8(rendered).expect("utf-8").replace(&format!("{}/", case.display()), "");
        for line in expect.lines().filter(|l| !l.trim().is_empty()) {
            assert!(rendered.contains(line), "{name}: the diagnostics lack {line:?}:\n{rendered}");
        }
        assert!(!rendered.contains("Hunter2"), "{name}: a credential was echoed:\n{rendered}");
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!("invalid", rendered);
        });
    }
}
