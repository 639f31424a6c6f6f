//! The whole suite: formatting, lints (userspace and eBPF), unit tests, and the privileged
//! integration tests, one test at a time (they share kernel state: cgroups, programs).
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{cargo, count, is_root, step};

pub fn run() -> anyhow::Result<()> {
    if !is_root() {
        eprintln!(
            "WARNING: not root: the privileged integration tests will SKIP (each says so). \
             Run scripts/test.sh as root for the real thing."
        );
    }
    step(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy (userspace, tests, xtask)",
        cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]),
    )?;
    step(
        "clippy (eBPF programs, bpfel-unknown-none)",
        // Through rustup: $CARGO is the stable cargo binary itself, which knows no `+nightly`.
        Command::new("rustup")
            .current_dir("enforcer-ebpf")
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ])
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .env_remove("RUSTC"),
    )?;
    step("build", cargo().args(["build", "--all-targets"]))?;
    // The previous map ABI's daemon, for the upgrade-across-layouts test.
    crate::prev::build()?;
    let host = tests()?;
    // The same suite in QEMU guests on Debian's 6.1 and 6.12 kernels.
    let guests = crate::vm::run(&[])?;
    // The Debian package, from the static build the guests just used.
    let deb = crate::deb::build()?;
    crate::deb::check(&deb)?;
    println!(
        "\ntotal: {} passed, {} failed, {} skipped",
        host.0 + guests.0,
        host.1 + guests.1,
        host.2 + guests.2
    );
    Ok(())
}

/// Runs the tests one at a time, passing their output through, and closes with one line that
/// counts them: skipped tests (which say `SKIP <name>: <why>`) are not counted as passed.
fn tests() -> anyhow::Result<(u64, u64, u64)> {
    eprintln!("\n==> unit and integration tests (one at a time)");
    let mut child = cargo()
        .args(["test", "--", "--test-threads=1", "--show-output"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            passed += count(result, "passed");
            failed += count(result, "failed");
        }
        if line.starts_with("SKIP ") {
            skipped += 1;
        }
    }
    let status = child.wait()?;
    let passed = passed.saturating_sub(skipped);
    println!("\nhost: {passed} passed, {failed} failed, {skipped} skipped");
    if !status.success() || failed > 0 {
        bail!("tests failed ({status})");
    }
    Ok((passed, failed, skipped))
}
