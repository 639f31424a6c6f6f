//! Builds the eBPF programs (enforcer-ebpf) with aya-build and leaves the object in OUT_DIR.
//!
//! With AYA_BUILD_SKIP=1 (e.g. for clippy on a machine without bpf-linker) an empty object is
//! written instead; the binary then refuses to load it with a clear error.
use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

const EBPF_PACKAGE: &str = "enforcer-ebpf";
const EBPF_BIN: &str = "enforcer-programs";

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").ok_or_else(|| anyhow!("CARGO_MANIFEST_DIR not set"))?,
    );
    let ebpf_dir = manifest_dir
        .parent()
        .ok_or_else(|| anyhow!("no workspace directory above {}", manifest_dir.display()))?
        .join(EBPF_PACKAGE);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(out_dir.join(EBPF_BIN), b"").context("writing the empty eBPF stub")?;
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the eBPF programs (run scripts/setup.sh if bpf-linker or rust-src is missing)",
    )
}
