//! Helpers shared by the integration tests: running the binary hermetically, temp git repos.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use golden::desired::{DesiredState, Location, load};
use golden::lab::{Lab, LabOptions, Timings};

/// The repository root (where Cargo.toml is).
pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `golden` with a cleared environment: no colour, no user settings, no credentials.
pub(crate) fn golden(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("golden").expect("the golden binary is built for tests");
    cmd.env_clear().env("NO_COLOR", "1").current_dir(dir);
    cmd
}

pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `golden ARGS` in `dir` with the lab's environment (URLs and credentials), off the
/// async workers so the in-process lab keeps serving.
pub(crate) async fn golden_with(lab: &golden::lab::Lab, dir: &Path, args: &[&str]) -> Output {
    let env = lab.env();
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run(golden(&dir).envs(env).args(&args))).await.expect("golden ran")
}

/// The push image and farm maintenance requests the lab's Horizons received, at every site.
pub(crate) fn pushes_sent(lab: &golden::lab::Lab) -> u64 {
    lab.endpoints()
        .iter()
        .filter(|e| e.product == golden::lab::Product::Horizon)
        .flat_map(|e| lab.requests_by_route(&e.name, e.product))
        .filter(|(route, _)| {
            route.ends_with("/action/schedule-push-image") || route.ends_with("/action/schedule-maintenance")
        })
        .map(|(_, n)| n)
        .sum()
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("golden runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies a directory tree (fixtures into temp repos).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create target dir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// The quickstart example committed into a temp repository.
pub(crate) fn quickstart_repo() -> TempRepo {
    let repo = TempRepo::new();
    copy_dir(&repo_root().join("examples/quickstart"), repo.path());
    repo.commit("Import golden images");
    repo
}

/// The desired state in `dir`, and a lab seeded from it (its simulated tasks taking `timings`)
/// on free ports.
pub(crate) async fn seeded_lab(dir: &Path, timings: Timings) -> (DesiredState, Lab) {
    let desired = load(&Location::WorkTree { dir: dir.to_owned() }).expect("the repository is valid");
    let state = golden::lab::seed::from_desired(&desired, timings);
    let lab = Lab::start(state, LabOptions { free_ports: true, ..LabOptions::default() })
        .await
        .expect("lab starts");
    (desired, lab)
}

/// A lab seeded from the desired state in `dir`, every simulated task instant.
pub(crate) async fn lab_for(dir: &Path) -> Lab {
    seeded_lab(dir, Timings::instant()).await.1
}

/// The lab of the quickstart example, every simulated task instant.
pub(crate) async fn quickstart_lab() -> Lab {
    lab_for(&repo_root().join("examples/quickstart")).await
}

/// The quickstart committed into a temp repository, its desired state, and a lab seeded from it.
pub(crate) async fn quickstart_with_lab(timings: Timings) -> (TempRepo, DesiredState, Lab) {
    let repo = quickstart_repo();
    let (desired, lab) = seeded_lab(repo.path(), timings).await;
    (repo, desired, lab)
}

/// A temp git repository driven through git2, so tests need no git binary or user config.
pub(crate) struct TempRepo {
    pub dir: tempfile::TempDir,
    pub repo: git2::Repository,
}

impl TempRepo {
    pub(crate) fn new() -> TempRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = git2::Repository::init(dir.path()).expect("git init");
        TempRepo { dir, repo }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write file");
    }

    /// Stages everything and commits now as Ada Admin; returns the commit id.
    pub(crate) fn commit(&self, message: &str) -> git2::Oid {
        let sig = git2::Signature::now("Ada Admin", "ada@corp.example").expect("signature");
        self.commit_as(message, &sig)
    }

    /// Stages everything and commits with a fixed author and time, so commit ids are stable.
    pub(crate) fn commit_at(&self, message: &str, author: &str, unix_time: i64) -> git2::Oid {
        let email = format!("{}@corp.example", author.split(' ').next().unwrap_or("admin").to_lowercase());
        let sig = git2::Signature::new(author, &email, &git2::Time::new(unix_time, 0)).expect("signature");
        self.commit_as(message, &sig)
    }

    fn commit_as(&self, message: &str, sig: &git2::Signature<'_>) -> git2::Oid {
        let mut index = self.repo.index().expect("index");
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).expect("git add");
        index.update_all(["*"], None).expect("git add -u");
        index.write().expect("write index");
        let tree = self.repo.find_tree(index.write_tree().expect("write tree")).expect("tree");
        let parents: Vec<git2::Commit> =
            self.repo.head().ok().and_then(|h| h.peel_to_commit().ok()).into_iter().collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        self.repo.commit(Some("HEAD"), sig, sig, message, &tree, &parents).expect("commit")
    }
}

/// A loopback HTTP listener that records every request it gets (head and body, as text) and
/// answers each with `answer(request)`, a whole HTTP/1.1 response, then closes the connection.
/// It stands in for a server a test must prove golden sends nothing to, or nothing secret.
pub(crate) struct Recorder {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub(crate) async fn start(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> Recorder {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (seen, answer) = (requests.clone(), std::sync::Arc::new(answer));
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (seen, answer) = (seen.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut chunk = [0u8; 8192];
                    // The head, then as much body as Content-Length says.
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            break;
                        }
                        bytes.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        let Some(end) = text.find("\r\n\r\n") else { continue };
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse().ok())?
                            })
                            .unwrap_or(0usize);
                        if bytes.len() >= end + 4 + length {
                            break;
                        }
                    }
                    let request = String::from_utf8_lossy(&bytes).into_owned();
                    let response = answer(&request);
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Recorder { url, requests, task }
    }

    /// Every request received so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP/1.1 answer with no body and `headers` (each `Name: value`), closing the connection.
pub(crate) fn answer(status: &str, headers: &[&str]) -> String {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

/// Parses `stdout` as JSON and checks it against `schema/NAME`; panics naming every mismatch.
pub(crate) fn json_matching_schema(name: &str, stdout: &str) -> serde_json::Value {
    let value: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    let path = repo_root().join("schema").join(name);
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the schema exists"))
            .expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "output does not match schema/{name}: {errors:#?}\n{stdout}");
    value
}
