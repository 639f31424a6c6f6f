//! execve/execveat in fallback mode: Landlock decides; these programs count execs (max_execs),
//! report denials, report each program a task runs, and kill a task that executed a file a deny
//! rule names.
use aya_ebpf::{
    EbpfContext as _, helpers::bpf_probe_read_kernel_str_bytes, macros::tracepoint,
    programs::TracePointContext,
};
use enforcer_common::{Event, PendingOp, RULE_NAMELESS_EXEC, decision, event_kind, task_flags};

use crate::{
    events,
    files::{self, AT_FDCWD, arg, enter_task, is_denial, report_denial, take_pending},
    kernel,
    task::{self, Counter, Task},
    verdict::{self, By},
};

#[inline(always)]
fn count_exec(task: &Task) {
    verdict::over_limit(task, By::Kill, task::count(task, Counter::Execs));
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    count_exec(&task);
    enter_task(&task, event_kind::EXEC, AT_FDCWD, arg(&ctx, 16), 0)
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    count_exec(&task);
    enter_task(
        &task,
        event_kind::EXEC,
        arg::<i64>(&ctx, 16) as i32,
        arg(&ctx, 24),
        arg::<u64>(&ctx, 48) as u32,
    )
}

/// Attached to sys_exit_execve and sys_exit_execveat. On success this runs in the new program,
/// whose report comes from `sched_process_exec`; here only failures are reported.
#[tracepoint]
pub fn sys_exit_exec(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let Some(op) = take_pending() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if is_denial(ret) {
        report_denial(&task, event_kind::EXEC, &op, ret);
    }
    0
}

/// A task process started a new program: report it, and check its identity.
#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    // __data_loc char[] filename: low 16 bits offset, high 16 bits length.
    let loc: u32 = arg(&ctx, 8);
    let filename = ctx.as_ptr() as u64 + u64::from(loc & 0xffff);
    let fill_path = |ev: &mut Event| {
        // The path as given to exec: a relative one is resolved from the cwd.
        ev.dirfd = AT_FDCWD;
        // SAFETY: the offset comes from the record itself and points inside it.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(filename as *const u8, &mut ev.path) };
    };
    // A memfd or an unlinked file run by its descriptor: Landlock lets it through (it has no
    // place in the file tree), so it dies here, before its first instruction.
    if let Some(o) = kernel::resolved()
        && let Some(file) = kernel::exe_file(&o)
        && kernel::nameless(&o, file)
    {
        files::kill_violation(&task, event_kind::EXEC, RULE_NAMELESS_EXEC, fill_path);
        return 0;
    }
    let op = PendingOp {
        dirfd: AT_FDCWD,
        ..PendingOp::default()
    };
    if (task.has(task_flags::DENY_INODES) || task.has(task_flags::EXEC_IDENTITIES))
        && let Some(o) = kernel::resolved()
        && let Some(file) = kernel::exe_file(&o)
        && files::enforce_identity(&task, event_kind::EXEC, file, &op, fill_path)
    {
        return 0;
    }
    events::emit(&task, event_kind::EXEC, |ev| {
        ev.decision = if task.has(task_flags::OBSERVE_ALL) {
            decision::OBSERVED
        } else {
            decision::ALLOW
        };
        fill_path(ev);
    });
    0
}
