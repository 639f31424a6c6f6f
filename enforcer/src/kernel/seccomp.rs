//! The classic-BPF seccomp filter every task runs under:
//! - Only the native syscall ABI: a 64-bit process can still make 32-bit (`int 0x80`) or x32
//!   syscalls, which the per-syscall tracepoints of the fallback mode never see (the kernel
//!   does not trace compat syscalls there); they answer ENOSYS.
//! - `clone3` answers ENOSYS: its `CLONE_INTO_CGROUP` starts a child straight in another cgroup
//!   (an `O_PATH` descriptor of the target is enough), outside every envelope, and seccomp
//!   cannot read the flags, which clone3 passes in memory. C libraries fall back to `clone`,
//!   which cannot choose a cgroup. Container runtimes refuse clone3 the same way.
//! - `socket` is refused for ICMP ("ping" sockets, EPERM: they carry any payload to any address
//!   and no sock_addr program sees their sends) and for every address family but unix, inet,
//!   inet6 and netlink (EAFNOSUPPORT: vsock, packet, bluetooth, ... are seen by no hook).
//! - io_uring answers EPERM unless the policy allows it: the syscall tracepoints of the
//!   fallback mode cannot see operations submitted through a ring.
//! - New user namespaces (`unshare` or `clone` with CLONE_NEWUSER) answer EPERM unless the
//!   policy allows them: inside one a task holds every capability over what it creates
//!   (mounts, chroot, network namespaces), the kernel's largest attack surface for it.
//! - The kernel keyrings (`keyctl`, `add_key`, `request_key`) answer EPERM: the user keyring
//!   is shared by every process of the uid, inside the task or not.

/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on every architecture
/// (they postdate the unified syscall table).
const IO_URING: [u32; 3] = [425, 426, 427];
/// clone3, from the unified table too.
const CLONE3: u32 = 435;
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const SOCKET: u32 = 41;
    pub const CLONE: u32 = 56;
    pub const UNSHARE: u32 = 272;
    pub const KEYRINGS: [u32; 3] = [248, 249, 250]; // add_key, request_key, keyctl
    /// setxattr, lsetxattr, fsetxattr, removexattr, lremovexattr, fremovexattr,
    /// setxattrat, removexattrat (6.13).
    pub const XATTR_WRITES: [u32; 8] = [188, 189, 190, 197, 198, 199, 463, 466];
    /// shmget, shmat, shmctl, semget, semop, semctl, msgget, msgsnd, msgrcv, msgctl,
    /// semtimedop.
    pub const SYSV_IPC: [u32; 11] = [29, 30, 31, 64, 65, 66, 68, 69, 70, 71, 220];
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const SOCKET: u32 = 198;
    pub const CLONE: u32 = 220;
    pub const UNSHARE: u32 = 97;
    pub const KEYRINGS: [u32; 3] = [217, 218, 219];
    pub const XATTR_WRITES: [u32; 8] = [5, 6, 7, 14, 15, 16, 463, 466];
    pub const SYSV_IPC: [u32; 11] = [186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196];
}
use nr::SOCKET;
const CLONE_NEWUSER: u32 = libc::CLONE_NEWUSER as u32;

/// What the filter refuses beyond what it always refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refuse {
    pub io_uring: bool,
    pub user_namespaces: bool,
    /// System V IPC, where the task could not get a private IPC namespace (a daemon client
    /// without root): its segments, queues and semaphores are shared by every process of the
    /// uid.
    pub sysv_ipc: bool,
}
#[cfg(target_arch = "x86_64")]
const NATIVE_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const NATIVE_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
/// x32 syscalls are the native numbers with this bit (x86_64 only; harmless elsewhere).
const X32_BIT: u32 = 0x4000_0000;

/// Address families a task may open sockets of.
const ALLOWED_FAMILIES: [u32; 4] = [
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
    libc::AF_NETLINK as u32,
];
const PING_PROTOCOLS: [u32; 2] = [libc::IPPROTO_ICMP as u32, libc::IPPROTO_ICMPV6 as u32];

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JA: u16 = 0x05;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// Offsets in struct seccomp_data: nr, arch, then args[6] of 8 bytes (low half first).
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARG0_LOW: u32 = 16;
const ARG2_LOW: u32 = 32;

/// Where a jump goes: the next instruction, or a labelled one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Label(Label),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Allow,
    Eperm,
    Enosys,
    Eafnosupport,
    SocketProtocol,
    CloneFlags,
}

enum Op {
    Load(u32),
    Jump { code: u16, k: u32, yes: To, no: To },
    Always(Label),
    Mark(Label),
    Ret(u32),
}

/// Resolves labels into relative jumps.
fn assemble(ops: &[Op]) -> Vec<libc::sock_filter> {
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    // Instruction index of each label (marks emit nothing).
    let mut at = Vec::new();
    let mut n = 0usize;
    for op in ops {
        match op {
            Op::Mark(l) => at.push((*l, n)),
            _ => n += 1,
        }
    }
    let find = |l: Label| at.iter().find(|(m, _)| *m == l).map(|(_, i)| *i);
    let mut out = Vec::with_capacity(n);
    for op in ops {
        let here = out.len();
        let rel = |to: To| -> u32 {
            match to {
                To::Next => 0,
                To::Label(l) => (find(l).expect("label placed") - here - 1) as u32,
            }
        };
        match op {
            Op::Load(off) => out.push(ins(BPF_LD_W_ABS, 0, 0, *off)),
            Op::Jump { code, k, yes, no } => {
                let (jt, jf) = (rel(*yes), rel(*no));
                assert!(jt < 256 && jf < 256, "seccomp jump too far");
                out.push(ins(*code, jt as u8, jf as u8, *k));
            }
            Op::Always(l) => out.push(ins(BPF_JA, 0, 0, rel(To::Label(*l)))),
            Op::Mark(_) => {}
            Op::Ret(v) => out.push(ins(BPF_RET_K, 0, 0, *v)),
        }
    }
    out
}

/// The filter's instructions (see the module documentation).
pub fn task_filter(refuse: Refuse) -> Vec<libc::sock_filter> {
    use Label::*;
    let eq = |k, yes| Op::Jump {
        code: BPF_JEQ_K,
        k,
        yes: To::Label(yes),
        no: To::Next,
    };
    let mut ops = vec![
        Op::Load(ARCH_OFFSET),
        Op::Jump {
            code: BPF_JEQ_K,
            k: NATIVE_ARCH,
            yes: To::Next,
            no: To::Label(Enosys),
        },
        Op::Load(NR_OFFSET),
    ];
    if cfg!(target_arch = "x86_64") {
        ops.push(Op::Jump {
            code: BPF_JGE_K,
            k: X32_BIT,
            yes: To::Label(Enosys),
            no: To::Next,
        });
    }
    if refuse.io_uring {
        ops.extend(IO_URING.iter().map(|nr| eq(*nr, Eperm)));
    }
    ops.push(eq(CLONE3, Enosys));
    ops.extend(nr::KEYRINGS.iter().map(|nr| eq(*nr, Eperm)));
    ops.extend(nr::XATTR_WRITES.iter().map(|nr| eq(*nr, Eperm)));
    if refuse.sysv_ipc {
        ops.extend(nr::SYSV_IPC.iter().map(|nr| eq(*nr, Eperm)));
    }
    if refuse.user_namespaces {
        ops.push(eq(nr::UNSHARE, CloneFlags));
        ops.push(eq(nr::CLONE, CloneFlags));
    }
    ops.push(Op::Jump {
        code: BPF_JEQ_K,
        k: SOCKET,
        yes: To::Next,
        no: To::Label(Allow),
    });
    // socket(domain, type, protocol)
    ops.push(Op::Load(ARG0_LOW));
    for family in ALLOWED_FAMILIES {
        let next = if family == libc::AF_INET as u32 || family == libc::AF_INET6 as u32 {
            SocketProtocol
        } else {
            Allow
        };
        ops.push(eq(family, next));
    }
    ops.push(Op::Always(Eafnosupport));
    ops.push(Op::Mark(SocketProtocol));
    ops.push(Op::Load(ARG2_LOW));
    ops.extend(PING_PROTOCOLS.iter().map(|p| eq(*p, Eperm)));
    ops.push(Op::Always(Allow));
    // unshare(flags) and clone(flags, ...): the flags are the first argument of both.
    ops.push(Op::Mark(CloneFlags));
    ops.push(Op::Load(ARG0_LOW));
    ops.push(Op::Jump {
        code: BPF_JSET_K,
        k: CLONE_NEWUSER,
        yes: To::Label(Eperm),
        no: To::Next,
    });
    ops.extend([
        Op::Mark(Allow),
        Op::Ret(RET_ALLOW),
        Op::Mark(Eperm),
        Op::Ret(RET_ERRNO | libc::EPERM as u32),
        Op::Mark(Enosys),
        Op::Ret(RET_ERRNO | libc::ENOSYS as u32),
        Op::Mark(Eafnosupport),
        Op::Ret(RET_ERRNO | libc::EAFNOSUPPORT as u32),
    ]);
    assemble(&ops)
}

/// Installs `filter` on the calling thread. Async-signal-safe; needs no_new_privs first.
///
/// # Safety
/// Only raw syscalls on memory owned by `filter`.
pub unsafe fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at live instructions for the duration of the call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter the way the kernel would, for a syscall (arch, nr, args).
    fn run_with(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u32; 3]) -> u32 {
        let mut acc = 0;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            match i.code {
                BPF_LD_W_ABS => {
                    acc = match i.k {
                        NR_OFFSET => nr,
                        ARCH_OFFSET => arch,
                        ARG0_LOW => args[0],
                        24 => args[1],
                        ARG2_LOW => args[2],
                        k => panic!("load at {k}"),
                    }
                }
                BPF_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                BPF_JGE_K => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                BPF_JA => pc += i.k as usize,
                BPF_JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                _ => panic!("unexpected instruction"),
            }
            pc += 1;
        }
    }

    fn run(prog: &[libc::sock_filter], nr: u32) -> u32 {
        run_with(prog, NATIVE_ARCH, nr, [0; 3])
    }

    const ALL: Refuse = Refuse {
        io_uring: true,
        user_namespaces: true,
        sysv_ipc: true,
    };
    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
    const EAFNOSUPPORT: u32 = RET_ERRNO | libc::EAFNOSUPPORT as u32;

    #[test]
    fn refuses_io_uring_and_clone3_and_nothing_else() {
        let prog = task_filter(ALL);
        for nr in IO_URING {
            assert_eq!(run(&prog, nr), EPERM);
        }
        assert_eq!(run(&prog, CLONE3), ENOSYS);
        for nr in [0, 1, 2, 57, 58, 59, 257, 424, 428, 434, 436, 437] {
            assert_eq!(run(&prog, nr), RET_ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn refuses_xattr_writes_always_and_sysv_ipc_when_asked() {
        let without_ipc = task_filter(Refuse {
            sysv_ipc: false,
            ..ALL
        });
        for nr in nr::XATTR_WRITES {
            assert_eq!(run(&without_ipc, nr), EPERM, "syscall {nr}");
        }
        for nr in nr::SYSV_IPC {
            assert_eq!(run(&without_ipc, nr), RET_ALLOW, "syscall {nr}");
            assert_eq!(run(&task_filter(ALL), nr), EPERM, "syscall {nr}");
        }
    }

    #[test]
    fn io_uring_allowed_still_refuses_clone3() {
        let prog = task_filter(Refuse {
            io_uring: false,
            user_namespaces: true,
            sysv_ipc: false,
        });
        for nr in IO_URING {
            assert_eq!(run(&prog, nr), RET_ALLOW);
        }
        assert_eq!(run(&prog, CLONE3), ENOSYS);
        assert_eq!(run(&prog, nr::CLONE), RET_ALLOW, "clone itself");
    }

    #[test]
    fn user_namespaces_and_keyrings_are_refused() {
        let call = |prog: &[libc::sock_filter], nr: u32, flags: i32| {
            run_with(prog, NATIVE_ARCH, nr, [flags as u32, 0, 0])
        };
        let prog = task_filter(ALL);
        assert_eq!(call(&prog, nr::UNSHARE, libc::CLONE_NEWUSER), EPERM);
        assert_eq!(
            call(&prog, nr::UNSHARE, libc::CLONE_NEWUSER | libc::CLONE_NEWNS),
            EPERM
        );
        assert_eq!(
            call(&prog, nr::CLONE, libc::CLONE_NEWUSER | libc::SIGCHLD),
            EPERM
        );
        assert_eq!(call(&prog, nr::CLONE, libc::SIGCHLD), RET_ALLOW, "fork");
        let thread = libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND;
        assert_eq!(call(&prog, nr::CLONE, thread), RET_ALLOW, "a thread");
        assert_eq!(call(&prog, nr::UNSHARE, libc::CLONE_FILES), RET_ALLOW);
        for nr in nr::KEYRINGS {
            assert_eq!(call(&prog, nr, 0), EPERM);
        }
        let allowed = task_filter(Refuse {
            io_uring: true,
            user_namespaces: false,
            sysv_ipc: false,
        });
        assert_eq!(call(&allowed, nr::UNSHARE, libc::CLONE_NEWUSER), RET_ALLOW);
        assert_eq!(call(&allowed, nr::KEYRINGS[2], 0), EPERM);
    }

    #[test]
    fn only_the_native_abi_is_allowed() {
        let prog = task_filter(ALL);
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        for nr in [2, 5, 11, 102, 359] {
            assert_eq!(run_with(&prog, AUDIT_ARCH_I386, nr, [0; 3]), ENOSYS);
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(run(&prog, 257 | X32_BIT), ENOSYS, "x32 openat");
            assert_eq!(run(&prog, CLONE3 | X32_BIT), ENOSYS);
        }
    }

    #[test]
    fn sockets_of_other_families_and_ping_sockets_are_refused() {
        let prog = task_filter(ALL);
        let sock = |family: i32, kind: i32, proto: i32| {
            run_with(
                &prog,
                NATIVE_ARCH,
                SOCKET,
                [family as u32, kind as u32, proto as u32],
            )
        };
        assert_eq!(sock(libc::AF_INET, libc::SOCK_STREAM, 0), RET_ALLOW);
        assert_eq!(
            sock(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            RET_ALLOW
        );
        assert_eq!(
            sock(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP),
            RET_ALLOW
        );
        assert_eq!(sock(libc::AF_UNIX, libc::SOCK_STREAM, 0), RET_ALLOW);
        assert_eq!(sock(libc::AF_NETLINK, libc::SOCK_RAW, 0), RET_ALLOW);
        assert_eq!(
            sock(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
            EPERM
        );
        assert_eq!(
            sock(libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6),
            EPERM
        );
        assert_eq!(sock(libc::AF_VSOCK, libc::SOCK_STREAM, 0), EAFNOSUPPORT);
        assert_eq!(sock(libc::AF_PACKET, libc::SOCK_RAW, 0), EAFNOSUPPORT);
        assert_eq!(sock(libc::AF_BLUETOOTH, libc::SOCK_STREAM, 0), EAFNOSUPPORT);
    }
}
