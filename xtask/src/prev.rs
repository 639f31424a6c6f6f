//! A build of the previous map ABI, made from the git history, for the test that hands a
//! running task over from it to this build (`tests/upgrade.rs`): the conversion of pinned maps
//! from one layout to the next is tested against the real older programs and daemon.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};

use crate::{cargo, step};

/// The last commit whose maps have the previous map ABI (4).
const PREVIOUS_ABI_COMMIT: &str = "7c44244782e443e2a42501b8a616a1e7383c0291";

/// Builds `target/prev-abi/enforcer` unless it is there for this commit already. Without the
/// commit in the history (a tarball, a shallow clone) it says so and builds nothing: the test
/// then skips, saying why.
pub fn build() -> anyhow::Result<Option<PathBuf>> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    let dir = target.join("prev-abi");
    let binary = dir.join("enforcer");
    let stamp = dir.join("commit");
    if binary.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == PREVIOUS_ABI_COMMIT)
    {
        eprintln!(
            "\n==> the previous map ABI's build is there ({})",
            binary.display()
        );
        return Ok(Some(binary));
    }
    let known = Command::new("git")
        .args([
            "cat-file",
            "-e",
            &format!("{PREVIOUS_ABI_COMMIT}^{{commit}}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !known {
        eprintln!(
            "\nWARNING: commit {PREVIOUS_ABI_COMMIT} (the previous map ABI) is not in this \
             tree's git history: the upgrade-across-layouts test will SKIP"
        );
        return Ok(None);
    }
    let src = dir.join("src");
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    step(
        "unpacking the previous map ABI's sources",
        Command::new("sh").args([
            "-c",
            &format!(
                "git archive {PREVIOUS_ABI_COMMIT} | tar -x -C '{}'",
                src.display()
            ),
        ]),
    )?;
    let build_dir = absolute(&dir.join("target"))?;
    step(
        "building the previous map ABI's enforcer",
        cargo()
            .current_dir(&src)
            .args(["build", "-p", "enforcer"])
            .env("CARGO_TARGET_DIR", &build_dir)
            .env("CARGO_INCREMENTAL", "0"),
    )?;
    let built = build_dir.join("debug/enforcer");
    ensure!(built.is_file(), "{} was not built", built.display());
    fs::copy(&built, &binary).with_context(|| format!("copying {}", built.display()))?;
    fs::write(&stamp, PREVIOUS_ABI_COMMIT)?;
    // Only the binary is kept: the build tree is over a GiB.
    let _ = fs::remove_dir_all(&build_dir);
    let _ = fs::remove_dir_all(&src);
    Ok(Some(binary))
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_dir()?.join(p))
}
