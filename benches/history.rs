//! History benchmark: `golden history` over a generated repository of 10,000 commits.
//!
//! Each commit moves one marker of one of 50 images (and every tenth also touches a pool file,
//! which history must skip cheaply). Prints the wall time of reading the whole history (the
//! target is under one second). Run with `cargo bench --bench history`.

use std::time::Instant;

use git2::{Repository, Signature, Time};

const COMMITS: usize = 10_000;
const IMAGES: usize = 50;
const VERSIONS: usize = 6;

fn image_file(image: usize, prod: usize) -> String {
    let mut text = format!("description = \"image {image}\"\n");
    for v in 0..VERSIONS {
        text.push_str(&format!(
            "\n[versions.\"v{v}\"]\nsource = {{ vm = \"build-{image}\", snapshot = \"s{v}\" }}\n"
        ));
        if v > 0 {
            text.push_str(&format!("parent = \"v{}\"\n", v - 1));
        }
    }
    text.push_str(&format!("\n[markers]\nprod = \"v{prod}\"\npilot = \"v{}\"\n", VERSIONS - 1));
    text
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let repo = Repository::init(dir.path())?;
    let odb = repo.odb()?;
    let golden = odb.write(git2::ObjectType::Blob, b"[settings]\nsource_site = \"hq\"\n")?;
    let mut images: Vec<git2::Oid> = (0..IMAGES)
        .map(|i| odb.write(git2::ObjectType::Blob, image_file(i, 0).as_bytes()))
        .collect::<Result<_, _>>()?;
    let mut pools = odb.write(git2::ObjectType::Blob, b"# pools\n")?;
    let mut parent: Option<git2::Oid> = None;
    let start = Instant::now();
    for n in 0..COMMITS {
        let image = n % IMAGES;
        images[image] =
            odb.write(git2::ObjectType::Blob, image_file(image, (n / IMAGES) % VERSIONS).as_bytes())?;
        if n % 10 == 0 {
            pools = odb.write(git2::ObjectType::Blob, format!("# pools {n}\n").as_bytes())?;
        }
        let mut images_tree = repo.treebuilder(None)?;
        for (i, blob) in images.iter().enumerate() {
            images_tree.insert(format!("img-{i}.toml"), *blob, 0o100644)?;
        }
        let images_tree = images_tree.write()?;
        let mut pools_tree = repo.treebuilder(None)?;
        pools_tree.insert("main.toml", pools, 0o100644)?;
        let pools_tree = pools_tree.write()?;
        let mut root = repo.treebuilder(None)?;
        root.insert("golden.toml", golden, 0o100644)?;
        root.insert("images", images_tree, 0o040000)?;
        root.insert("pools", pools_tree, 0o040000)?;
        let tree = repo.find_tree(root.write()?)?;
        let sig = Signature::new(
            "Bench Admin",
            "bench@example.invalid",
            &Time::new(1_790_000_000 + n as i64 * 60, 0),
        )?;
        let parents: Vec<git2::Commit> =
            parent.map(|p| repo.find_commit(p)).transpose()?.into_iter().collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        parent =
            Some(repo.commit(None, &sig, &sig, &format!("move prod of img-{image}"), &tree, &parents)?);
    }
    let head = parent.ok_or_else(|| anyhow::anyhow!("no commits"))?;
    repo.reference("refs/heads/main", head, true, "bench")?;
    repo.set_head("refs/heads/main")?;
    println!("generated {COMMITS} commits in {:.1} s", start.elapsed().as_secs_f64());

    let mut times = Vec::new();
    let mut moves = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let history = golden::history::read(dir.path(), "HEAD")?;
        times.push(t.elapsed());
        moves = history.images.values().map(|h| h.moves.len()).sum::<usize>();
    }
    times.sort();
    println!(
        "history ({COMMITS} commits, {IMAGES} images, {moves} marker moves): median {:.0} ms, best {:.0} ms (target: under 1000 ms)",
        times[1].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    Ok(())
}
