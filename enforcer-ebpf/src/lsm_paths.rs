//! lsm mode, write-like path operations: unlink, mkdir, rmdir, mknod (also every O_CREAT of a
//! new file), rename, link, symlink, truncate, chmod and chown each need write access to the
//! path they change.
//!
//! The kernel does not allow `bpf_d_path` in these hooks on every kernel (not on 6.1), so the
//! path is found by walking up from the dentry (`path::walk`): one code path on every kernel.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{access, event_kind, file_op};

use crate::{
    kernel::{self, DenyHit, read},
    lsm::{self, Check},
    path,
    task::Task,
};

#[inline(always)]
fn op_check(op: u32) -> Check {
    Check {
        kind: event_kind::FILE_OP,
        want: access::WRITE,
        op,
        flags: 0,
        any_of: 0,
    }
}

/// Checks `check` on `dentry` on the mount of `path_ptr` (a `struct path *`). `whole` is true
/// when the path itself is the object (truncate, chmod, chown): a directory then matches its
/// own `dir/` rules; otherwise a name is created or removed within its parent.
#[inline(always)]
pub fn check_dentry(task: &Task, vfsmount: u64, dentry: u64, check: &Check, whole: bool) -> i32 {
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return 0;
    };
    let mut len = match path::walk(sc, &o, dentry, vfsmount) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    if whole && len > 0 && path::is_dir(&o, dentry) {
        len = path::mark_dir(sc, len);
    }
    lsm::decide(task, sc, len, check, DenyHit::NONE)
}

/// `dentry` within the directory `dir` (a `struct path *`).
#[inline(always)]
fn check_entry(task: &Task, dir: u64, dentry: u64, op: u32) -> i32 {
    let Some(o) = kernel::resolved() else {
        return 0;
    };
    let mnt: u64 = read(dir, o.path_mnt).unwrap_or(0);
    check_dentry(task, mnt, dentry, &op_check(op), false)
}

/// The object `path` (a `struct path *`) itself.
#[inline(always)]
fn check_whole(task: &Task, path: u64, op: u32) -> i32 {
    let Some(o) = kernel::resolved() else {
        return 0;
    };
    let mnt: u64 = read(path, o.path_mnt).unwrap_or(0);
    let dentry: u64 = read(path, o.path_dentry).unwrap_or(0);
    // Truncating a file with no name (a memfd or an unlinked file the task holds, as
    // ftruncate of shared memory does) changes nothing anyone else can open.
    if op == file_op::TRUNCATE
        && let Some(inode) = read::<u64>(dentry, o.dentry_inode)
        && read::<u32>(inode, o.inode_nlink) == Some(0)
    {
        return 0;
    }
    check_dentry(task, mnt, dentry, &op_check(op), true)
}

macro_rules! enter {
    ($ctx:expr, $ret:expr) => {
        match lsm::enter($ctx.arg($ret)) {
            Ok(task) => task,
            Err(ret) => return ret,
        }
    };
}

/// A hook given `(dir, dentry, ...)`, the return value of earlier LSMs at argument `$ret`.
macro_rules! entry_hook {
    ($name:ident, $hook:literal, $ret:literal, $op:expr) => {
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            let task = enter!(ctx, $ret);
            check_entry(&task, ctx.arg(0), ctx.arg(1), $op)
        }
    };
}

/// A hook given `(path, ...)`.
macro_rules! whole_hook {
    ($name:ident, $hook:literal, $ret:literal, $op:expr) => {
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            let task = enter!(ctx, $ret);
            check_whole(&task, ctx.arg(0), $op)
        }
    };
}

// unlink(dir, dentry)
entry_hook!(lsm_path_unlink, "path_unlink", 2, file_op::UNLINK);
// mkdir(dir, dentry, mode)
entry_hook!(lsm_path_mkdir, "path_mkdir", 3, file_op::MKDIR);
// rmdir(dir, dentry)
entry_hook!(lsm_path_rmdir, "path_rmdir", 2, file_op::RMDIR);
// mknod(dir, dentry, mode, dev), also for open(O_CREAT) of a new file
entry_hook!(lsm_path_mknod, "path_mknod", 4, file_op::MKNOD);
// symlink(dir, dentry, old_name)
entry_hook!(lsm_path_symlink, "path_symlink", 3, file_op::SYMLINK);
// truncate(path)
whole_hook!(lsm_path_truncate, "path_truncate", 1, file_op::TRUNCATE);
// chmod(path, mode)
whole_hook!(lsm_path_chmod, "path_chmod", 2, file_op::CHMOD);
// chown(path, uid, gid)
whole_hook!(lsm_path_chown, "path_chown", 3, file_op::CHOWN);

/// file_truncate(file): open(O_TRUNC) and ftruncate(2) since 6.2, where O_TRUNC no longer
/// reaches path_truncate: `open(O_RDONLY | O_TRUNC)` of a file the task may only read would
/// empty it. The file's path needs write access. Attached where the kernel has the hook.
#[lsm(hook = "file_truncate")]
pub fn lsm_file_truncate(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 1);
    let Some(o) = kernel::resolved() else {
        return 0;
    };
    let file: u64 = ctx.arg(0);
    check_whole(&task, file + u64::from(o.file_path), file_op::TRUNCATE)
}

/// link(old_dentry, new_dir, new_dentry): the new name must be writable, and it may not give
/// the file any access its own path lacks (Landlock's "refer" rule): otherwise a task could
/// link a file it may not read into its workspace and open it there. Deny rules also match the
/// file by identity under any name.
#[lsm(hook = "path_link")]
pub fn lsm_path_link(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 3);
    refer(&task, ctx.arg(0), ctx.arg(1), ctx.arg(2))
}

/// [`Check::flags`] of a `LINK` refusal for access the new name would add.
const LINK_REFER: u32 = 1;

#[inline(always)]
fn refer(task: &Task, old: u64, new_dir: u64, new: u64) -> i32 {
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return 0;
    };
    // A link never crosses a mount (EXDEV before this hook): both names are on new_dir's.
    let mnt: u64 = read(new_dir, o.path_mnt).unwrap_or(0);
    // The new name: it must be writable (one walk serves both checks).
    let len = match path::walk(sc, &o, new, mnt) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    let rights = access::READ | access::WRITE | access::EXEC | access::MAP_EXEC;
    let at_new = if len > 0 {
        path::lookup(sc, task.entry.rules, len).allow & rights
    } else {
        0
    };
    if at_new & access::WRITE == 0 {
        return lsm::decide(task, sc, len, &op_check(file_op::LINK), DenyHit::NONE);
    }
    let len = match path::walk(sc, &o, old, mnt) {
        Some(len) => len,
        None => lsm::unresolved(sc),
    };
    if len > 0 && path::is_dir(&o, old) {
        // Directories cannot be hard-linked; nothing to compare.
        return 0;
    }
    // The old path must have every right the new name has: refused on the old path, naming
    // its rule.
    let check = Check {
        kind: event_kind::FILE_OP,
        want: at_new,
        op: file_op::LINK,
        flags: LINK_REFER,
        any_of: 0,
    };
    lsm::decide(task, sc, len, &check, DenyHit::NONE)
}

/// rename(old_dir, old_dentry, new_dir, new_dentry, flags): both names must be writable.
#[lsm(hook = "path_rename")]
pub fn lsm_path_rename(ctx: LsmContext) -> i32 {
    let task = enter!(ctx, 5);
    let ret = check_entry(&task, ctx.arg(0), ctx.arg(1), file_op::RENAME);
    if ret != 0 {
        return ret;
    }
    check_entry(&task, ctx.arg(2), ctx.arg(3), file_op::RENAME)
}
