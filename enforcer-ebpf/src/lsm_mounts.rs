//! lsm mode, the mount table and the root: no task process may mount, move a mount, pivot its
//! root or chroot (a bind mount would give a file a second path, and a new root would change
//! the paths that bpf_d_path reports; unprivileged user namespaces make all of them possible
//! without any capability).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{RULE_DEFAULT_DENY, access, event_kind, file_op};

use crate::{
    kernel::{self, read},
    lsm::{self, Check},
    path,
    task::Task,
};

/// Refuses the change outright, naming `at` (a `struct path *`: the mount point, or the new
/// root).
#[inline(always)]
fn refuse_mount(task: &Task, at: u64, op: u32) -> i32 {
    let check = Check {
        kind: event_kind::FILE_OP,
        want: access::WRITE,
        op,
        flags: 0,
        any_of: 0,
    };
    let (Some(o), Some(sc)) = (kernel::resolved(), path::scratch()) else {
        return lsm::refuse(task, &check, RULE_DEFAULT_DENY, |_| {});
    };
    let mnt: u64 = read(at, o.path_mnt).unwrap_or(0);
    let dentry: u64 = read(at, o.path_dentry).unwrap_or(0);
    if path::walk(sc, &o, dentry, mnt).is_none() {
        lsm::unresolved(sc);
    }
    lsm::refuse(task, &check, RULE_DEFAULT_DENY, |ev| {
        path::copy_to_event(sc, &mut ev.path)
    })
}

/// A hook whose argument `$at` is the `struct path *` changed, earlier LSMs' verdict at `$ret`.
macro_rules! refuse_mount_hook {
    ($name:ident, $hook:literal, $at:literal, $ret:literal, $op:expr) => {
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            match lsm::enter(ctx.arg($ret)) {
                Ok(task) => refuse_mount(&task, ctx.arg($at), $op),
                Err(ret) => ret,
            }
        }
    };
}

// mount(dev_name, path, type, flags, data)
refuse_mount_hook!(lsm_sb_mount, "sb_mount", 1, 5, file_op::MOUNT);
// move_mount(from_path, to_path)
refuse_mount_hook!(lsm_move_mount, "move_mount", 1, 2, file_op::MOUNT);
// pivot_root(old_path, new_path)
refuse_mount_hook!(lsm_sb_pivotroot, "sb_pivotroot", 1, 2, file_op::MOUNT);
// chroot(path)
refuse_mount_hook!(lsm_path_chroot, "path_chroot", 0, 1, file_op::CHROOT);
