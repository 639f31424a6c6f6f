//! Names of the syscalls that `SYSCALL`, `SIGNAL` and `PTRACE` events report, and why each was
//! refused.
use enforcer_common::cross_op;

/// The name of a syscall number of this architecture that `SYSCALL` events report, and why
/// it was refused.
pub fn refused_syscall(nr: u32) -> (&'static str, &'static str) {
    let userns = "new user namespaces are refused to tasks (seccomp; policy.allow_user_namespaces)";
    let keyrings = "the kernel keyrings are refused to tasks (seccomp): the user keyring is \
                    shared by every process of the uid";
    let caps = "the task holds no capabilities (refused by the kernel)";
    let names = "a change of names refused by Landlock (EACCES; EXDEV for a link or rename that \
                 would give a file access its own path lacks) or by the kernel's permission \
                 checks; fallback mode reports it without the path";
    let xattr = "extended attributes (ACLs included) are read-only to tasks (seccomp): no \
                 policy right covers them";
    #[cfg(target_arch = "x86_64")]
    let name = match nr {
        272 => ("unshare", userns),
        56 => ("clone", userns),
        248 => ("add_key", keyrings),
        249 => ("request_key", keyrings),
        250 => ("keyctl", keyrings),
        321 => ("bpf", caps),
        304 => ("open_by_handle_at", caps),
        188 => ("setxattr", xattr),
        189 => ("lsetxattr", xattr),
        190 => ("fsetxattr", xattr),
        197 => ("removexattr", xattr),
        198 => ("lremovexattr", xattr),
        199 => ("fremovexattr", xattr),
        86 => ("link", names),
        265 => ("linkat", names),
        82 => ("rename", names),
        264 => ("renameat", names),
        316 => ("renameat2", names),
        76 => ("truncate", names),
        87 => ("unlink", names),
        263 => ("unlinkat", names),
        83 => ("mkdir", names),
        258 => ("mkdirat", names),
        84 => ("rmdir", names),
        88 => ("symlink", names),
        266 => ("symlinkat", names),
        259 => ("mknodat", names),
        _ => ("unknown", "refused"),
    };
    #[cfg(target_arch = "aarch64")]
    let name = match nr {
        97 => ("unshare", userns),
        220 => ("clone", userns),
        217 => ("add_key", keyrings),
        218 => ("request_key", keyrings),
        219 => ("keyctl", keyrings),
        280 => ("bpf", caps),
        265 => ("open_by_handle_at", caps),
        5 => ("setxattr", xattr),
        6 => ("lsetxattr", xattr),
        7 => ("fsetxattr", xattr),
        14 => ("removexattr", xattr),
        15 => ("lremovexattr", xattr),
        16 => ("fremovexattr", xattr),
        37 => ("linkat", names),
        38 => ("renameat", names),
        276 => ("renameat2", names),
        45 => ("truncate", names),
        35 => ("unlinkat", names),
        34 => ("mkdirat", names),
        36 => ("symlinkat", names),
        33 => ("mknodat", names),
        _ => ("unknown", "refused"),
    };
    name
}

/// A refused cross-process syscall: its `cross_op`, name, and whether it names a pidfd.
pub fn cross_op_name(op: u32) -> (u32, &'static str, bool) {
    let (name, by_fd) = match op {
        cross_op::KILL => ("kill", false),
        cross_op::TKILL => ("tkill", false),
        cross_op::TGKILL => ("tgkill", false),
        cross_op::PIDFD_SEND_SIGNAL => ("pidfd_send_signal", true),
        cross_op::RT_SIGQUEUEINFO => ("rt_sigqueueinfo", false),
        cross_op::PTRACE => ("ptrace", false),
        cross_op::PIDFD_GETFD => ("pidfd_getfd", true),
        cross_op::PROCESS_VM_READV => ("process_vm_readv", false),
        cross_op::PROCESS_VM_WRITEV => ("process_vm_writev", false),
        // Refused by the lsm hook outside those syscalls: /proc/<pid>/environ, mem, ...
        _ => ("access check (e.g. /proc/<pid>/environ)", false),
    };
    (op, name, by_fd)
}
