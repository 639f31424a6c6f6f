//! lsm mode, the mount table: no task process may mount, move a mount or pivot its root (a
//! bind mount would give a file a second path; unprivileged user namespaces make mounting
//! possible without any capability).
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{RULE_DEFAULT_DENY, access, event_kind, file_op};

use crate::{
    lsm::{self, Check},
    task::Task,
};

#[inline(always)]
fn refuse_mount(task: &Task) -> i32 {
    let check = Check {
        kind: event_kind::FILE_OP,
        want: access::WRITE,
        op: file_op::MOUNT,
        flags: 0,
        any_of: 0,
    };
    lsm::refuse(task, &check, RULE_DEFAULT_DENY, |_| {})
}

macro_rules! refuse_mount_hook {
    ($name:ident, $hook:literal, $ret:literal) => {
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            match lsm::enter(ctx.arg($ret)) {
                Ok(task) => refuse_mount(&task),
                Err(ret) => ret,
            }
        }
    };
}

// mount(dev_name, path, type, flags, data)
refuse_mount_hook!(lsm_sb_mount, "sb_mount", 5);
// move_mount(from_path, to_path)
refuse_mount_hook!(lsm_move_mount, "move_mount", 2);
// pivot_root(old_path, new_path)
refuse_mount_hook!(lsm_sb_pivotroot, "sb_pivotroot", 2);
