//! What this kernel can do, probed at start, and the pseudo-filesystems the enforcer needs.
use std::{ffi::CString, path::Path};

use enforcer_common::KernelOffsets;

use super::{btf, cgroup, landlock};
use crate::policy::explain::Support;

/// How files and exec are to be enforced: as the kernel allows (`auto`), or one mode forced
/// (`ENFORCER_MODE` or `--mode`), so both modes can be tested on one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeRequest {
    Auto,
    Lsm,
    Fallback,
}

/// The environment variable that forces a mode.
pub const MODE_ENV: &str = "ENFORCER_MODE";

impl ModeRequest {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "" => Ok(Self::Auto),
            "lsm" => Ok(Self::Lsm),
            "fallback" => Ok(Self::Fallback),
            other => Err(format!(
                "unknown enforcement mode \"{other}\"; expected auto, lsm or fallback"
            )),
        }
    }

    /// From `ENFORCER_MODE` (auto when unset).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(MODE_ENV) {
            Ok(v) => Self::parse(v.trim()).map_err(|e| format!("{MODE_ENV}: {e}")),
            Err(_) => Ok(Self::Auto),
        }
    }
}

/// The results of probing the running kernel.
#[derive(Clone, Debug)]
pub struct Probe {
    pub landlock_abi: u32,
    pub offsets: Result<KernelOffsets, String>,
    /// `bpf` appears in the active LSM list.
    pub bpf_lsm_listed: bool,
    /// Whether a trivial BPF LSM program loads (and if not, why).
    pub bpf_lsm: Result<(), String>,
    pub requested: ModeRequest,
    pub cgroup2: Result<std::path::PathBuf, String>,
    /// The cgroup2 mount has `nsdelegate`: a task's cgroup namespace is a boundary.
    pub cgroup_nsdelegate: bool,
    pub kernel_release: String,
}

impl Probe {
    pub fn run(requested: ModeRequest) -> Self {
        let _ = ensure_mounted(
            "securityfs",
            "/sys/kernel/security",
            "/sys/kernel/security/lsm",
        );
        let lsm_list = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
        let bpf_lsm_listed = lsm_list.trim().split(',').any(|l| l == "bpf");
        let offsets = btf::running_kernel_offsets();
        let bpf_lsm = if !bpf_lsm_listed {
            Err(format!(
                "bpf is not in the kernel's active LSM list (/sys/kernel/security/lsm: \"{}\"); \
                 boot with lsm=...,bpf",
                lsm_list.trim()
            ))
        } else if requested == ModeRequest::Fallback {
            Err(format!("{MODE_ENV}=fallback or --mode fallback"))
        } else {
            lsm_load_probe().and_then(|()| offsets.clone().map(|_| ()))
        };
        Self {
            landlock_abi: landlock::abi_version(),
            offsets,
            bpf_lsm_listed,
            bpf_lsm,
            requested,
            cgroup2: cgroup::cgroup2_mount().map_err(|e| e.to_string()),
            cgroup_nsdelegate: cgroup::cgroup2_nsdelegate(),
            kernel_release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }

    /// Files and exec are enforced by the BPF LSM hooks.
    pub fn lsm_mode(&self) -> bool {
        self.requested != ModeRequest::Fallback && self.bpf_lsm.is_ok()
    }

    /// An error when the requested mode cannot be had on this kernel.
    pub fn check_requested(&self) -> Result<(), String> {
        match (&self.requested, &self.bpf_lsm) {
            (ModeRequest::Lsm, Err(why)) => Err(format!(
                "the lsm enforcement mode was requested but is not available: {why}"
            )),
            _ => Ok(()),
        }
    }

    /// Why the fallback mode is used, when it is.
    pub fn fallback_reason(&self) -> Option<String> {
        if self.lsm_mode() {
            return None;
        }
        Some(match &self.bpf_lsm {
            Err(why) => why.clone(),
            Ok(()) => format!("{MODE_ENV}=fallback or --mode fallback"),
        })
    }

    /// What the policy explainer needs.
    pub fn support(&self) -> Support {
        Support {
            bpf_lsm: self.lsm_mode(),
            landlock_abi: self.landlock_abi,
            identity_checks: self.offsets.is_ok(),
            cgroup_nsdelegate: self.cgroup_nsdelegate,
        }
    }
}

/// Loads (and at once unloads) a two-instruction BPF LSM program on `file_open`: the kernel's
/// own answer to "may this process use the BPF LSM here?" (some kernels list `bpf` yet refuse
/// the load, e.g. when LSM trampolines are restricted).
pub fn lsm_load_probe() -> Result<(), String> {
    let path = "/sys/kernel/btf/vmlinux";
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let btf = btf::Btf::parse(&data).map_err(|e| format!("{path}: {e}"))?;
    let attach_btf_id = btf
        .func_id("bpf_lsm_file_open")
        .ok_or("the kernel's BTF has no bpf_lsm_file_open (CONFIG_BPF_LSM is off)")?;
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    let mut put = |at: usize, v: &[u8]| attr[at..at + v.len()].copy_from_slice(v);
    const BPF_PROG_TYPE_LSM: u32 = 29;
    const BPF_LSM_MAC: u32 = 27;
    put(0, &BPF_PROG_TYPE_LSM.to_ne_bytes());
    put(4, &2u32.to_ne_bytes());
    put(8, &(insns.as_ptr() as u64).to_ne_bytes());
    put(16, &(license.as_ptr() as u64).to_ne_bytes());
    put(48, b"enforcer_probe\0");
    put(68, &BPF_LSM_MAC.to_ne_bytes());
    put(108, &attach_btf_id.to_ne_bytes());
    const BPF_PROG_LOAD: libc::c_long = 5;
    // SAFETY: attr is a valid bpf_attr for BPF_PROG_LOAD; insns and license outlive the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "bpf is in the active LSM list, but this kernel refuses to load a BPF LSM program \
             ({e})"
        ));
    }
    // SAFETY: a program fd we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
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
