//! lsm mode, files: `file_open` (read/write/exec opens), and `mmap_file` and `file_mprotect`
//! with PROT_EXEC (how `ld.so /forbidden/binary` or a loaded library runs code without execve).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{RULE_WRITE_ONLY, access, event_kind, task_flags};

use crate::{
    kernel::{self, DenyHit, read},
    lsm::{self, Check},
    lsm_paths, path,
    task::{self, Counter},
};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
/// Opened by the kernel to execute or map for execution (execve, the ELF interpreter).
const FMODE_EXEC: u32 = 0x20;
/// The same bit in `f_flags` (`__FMODE_EXEC`): newer kernels set it there, not in `f_mode`.
const O_FMODE_EXEC: u32 = 0x20;
const PROT_EXEC: u64 = 0x4;

/// The access an open asks for, from the file's mode (opens for exec are handled apart).
#[inline(always)]
fn wanted(mode: u32) -> u32 {
    let mut want = 0;
    if mode & FMODE_READ != 0 {
        want |= access::READ;
    }
    if mode & FMODE_WRITE != 0 {
        want |= access::WRITE;
    }
    want
}

/// Checks `file` (a `struct file *` the verifier knows by its BTF type) for `check`, by its
/// d_path and its identity.
#[inline(always)]
pub fn check_file(task: &task::Task, file: u64, check: &Check) -> i32 {
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
    let mut identity = DenyHit::NONE;
    if task.has(task_flags::DENY_INODES) {
        identity = kernel::denied_file(&o, task.entry.rules, file, task.has(task_flags::DENY_DIRS));
        // A protected file may be read; the path rules already refuse writes by path.
        if identity.rule_id & RULE_WRITE_ONLY != 0 && check.want & access::WRITE == 0 {
            identity.found = false;
        }
    }
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
    let flags: u32 = read(file, o.file_flags).unwrap_or(0);
    let exec_open = mode & FMODE_EXEC != 0 || flags & O_FMODE_EXEC != 0;
    // The kernel opens a program to execute it, and the ELF interpreter to map it: either
    // right lets the open through, and bprm_check_security then requires EXEC of a program.
    let check = if exec_open {
        Check {
            kind: event_kind::EXEC,
            want: access::EXEC,
            op: 0,
            flags: 0,
            any_of: access::EXEC | access::MAP_EXEC,
        }
    } else {
        Check {
            kind: event_kind::OPEN,
            want: wanted(mode),
            op: 0,
            flags: 0,
            any_of: 0,
        }
    };
    if check.want == 0 {
        return 0;
    }
    if exec_open && let Some(ret) = lsm::refuse_nameless(&task, file, &check) {
        return ret;
    }
    check_file(&task, file, &check)
}

#[lsm(hook = "mmap_file")]
pub fn lsm_mmap_file(ctx: LsmContext) -> i32 {
    let file: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    // Most mappings are anonymous or not executable: leave before looking for a task.
    if file == 0 || prot & PROT_EXEC == 0 {
        return ctx.arg(4);
    }
    let task = match lsm::enter(ctx.arg(4)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let check = Check {
        kind: event_kind::MMAP,
        want: access::MAP_EXEC,
        op: 0,
        flags: prot as u32,
        any_of: 0,
    };
    check_file(&task, file, &check)
}

/// mprotect(vma, reqprot, prot) adding PROT_EXEC to a file mapping: the same rule as mapping
/// it executable. The kernel does not allow `bpf_d_path` here, so the path is walked.
#[lsm(hook = "file_mprotect")]
pub fn lsm_file_mprotect(ctx: LsmContext) -> i32 {
    let vma: u64 = ctx.arg(0);
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return ctx.arg(3);
    }
    let Some(o) = kernel::resolved() else {
        return ctx.arg(3);
    };
    let file: u64 = read(vma, o.vma_file).unwrap_or(0);
    if file == 0 {
        return ctx.arg(3);
    }
    let task = match lsm::enter(ctx.arg(3)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let mnt: u64 = read(file, o.file_path + o.path_mnt).unwrap_or(0);
    let dentry: u64 = read(file, o.file_dentry).unwrap_or(0);
    let check = Check {
        kind: event_kind::MMAP,
        want: access::MAP_EXEC,
        op: enforcer_common::MMAP_OP_MPROTECT,
        flags: prot as u32,
        any_of: 0,
    };
    lsm_paths::check_dentry(&task, mnt, dentry, &check, false)
}
