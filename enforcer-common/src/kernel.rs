//! What userspace hands the programs when it loads them (read-only globals: the offsets of
//! kernel structures and the enforcer's root cgroup), and the LSM hooks they attach to. None
//! of this is shared through pinned maps: each build's programs get their own at load.
use core::mem::{offset_of, size_of};

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

constants! {
    /// Values of [`RootCgroup::valid`].
    pub mod root_scope: u32 {
        /// Unknown: every process is looked up in `TASKS`.
        UNKNOWN = 0;
        /// Processes outside the root leave at once; inside it, a cgroup without an entry is
        /// not ours (standalone runs share the root with each other).
        SCOPE = 1;
        /// As `SCOPE`, and a cgroup under the root without a task entry is refused everything
        /// (the daemon owns its whole subtree). Without BPF LSM hooks to refuse its operations
        /// (fallback mode), such a process is killed at its first open or exec.
        FAIL_CLOSED = 2;
        /// As `FAIL_CLOSED`, with the BPF LSM hooks attached (lsm mode): they refuse the
        /// stranger's operations one by one, and the tracepoints leave it alone.
        FAIL_CLOSED_LSM = 3;
    }
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

const _: () = {
    assert!(size_of::<KernelOffsets>() == 176);
    assert!(offset_of!(KernelOffsets, valid) == 172);
    assert!(size_of::<RootCgroup>() == 16);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: #[repr(C)], Copy, made only of integers, with every byte covered by a field
    // (checked by the size asserts above).
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for RootCgroup {}
}
