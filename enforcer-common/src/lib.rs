//! Types shared by the enforcer's eBPF programs and its userspace.
//!
//! Everything here is `#[repr(C)]`, has no `bool` and no implicit padding (explicit `_reserved`
//! fields instead), and carries compile-time size and offset asserts: the kernel programs and the
//! loader must agree on every byte. The maps are laid out so that both enforcement modes (BPF LSM
//! hooks, and the fallback of Landlock plus syscall tracepoints) read the same entries.
#![no_std]

use core::mem::{offset_of, size_of};

mod event;
pub mod exit_status;
mod layout;

pub use event::*;
pub use layout::{LAYOUT, MAP_ABI};

/// Bytes of a path kept in events (including the terminating NUL).
pub const PATH_BYTES: usize = 256;
/// Bytes of a path in a `FILE_RULES` key: LPM-trie keys hold at most 256 data bytes, 4 of
/// which are the slot. Policy paths longer than this minus the NUL are rejected.
pub const KEY_PATH_BYTES: usize = 252;
/// Bytes of a task's `comm`.
pub const COMM_BYTES: usize = 16;
/// How many tasks one set of maps can hold at once (slots in the per-task arrays).
pub const MAX_TASKS: u32 = 1024;
/// Rules across all tasks in one rule map.
pub const MAX_RULES: u32 = 65_536;

/// Map names, shared so userspace never spells them differently from the kernel side.
pub mod map_names {
    pub const TASKS: &str = "TASKS";
    pub const LIMITS: &str = "LIMITS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const FILE_RULES: &str = "FILE_RULES";
    pub const NET_RULES: &str = "NET_RULES";
    pub const DENY_INODES: &str = "DENY_INODES";
    pub const EVENTS: &str = "EVENTS";
    pub const DROPS: &str = "DROPS";
    pub const PENDING: &str = "PENDING";
    pub const EXITS: &str = "EXITS";
}

/// Name of the read-only global holding kernel structure offsets.
pub const KERNEL_OFFSETS_GLOBAL: &str = "KERNEL_OFFSETS";
/// Name of the read-only global naming the enforcer's root cgroup.
pub const ROOT_CGROUP_GLOBAL: &str = "ROOT_CGROUP";

/// The cgroup every envelope lives under. The tracepoint programs first compare the current
/// process's ancestor at `level` with `id` (no map lookup), so processes outside envelopes pay
/// as close to nothing as possible.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootCgroup {
    pub id: u64,
    /// Depth of the root in the cgroup2 hierarchy (the hierarchy's own root is 0).
    pub level: u32,
    /// [`root_scope`]: whether the root is known, and whether a cgroup under it without a
    /// task entry fails closed.
    pub valid: u32,
}

/// Values of [`RootCgroup::valid`].
pub mod root_scope {
    /// Unknown: every process is looked up in `TASKS`.
    pub const UNKNOWN: u32 = 0;
    /// Processes outside the root leave at once; inside it, a cgroup without an entry is not
    /// ours (standalone runs share the root with each other).
    pub const SCOPE: u32 = 1;
    /// As `SCOPE`, and a cgroup under the root without a task entry is refused everything
    /// (the daemon owns its whole subtree). Without BPF LSM hooks to refuse its operations
    /// (fallback mode), such a process is killed at its first open or exec.
    pub const FAIL_CLOSED: u32 = 2;
    /// As `FAIL_CLOSED`, with the BPF LSM hooks attached (lsm mode): they refuse the
    /// stranger's operations one by one, and the tracepoints leave it alone.
    pub const FAIL_CLOSED_LSM: u32 = 3;
}

/// Access bits used in file rules and events.
pub mod access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXEC: u32 = 4;
    pub const CONNECT: u32 = 8;
    /// Mapped executable (`mmap`/`mprotect` with PROT_EXEC, and the loader's own open), as
    /// shared libraries and the ELF interpreter are; implied by EXEC. Checked in lsm mode.
    pub const MAP_EXEC: u32 = 16;
    /// Bind to a local port, or listen (inbound): a `network.listen` rule.
    pub const LISTEN: u32 = 32;
}

/// Names of the LSM programs and the hook each attaches to.
pub const LSM_PROGRAMS: &[(&str, &str)] = &[
    ("lsm_file_open", "file_open"),
    ("lsm_mmap_file", "mmap_file"),
    ("lsm_file_mprotect", "file_mprotect"),
    ("lsm_bprm_check", "bprm_check_security"),
    ("lsm_path_unlink", "path_unlink"),
    ("lsm_path_mkdir", "path_mkdir"),
    ("lsm_path_rmdir", "path_rmdir"),
    ("lsm_path_mknod", "path_mknod"),
    ("lsm_path_rename", "path_rename"),
    ("lsm_path_link", "path_link"),
    ("lsm_path_symlink", "path_symlink"),
    ("lsm_path_truncate", "path_truncate"),
    ("lsm_path_chmod", "path_chmod"),
    ("lsm_path_chown", "path_chown"),
    ("lsm_sb_mount", "sb_mount"),
    ("lsm_move_mount", "move_mount"),
    ("lsm_sb_pivotroot", "sb_pivotroot"),
    ("lsm_path_chroot", "path_chroot"),
    ("lsm_socket_connect", "socket_connect"),
    ("lsm_socket_sendmsg", "socket_sendmsg"),
    ("lsm_socket_listen", "socket_listen"),
    ("lsm_unix_stream_connect", "unix_stream_connect"),
    ("lsm_unix_may_send", "unix_may_send"),
    ("lsm_task_kill", "task_kill"),
    ("lsm_ptrace_access_check", "ptrace_access_check"),
];

/// LSM programs attached only where the kernel has their hook (`bpf_lsm_<hook>` in its BTF),
/// and what covers the same ground where it does not.
pub const OPTIONAL_LSM_PROGRAMS: &[(&str, &str)] = &[
    // Before 6.2, open(O_TRUNC) goes through path_truncate.
    ("lsm_file_truncate", "file_truncate"),
];

/// Bits of [`TaskEntry::flags`].
pub mod task_flags {
    /// Deny nothing; report what would have been denied.
    pub const AUDIT: u32 = 1;
    /// Check the identity (device, inode) of every file the task opens against `DENY_INODES`.
    pub const DENY_INODES: u32 = 2;
    /// Also check the file's ancestor directories (some deny rule names a directory).
    pub const DENY_DIRS: u32 = 4;
    /// Report every open and exec to userspace, which evaluates it (audit mode in fallback).
    pub const OBSERVE_ALL: u32 = 8;
    /// Check the identity of every executed program (exec-only entries: ELF interpreters run
    /// directly). Opens are not checked unless `DENY_INODES` is set too.
    pub const EXEC_IDENTITIES: u32 = 16;
    /// Set by the programs, never stored: a process under a fail-closed root whose cgroup has
    /// no task entry. Every checked operation of it is refused (`RULE_NO_TASK`).
    pub const NO_TASK: u32 = 32;
    /// Set with `NO_TASK` when no LSM hook refuses for it (fallback mode): the tracepoints kill
    /// the process at its first open or exec.
    pub const NO_TASK_KILL: u32 = 64;
}

/// Value of `TASKS`, keyed by cgroup id (the inode number of the task's cgroup directory).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskEntry {
    /// Index into the per-task arrays and part of every rule key.
    pub slot: u32,
    /// Policy generation that filled this task's rules.
    pub generation: u32,
    /// [`task_flags`] bits.
    pub flags: u32,
    /// The rule set: the slot part of every rule key (`FILE_RULES`, `NET_RULES`,
    /// `DENY_INODES`). A policy reload fills a new rule set and then swaps this entry in one
    /// update, so each operation sees either the old rules or the new ones, never a mix;
    /// `slot` (counters, limits) stays.
    pub rules: u32,
}

/// Value of `LIMITS`, an array indexed by slot. Zero means "no limit".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// `CLOCK_BOOTTIME` nanoseconds after which every operation is refused and the task killed.
    pub deadline_ns: u64,
    pub max_execs: u64,
    pub max_connects: u64,
    pub max_denials: u64,
}

/// Value of `COUNTERS`, an array indexed by slot; the kernel adds atomically.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounters {
    pub execs: u64,
    pub opens: u64,
    pub connects: u64,
    pub denials: u64,
    /// Non-zero once the task is being ended: the [`limit_kind`] that was exceeded (so its
    /// event is sent once), or [`ENDED_BY_KILL`] after a kill-on-violation. From then on every
    /// checked operation of any process of the task is refused or kills its caller.
    pub ended: u64,
}

/// [`TaskCounters::ended`] after a kill-on-violation.
pub const ENDED_BY_KILL: u64 = 0x100;

/// Which limit was exceeded, in [`Event::limit_kind`] and [`TaskCounters::ended`].
pub mod limit_kind {
    pub const TTL: u32 = 1;
    pub const EXECS: u32 = 2;
    pub const CONNECTS: u32 = 3;
    pub const DENIALS: u32 = 4;
}

/// Data of a `FILE_RULES` LPM-trie key: the slot (big-endian, so it is matched as a prefix)
/// followed by the path bytes. Directory rules end in `/`; exact-file rules include the NUL, so
/// `/srv/repo` never matches `/srv/repository`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    pub slot: [u8; 4],
    pub path: [u8; KEY_PATH_BYTES],
}

/// Value of `FILE_RULES`: the access in force at this prefix (already merged with every
/// shorter rule, so the longest match alone decides) and the policy entry that set it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRule {
    /// [`access`] bits allowed at and below this prefix.
    pub allow: u32,
    /// Index of the deciding rule in the compiled policy's rule table.
    pub rule_id: u32,
}

/// Data of a `NET_RULES` LPM-trie key. IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`) so IPv4, IPv6 and mapped addresses hit the same entries. Port 0 in a key
/// means "any port": the programs look up the exact port first, then port 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKey {
    pub slot: [u8; 4],
    /// Big-endian port.
    pub port: [u8; 2],
    pub addr: [u8; 16],
}

/// Bit of a `NET_RULES` key's slot: the entry is a `network.listen` rule (a local address and
/// port the task may bind and listen on), not a connect rule.
pub const NET_SLOT_LISTEN: u32 = 1 << 31;

/// Bits of a `NET_RULES` key before the address: slot and port.
pub const NET_KEY_FIXED_BITS: u32 = 48;
/// Bits of a `FILE_RULES` key before the path: the slot.
pub const PATH_KEY_FIXED_BITS: u32 = 32;

/// Value of `NET_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    pub rule_id: u32,
    pub _reserved: u32,
}

/// Key of `DENY_INODES`: a file (or directory) a task must never open, by identity, so that
/// symlinks, hard links, renames, relative paths and directory fds all reach the same entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub slot: u32,
    pub _reserved: u32,
    /// The kernel's `dev_t` encoding (`major << 20 | minor`), as in `super_block::s_dev`.
    pub dev: u64,
    pub ino: u64,
}

/// Value of `PENDING`: what a syscall's enter tracepoint saw, for its exit tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingOp {
    /// User pointer to the path argument.
    pub path_ptr: u64,
    pub kind: u32,
    pub dirfd: i32,
    pub flags: u32,
    pub _reserved: u32,
}

/// Offsets into kernel structures, resolved by userspace from the running kernel's BTF and
/// handed to the programs as a read-only global (a small, explicit CO-RE).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_inode: u32,
    pub file_dentry: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    pub task_mm: u32,
    pub mm_exe_file: u32,
    /// `file.f_path`, the `struct path` handed to `bpf_d_path`.
    pub file_path: u32,
    pub file_mode: u32,
    pub file_flags: u32,
    pub bprm_file: u32,
    pub inode_mode: u32,
    /// `path.mnt` and `path.dentry`, for the hooks given a `struct path *`.
    pub path_mnt: u32,
    pub path_dentry: u32,
    /// `dentry.d_name` (a `struct qstr`: hash and length, then the name pointer).
    pub dentry_name: u32,
    /// `struct mount` around a `struct vfsmount`, to cross mount points walking up a path.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    pub vfsmount_root: u32,
    /// `vm_area_struct.vm_file`, the file of a mapping (file_mprotect).
    pub vma_file: u32,
    /// `task_struct.exit_code`: the wait status of a process as it exits.
    pub task_exit_code: u32,
    /// `task_struct.cgroups` -> `css_set.dfl_cgrp` -> `cgroup.kn` -> `kernfs_node.id`: the
    /// cgroup v2 id of another process (the target of a signal or a trace).
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    /// `task_struct.tgid`, to name that process in events.
    pub task_tgid: u32,
    /// `inode.i_nlink`: 0 for a file with no name (memfd, unlinked), which no rule can allow.
    pub inode_nlink: u32,
    /// `msghdr.msg_name`: the destination of a sendmsg (a kernel copy), for unix datagrams.
    pub msghdr_name: u32,
    /// `socket.sk`, and in `struct sock` (its `sock_common`) the family, the local port (host
    /// order) and the local IPv4 and IPv6 addresses: what a listen is checked against.
    pub socket_sk: u32,
    pub sock_family: u32,
    pub sock_num: u32,
    pub sock_rcv_saddr: u32,
    pub sock_v6_rcv_saddr: u32,
    /// `sock.sk_cgrp_data.cgroup`: the cgroup of the process that made a socket; and
    /// `unix_sock.addr` -> `unix_address.name`: a unix socket's address (abstract when its
    /// path starts with a NUL).
    pub sock_cgroup: u32,
    pub unix_sock_addr: u32,
    pub unix_address_name: u32,
    /// `unix_address.len`: an abstract name is length-delimited, not NUL-terminated.
    pub unix_address_len: u32,
    /// Non-zero once userspace filled the offsets; the programs check nothing until then.
    pub valid: u32,
}

/// Bit of a `DENY_INODES` rule id: the identity only counts when executed (an ELF interpreter
/// run directly, e.g. `ld.so /forbidden/binary`), not when opened.
pub const RULE_EXEC_ONLY: u32 = 1 << 31;

/// Bit of a `DENY_INODES` rule id: the identity only counts when written to (opened for
/// writing, truncated, or a name created beneath it): a `files.protect` rule.
pub const RULE_WRITE_ONLY: u32 = 1 << 30;

/// Rule id meaning "no rule matched: the envelope's default deny".
pub const RULE_DEFAULT_DENY: u32 = u32::MAX;
/// Rule id meaning "no task entry for this cgroup: fail closed".
pub const RULE_NO_TASK: u32 = u32::MAX - 1;
/// Rule id meaning "the task is being ended (a limit or a violation)".
pub const RULE_TASK_ENDED: u32 = u32::MAX - 2;
/// Rule id meaning "a program with no name on any filesystem (memfd, unlinked file): no rule
/// can allow it".
pub const RULE_NAMELESS_EXEC: u32 = u32::MAX - 3;
/// Rule id meaning "a process outside the task" (the owner of an abstract unix socket): no
/// rule can allow it.
pub const RULE_OUTSIDE_TASK: u32 = u32::MAX - 4;

const _: () = {
    assert!(size_of::<TaskEntry>() == 16);
    assert!(size_of::<TaskLimits>() == 32);
    assert!(size_of::<TaskCounters>() == 40);
    assert!(size_of::<PathKey>() == 4 + KEY_PATH_BYTES);
    // The kernel's LPM_DATA_SIZE_MAX.
    assert!(size_of::<PathKey>() <= 256);
    assert!(offset_of!(PathKey, path) == 4);
    assert!(size_of::<PathRule>() == 8);
    assert!(size_of::<NetKey>() == 22);
    assert!(offset_of!(NetKey, port) == 4);
    assert!(offset_of!(NetKey, addr) == 6);
    assert!(size_of::<NetRule>() == 8);
    assert!(size_of::<InodeKey>() == 24);
    assert!(offset_of!(InodeKey, dev) == 8);
    assert!(size_of::<PendingOp>() == 24);
    assert!(size_of::<KernelOffsets>() == 176);
    assert!(offset_of!(KernelOffsets, valid) == 172);
    assert!(size_of::<RootCgroup>() == 16);
    assert!(offset_of!(Event, kind) == 48);
    assert!(offset_of!(Event, family) == 96);
    assert!(offset_of!(Event, op) == 100);
    assert!(offset_of!(Event, addr) == 104);
    assert!(offset_of!(Event, comm) == 120);
    assert!(offset_of!(Event, path) == 136);
    assert!(size_of::<Event>() == 392);
    assert!(size_of::<Event>().is_multiple_of(8));
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], Copy, made only of integers and byte arrays, with
    // every byte covered by a field (checked by the size asserts above).
    unsafe impl aya::Pod for TaskEntry {}
    unsafe impl aya::Pod for TaskLimits {}
    unsafe impl aya::Pod for TaskCounters {}
    unsafe impl aya::Pod for PathKey {}
    unsafe impl aya::Pod for PathRule {}
    unsafe impl aya::Pod for NetKey {}
    unsafe impl aya::Pod for NetRule {}
    unsafe impl aya::Pod for InodeKey {}
    unsafe impl aya::Pod for PendingOp {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for RootCgroup {}
    unsafe impl aya::Pod for Event {}
}

impl PathKey {
    /// A key for `slot` holding `path` (truncated to [`KEY_PATH_BYTES`]).
    pub fn new(slot: u32, path: &[u8]) -> Self {
        let mut key = Self {
            slot: slot.to_be_bytes(),
            path: [0; KEY_PATH_BYTES],
        };
        let n = if path.len() < KEY_PATH_BYTES {
            path.len()
        } else {
            KEY_PATH_BYTES
        };
        key.path[..n].copy_from_slice(&path[..n]);
        key
    }
}

/// Converts a `st_dev` as userspace sees it (`new_encode_dev`) to the kernel's internal `dev_t`.
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | (minor as u64 & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::exit_status::{Ended, RUNNING, decode};

    #[test]
    fn wait_statuses_decode_as_wait_would() {
        assert_eq!(decode(0), Some(Ended::Exited(0)));
        assert_eq!(decode(3 << 8), Some(Ended::Exited(3)));
        assert_eq!(decode(255 << 8), Some(Ended::Exited(255)));
        assert_eq!(
            decode(9),
            Some(Ended::Signaled {
                signal: 9,
                core_dumped: false
            })
        );
        assert_eq!(
            decode(11 | 0x80),
            Some(Ended::Signaled {
                signal: 11,
                core_dumped: true
            })
        );
    }

    #[test]
    fn what_no_exit_leaves_is_not_an_ending() {
        assert_eq!(decode(RUNNING), None);
        assert_eq!(decode(-1), None);
        // WIFSTOPPED (0x7f) and WIFCONTINUED (0xffff) are not ends.
        assert_eq!(decode((19 << 8) | 0x7f), None);
        assert_eq!(decode(0xffff), None);
        assert_eq!(decode(0x1_0000), None);
    }
}
