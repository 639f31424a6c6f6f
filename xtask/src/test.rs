//! The whole suite: formatting, lints (userspace and eBPF), unit tests, and the privileged
//! integration tests, one test at a time (they share kernel state: cgroups, programs).
use crate::{cargo, is_root, step};

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
        cargo()
            .current_dir("enforcer-ebpf")
            .args([
                "+nightly",
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
    step(
        "unit and integration tests (one at a time)",
        cargo().args(["test", "--", "--test-threads=1"]),
    )?;
    Ok(())
}
