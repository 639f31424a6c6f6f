//! Loading and attaching the kernel programs.
pub mod contents;
pub mod convert;
pub mod maps;
pub mod pin;
pub mod table;

use std::os::fd::AsFd;

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupAttachMode, CgroupSockAddr, Lsm, TracePoint, links::FdLink},
};
use enforcer_common::{KERNEL_OFFSETS_GLOBAL, KernelOffsets, ROOT_CGROUP_GLOBAL, RootCgroup};

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
    #[error("map {name} is not laid out as this build's table says: {detail}")]
    Layout { name: &'static str, detail: String },
    #[error("reading the kernel's BTF for the LSM hooks: {0}")]
    Btf(String),
    #[error("program {name}: its link cannot be pinned: {detail}")]
    Link { name: String, detail: String },
}

/// Where attach functions put their links to be pinned (the daemon); `None` leaves them with
/// the `Ebpf` (standalone runs, whose programs go when they exit).
pub type Links<'a> = Option<&'a mut Vec<(String, FdLink)>>;

fn keep<L>(links: &mut Links<'_>, name: String, link: L) -> Result<(), BpfError>
where
    FdLink: TryFrom<L>,
    <FdLink as TryFrom<L>>::Error: std::error::Error,
{
    if let Some(out) = links.as_deref_mut() {
        let fd = FdLink::try_from(link).map_err(|e| BpfError::Link {
            name: name.clone(),
            detail: chain(&e),
        })?;
        out.push((name, fd));
    }
    Ok(())
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

/// The embedded eBPF object (its hash tells a daemon whether pinned programs are its own).
pub fn object() -> &'static [u8] {
    OBJECT
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
    ("sched_process_exit", "sched", "sched_process_exit"),
    (
        "sys_exit_io_uring_setup",
        "syscalls",
        "sys_exit_io_uring_setup",
    ),
    ("sys_enter_kill", "syscalls", "sys_enter_kill"),
    ("sys_enter_tkill", "syscalls", "sys_enter_tkill"),
    ("sys_enter_tgkill", "syscalls", "sys_enter_tgkill"),
    (
        "sys_enter_pidfd_send_signal",
        "syscalls",
        "sys_enter_pidfd_send_signal",
    ),
    (
        "sys_enter_rt_sigqueueinfo",
        "syscalls",
        "sys_enter_rt_sigqueueinfo",
    ),
    ("sys_enter_ptrace", "syscalls", "sys_enter_ptrace"),
    ("sys_enter_pidfd_getfd", "syscalls", "sys_enter_pidfd_getfd"),
    (
        "sys_enter_process_vm_readv",
        "syscalls",
        "sys_enter_process_vm_readv",
    ),
    (
        "sys_enter_process_vm_writev",
        "syscalls",
        "sys_enter_process_vm_writev",
    ),
    ("sys_exit_cross", "syscalls", "sys_exit_kill"),
    ("sys_exit_cross", "syscalls", "sys_exit_tkill"),
    ("sys_exit_cross", "syscalls", "sys_exit_tgkill"),
    ("sys_exit_cross", "syscalls", "sys_exit_pidfd_send_signal"),
    ("sys_exit_cross", "syscalls", "sys_exit_rt_sigqueueinfo"),
    ("sys_exit_cross", "syscalls", "sys_exit_ptrace"),
    ("sys_exit_cross", "syscalls", "sys_exit_pidfd_getfd"),
    ("sys_exit_cross", "syscalls", "sys_exit_process_vm_readv"),
    ("sys_exit_cross", "syscalls", "sys_exit_process_vm_writev"),
    ("sys_exit_socket", "syscalls", "sys_exit_socket"),
    ("sys_exit_refused", "syscalls", "sys_exit_unshare"),
    ("sys_exit_refused", "syscalls", "sys_exit_clone"),
    ("sys_exit_refused", "syscalls", "sys_exit_keyctl"),
    ("sys_exit_refused", "syscalls", "sys_exit_add_key"),
    ("sys_exit_refused", "syscalls", "sys_exit_request_key"),
    ("sys_exit_refused", "syscalls", "sys_exit_bpf"),
    ("sys_exit_refused", "syscalls", "sys_exit_open_by_handle_at"),
    ("sys_exit_refused", "syscalls", "sys_exit_setxattr"),
    ("sys_exit_refused", "syscalls", "sys_exit_lsetxattr"),
    ("sys_exit_refused", "syscalls", "sys_exit_fsetxattr"),
    ("sys_exit_refused", "syscalls", "sys_exit_removexattr"),
    ("sys_exit_refused", "syscalls", "sys_exit_lremovexattr"),
    ("sys_exit_refused", "syscalls", "sys_exit_fremovexattr"),
    // Fallback mode only: changes of names Landlock refused (lsm mode: the path hooks).
    ("sys_exit_name_refused", "syscalls", "sys_exit_link"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_linkat"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_rename"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_renameat"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_renameat2"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_truncate"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_unlink"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_unlinkat"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_mkdir"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_mkdirat"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_rmdir"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_symlink"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_symlinkat"),
    ("sys_exit_name_refused", "syscalls", "sys_exit_mknodat"),
    // Fallback mode only: a listen no rule allows (lsm mode refuses it in socket_listen).
    ("sock_listen", "sock", "inet_sock_set_state"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept4"),
];

/// The programs that report refused signals and traces of other processes, and refused
/// sockets, in both modes.
const CROSS_PROCESS_TRACEPOINTS: &[&str] = &[
    "sys_enter_kill",
    "sys_enter_tkill",
    "sys_enter_tgkill",
    "sys_enter_pidfd_send_signal",
    "sys_enter_rt_sigqueueinfo",
    "sys_enter_ptrace",
    "sys_enter_pidfd_getfd",
    "sys_enter_process_vm_readv",
    "sys_enter_process_vm_writev",
    "sys_exit_cross",
    "sys_exit_socket",
    "sys_exit_refused",
];

/// The tracepoints still needed in lsm mode, where the LSM hooks decide and report opens and
/// execs: counting execs (max_execs), reporting each program a task runs, a task command's exit
/// status, and io_uring refusals.
pub const LSM_MODE_TRACEPOINTS: &[&str] = &[
    "sys_enter_execve",
    "sys_enter_execveat",
    "sched_process_exec",
    "sched_process_exit",
    "sys_exit_io_uring_setup",
];

/// Loads and attaches every BPF LSM program (lsm mode). They stay attached while `ebpf` is
/// alive; a process outside every task leaves each hook after one cgroup compare.
pub fn attach_lsm(ebpf: &mut Ebpf, mut links: Links<'_>) -> Result<(), BpfError> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| BpfError::Btf(chain(&e)))?;
    let trace = std::env::var_os("ENFORCER_TRACE_LOAD").is_some();
    let required = enforcer_common::LSM_PROGRAMS.iter().map(|p| (p, true));
    let optional = enforcer_common::OPTIONAL_LSM_PROGRAMS
        .iter()
        .map(|p| (p, false));
    for ((name, hook), needed) in required.chain(optional) {
        let t = std::time::Instant::now();
        let program: &mut Lsm = program(ebpf, name)?;
        match program.load(hook, &btf) {
            Ok(()) => {}
            // A kernel without the hook has no `bpf_lsm_<hook>` in its BTF: an optional
            // program is then left out (what covers the same ground is attached anyway).
            Err(aya::programs::ProgramError::Btf(_)) if !needed => continue,
            Err(e) => return Err(program_err(name)(e)),
        }
        let id = program.attach().map_err(program_err(name))?;
        if links.is_some() {
            let link = program.take_link(id).map_err(program_err(name))?;
            keep(&mut links, format!("lsm-{hook}"), link)?;
        }
        if trace {
            let insns = program
                .info()
                .ok()
                .and_then(|i| i.verified_instruction_count())
                .unwrap_or(0);
            eprintln!(
                "enforcer: {name}: {insns} insns verified, {:?}",
                t.elapsed()
            );
        }
    }
    Ok(())
}

/// A load error in one line: what failed and the verifier's verdict (the line before its
/// statistics), not its whole log.
pub fn brief_load_error(e: &str) -> String {
    let Some((head, log)) = e.split_once("Verifier output:") else {
        return e.lines().next().unwrap_or("").to_owned();
    };
    let verdict = log
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("verification time"))
        .filter(|l| !l.is_empty())
        .last()
        .unwrap_or("");
    format!("{} verifier: {verdict}", head.trim_end())
}

/// The cgroup programs, attached to each task's cgroup.
pub const CGROUP_PROGRAMS: &[&str] = &[
    "connect4", "connect6", "sendmsg4", "sendmsg6", "bind4", "bind6",
];

/// Loads the object with the kernel offsets (zeroed when unknown: identity checks then do
/// nothing, which the caller has already reported).
/// `ring_bytes` overrides the size of the event ring (a power of two, a multiple of the page
/// size); tests and the benchmark use a small one to force overflows.
pub fn load(
    offsets: Option<KernelOffsets>,
    root: Option<RootCgroup>,
    ring_bytes: Option<u32>,
) -> Result<Ebpf, BpfError> {
    if OBJECT.is_empty() {
        return Err(BpfError::NoObject);
    }
    raise_memlock();
    let offsets = offsets.unwrap_or_default();
    let root = root.unwrap_or_default();
    let mut loader = EbpfLoader::new();
    loader.override_global(KERNEL_OFFSETS_GLOBAL, &offsets, true);
    loader.override_global(ROOT_CGROUP_GLOBAL, &root, true);
    if let Some(bytes) = ring_bytes {
        loader.map_max_entries(enforcer_common::map_names::EVENTS, bytes);
    }
    let ebpf = loader.load(OBJECT)?;
    table::check_loaded(&ebpf, ring_bytes)?;
    Ok(ebpf)
}

/// Per program: verified instructions, JIT size, and (when `kernel.bpf_stats_enabled` is on)
/// how often it ran and for how long.
pub fn program_stats(ebpf: &Ebpf) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, program) in ebpf.programs() {
        let Ok(info) = program.info() else { continue };
        let runs = info.run_count();
        let ns = info.run_time().as_nanos() as u64;
        out.insert(
            name.to_owned(),
            serde_json::json!({
                "verified_insns": info.verified_instruction_count(),
                "jited_bytes": info.size_jitted(),
                "run_cnt": runs,
                "run_time_ns": ns,
                "avg_ns": ns.checked_div(runs).unwrap_or(0),
            }),
        );
    }
    serde_json::Value::Object(out)
}

/// Loads and attaches the tracepoint programs (once each, attached to all its tracepoints):
/// all of them in fallback mode, [`LSM_MODE_TRACEPOINTS`] in lsm mode.
pub fn attach_tracepoints(
    ebpf: &mut Ebpf,
    lsm_mode: bool,
    mut links: Links<'_>,
) -> Result<(), BpfError> {
    let mut loaded: Vec<&str> = Vec::new();
    for (name, category, event) in TRACEPOINTS {
        if lsm_mode
            && !LSM_MODE_TRACEPOINTS.contains(name)
            && !CROSS_PROCESS_TRACEPOINTS.contains(name)
        {
            continue;
        }
        let program: &mut TracePoint = program(ebpf, name)?;
        if !loaded.contains(name) {
            program.load().map_err(program_err(name))?;
            loaded.push(name);
        }
        let id = program.attach(category, event).map_err(program_err(name))?;
        if links.is_some() {
            let link = program.take_link(id).map_err(program_err(name))?;
            keep(&mut links, format!("tp-{event}"), link)?;
        }
    }
    Ok(())
}

/// Loads the cgroup programs (once).
pub fn load_cgroup_programs(ebpf: &mut Ebpf) -> Result<(), BpfError> {
    for name in CGROUP_PROGRAMS {
        let program: &mut CgroupSockAddr = program(ebpf, name)?;
        program.load().map_err(program_err(name))?;
    }
    Ok(())
}

/// Attaches the cgroup programs to one task cgroup. The links stay with `ebpf`; the kernel
/// releases them when the cgroup is removed.
pub fn attach_cgroup(
    ebpf: &mut Ebpf,
    cgroup: impl AsFd,
    mut links: Links<'_>,
) -> Result<(), BpfError> {
    for name in CGROUP_PROGRAMS {
        let program: &mut CgroupSockAddr = program(ebpf, name)?;
        // On kernels with cgroup bpf_links (5.7+) aya attaches through a link, whose flags must
        // be 0 (`Single`); a link coexists with other programs on the cgroup regardless.
        let id = program
            .attach(cgroup.as_fd(), CgroupAttachMode::Single)
            .map_err(program_err(name))?;
        if links.is_some() {
            let link = program.take_link(id).map_err(program_err(name))?;
            keep(&mut links, format!("cgroup-{name}"), link)?;
        }
    }
    Ok(())
}

/// The program `name`, as its concrete type.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(BpfError::Missing(name))?
        .try_into()
        .map_err(program_err(name))
}

fn program_err(name: &'static str) -> impl Fn(aya::programs::ProgramError) -> BpfError {
    move |source| BpfError::Program { name, source }
}

/// Lets the kernel detach and unload the programs after this process has exited. Closing a
/// tracepoint's perf event waits for RCU grace periods (about 70 ms each on the build machines,
/// a second for all of them), and nothing is left for them to enforce: the task's cgroup and map
/// entries are gone. A forked child holds the last references, with stdio on /dev/null so no
/// reader waits for it, until this process is gone (its parent changes only after our files
/// are closed); then its own exit does the slow closes, which nobody waits for.
pub fn release_in_background(ebpf: Ebpf) {
    // SAFETY: the child only calls async-signal-safe functions (open, dup2, setsid, getppid,
    // nanosleep, _exit).
    unsafe {
        let parent = libc::getpid();
        if libc::fork() == 0 {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            libc::setsid();
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            for _ in 0..10_000 {
                if libc::getppid() != parent {
                    break;
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
            libc::_exit(0);
        }
    }
    // Dropping would close each fd (only a reference count now) but aya may also detach
    // explicitly; leave the fds to the kernel at exit instead.
    std::mem::forget(ebpf);
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

#[cfg(test)]
mod tests {
    use super::brief_load_error;

    #[test]
    fn a_load_error_is_cut_to_the_verifiers_verdict() {
        let e = "program lsm_x: the BPF_PROG_LOAD syscall returned Permission denied (os error \
                 13). Verifier output: 0: R1=ctx()\n1: (79) r6 = *(u64 *)(r1 +8)\nR1 unbounded \
                 memory access\nverification time 41 usec\nstack depth 8\n";
        assert_eq!(
            brief_load_error(e),
            "program lsm_x: the BPF_PROG_LOAD syscall returned Permission denied (os error 13). \
             verifier: R1 unbounded memory access"
        );
        assert_eq!(brief_load_error("no such program\nmore"), "no such program");
    }
}
