//! lsm mode, write-like path operations: unlink, mkdir, rmdir, mknod (also every O_CREAT of a
//! new file), rename, link, symlink, truncate, chmod, chown each need write access to the path
//! they change; and no task may mount (a bind mount would give a file a second path).
//!
//! The kernel's bpf_d_path is not allowed in these hooks on every kernel, so the path is
//! found by walking up from the dentry (path.rs).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{RULE_DEFAULT_DENY, access, event_kind, file_op};

use crate::{
    kernel::{self, read},
    lsm::{self, Check},
    path,
    task::Task,
};

fn op_check(op: u32) -> Check {
    Check {
        kind: event_kind::FILE_OP,
        want: access::WRITE,
        op,
        flags: 0,
    }
}

/// Checks write access to `dentry` on the mount of `dir_or_path` (a `struct path *`).
/// `whole` is true when the path itself is the object (truncate, chmod): a directory then
/// matches its own `dir/` rules; otherwise the entry is created or removed within its parent.
#[inline(always)]
fn check_entry(task: &Task, path_ptr: u64, dentry: u64, op: u32, whole: bool) -> i32 {
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return 0;
    };
    let mnt: u64 = read(path_ptr, o.path_mnt).unwrap_or(0);
    let mut len = match path::walk(sc, &o, dentry, mnt) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    if whole && len > 0 && path::is_dir(&o, dentry) {
        len = path::mark_dir(sc, len);
    }
    lsm::decide(task, sc, len, &op_check(op), None)
}

/// A `struct path *`'s own dentry.
#[inline(always)]
fn dentry_of(path_ptr: u64) -> u64 {
    match kernel::resolved() {
        Some(o) => read(path_ptr, o.path_dentry).unwrap_or(0),
        None => 0,
    }
}

macro_rules! enter {
    ($ctx:expr, $ret:expr) => {
        match lsm::enter($ctx.arg($ret)) {
            Ok(task) => task,
            Err(ret) => return ret,
        }
    };
}

#[lsm(hook = "path_unlink")]
pub fn lsm_path_unlink(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 2);
    check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::UNLINK, false)
}

#[lsm(hook = "path_mkdir")]
pub fn lsm_path_mkdir(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 3);
    check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::MKDIR, false)
}

#[lsm(hook = "path_rmdir")]
pub fn lsm_path_rmdir(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 2);
    check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::RMDIR, false)
}

#[lsm(hook = "path_mknod")]
pub fn lsm_path_mknod(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 4);
    check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::MKNOD, false)
}

#[lsm(hook = "path_symlink")]
pub fn lsm_path_symlink(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 3);
    check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::SYMLINK, false)
}

/// link(old_dentry, new_dir, new_dentry): the new name must be writable. The file itself is
/// matched by identity when it is opened under any name.
#[lsm(hook = "path_link")]
pub fn lsm_path_link(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 3);
    check_entry(&task, ctx.arg(1), ctx.arg(2), file_op::LINK, false)
}

/// rename(old_dir, old_dentry, new_dir, new_dentry, flags): both names must be writable.
#[lsm(hook = "path_rename")]
pub fn lsm_path_rename(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 5);
    let ret = check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::RENAME, false);
    if ret != 0 {
        return ret;
    }
    check_entry(&task, ctx.arg(2), ctx.arg(3), file_op::RENAME, false)
}

#[lsm(hook = "path_truncate")]
pub fn lsm_path_truncate(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 1);
    let p: u64 = ctx.arg(0);
    check_entry(&task, p, dentry_of(p), file_op::TRUNCATE, true)
}

#[lsm(hook = "path_chmod")]
pub fn lsm_path_chmod(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 2);
    let p: u64 = ctx.arg(0);
    check_entry(&task, p, dentry_of(p), file_op::CHMOD, true)
}

#[lsm(hook = "path_chown")]
pub fn lsm_path_chown(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 3);
    let p: u64 = ctx.arg(0);
    check_entry(&task, p, dentry_of(p), file_op::CHOWN, true)
}

/// Refuses a mount-table change outright, naming the mount point.
#[inline(always)]
fn refuse_mount(task: &Task, target: u64) -> i32 {
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return -lsm::EPERM;
    };
    let mnt: u64 = read(target, o.path_mnt).unwrap_or(0);
    if path::walk(sc, &o, dentry_of(target), mnt).is_none() {
        lsm::unresolved(sc);
    }
    let check = Check {
        kind: event_kind::FILE_OP,
        want: access::WRITE,
        op: file_op::MOUNT,
        flags: 0,
    };
    lsm::refuse(task, &check, RULE_DEFAULT_DENY, |ev| {
        path::copy_to_event(sc, &mut ev.path)
    })
}

/// mount(dev_name, path, type, flags, data), in a user namespace the task made.
#[lsm(hook = "sb_mount")]
pub fn lsm_sb_mount(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 5);
    refuse_mount(&task, ctx.arg(1))
}

#[lsm(hook = "move_mount")]
pub fn lsm_move_mount(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 2);
    refuse_mount(&task, ctx.arg(1))
}

#[lsm(hook = "sb_pivotroot")]
pub fn lsm_sb_pivotroot(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 2);
    refuse_mount(&task, ctx.arg(1))
}
