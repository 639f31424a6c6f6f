//! Loading and attaching the kernel programs.
pub mod maps;

use std::os::fd::AsFd;

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupAttachMode, CgroupSockAddr, TracePoint},
};
use enforcer_common::{KERNEL_OFFSETS_GLOBAL, KernelOffsets};

/// The eBPF object built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/enforcer-programs"));

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error(
        "this enforcer binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild \
         without it"
    )]
    NoObject,
    #[error("loading the eBPF object: {}", chain(.0))]
    Load(#[from] aya::EbpfError),
    #[error("program {name}: {}", chain(source))]
    Program {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("the eBPF object has no program {0}")]
    Missing(&'static str),
    #[error("map {name}: {}", chain(source))]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
}

/// An error with every cause behind it: "a: b: c".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Tracepoints and the program attached to each. The exit programs are shared.
pub const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_openat", "syscalls", "sys_enter_openat"),
    ("sys_enter_openat2", "syscalls", "sys_enter_openat2"),
    ("sys_enter_open", "syscalls", "sys_enter_open"),
    ("sys_enter_creat", "syscalls", "sys_enter_creat"),
    ("sys_exit_open", "syscalls", "sys_exit_openat"),
    ("sys_exit_open", "syscalls", "sys_exit_openat2"),
    ("sys_exit_open", "syscalls", "sys_exit_open"),
    ("sys_exit_open", "syscalls", "sys_exit_creat"),
    ("sys_enter_execve", "syscalls", "sys_enter_execve"),
    ("sys_enter_execveat", "syscalls", "sys_enter_execveat"),
    ("sys_exit_exec", "syscalls", "sys_exit_execve"),
    ("sys_exit_exec", "syscalls", "sys_exit_execveat"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    (
        "sys_exit_io_uring_setup",
        "syscalls",
        "sys_exit_io_uring_setup",
    ),
];

/// The cgroup programs, attached to each task's cgroup.
pub const CGROUP_PROGRAMS: &[&str] = &["connect4", "connect6", "sendmsg4", "sendmsg6"];

/// Loads the object with the kernel offsets (zeroed when unknown: identity checks then do
/// nothing, which the caller has already reported).
pub fn load(offsets: Option<KernelOffsets>) -> Result<Ebpf, BpfError> {
    if OBJECT.is_empty() {
        return Err(BpfError::NoObject);
    }
    raise_memlock();
    let offsets = offsets.unwrap_or_default();
    let ebpf = EbpfLoader::new()
        .override_global(KERNEL_OFFSETS_GLOBAL, &offsets, true)
        .load(OBJECT)?;
    Ok(ebpf)
}

/// Loads and attaches every tracepoint program (once each, attached to all its tracepoints).
pub fn attach_tracepoints(ebpf: &mut Ebpf) -> Result<(), BpfError> {
    let mut loaded: Vec<&str> = Vec::new();
    for (name, category, event) in TRACEPOINTS {
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(BpfError::Missing(name))?
            .try_into()
            .map_err(|source| BpfError::Program { name, source })?;
        if !loaded.contains(name) {
            program
                .load()
                .map_err(|source| BpfError::Program { name, source })?;
            loaded.push(name);
        }
        program
            .attach(category, event)
            .map_err(|source| BpfError::Program { name, source })?;
    }
    Ok(())
}

/// Loads the cgroup programs (once).
pub fn load_cgroup_programs(ebpf: &mut Ebpf) -> Result<(), BpfError> {
    for name in CGROUP_PROGRAMS {
        let program: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or(BpfError::Missing(name))?
            .try_into()
            .map_err(|source| BpfError::Program { name, source })?;
        program
            .load()
            .map_err(|source| BpfError::Program { name, source })?;
    }
    Ok(())
}

/// Attaches the cgroup programs to one task cgroup. The links stay with `ebpf`; the kernel
/// releases them when the cgroup is removed.
pub fn attach_cgroup(ebpf: &mut Ebpf, cgroup: impl AsFd) -> Result<(), BpfError> {
    for name in CGROUP_PROGRAMS {
        let program: &mut CgroupSockAddr = ebpf
            .program_mut(name)
            .ok_or(BpfError::Missing(name))?
            .try_into()
            .map_err(|source| BpfError::Program { name, source })?;
        // On kernels with cgroup bpf_links (5.7+) aya attaches through a link, whose flags must
        // be 0 (`Single`); a link coexists with other programs on the cgroup regardless.
        program
            .attach(cgroup.as_fd(), CgroupAttachMode::Single)
            .map_err(|source| BpfError::Program { name, source })?;
    }
    Ok(())
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
fn raise_memlock() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain setrlimit; failure only matters on old kernels, where load then fails loudly.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
}
