//! Runs vcsim (VMware's vCenter simulator, wrapped by tests/vcsim/main.go) for a test.
//!
//! Each [`Vcsim`] is its own process with its own `TMPDIR` (vcsim keeps datastores as temp
//! dirs there), on a free loopback port. It is ready once the wrapper has written its URL file;
//! the inventory file next to it gives the morefs tests need. Dropping it sends SIGTERM so the
//! wrapper removes its datastore dirs, then the temp dir goes too.
//!
//! The binary comes from `GOLDEN_VCSIM` or `target/vcsim/vcsim` (`bash tests/vcsim/build.sh`).
//! When it is missing, a test fails, whatever the environment: a suite must never pass by
//! skipping. `GOLDEN_SKIP_VCSIM=1` skips the vcsim half on purpose, with a note on stderr.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::common::repo_root;

#[derive(Debug, Deserialize)]
pub(crate) struct Inventory {
    pub datacenters: Vec<Datacenter>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    pub name: String,
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Cluster {
    pub name: String,
    pub resource_pool: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Datacenter {
    pub name: String,
    pub id: String,
    pub vm_folder: String,
    pub datastores: Vec<Named>,
    pub clusters: Vec<Cluster>,
    pub vms: Vec<Named>,
}

/// A running vcsim.
pub(crate) struct Vcsim {
    child: Child,
    pub url: url::Url,
    pub inventory: Inventory,
    // Dropped after the process has stopped (fields drop after `Drop::drop`).
    _tmp: tempfile::TempDir,
}

impl Vcsim {
    /// Starts vcsim with extra wrapper flags (e.g. `-username u -password p -dc 2`); `None`
    /// when the binary is missing outside CI.
    pub(crate) fn start(args: &[&str]) -> Option<Vcsim> {
        let binary = std::env::var_os("GOLDEN_VCSIM")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/vcsim/vcsim"));
        if !binary.is_file() {
            let note = format!(
                "vcsim binary {} not found; build it with `bash tests/vcsim/build.sh` (or set GOLDEN_VCSIM)",
                binary.display()
            );
            // Never a silent pass: only an explicit opt-out skips, and it says so.
            if std::env::var("GOLDEN_SKIP_VCSIM").is_ok_and(|v| v == "1") {
                eprintln!("note: skipping a vcsim test (GOLDEN_SKIP_VCSIM=1): {note}");
                return None;
            }
            panic!("{note}; or set GOLDEN_SKIP_VCSIM=1 to skip the vcsim half on purpose");
        }
        let tmp = tempfile::tempdir().expect("temp dir for vcsim");
        let url_file = tmp.path().join("url");
        let inventory_file = tmp.path().join("inventory.json");
        let log = std::fs::File::create(tmp.path().join("vcsim.log")).expect("vcsim log file");
        let mut child = Command::new(&binary)
            .env("TMPDIR", tmp.path())
            .args(["-l", "127.0.0.1:0", "-url-file"])
            .arg(&url_file)
            .arg("-inventory-file")
            .arg(&inventory_file)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let started = Instant::now();
        while !url_file.exists() {
            let log = || std::fs::read_to_string(tmp.path().join("vcsim.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                panic!("vcsim exited with {status} before it was ready:\n{}", log());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vcsim was not ready within 20 s:\n{}", log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&url_file).expect("read vcsim url file");
        let url = url::Url::parse(text.trim()).expect("vcsim url file holds a URL");
        let inventory: Inventory = serde_json::from_str(
            &std::fs::read_to_string(&inventory_file).expect("read vcsim inventory file"),
        )
        .expect("vcsim inventory file is valid");
        Some(Vcsim { child, url, inventory, _tmp: tmp })
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        // SIGTERM lets the wrapper remove its datastore dirs; SIGKILL only as a last resort.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
