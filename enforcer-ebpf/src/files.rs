//! File opens in fallback mode: syscall tracepoints observe every open of a task. Landlock has
//! already decided; these programs report its denials, count them, and kill a task that opened
//! a file a deny rule names (deny-under-allow, which Landlock cannot express).
use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use enforcer_common::{
    PendingOp, RULE_EXEC_ONLY, RULE_WRITE_ONLY, decision, enforced_by, event_kind, task_flags,
};

use crate::{
    events, kernel,
    maps::PENDING,
    task::{self, Counter, Task},
    verdict::{self, By, Gate},
};

pub const AT_FDCWD: i32 = -100;
const EACCES: i64 = 13;
const EPERM: i64 = 1;
/// creat(2) is open(O_CREAT | O_WRONLY | O_TRUNC).
const CREAT_FLAGS: u32 = 0o1101;

/// A syscall tracepoint argument at `offset` in the record.
#[inline(always)]
pub fn arg<T: Copy>(ctx: &TracePointContext, offset: usize) -> T {
    // SAFETY: syscall tracepoint records are at least as long as the offsets used here
    // (checked against /sys/kernel/tracing/events/syscalls/*/format); direct context loads.
    unsafe { *(ctx.as_ptr().add(offset) as *const T) }
}

/// Remembers the syscall's arguments for its exit tracepoint.
#[inline(always)]
pub fn enter(kind: u32, dirfd: i32, path_ptr: u64, flags: u32) -> u32 {
    match task::current() {
        Some(task) => enter_task(&task, kind, dirfd, path_ptr, flags),
        None => 0,
    }
}

/// [`enter`] for a task already looked up.
#[inline(always)]
pub fn enter_task(task: &Task, kind: u32, dirfd: i32, path_ptr: u64, flags: u32) -> u32 {
    match verdict::gate(task, By::Kill) {
        Gate::Check => {}
        Gate::Ignore => return 0,
        Gate::Refuse(rule) => {
            verdict::refuse(task, By::Kill, kind, rule, |ev| {
                ev.flags = flags;
                ev.dirfd = dirfd;
                events::read_user_path(ev, path_ptr);
            });
            return 0;
        }
    }
    let op = PendingOp {
        path_ptr,
        kind,
        dirfd,
        flags,
        _reserved: 0,
    };
    let _ = PENDING.insert(bpf_get_current_pid_tgid(), op, 0);
    0
}

/// Takes what the enter tracepoint saved for this thread.
#[inline(always)]
pub fn take_pending() -> Option<PendingOp> {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: copied out before removal.
    let op = unsafe { PENDING.get(id) }.copied()?;
    let _ = PENDING.remove(id);
    Some(op)
}

/// Whether a syscall's return value is a permission denial.
#[inline(always)]
pub fn is_denial(ret: i64) -> bool {
    ret == -EACCES || ret == -EPERM
}

/// Reports a denied open/exec (the kernel's answer, from Landlock in fallback mode).
#[inline(always)]
pub fn report_denial(task: &Task, kind: u32, op: &PendingOp, ret: i64) {
    let by = By::Kernel(enforced_by::LANDLOCK);
    // No rule id: userspace finds the rule Landlock applied from the path.
    verdict::refuse(task, by, kind, 0, |ev| {
        ev.ret = ret as i32;
        ev.flags = op.flags;
        ev.dirfd = op.dirfd;
        events::read_user_path(ev, op.path_ptr);
    });
}

/// Whether open flags write: write access, truncation or creation.
#[inline(always)]
pub fn writes(flags: u32) -> bool {
    const O_ACCMODE: u32 = 3;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0
}

/// Kills the task if the file it just opened (or, with `exec`, executed) is denied by
/// identity; true if it did. `fill_path` writes the event's path.
#[inline(always)]
pub fn enforce_identity(
    task: &Task,
    kind: u32,
    file: u64,
    op: &PendingOp,
    fill_path: impl FnOnce(&mut enforcer_common::Event),
) -> bool {
    let Some(o) = kernel::resolved() else {
        return false;
    };
    let dirs = task.has(task_flags::DENY_DIRS);
    let hit = kernel::denied_file(&o, task.entry.rules, file, dirs);
    if !hit.found {
        return false;
    }
    // Interpreters may be opened and mapped; only running one directly is refused.
    if hit.rule_id & RULE_EXEC_ONLY != 0 && kind != event_kind::EXEC {
        return false;
    }
    // A protected path may be read; only writing to it (or creating in it) is refused.
    if hit.rule_id & RULE_WRITE_ONLY != 0 && (kind != event_kind::OPEN || !writes(op.flags)) {
        return false;
    }
    kill_violation(task, kind, hit.rule_id, |ev| {
        ev.dev = hit.dev;
        ev.ino = hit.ino;
        ev.flags = op.flags;
        ev.dirfd = op.dirfd;
        fill_path(ev);
    });
    true
}

/// Kills the current process for a violation and ends its task (audit mode: only reports
/// it), with one urgent event naming `rule_id`; `fill` writes the rest of the event.
#[inline(always)]
pub fn kill_violation(
    task: &Task,
    kind: u32,
    rule_id: u32,
    fill: impl FnOnce(&mut enforcer_common::Event),
) {
    verdict::refuse(task, By::Kill, kind, rule_id, fill);
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    enter(
        event_kind::OPEN,
        arg::<i64>(&ctx, 16) as i32,
        arg(&ctx, 24),
        arg::<u64>(&ctx, 32) as u32,
    )
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let how: u64 = arg(&ctx, 32);
    // struct open_how starts with `__u64 flags`.
    let flags = unsafe { bpf_probe_read_user(how as *const u64) }.unwrap_or(0) as u32;
    enter(
        event_kind::OPEN,
        arg::<i64>(&ctx, 16) as i32,
        arg(&ctx, 24),
        flags,
    )
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    enter(
        event_kind::OPEN,
        AT_FDCWD,
        arg(&ctx, 16),
        arg::<u64>(&ctx, 24) as u32,
    )
}

#[tracepoint]
pub fn sys_enter_creat(ctx: TracePointContext) -> u32 {
    enter(event_kind::OPEN, AT_FDCWD, arg(&ctx, 16), CREAT_FLAGS)
}

/// Attached to sys_exit_{openat,openat2,open,creat}.
#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let Some(op) = take_pending() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    let _ = task::count(&task, Counter::Opens);
    if is_denial(ret) {
        report_denial(&task, event_kind::OPEN, &op, ret);
        return 0;
    }
    if ret < 0 {
        return 0;
    }
    if task.has(task_flags::DENY_INODES)
        && let Some(o) = kernel::resolved()
        && let Some(file) = kernel::file_of_fd(&o, ret as u32)
        && enforce_identity(&task, event_kind::OPEN, file, &op, |ev| {
            events::read_user_path(ev, op.path_ptr)
        })
    {
        return 0;
    }
    if task.has(task_flags::OBSERVE_ALL) {
        events::emit(&task, event_kind::OPEN, |ev| {
            ev.decision = decision::OBSERVED;
            ev.ret = ret as i32;
            ev.flags = op.flags;
            ev.dirfd = op.dirfd;
            events::read_user_path(ev, op.path_ptr);
        });
    }
    0
}

/// io_uring is refused by seccomp in fallback mode; report each refusal.
#[tracepoint]
pub fn sys_exit_io_uring_setup(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret == -EPERM {
        let by = By::Kernel(enforced_by::SECCOMP);
        verdict::refuse(&task, by, event_kind::IO_URING, 0, |ev| ev.ret = ret as i32);
    }
    0
}
