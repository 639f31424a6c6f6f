//! lsm mode, other processes: no task process may signal, trace or reach into a process
//! outside its own task (ptrace, `/proc/<pid>/mem` and `environ`, `pidfd_getfd` and
//! `process_vm_readv/writev` all pass `ptrace_access_check`). Landlock does the same in fallback
//! mode (ptrace on every ABI, signals from ABI 6); on 6.1 (ABI 2) in lsm mode these hooks are
//! the only check, and they report what they refuse.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::{RULE_DEFAULT_DENY, event_kind};

use crate::{
    files::take_pending,
    kernel,
    lsm::{self, Check},
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
    let check = Check {
        kind,
        want: 0,
        // The syscall that asked, as the enter tracepoint noted it (none for a /proc open).
        op: take_pending().map_or(0, |n| n.path_ptr as u32),
        flags: 0,
        any_of: 0,
    };
    lsm::refuse(task, &check, RULE_DEFAULT_DENY, |ev| {
        ev.count = u64::from(pid);
        ev.flags = detail;
    })
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
