//! Validation benchmark: a generated repository of 1,000 image files and 5,000 pools.
//!
//! Prints wall-clock figures (no timed assertions anywhere): the target is well under one second
//! for a full load + validate of the working tree, and the same read through `--ref HEAD`.
//! Run with `cargo bench --bench validate`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use golden::desired::{self, Location};

const SITES: usize = 20;
const IMAGES: usize = 1_000;
const VERSIONS: usize = 5;
const POOLS: usize = 5_000;
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    generate(dir.path())?;
    commit_all(dir.path())?;

    for (label, location) in [
        ("work tree", Location::WorkTree { dir: dir.path().to_owned() }),
        ("--ref HEAD", Location::GitRef { dir: dir.path().to_owned(), reference: "HEAD".to_owned() }),
    ] {
        let mut times = Vec::new();
        let mut summary = String::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let state = desired::load(&location)?;
            times.push(start.elapsed());
            summary = state.summary();
        }
        times.sort();
        println!(
            "validate ({label}): {summary}: median {} ms, best {} ms over {RUNS} runs (target: well under 1000 ms)",
            ms(times[RUNS / 2]),
            ms(times[0]),
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn generate(root: &Path) -> anyhow::Result<()> {
    let mut golden = String::from("[settings]\nsource_site = \"site-0\"\n");
    for s in 0..SITES {
        write!(
            golden,
            "\n[sites.site-{s}]\nvcenter = \"https://vc-{s}.corp.example\"\nhorizon = \"https://hz-{s}.corp.example\"\n\
             datacenter = \"DC-{s}\"\ncluster = \"Cluster-{s}\"\nfolder = \"golden\"\ndatastore = \"vsan-{s}\"\n"
        )?;
    }
    std::fs::write(root.join("golden.toml"), golden)?;
    std::fs::create_dir_all(root.join("images"))?;
    for i in 0..IMAGES {
        let mut image = format!("description = \"generated image {i}\"\n");
        for v in 0..VERSIONS {
            write!(image, "\n[versions.\"2026.{v}\"]\n")?;
            if v > 0 {
                writeln!(image, "parent = \"2026.{}\"", v - 1)?;
            }
            writeln!(
                image,
                "source = {{ vm = \"build-{i}\", snapshot = \"sealed-{v}\" }}\nnotes = \"build {v}\""
            )?;
        }
        write!(image, "\n[markers]\nprod = \"2026.{}\"\npilot = \"2026.{}\"\n", VERSIONS - 2, VERSIONS - 1)?;
        std::fs::write(root.join(format!("images/img-{i}.toml")), image)?;
    }
    std::fs::create_dir_all(root.join("pools"))?;
    for s in 0..SITES {
        let mut pools = String::new();
        for p in (s..POOLS).step_by(SITES) {
            write!(
                pools,
                "[pools.pool-{p}]\nsite = \"site-{s}\"\nimage = \"img-{}\"\nmarker = \"{}\"\nwave = {}\n\n",
                p % IMAGES,
                if p % 7 == 0 { "pilot" } else { "prod" },
                1 + p % 3
            )?;
        }
        std::fs::write(root.join(format!("pools/site-{s}.toml")), pools)?;
    }
    Ok(())
}

fn commit_all(root: &Path) -> anyhow::Result<()> {
    let repo = git2::Repository::init(root)?;
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("bench", "bench@example.invalid")?;
    repo.commit(Some("HEAD"), &sig, &sig, "generated", &tree, &[])?;
    Ok(())
}
