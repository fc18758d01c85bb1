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
///
/// Only regular files and directories are read: a symbolic link is refused, since it can lead
/// out of the repository (to a secret, or to `/dev/zero`, which never ends), and so is a FIFO
/// or a device. The error names the file.
#[derive(Clone, Copy, Debug)]
pub struct WorkTree<'a> {
    pub dir: &'a Path,
}

/// Refuses what is neither a regular file nor a directory; `rel` names it in the error.
fn refuse_special(rel: &str, kind: std::fs::FileType) -> io::Result<()> {
    if kind.is_file() || kind.is_dir() {
        return Ok(());
    }
    let what = if kind.is_symlink() { "a symbolic link" } else { "not a regular file" };
    Err(io::Error::other(format!(
        "{rel} is {what}; golden reads only the repository's own regular files: put the file itself there"
    )))
}

/// The type of `path` without following a link; `None` when there is nothing.
fn kind_of(path: &Path) -> io::Result<Option<std::fs::FileType>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Tree for WorkTree<'_> {
    fn read(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.dir.join(rel);
        let Some(kind) = kind_of(&path)? else { return Ok(None) };
        refuse_special(rel, kind)?;
        std::fs::read(path).map(Some)
    }

    fn read_dir(&self, rel: &str) -> io::Result<Vec<(String, Vec<u8>)>> {
        let path = self.dir.join(rel);
        let Some(kind) = kind_of(&path)? else { return Ok(Vec::new()) };
        refuse_special(rel, kind)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            // Sub-directories hold nothing golden reads.
            if kind.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            refuse_special(&format!("{rel}/{name}"), kind)?;
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
    /// The SHA-256 (hex) of every desired-state file's path and text, in order.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for file in self.golden.iter().chain(&self.images).chain(&self.pools) {
            for part in [file.path.as_bytes(), file.text.as_bytes()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A symbolic link in the repository is refused, naming the file, and never followed: a
    /// link to `/dev/zero` would otherwise never finish reading.
    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("images")).expect("images/");
        std::fs::write(root.join("images/win11.toml"), "").expect("an image");
        std::os::unix::fs::symlink("/dev/zero", root.join("images/zero.toml")).expect("link");
        let tree = WorkTree { dir: root };
        let err = RepoFiles::read(&tree, None).expect_err("a link");
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default()
        );
        assert!(text.contains("images/zero.toml is a symbolic link"), "{text}");

        std::fs::remove_file(root.join("images/zero.toml")).expect("unlink");
        std::os::unix::fs::symlink("/etc/passwd", root.join("golden.toml")).expect("link");
        let err = RepoFiles::read(&tree, None).expect_err("a link");
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default()
        );
        assert!(text.contains("golden.toml is a symbolic link"), "{text}");

        std::fs::remove_file(root.join("golden.toml")).expect("unlink");
        std::fs::rename(root.join("images"), root.join("real-images")).expect("move");
        std::os::unix::fs::symlink(root.join("real-images"), root.join("images")).expect("link");
        let err = RepoFiles::read(&tree, None).expect_err("a linked directory");
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default()
        );
        assert!(text.contains("images is a symbolic link"), "{text}");
    }
}
