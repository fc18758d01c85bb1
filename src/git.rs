//! Git access through libgit2: reading the desired state at any ref without a checkout.
//!
//! `--ref REF` must never touch the working tree or the index, so everything here reads objects
//! (commits, trees, blobs) straight from the object database. A repository may hold the desired
//! state in a sub-directory (`-C examples/quickstart`), so paths are resolved relative to the
//! directory the user named, inside the repository that contains it.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, Tree};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} is not inside a git repository", dir.display())]
    NotARepository { dir: PathBuf },
    #[error("git ref `{reference}` does not name a commit in {}", repo.display())]
    RefNotFound { reference: String, repo: PathBuf, source: git2::Error },
    #[error("{} lies outside the repository's working tree {}", dir.display(), repo.display())]
    OutsideWorkTree { dir: PathBuf, repo: PathBuf },
    #[error("cannot {action} in {}", repo.display())]
    Read { action: String, repo: PathBuf, source: git2::Error },
    #[error(
        "{path} is a symbolic link; golden reads only the repository's own regular files: commit the file itself there"
    )]
    Symlink { path: String },
}

/// git's file mode of a symbolic link: its blob holds the path it points at.
const SYMLINK_MODE: i32 = 0o120000;

/// The tree of one commit, seen from the directory the user named.
pub struct RefTree {
    repo: Repository,
    commit: git2::Oid,
    /// The user's directory relative to the repository root, `""` at the root.
    prefix: String,
}

impl std::fmt::Debug for RefTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefTree").field("commit", &self.commit).field("prefix", &self.prefix).finish()
    }
}

impl RefTree {
    /// Resolves `reference` in the repository containing `dir`.
    pub fn open(dir: &Path, reference: &str) -> Result<RefTree, GitError> {
        let repo = discover(dir)?;
        let prefix = prefix_of(&repo, dir)?;
        let commit = repo
            .revparse_single(reference)
            .and_then(|object| object.peel_to_commit())
            .map_err(|source| GitError::RefNotFound {
                reference: reference.to_owned(),
                repo: repo_path(&repo),
                source,
            })?
            .id();
        Ok(RefTree { repo, commit, prefix })
    }

    pub fn commit_id(&self) -> String {
        self.commit.to_string()
    }

    /// The path of `rel` (relative to the user's directory) as git spells it from the root.
    pub fn repo_path(&self, rel: &str) -> String {
        if self.prefix.is_empty() { rel.to_owned() } else { format!("{}/{rel}", self.prefix) }
    }

    fn tree(&self) -> Result<Tree<'_>, GitError> {
        self.repo
            .find_commit(self.commit)
            .and_then(|c| c.tree())
            .map_err(|source| self.read_error(format!("read the tree of commit {}", self.commit), source))
    }

    fn read_error(&self, action: String, source: git2::Error) -> GitError {
        GitError::Read { action, repo: repo_path(&self.repo), source }
    }

    /// The bytes of file `rel`, or `None` when the commit has no such file.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, GitError> {
        let tree = self.tree()?;
        let path = self.repo_path(rel);
        let Ok(entry) = tree.get_path(Path::new(&path)) else { return Ok(None) };
        if entry.filemode() == SYMLINK_MODE {
            return Err(GitError::Symlink { path });
        }
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|source| self.read_error(format!("read {path}"), source))?;
        Ok(Some(blob.content().to_vec()))
    }

    /// The files (not directories) directly inside directory `rel`, as `(name, bytes)` sorted
    /// by name. One tree lookup for the whole directory: repositories hold thousands of files.
    pub fn read_dir(&self, rel: &str) -> Result<Vec<(String, Vec<u8>)>, GitError> {
        let tree = self.tree()?;
        let path = self.repo_path(rel);
        let Ok(entry) = tree.get_path(Path::new(&path)) else { return Ok(Vec::new()) };
        if entry.filemode() == SYMLINK_MODE {
            return Err(GitError::Symlink { path });
        }
        let Some(dir) = entry.to_object(&self.repo).ok().and_then(|o| o.into_tree().ok()) else {
            return Ok(Vec::new());
        };
        let mut files = Vec::new();
        for entry in dir.iter().filter(|e| e.kind() == Some(ObjectType::Blob)) {
            let Ok(name) = entry.name() else { continue };
            if entry.filemode() == SYMLINK_MODE {
                return Err(GitError::Symlink { path: format!("{path}/{name}") });
            }
            let blob = self
                .repo
                .find_blob(entry.id())
                .map_err(|source| self.read_error(format!("read {path}/{name}"), source))?;
            files.push((name.to_owned(), blob.content().to_vec()));
        }
        files.sort();
        Ok(files)
    }
}

/// `dir` relative to the root of the repository containing it (`""` at the root), if it is in
/// one.
pub fn prefix(dir: &Path) -> Option<String> {
    let repo = Repository::discover(dir).ok()?;
    prefix_of(&repo, dir).ok()
}

/// The commit HEAD points at in the repository containing `dir`, and whether the
/// desired-state files under `dir` (`golden.toml`, `images/`, `pools/`) differ from it:
/// modified, added, deleted or untracked (not ignored). An unreadable index counts as changed,
/// which only ever makes a plan more careful. `None` outside a repository or without a commit.
pub fn head_state(dir: &Path) -> Option<(String, bool)> {
    let repo = Repository::discover(dir).ok()?;
    let commit = repo.head().ok()?.peel_to_commit().ok()?.id().to_string();
    let changed = || {
        let prefix = prefix_of(&repo, dir).ok()?;
        let mut options = git2::StatusOptions::new();
        options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
        for path in ["golden.toml", "images", "pools"] {
            options.pathspec(if prefix.is_empty() { path.to_owned() } else { format!("{prefix}/{path}") });
        }
        Some(!repo.statuses(Some(&mut options)).ok()?.is_empty())
    };
    Some((commit, changed().unwrap_or(true)))
}

fn discover(dir: &Path) -> Result<Repository, GitError> {
    Repository::discover(dir).map_err(|_| GitError::NotARepository { dir: dir.to_owned() })
}

fn repo_path(repo: &Repository) -> PathBuf {
    repo.workdir().unwrap_or_else(|| repo.path()).to_owned()
}

pub(crate) fn prefix_of(repo: &Repository, dir: &Path) -> Result<String, GitError> {
    let Some(workdir) = repo.workdir() else { return Ok(String::new()) };
    let outside = || GitError::OutsideWorkTree { dir: dir.to_owned(), repo: workdir.to_owned() };
    let dir = dir.canonicalize().map_err(|_| outside())?;
    let workdir = workdir.canonicalize().map_err(|_| outside())?;
    let rel = dir.strip_prefix(&workdir).map_err(|_| outside())?;
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    Ok(parts.join("/"))
}
