//! lsm mode, files: `file_open` (read/write/exec opens) and `mmap_file`/`file_mprotect` with
//! PROT_EXEC (how `ld.so /forbidden/binary` or a loaded library runs code without execve).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{access, event_kind, task_flags};

use crate::{
    kernel::{self, read},
    lsm::{self, Check},
    path,
    task::{self, Counter},
};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
/// Opened by the kernel to execute or map for execution (execve, the ELF interpreter).
const FMODE_EXEC: u32 = 0x20;
const PROT_EXEC: u64 = 0x4;

/// The access an open asks for, from the file's mode.
#[inline(always)]
fn wanted(mode: u32) -> u32 {
    if mode & FMODE_EXEC != 0 {
        return access::MAP_EXEC;
    }
    let mut want = 0;
    if mode & FMODE_READ != 0 {
        want |= access::READ;
    }
    if mode & FMODE_WRITE != 0 {
        want |= access::WRITE;
    }
    want
}

/// Checks `file` (a trusted `struct file *`) for `check`, by its d_path and its identity.
#[inline(always)]
fn check_file(task: &task::Task, file: u64, check: &Check) -> i32 {
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return 0;
    };
    let len = match path::d_path(sc, file + u64::from(o.file_path)) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    // Pipes, sockets and anonymous inodes reopened through /proc/self/fd have no place in
    // the file tree ("pipe:[123]"); the task already holds them.
    if len > 0 && sc.path[0] != b'/' {
        return 0;
    }
    let mut len = len;
    if len > 0
        && let Some(dentry) = read::<u64>(file, o.file_dentry)
        && path::is_dir(&o, dentry)
    {
        len = path::mark_dir(sc, len);
    }
    let identity = if task.has(task_flags::DENY_INODES) {
        kernel::denied_file(&o, task.entry.slot, file, task.has(task_flags::DENY_DIRS))
    } else {
        None
    };
    lsm::decide(task, sc, len, check, identity)
}

#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let task = match lsm::enter(ctx.arg(1)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let _ = task::count(&task, Counter::Opens);
    let Some(o) = kernel::resolved() else {
        return 0;
    };
    let mode: u32 = read(file, o.file_mode).unwrap_or(0);
    let check = Check {
        kind: if mode & FMODE_EXEC != 0 {
            event_kind::MMAP
        } else {
            event_kind::OPEN
        },
        want: wanted(mode),
        op: 0,
        flags: 0,
    };
    if check.want == 0 {
        return 0;
    }
    check_file(&task, file, &check)
}

#[lsm(hook = "mmap_file")]
pub fn lsm_mmap_file(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let task = match lsm::enter(ctx.arg(4)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    if file == 0 || prot & PROT_EXEC == 0 {
        return 0;
    }
    let check = Check {
        kind: event_kind::MMAP,
        want: access::MAP_EXEC,
        op: 0,
        flags: prot as u32,
    };
    check_file(&task, file, &check)
}

#[lsm(hook = "file_mprotect")]
pub fn lsm_file_mprotect(ctx: LsmContext) -> i32 {
    let vma: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    let task = match lsm::enter(ctx.arg(3)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return 0;
    };
    let Some(file) = read::<u64>(vma, o.vma_file).filter(|f| *f != 0) else {
        return 0;
    };
    let check = Check {
        kind: event_kind::MMAP,
        want: access::MAP_EXEC,
        op: 0,
        flags: prot as u32,
    };
    // bpf_d_path is not allowed in this hook: walk the dentries instead.
    let dentry: u64 = read(file, o.file_dentry).unwrap_or(0);
    let mnt: u64 = read(file, o.file_path + o.path_mnt).unwrap_or(0);
    let len = match path::walk(sc, &o, dentry, mnt) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    let identity = if task.has(task_flags::DENY_INODES) {
        kernel::denied_file(&o, task.entry.slot, file, task.has(task_flags::DENY_DIRS))
    } else {
        None
    };
    lsm::decide(&task, sc, len, &check, identity)
}
