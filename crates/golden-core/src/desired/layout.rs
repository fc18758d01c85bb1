//! The layout of a desired-state repository: `golden.toml`, `images/*.toml`, `pools/*.toml`.
//!
//! Files come through one small interface, [`Tree`] (read a file, list a directory), so the
//! layout is spelled out once whatever holds the files: a working tree ([`WorkTree`]) here, or
//! the objects of a git commit in the `golden` binary.

use std::io;
use std::path::Path;

use crate::diag::Diagnostics;

use super::{DesiredState, Revision};

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

/// A file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not valid UTF-8 text")]
    NotUtf8 { path: String },
}

/// A repository that cannot be loaded: unreadable, or invalid.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Invalid(#[from] Diagnostics),
}

/// Where the files come from.
pub trait Tree {
    /// The file at `rel`, or `None` when there is none.
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>>;
    /// The files directly inside directory `rel` as `(name, bytes)`, sorted by name.
    fn read_dir(&self, rel: &str) -> io::Result<Vec<(String, Vec<u8>)>>;
    /// How the file at `rel` is named in messages.
    fn display(&self, rel: &str) -> String;
}

/// The files of a directory as they are on disk.
#[derive(Clone, Copy, Debug)]
pub struct WorkTree<'a> {
    pub dir: &'a Path,
}

impl Tree for WorkTree<'_> {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(rel)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, rel: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
        let entries = match std::fs::read_dir(self.dir.join(rel)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(true) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, std::fs::read(entry.path())?));
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

impl RepoFiles {
    /// Reads the repository's files from `tree` without parsing them.
    pub fn read(tree: &dyn Tree, revision: Option<Revision>) -> Result<RepoFiles, ReadError> {
        let io = |rel: &str| {
            let path = tree.display(rel);
            move |source| ReadError::Io { path, source }
        };
        let source = |rel: String, bytes: Vec<u8>| -> Result<SourceText, ReadError> {
            let display = tree.display(&rel);
            let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: display.clone() })?;
            Ok(SourceText { path: rel, display, text })
        };
        let dir = |name: &str| -> Result<Vec<SourceText>, ReadError> {
            let mut out = Vec::new();
            for (file, bytes) in tree.read_dir(name).map_err(io(name))? {
                let rel = format!("{name}/{file}");
                if !file.ends_with(".toml") {
                    tracing::warn!("ignoring {}: only .toml files are read there", tree.display(&rel));
                    continue;
                }
                out.push(source(rel, bytes)?);
            }
            Ok(out)
        };
        let golden = match tree.read("golden.toml").map_err(io("golden.toml"))? {
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
}

/// Reads and validates the desired state in `tree`.
pub fn load(tree: &dyn Tree, revision: Option<Revision>) -> Result<DesiredState, LoadError> {
    let files = RepoFiles::read(tree, revision)?;
    Ok(super::validate::validate(&files)?)
}

/// Reads and validates the desired state in directory `dir`, as it is on disk, with no
/// revision: for tests and tools that have no git repository at hand.
pub fn load_dir(dir: &Path) -> Result<DesiredState, LoadError> {
    load(&WorkTree { dir }, None)
}
