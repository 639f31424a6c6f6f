//! The event record the programs write to the `EVENTS` ring, and the values of its fields.
use core::mem::{offset_of, size_of};

use crate::{COMM_BYTES, PATH_BYTES};

/// [`Event::op`] of a `UNIX_CONNECT` event for a datagram sent to a socket path (0: a connect).
pub const UNIX_OP_SENDMSG: u32 = 1;
/// [`Event::op`] of a `UNIX_CONNECT` event refused because the abstract socket belongs to a
/// process outside the task: a stream connect, or a datagram.
pub const UNIX_OP_ABSTRACT_CONNECT: u32 = 2;
pub const UNIX_OP_ABSTRACT_SENDMSG: u32 = 3;

constants! {
    /// [`Event::op`] of a `LISTEN` event: a bind to a local port, or a listen.
    pub mod listen_op: u32 {
        BIND = 1;
        LISTEN = 2;
    }
}

/// [`Event::op`] of an `MMAP` event from `file_mprotect` (0: from `mmap_file`).
pub const MMAP_OP_MPROTECT: u32 = 1;

constants! {
    /// [`Event::op`] of a `FILE_OP` event: which path operation.
    pub mod file_op: u32 {
        UNLINK = 1;
        MKDIR = 2;
        RMDIR = 3;
        /// mknod, and the creation of a regular file by open(O_CREAT).
        MKNOD = 4;
        RENAME = 5;
        LINK = 6;
        SYMLINK = 7;
        TRUNCATE = 8;
        CHMOD = 9;
        CHOWN = 10;
        /// mount, move_mount or pivot_root.
        MOUNT = 11;
        /// chroot.
        CHROOT = 12;
    }
}

constants! {
    /// [`Event::op`] of `SIGNAL` and `PTRACE` events: the syscall that was refused.
    pub mod cross_op: u32 {
        KILL = 1;
        TKILL = 2;
        TGKILL = 3;
        PIDFD_SEND_SIGNAL = 4;
        RT_SIGQUEUEINFO = 5;
        PTRACE = 6;
        PIDFD_GETFD = 7;
        PROCESS_VM_READV = 8;
        PROCESS_VM_WRITEV = 9;
    }
}

constants! {
    /// [`Event::kind`].
    pub mod event_kind: u32 {
        EXEC = 1;
        OPEN = 2;
        CONNECT = 3;
        SENDMSG = 4;
        LIMIT = 5;
        /// io_uring_setup refused by the seccomp filter.
        IO_URING = 6;
        /// A path operation ([`super::file_op`] in `op`), checked by an LSM hook.
        FILE_OP = 7;
        /// A file mapped executable (`mmap`/`mprotect` PROT_EXEC); `flags` holds the prot.
        MMAP = 8;
        /// A unix-domain socket connect; `path` is the socket's path, or for an abstract socket
        /// (`op` [`super::UNIX_OP_ABSTRACT_CONNECT`] or `..._SENDMSG`) `@` and the name, whose
        /// length is `count`.
        UNIX_CONNECT = 9;
        /// A signal to a process outside the task (kill, tkill, tgkill, pidfd_send_signal,
        /// rt_sigqueueinfo), refused; `count` is the target pid (or pidfd), `flags` the signal.
        SIGNAL = 10;
        /// A trace of, or a reach into, a process outside the task (ptrace, pidfd_getfd,
        /// process_vm_readv/writev), refused; `count` is the target pid (or pidfd), `op` which
        /// ([`super::cross_op`]), `flags` the ptrace request.
        PTRACE = 11;
        /// A socket refused by the task's seccomp filter (`ret`: EPERM for ICMP "ping" sockets,
        /// or raw ones the kernel refuses without CAP_NET_RAW; EAFNOSUPPORT for a family other
        /// than unix, inet, inet6 and netlink).
        SOCKET = 12;
        /// A syscall refused with EPERM that no other event names (`op`: the syscall number): a
        /// user namespace or a keyring by the task's seccomp filter, `bpf` or
        /// `open_by_handle_at` by the kernel (no capabilities).
        SYSCALL = 13;
        /// A bind to a local port or a listen on one (inbound), checked against `network.listen`;
        /// `family`, `addr` and `port` are the local address, `op` which ([`super::listen_op`]).
        LISTEN = 14;
    }
}

constants! {
    /// [`Event::decision`].
    pub mod decision: u32 {
        ALLOW = 1;
        DENY = 2;
        KILL = 3;
        AUDIT = 4;
        /// Seen, not decided: userspace evaluates it against the policy (audit mode).
        OBSERVED = 5;
    }
}

constants! {
    /// [`Event::enforced_by`].
    pub mod enforced_by: u32 {
        NONE = 0;
        LSM = 1;
        LANDLOCK = 2;
        CGROUP = 3;
        KILL = 4;
        SECCOMP = 5;
    }
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

/// The free-standing `op` values above, for the layout fingerprint.
pub const FREE_OPS: &[u64] = &[
    UNIX_OP_SENDMSG as u64,
    UNIX_OP_ABSTRACT_CONNECT as u64,
    UNIX_OP_ABSTRACT_SENDMSG as u64,
    MMAP_OP_MPROTECT as u64,
];

const _: () = {
    assert!(offset_of!(Event, kind) == 48);
    assert!(offset_of!(Event, family) == 96);
    assert!(offset_of!(Event, op) == 100);
    assert!(offset_of!(Event, addr) == 104);
    assert!(offset_of!(Event, comm) == 120);
    assert!(offset_of!(Event, path) == 136);
    assert!(size_of::<Event>() == 392);
    assert!(size_of::<Event>().is_multiple_of(8));
};

// SAFETY: #[repr(C)], Copy, made only of integers and byte arrays, with every byte covered by
// a field (checked by the size asserts above).
#[cfg(feature = "user")]
unsafe impl aya::Pod for Event {}
