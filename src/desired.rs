//! The desired state, loaded from a working tree or from any git ref without checking it out.
//!
//! The model, the repository layout and every validation rule live in `golden_core::desired`
//! (re-exported here); this module adds what needs git: the commit a working tree is at, and
//! the files of a ref read straight from the object database.

use std::io;
use std::path::PathBuf;

use golden_core::desired::layout::{ReadError, Tree, WorkTree};
pub use golden_core::desired::*;
use golden_core::diag::Diagnostics;
use golden_core::ids::CommitId;

use crate::git::{self, GitError, RefTree};

/// Where to read the desired state from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The files in directory `dir` as they are on disk.
    WorkTree { dir: PathBuf },
    /// The files of `dir` at git ref `reference`, read from the object database.
    GitRef { dir: PathBuf, reference: String },
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

impl From<golden_core::desired::layout::LoadError> for LoadError {
    fn from(e: golden_core::desired::layout::LoadError) -> LoadError {
        use golden_core::desired::layout;
        match e {
            layout::LoadError::Read(e) => LoadError::Read(e),
            layout::LoadError::Invalid(d) => LoadError::Invalid(d),
        }
    }
}

/// Reads and validates the desired state at `location`.
pub fn load(location: &Location) -> Result<DesiredState, LoadError> {
    Ok(validate::validate(&read(location)?)?)
}

/// Reads the repository's files at `location` without parsing them.
pub fn read(location: &Location) -> Result<RepoFiles, LoadError> {
    match location {
        Location::WorkTree { dir } => {
            let revision = git::head_state(dir).map(|(commit, dirty)| Revision {
                commit: CommitId::new(commit),
                reference: None,
                dirty,
            });
            Ok(RepoFiles::read(&WorkTree { dir }, revision)?)
        }
        Location::GitRef { dir, reference } => {
            let tree = RefTree::open(dir, reference)?;
            let revision = Some(Revision {
                commit: CommitId::new(tree.commit_id()),
                reference: Some(reference.clone()),
                dirty: false,
            });
            Ok(RepoFiles::read(&GitTree { tree, reference: reference.clone() }, revision)?)
        }
    }
}

/// The files of a commit.
struct GitTree {
    tree: RefTree,
    reference: String,
}

impl Tree for GitTree {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        self.tree.read(rel).map_err(io::Error::other)
    }

    fn read_dir(&self, rel: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
        self.tree.read_dir(rel).map_err(io::Error::other)
    }

    fn display(&self, rel: &str) -> String {
        // git's own `REV:PATH` notation, so `git show` opens exactly this file.
        format!("{}:{}", self.reference, self.tree.repo_path(rel))
    }
}
