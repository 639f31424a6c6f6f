//! The event record the programs write to the `EVENTS` ring, and the values of its fields.
use crate::{COMM_BYTES, PATH_BYTES};

/// [`Event::op`] of a `UNIX_CONNECT` event for a datagram sent to a socket path (0: a connect).
pub const UNIX_OP_SENDMSG: u32 = 1;
/// [`Event::op`] of a `UNIX_CONNECT` event refused because the abstract socket belongs to a
/// process outside the task: a stream connect, or a datagram.
pub const UNIX_OP_ABSTRACT_CONNECT: u32 = 2;
pub const UNIX_OP_ABSTRACT_SENDMSG: u32 = 3;

/// [`Event::op`] of a `LISTEN` event: a bind to a local port, or a listen.
pub mod listen_op {
    pub const BIND: u32 = 1;
    pub const LISTEN: u32 = 2;
}

/// [`Event::op`] of an `MMAP` event from `file_mprotect` (0: from `mmap_file`).
pub const MMAP_OP_MPROTECT: u32 = 1;

/// [`Event::op`] of a `FILE_OP` event: which path operation.
pub mod file_op {
    pub const UNLINK: u32 = 1;
    pub const MKDIR: u32 = 2;
    pub const RMDIR: u32 = 3;
    /// mknod, and the creation of a regular file by open(O_CREAT).
    pub const MKNOD: u32 = 4;
    pub const RENAME: u32 = 5;
    pub const LINK: u32 = 6;
    pub const SYMLINK: u32 = 7;
    pub const TRUNCATE: u32 = 8;
    pub const CHMOD: u32 = 9;
    pub const CHOWN: u32 = 10;
    /// mount, move_mount or pivot_root.
    pub const MOUNT: u32 = 11;
    /// chroot.
    pub const CHROOT: u32 = 12;
}

/// [`Event::op`] of `SIGNAL` and `PTRACE` events: the syscall that was refused.
pub mod cross_op {
    pub const KILL: u32 = 1;
    pub const TKILL: u32 = 2;
    pub const TGKILL: u32 = 3;
    pub const PIDFD_SEND_SIGNAL: u32 = 4;
    pub const RT_SIGQUEUEINFO: u32 = 5;
    pub const PTRACE: u32 = 6;
    pub const PIDFD_GETFD: u32 = 7;
    pub const PROCESS_VM_READV: u32 = 8;
    pub const PROCESS_VM_WRITEV: u32 = 9;
}

/// [`Event::kind`].
pub mod event_kind {
    pub const EXEC: u32 = 1;
    pub const OPEN: u32 = 2;
    pub const CONNECT: u32 = 3;
    pub const SENDMSG: u32 = 4;
    pub const LIMIT: u32 = 5;
    /// io_uring_setup refused by the seccomp filter.
    pub const IO_URING: u32 = 6;
    /// A path operation ([`super::file_op`] in `op`), checked by an LSM hook.
    pub const FILE_OP: u32 = 7;
    /// A file mapped executable (`mmap`/`mprotect` PROT_EXEC); `flags` holds the prot.
    pub const MMAP: u32 = 8;
    /// A unix-domain socket connect; `path` is the socket's path, or for an abstract socket
    /// (`op` [`super::UNIX_OP_ABSTRACT_CONNECT`] or `..._SENDMSG`) `@` and the name, whose
    /// length is `count`.
    pub const UNIX_CONNECT: u32 = 9;
    /// A signal to a process outside the task (kill, tkill, tgkill, pidfd_send_signal,
    /// rt_sigqueueinfo), refused; `count` is the target pid (or pidfd), `flags` the signal.
    pub const SIGNAL: u32 = 10;
    /// A trace of, or a reach into, a process outside the task (ptrace, pidfd_getfd,
    /// process_vm_readv/writev), refused; `count` is the target pid (or pidfd), `op` which
    /// ([`super::cross_op`]), `flags` the ptrace request.
    pub const PTRACE: u32 = 11;
    /// A socket refused by the task's seccomp filter (`ret`: EPERM for ICMP "ping" sockets,
    /// or raw ones the kernel refuses without CAP_NET_RAW; EAFNOSUPPORT for a family other
    /// than unix, inet, inet6 and netlink).
    pub const SOCKET: u32 = 12;
    /// A syscall refused with EPERM that no other event names (`op`: the syscall number): a
    /// user namespace or a keyring by the task's seccomp filter, `bpf` or
    /// `open_by_handle_at` by the kernel (no capabilities).
    pub const SYSCALL: u32 = 13;
    /// A bind to a local port or a listen on one (inbound), checked against `network.listen`;
    /// `family`, `addr` and `port` are the local address, `op` which ([`super::listen_op`]).
    pub const LISTEN: u32 = 14;
}

/// [`Event::decision`].
pub mod decision {
    pub const ALLOW: u32 = 1;
    pub const DENY: u32 = 2;
    pub const KILL: u32 = 3;
    pub const AUDIT: u32 = 4;
    /// Seen, not decided: userspace evaluates it against the policy (audit mode).
    pub const OBSERVED: u32 = 5;
}

/// [`Event::enforced_by`].
pub mod enforced_by {
    pub const NONE: u32 = 0;
    pub const LSM: u32 = 1;
    pub const LANDLOCK: u32 = 2;
    pub const CGROUP: u32 = 3;
    pub const KILL: u32 = 4;
    pub const SECCOMP: u32 = 5;
}

/// One record in the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub time_ns: u64,
    pub cgroup_id: u64,
    /// Identity of the file involved (inode-check kills), kernel `dev_t` encoding.
    pub dev: u64,
    pub ino: u64,
    /// For limit events: the counter's value and the limit.
    pub count: u64,
    pub limit: u64,
    pub kind: u32,
    pub decision: u32,
    pub enforced_by: u32,
    pub limit_kind: u32,
    pub slot: u32,
    pub generation: u32,
    /// Thread id and process id (tgid), as userspace knows them.
    pub tid: u32,
    pub pid: u32,
    /// The syscall's return value, where there is one (e.g. -13 for EACCES).
    pub ret: i32,
    /// open flags (tracepoints), `access` bits wanted (LSM hooks and network), or the prot of
    /// an `MMAP`.
    pub flags: u32,
    pub rule_id: u32,
    pub dirfd: i32,
    pub family: u16,
    /// Host-order port.
    pub port: u16,
    /// [`file_op`] of a `FILE_OP` event.
    pub op: u32,
    pub addr: [u8; 16],
    pub comm: [u8; COMM_BYTES],
    pub path: [u8; PATH_BYTES],
}
