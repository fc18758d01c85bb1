//! Reading a desired-state repository: from the working tree or from a git ref.
//!
//! Both sources are read through one small interface (read a file, list a directory) so the
//! repository layout (`golden.toml`, `images/*.toml`, `pools/*.toml`) is spelled out once.

use std::io;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostics;
use crate::git::{self, GitError, RefTree};

use super::{DesiredState, Revision};

/// Where to read the desired state from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The files in directory `dir` as they are on disk.
    WorkTree { dir: PathBuf },
    /// The files of `dir` at git ref `reference`, read from the object database.
    GitRef { dir: PathBuf, reference: String },
}

/// One file of the repository.
#[derive(Clone, Debug)]
pub struct SourceText {
    /// Path relative to the repository directory, with `/` separators.
    pub path: String,
    /// How the file is named in messages: what the user can open or `git show`.
    pub display: String,
    pub text: String,
}

/// The raw files of a repository, before parsing.
#[derive(Clone, Debug, Default)]
pub struct RepoFiles {
    pub revision: Option<Revision>,
    /// `golden.toml`, or `None` when it is missing (a validation error, reported with the rest).
    pub golden: Option<SourceText>,
    /// `images/*.toml`, sorted by path.
    pub images: Vec<SourceText>,
    /// `pools/*.toml`, sorted by path.
    pub pools: Vec<SourceText>,
    /// How `golden.toml` is named in messages, also when it is missing.
    pub golden_display: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not valid UTF-8 text")]
    NotUtf8 { path: String },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Reads and validates the desired state at `location`.
pub fn load(location: &Location) -> Result<DesiredState, LoadError> {
    let files = RepoFiles::read(location)?;
    Ok(super::validate::validate(&files)?)
}

/// The two places files come from; the layout code below does not care which.
trait Tree {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LoadError>;
    /// The files directly inside directory `rel` as `(name, bytes)`, sorted by name.
    fn read_dir(&self, rel: &str) -> Result<Vec<(String, Vec<u8>)>, LoadError>;
    fn display(&self, rel: &str) -> String;
}

struct WorkTree<'a> {
    dir: &'a Path,
}

impl Tree for WorkTree<'_> {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let path = self.dir.join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LoadError::Io { path, source }),
        }
    }

    fn read_dir(&self, rel: &str) -> Result<Vec<(String, Vec<u8>)>, LoadError> {
        let path = self.dir.join(rel);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(LoadError::Io { path, source }),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::Io { path: path.clone(), source })?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(true) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes =
                std::fs::read(entry.path()).map_err(|source| LoadError::Io { path: entry.path(), source })?;
            files.push((name, bytes));
        }
        files.sort();
        Ok(files)
    }

    fn display(&self, rel: &str) -> String {
        let dir = self.dir.to_string_lossy();
        match dir.trim_end_matches('/') {
            "" | "." => rel.to_owned(),
            dir => format!("{dir}/{rel}"),
        }
    }
}

struct GitTree {
    tree: RefTree,
    reference: String,
}

impl Tree for GitTree {
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, LoadError> {
        Ok(self.tree.read(rel)?)
    }

    fn read_dir(&self, rel: &str) -> Result<Vec<(String, Vec<u8>)>, LoadError> {
        Ok(self.tree.read_dir(rel)?)
    }

    fn display(&self, rel: &str) -> String {
        // git's own `REV:PATH` notation, so `git show` opens exactly this file.
        format!("{}:{}", self.reference, self.tree.repo_path(rel))
    }
}

impl RepoFiles {
    /// Reads the repository's files without parsing them.
    pub fn read(location: &Location) -> Result<RepoFiles, LoadError> {
        match location {
            Location::WorkTree { dir } => {
                let revision = git::head_commit(dir).map(|commit| Revision { commit, reference: None });
                read_layout(&WorkTree { dir }, revision)
            }
            Location::GitRef { dir, reference } => {
                let tree = RefTree::open(dir, reference)?;
                let revision =
                    Some(Revision { commit: tree.commit_id(), reference: Some(reference.clone()) });
                read_layout(&GitTree { tree, reference: reference.clone() }, revision)
            }
        }
    }
}

fn read_layout(tree: &dyn Tree, revision: Option<Revision>) -> Result<RepoFiles, LoadError> {
    let source = |rel: String, bytes: Vec<u8>| -> Result<SourceText, LoadError> {
        let display = tree.display(&rel);
        let text = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: display.clone() })?;
        Ok(SourceText { path: rel, display, text })
    };
    let dir = |name: &str| -> Result<Vec<SourceText>, LoadError> {
        let mut out = Vec::new();
        for (file, bytes) in tree.read_dir(name)? {
            let rel = format!("{name}/{file}");
            if !file.ends_with(".toml") {
                tracing::warn!("ignoring {}: only .toml files are read there", tree.display(&rel));
                continue;
            }
            out.push(source(rel, bytes)?);
        }
        Ok(out)
    };
    let golden = match tree.read("golden.toml")? {
        Some(bytes) => Some(source("golden.toml".to_owned(), bytes)?),
        None => None,
    };
    Ok(RepoFiles {
        revision,
        golden,
        images: dir("images")?,
        pools: dir("pools")?,
        golden_display: tree.display("golden.toml"),
    })
}
