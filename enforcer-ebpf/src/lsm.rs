//! What every BPF LSM hook does around its own check: keep an earlier LSM's denial, find the
//! task, apply its deadline, and turn a rule lookup into a verdict, an event and a return value.
//!
//! In lsm mode the kernel refuses the operation itself (-EPERM) from the task's maps: no
//! Landlock and no kill are needed. Audit mode reports what would have been refused and allows.
use enforcer_common::{Event, task_flags};

use crate::{
    kernel::DenyHit,
    path::{self, Scratch},
    task::{self, Task},
    verdict::{self, By, EPERM, Gate},
};

/// The start of every hook. `Err` carries the value to return at once: an earlier LSM's
/// denial (kept, never overridden), 0 for a process that is not in a task, or -EPERM for a
/// task past its deadline or being ended.
#[inline(always)]
pub fn enter(prev: i32) -> Result<Task, i32> {
    if prev != 0 {
        return Err(prev);
    }
    let task = task::current().ok_or(0)?;
    match verdict::gate(&task, By::Lsm) {
        Gate::Check => Ok(task),
        Gate::Refuse(_) => Err(-EPERM),
        Gate::Ignore => Err(0),
    }
}

/// One checked operation.
pub struct Check {
    pub kind: u32,
    /// `access` bits the operation needs.
    pub want: u32,
    /// `file_op` for FILE_OP events.
    pub op: u32,
    /// Extra detail for the event (the prot of an mmap).
    pub flags: u32,
    /// When non-zero, any one of these bits allows the operation instead of all of `want`.
    pub any_of: u32,
}

/// Decides the path in `sc` (`len` bytes with its NUL; 0 when it could not be resolved, which
/// is refused) against the task's rules, or against an identity deny rule that matched.
#[inline(always)]
pub fn decide(task: &Task, sc: &mut Scratch, len: usize, check: &Check, identity: DenyHit) -> i32 {
    let (rule_id, dev, ino) = match identity {
        _ if task.has(task_flags::NO_TASK) => (enforcer_common::RULE_NO_TASK, 0, 0),
        hit if hit.found => (hit.rule_id, hit.dev, hit.ino),
        _ if len == 0 => (enforcer_common::RULE_DEFAULT_DENY, 0, 0),
        _ => {
            let v = path::lookup(sc, task.entry.rules, len);
            let allowed = if check.any_of != 0 {
                v.allow & check.any_of != 0
            } else {
                v.allow & check.want == check.want
            };
            if allowed {
                return 0;
            }
            (v.rule_id, 0, 0)
        }
    };
    refuse(task, check, rule_id, |ev| {
        ev.dev = dev;
        ev.ino = ino;
        path::copy_to_event(sc, &mut ev.path);
    })
}

/// Refuses `check` by `rule_id` (in audit mode: reports what would have been refused) and
/// returns the hook's value.
#[inline(always)]
pub fn refuse(task: &Task, check: &Check, rule_id: u32, fill: impl FnOnce(&mut Event)) -> i32 {
    verdict::refuse(task, By::Lsm, check.kind, rule_id, |ev| {
        ev.flags = check.want | (check.flags << 8);
        ev.op = check.op;
        fill(ev);
    });
    refused_value(task)
}

/// The value of a hook that refused: -EPERM, or 0 in audit mode. The flag is read afresh
/// (volatile) so the value is computed here, right before the return, and not carried over
/// from the event's `ret` through spills that lose its bounds: 6.12's verifier checks that an
/// LSM program returns a value in [-4095, 0].
#[inline(always)]
pub fn refused_value(task: &Task) -> i32 {
    // SAFETY: a plain read of a field of a live reference.
    let flags = unsafe { core::ptr::read_volatile(&task.entry.flags) };
    if flags & task_flags::AUDIT != 0 {
        0
    } else {
        -EPERM
    }
}

/// Writes a placeholder path for an operation whose path could not be resolved.
#[inline(always)]
pub fn unresolved(sc: &mut Scratch) -> usize {
    sc.path[0] = b'?';
    sc.path[1] = 0;
    0
}

/// A memfd or an unlinked file run by its descriptor: whatever its path says
/// ("/memfd:x (deleted)"), no rule allowed it. Known by its inode having no links; the path is
/// resolved only then, for the event. Checked where the kernel opens a program to run it
/// (file_open) and again in bprm_check_security.
#[inline(always)]
pub fn refuse_nameless(task: &Task, file: u64, check: &Check) -> Option<i32> {
    let o = crate::kernel::resolved()?;
    if !crate::kernel::nameless(&o, file) {
        return None;
    }
    let sc = path::scratch()?;
    if path::d_path(sc, file + u64::from(o.file_path)).is_none() {
        unresolved(sc);
    }
    Some(refuse(
        task,
        check,
        enforcer_common::RULE_NAMELESS_EXEC,
        |ev| path::copy_to_event(sc, &mut ev.path),
    ))
}
