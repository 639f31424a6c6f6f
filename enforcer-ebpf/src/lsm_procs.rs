//! lsm mode, other processes: no task process may signal, trace or reach into a process
//! outside its own task (ptrace, `/proc/<pid>/mem` and `environ`, `pidfd_getfd` and
//! `process_vm_readv/writev` all pass `ptrace_access_check`). Landlock does the same in fallback
//! mode (ptrace on every ABI, signals from ABI 6); on 6.1 (ABI 2) in lsm mode these hooks are
//! the only check, and they report what they refuse.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{decision, enforced_by, event_kind, task_flags};

use crate::{
    events,
    files::{count_denial, take_pending},
    kernel,
    lsm::{self, EPERM},
    task::Task,
};

/// 0 when `target` (a `struct task_struct *`) is in the caller's own task, else -EPERM (audit
/// mode: 0) and an event: `kind` with the target's pid, `detail` (the signal). Offsets that
/// cannot be read fail closed. The syscall's own note is taken, so its exit tracepoint does
/// not report the same refusal again; where Landlock refused first (ABI 6) this hook never
/// runs and the exit tracepoint reports.
#[inline(always)]
fn same_task_only(task: &Task, target: u64, kind: u32, detail: u32) -> i32 {
    let o = kernel::resolved();
    let same = o
        .and_then(|o| kernel::cgroup_id_of(&o, target))
        .is_some_and(|id| id == task.cgroup_id);
    if same {
        return 0;
    }
    let pid: u32 = o
        .and_then(|o| kernel::read(target, o.task_tgid))
        .unwrap_or(0);
    let audit = task.has(task_flags::AUDIT);
    let noted = take_pending();
    events::emit(task, kind, |ev| {
        ev.decision = if audit {
            decision::AUDIT
        } else {
            decision::DENY
        };
        ev.enforced_by = enforced_by::LSM;
        ev.ret = if audit { 0 } else { -EPERM };
        ev.op = noted.map_or(0, |n| n.path_ptr as u32);
        ev.count = u64::from(pid);
        ev.flags = detail;
    });
    count_denial(task);
    if audit { 0 } else { -EPERM }
}

// task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred)
#[lsm(hook = "task_kill")]
pub fn lsm_task_kill(ctx: LsmContext) -> i32 {
    match lsm::enter(ctx.arg(4)) {
        Ok(task) => same_task_only(&task, ctx.arg(0), event_kind::SIGNAL, ctx.arg(2)),
        Err(ret) => ret,
    }
}

// ptrace_access_check(struct task_struct *child, unsigned int mode)
#[lsm(hook = "ptrace_access_check")]
pub fn lsm_ptrace_access_check(ctx: LsmContext) -> i32 {
    match lsm::enter(ctx.arg(2)) {
        Ok(task) => same_task_only(&task, ctx.arg(0), event_kind::PTRACE, 0),
        Err(ret) => ret,
    }
}
