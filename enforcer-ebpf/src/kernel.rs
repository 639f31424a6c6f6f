//! Reading kernel structures through offsets userspace resolved from the running kernel's BTF.
//!
//! Used to learn the identity (device, inode) of a file a task just opened or executed, so
//! that deny rules hold however the file was reached: symlinks, hard links, renames, relative
//! paths, directory fds.
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use enforcer_common::{InodeKey, KernelOffsets};

use crate::maps::INODE_RULES;

/// Filled by userspace before load (`EbpfLoader::override_global`); zero means "unknown".
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_files: 0,
    files_fdt: 0,
    fdt_fd: 0,
    fdt_max_fds: 0,
    file_inode: 0,
    file_dentry: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_parent: 0,
    dentry_inode: 0,
    task_mm: 0,
    mm_exe_file: 0,
    file_path: 0,
    file_mode: 0,
    file_flags: 0,
    bprm_file: 0,
    inode_mode: 0,
    path_mnt: 0,
    path_dentry: 0,
    dentry_name: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    vfsmount_root: 0,
    vma_file: 0,
    task_exit_code: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    task_tgid: 0,
    inode_nlink: 0,
    msghdr_name: 0,
    socket_sk: 0,
    sock_family: 0,
    sock_num: 0,
    sock_rcv_saddr: 0,
    sock_v6_rcv_saddr: 0,
    sock_cgroup: 0,
    unix_sock_addr: 0,
    unix_address_name: 0,
    unix_address_len: 0,
    valid: 0,
};

/// How many ancestor directories of an opened file are compared with deny rules.
const MAX_DEPTH: u32 = 32;

#[inline(always)]
fn offsets() -> KernelOffsets {
    // SAFETY: a read-only global; volatile so the loader's value is read, not the initializer.
    unsafe { core::ptr::read_volatile(&KERNEL_OFFSETS) }
}

#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T).ok() }
}

/// The `struct file *` behind `fd` in the current task's file table.
#[inline(always)]
pub fn file_of_fd(o: &KernelOffsets, fd: u32) -> Option<u64> {
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task, o.task_files)?;
    let fdt: u64 = read(files, o.files_fdt)?;
    let max_fds: u32 = read(fdt, o.fdt_max_fds)?;
    if fd >= max_fds {
        return None;
    }
    let fd_array: u64 = read(fdt, o.fdt_fd)?;
    let file: u64 = read(fd_array, fd.checked_mul(8)?)?;
    (file != 0).then_some(file)
}

/// The current task's executable (`current->mm->exe_file`).
#[inline(always)]
pub fn exe_file(o: &KernelOffsets) -> Option<u64> {
    let task = unsafe { bpf_get_current_task() };
    let mm: u64 = read(task, o.task_mm)?;
    let file: u64 = read(mm, o.mm_exe_file)?;
    (file != 0).then_some(file)
}

/// A deny rule matched by identity: which rule, and the file's (dev, ino); `found` false when
/// none matched. Every field is defined on every path (no `Option` payload): LLVM may read a
/// value it knows is unused, and the verifier refuses a read of an undefined register.
#[derive(Clone, Copy)]
pub struct DenyHit {
    pub found: bool,
    pub rule_id: u32,
    pub dev: u64,
    pub ino: u64,
}

impl DenyHit {
    pub const NONE: Self = Self {
        found: false,
        rule_id: 0,
        dev: 0,
        ino: 0,
    };
}

#[inline(always)]
fn lookup(slot: u32, dev: u64, ino: u64) -> Option<u32> {
    let key = InodeKey {
        slot,
        _reserved: 0,
        dev,
        ino,
    };
    // SAFETY: value copied out at once. (Entries that only set flow labels, with
    // RULE_LABEL_ONLY, are filtered here once something writes them: the flow-label work.)
    unsafe { INODE_RULES.get(key) }.map(|rule| rule.rule_id)
}

/// Whether `file` (a `struct file *`), or with `check_dirs` one of its ancestor directories,
/// is denied to the task in `slot`.
#[inline(always)]
pub fn denied_file(o: &KernelOffsets, slot: u32, file: u64, check_dirs: bool) -> DenyHit {
    let mut hit = DenyHit::NONE;
    let Some(inode) = read::<u64>(file, o.file_inode) else {
        return hit;
    };
    let (Some(ino), Some(sb)) = (
        read::<u64>(inode, o.inode_ino),
        read::<u64>(inode, o.inode_sb),
    ) else {
        return hit;
    };
    let Some(dev) = read::<u32>(sb, o.sb_dev).map(u64::from) else {
        return hit;
    };
    if let Some(rule_id) = lookup(slot, dev, ino) {
        hit.found = true;
        hit.rule_id = rule_id;
        hit.dev = dev;
        hit.ino = ino;
        return hit;
    }
    if !check_dirs {
        return hit;
    }
    let Some(mut dentry) = read::<u64>(file, o.file_dentry) else {
        return hit;
    };
    for _ in 0..MAX_DEPTH {
        let Some(parent) = read::<u64>(dentry, o.dentry_parent) else {
            return hit;
        };
        if parent == dentry || parent == 0 {
            return hit;
        }
        let Some(dir_ino) = read::<u64>(parent, o.dentry_inode)
            .and_then(|dir_inode| read::<u64>(dir_inode, o.inode_ino))
        else {
            return hit;
        };
        if let Some(rule_id) = lookup(slot, dev, dir_ino) {
            hit.found = true;
            hit.rule_id = rule_id;
            hit.dev = dev;
            hit.ino = dir_ino;
            return hit;
        }
        dentry = parent;
    }
    hit
}

/// The offsets, if userspace could resolve them on this kernel.
#[inline(always)]
pub fn resolved() -> Option<KernelOffsets> {
    let o = offsets();
    (o.valid != 0).then_some(o)
}

/// The current process's `task_struct.exit_code` (meaningful while it exits).
#[inline(always)]
pub fn exit_code(o: &KernelOffsets) -> Option<i32> {
    read(unsafe { bpf_get_current_task() }, o.task_exit_code)
}

/// The cgroup v2 id of another process (`task`, a `struct task_struct *`):
/// `task->cgroups->dfl_cgrp->kn->id`.
#[inline(always)]
pub fn cgroup_id_of(o: &KernelOffsets, task: u64) -> Option<u64> {
    let cset: u64 = read(task, o.task_cgroups)?;
    let cgroup: u64 = read(cset, o.css_set_dfl_cgrp)?;
    let kn: u64 = read(cgroup, o.cgroup_kn)?;
    read(kn, o.kernfs_node_id)
}

/// Whether `file` has no name on any filesystem (a memfd, an unlinked file): its inode has no
/// links. No path rule can allow running such a file.
#[inline(always)]
pub fn nameless(o: &KernelOffsets, file: u64) -> bool {
    let inode: u64 = read(file, o.file_inode).unwrap_or(0);
    read::<u32>(inode, o.inode_nlink) == Some(0)
}
