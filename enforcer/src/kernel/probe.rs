//! What this kernel can do, probed at start, and the pseudo-filesystems the enforcer needs.
use std::{ffi::CString, path::Path};

use enforcer_common::KernelOffsets;

use super::{btf, cgroup, landlock};
use crate::policy::explain::Support;

/// The results of probing the running kernel.
#[derive(Debug)]
pub struct Probe {
    pub landlock_abi: u32,
    pub offsets: Result<KernelOffsets, String>,
    /// `bpf` appears in the active LSM list.
    pub bpf_lsm_listed: bool,
    pub cgroup2: Result<std::path::PathBuf, String>,
    pub kernel_release: String,
}

impl Probe {
    pub fn run() -> Self {
        let _ = ensure_mounted(
            "securityfs",
            "/sys/kernel/security",
            "/sys/kernel/security/lsm",
        );
        let bpf_lsm_listed = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map(|s| s.trim().split(',').any(|l| l == "bpf"))
            .unwrap_or(false);
        Self {
            landlock_abi: landlock::abi_version(),
            offsets: btf::running_kernel_offsets(),
            bpf_lsm_listed,
            cgroup2: cgroup::cgroup2_mount().map_err(|e| e.to_string()),
            kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    /// What the policy explainer needs. This build enforces files and exec in fallback mode
    /// (the BPF LSM mode is a separate issue), so `bpf_lsm` is false even where it is listed.
    pub fn support(&self) -> Support {
        Support {
            bpf_lsm: false,
            landlock_abi: self.landlock_abi,
            identity_checks: self.offsets.is_ok(),
        }
    }
}

/// Mounts `fstype` at `target` unless `witness` already exists.
pub fn ensure_mounted(fstype: &str, target: &str, witness: &str) -> Result<(), String> {
    if Path::new(witness).exists() {
        return Ok(());
    }
    let c = |s: &str| CString::new(s).map_err(|e| e.to_string());
    let (src, tgt, ty) = (c(fstype)?, c(target)?, c(fstype)?);
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(format!(
            "cannot mount {fstype} at {target}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Tracepoints need tracefs; a fresh machine may not have it mounted.
pub fn ensure_tracefs() -> Result<(), String> {
    if Path::new("/sys/kernel/debug/tracing/events/syscalls").exists() {
        return Ok(());
    }
    ensure_mounted(
        "tracefs",
        "/sys/kernel/tracing",
        "/sys/kernel/tracing/events/syscalls",
    )
}

pub fn is_root() -> bool {
    // SAFETY: trivial syscall.
    unsafe { libc::geteuid() == 0 }
}
