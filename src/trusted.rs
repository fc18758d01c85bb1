//! `golden plan --trusted-ref REF`: credentials go only to endpoints that REF already names.
//!
//! A pull request is planned with the sites' credentials in the job's environment, but its
//! golden.toml is written by whoever opened it: a changed `vcenter` URL would receive the
//! vCenter password (basic auth, SOAP login), a changed `horizon` URL Horizon's. So before any
//! connection, each site the plan reads is compared with the same site in golden.toml at REF
//! (the base branch, read from git objects). What decides where credentials go is compared:
//! the `vcenter` and `horizon` URLs, and the `ca_file` that decides which certificates are
//! believed, by path and by content (the file golden will use, from the working tree, against
//! the one at REF). A site that differs, or that REF lacks, stops the plan before a single
//! request is sent; the error names each site and what changed. URL overrides
//! (`GOLDEN_<SITE>_*_URL`) and `_TLS_INSECURE` come from the job's environment, not from the
//! repository, so a pull request cannot change them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use golden_core::desired::files::SiteFile;
use golden_core::explain::Explain;

use crate::desired::{DesiredState, Site};
use crate::git::RefTree;
use crate::ids::SiteName;

/// Sites whose endpoints differ from those at the trusted ref; nothing was sent to any site.
#[derive(Debug, thiserror::Error)]
#[error(
    "the endpoints of {} differ from those at trusted ref `{reference}`, so golden sent no credentials: {}",
    crate::plan::render::count(.sites.len(), "site", "sites"),
    .changes.join("; ")
)]
pub struct EndpointsChanged {
    pub reference: String,
    /// The sites that changed, each named once.
    pub sites: BTreeSet<SiteName>,
    /// What changed, one entry per site and endpoint.
    pub changes: Vec<String>,
}

impl Explain for EndpointsChanged {
    fn hints(&self) -> Vec<String> {
        vec![format!(
            "a site's endpoints decide where its credentials go: change them in a pull request of \
             their own, review it, and plan after it is merged into `{}`",
            self.reference
        )]
    }
}

/// The sites of golden.toml, the rest left unread: only the endpoints matter here.
#[derive(Debug, Default, serde::Deserialize)]
struct Sites {
    #[serde(default)]
    sites: BTreeMap<String, SiteFile>,
}

/// Refuses when any of `sites` has endpoints other than at `reference`. `dir` is the repository
/// directory: CA files are read from it, as the clients read them.
pub fn check(
    desired: &DesiredState,
    dir: &Path,
    reference: &str,
    sites: &BTreeSet<SiteName>,
) -> anyhow::Result<()> {
    let tree = RefTree::open(dir, reference)?;
    let trusted: Sites = match tree.read("golden.toml")? {
        None => Sites::default(),
        Some(bytes) => {
            let text = String::from_utf8(bytes)
                .with_context(|| format!("golden.toml at trusted ref `{reference}` is not UTF-8 text"))?;
            toml::from_str(&text).with_context(|| {
                format!("cannot read the sites of golden.toml at trusted ref `{reference}`")
            })?
        }
    };
    let mut changed =
        EndpointsChanged { reference: reference.to_owned(), sites: BTreeSet::new(), changes: Vec::new() };
    for name in sites {
        let Some(site) = desired.sites.get(name) else { continue };
        let differences = match trusted.sites.get(name.as_str()) {
            None => vec![format!("site `{name}` is not in golden.toml at `{reference}`")],
            Some(base) => differences(site, base, dir, &tree, reference)?,
        };
        if !differences.is_empty() {
            changed.sites.insert(name.clone());
            changed.changes.extend(differences);
        }
    }
    if changed.changes.is_empty() { Ok(()) } else { Err(changed.into()) }
}

/// What differs between a site and the same site at the trusted ref.
fn differences(
    site: &Site,
    base: &SiteFile,
    dir: &Path,
    tree: &RefTree,
    reference: &str,
) -> anyhow::Result<Vec<String>> {
    let name = &site.name;
    let shown = |v: Option<&str>| v.map_or_else(|| "(none)".to_owned(), |v| format!("`{v}`"));
    let mut out = Vec::new();
    for (key, here, there) in
        [("vcenter", &site.vcenter, &base.vcenter), ("horizon", &site.horizon, &base.horizon)]
    {
        if there.as_deref().map(normal) != Some(normal(here)) {
            out.push(format!(
                "site `{name}`: {key} is `{here}` here, {} at `{reference}`",
                shown(there.as_deref())
            ));
        }
    }
    match (&site.ca_file, &base.ca_file) {
        (None, None) => {}
        (Some(here), Some(there)) if here == there => {
            let used = std::fs::read(dir.join(here)).ok();
            if used != tree.read(there)? {
                out.push(format!("site `{name}`: ca_file `{here}` differs from the one at `{reference}`"));
            }
        }
        (here, there) => out.push(format!(
            "site `{name}`: ca_file is {} here, {} at `{reference}`",
            shown(here.as_deref()),
            shown(there.as_deref())
        )),
    }
    Ok(out)
}

/// A URL as the clients will use it, so that `https://vc` and `https://vc/` compare equal.
fn normal(raw: &str) -> String {
    url::Url::parse(raw).map_or_else(|_| raw.to_owned(), |u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository whose one commit has site `hq` with `ca_file = "ca.pem"` holding `pem`.
    fn repo(pem: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = "[settings]\nsource_site = \"hq\"\n\n[sites.hq]\nvcenter = \"https://vc.corp.example\"\n\
                    horizon = \"https://hz.corp.example\"\ndatacenter = \"DC\"\ncluster = \"C\"\n\
                    folder = \"golden\"\ndatastore = \"ds\"\nca_file = \"ca.pem\"\n";
        std::fs::write(dir.path().join("golden.toml"), toml).expect("write");
        std::fs::write(dir.path().join("ca.pem"), pem).expect("write");
        let repo = git2::Repository::init(dir.path()).expect("git init");
        let mut index = repo.index().expect("index");
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).expect("git add");
        let tree = repo.find_tree(index.write_tree().expect("write tree")).expect("tree");
        let sig = git2::Signature::now("Ada Admin", "ada@corp.example").expect("signature");
        repo.commit(Some("HEAD"), &sig, &sig, "sites", &tree, &[]).expect("commit");
        dir
    }

    /// The CA file decides which servers are believed, so a changed file is a changed endpoint
    /// even where golden.toml is unchanged.
    #[test]
    fn a_changed_ca_file_is_a_changed_endpoint() {
        let dir = repo("-----BEGIN CERTIFICATE-----\ntrusted\n");
        let desired =
            crate::desired::load(&crate::desired::Location::WorkTree { dir: dir.path().to_owned() })
                .expect("valid");
        let sites: BTreeSet<SiteName> = desired.sites.keys().cloned().collect();
        check(&desired, dir.path(), "HEAD", &sites).expect("nothing changed");

        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\nthe author's own\n")
            .expect("write");
        let err = check(&desired, dir.path(), "HEAD", &sites).expect_err("the CA changed");
        assert!(
            err.to_string().ends_with("site `hq`: ca_file `ca.pem` differs from the one at `HEAD`"),
            "{err}"
        );
    }
}
