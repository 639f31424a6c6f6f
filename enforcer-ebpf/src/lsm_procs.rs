//! lsm mode, other processes: no task process may signal, trace or reach into a process
//! outside its own task (ptrace, `/proc/<pid>/mem` and `environ`, `pidfd_getfd` and
//! `process_vm_readv/writev` all pass `ptrace_access_check`). Landlock does the same in fallback
//! mode (ptrace on every ABI, signals from ABI 6); on 6.1 (ABI 2) in lsm mode these hooks are
//! the only check. The refusal is reported by the syscalls' exit tracepoints (procs.rs), the
//! same in both modes, whichever LSM refused.
use aya_ebpf::{macros::lsm, programs::LsmContext};
use enforcer_common::task_flags;

use crate::{
    kernel,
    lsm::{self, EPERM},
    task::Task,
};

/// 0 when `target` (a `struct task_struct *`) is in the caller's own task, else -EPERM (audit
/// mode: 0). Offsets that cannot be read fail closed.
#[inline(always)]
fn same_task_only(task: &Task, target: u64) -> i32 {
    let same = kernel::resolved()
        .and_then(|o| kernel::cgroup_id_of(&o, target))
        .is_some_and(|id| id == task.cgroup_id);
    if same || task.has(task_flags::AUDIT) {
        return 0;
    }
    // Reported and counted by the exit tracepoint.
    -EPERM
}

// task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred)
#[lsm(hook = "task_kill")]
pub fn lsm_task_kill(ctx: LsmContext) -> i32 {
    match lsm::enter(ctx.arg(4)) {
        Ok(task) => same_task_only(&task, ctx.arg(0)),
        Err(ret) => ret,
    }
}

// ptrace_access_check(struct task_struct *child, unsigned int mode)
#[lsm(hook = "ptrace_access_check")]
pub fn lsm_ptrace_access_check(ctx: LsmContext) -> i32 {
    match lsm::enter(ctx.arg(2)) {
        Ok(task) => same_task_only(&task, ctx.arg(0)),
        Err(ret) => ret,
    }
}
