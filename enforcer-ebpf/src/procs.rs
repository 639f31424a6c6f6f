//! Reaching other processes, both modes: the enter tracepoints of the syscalls that signal,
//! trace or reach into another process note the target; the shared exit tracepoint reports an
//! EPERM (Landlock's scoping in fallback mode and on 6.12, the `task_kill` and
//! `ptrace_access_check` hooks in lsm mode, or the kernel's own credential checks) as a
//! `SIGNAL` or `PTRACE` event, so no such refusal goes unseen.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use enforcer_common::{PendingOp, cross_op, enforced_by, event_kind};

use crate::{
    files::{arg, take_pending},
    maps::PENDING,
    task,
    verdict::{self, By},
};

/// These refusals are the kernel's (seccomp, Landlock's scoping, the LSM hooks, credential
/// checks); the event does not say which (userspace does, from the mode and the errno).
const KERNEL: By = By::Kernel(enforced_by::NONE);

const EPERM: i64 = 1;
const EACCES: i64 = 13;
const EXDEV: i64 = 18;

/// Notes what the syscall targets: `op` in `path_ptr`, the pid or pidfd in `dirfd`, the signal
/// or ptrace request in `flags`.
#[inline(always)]
fn note(kind: u32, op: u32, target: i64, detail: i64) -> u32 {
    if task::current().is_none() {
        return 0;
    }
    let pending = PendingOp {
        path_ptr: u64::from(op),
        kind,
        dirfd: target as i32,
        flags: detail as u32,
        _reserved: 0,
    };
    let _ = PENDING.insert(bpf_get_current_pid_tgid(), pending, 0);
    0
}

// Records: __syscall_nr at 8, then one 8-byte slot per argument from 16.

#[tracepoint]
pub fn sys_enter_kill(ctx: TracePointContext) -> u32 {
    note(
        event_kind::SIGNAL,
        cross_op::KILL,
        arg(&ctx, 16),
        arg(&ctx, 24),
    )
}

#[tracepoint]
pub fn sys_enter_tkill(ctx: TracePointContext) -> u32 {
    note(
        event_kind::SIGNAL,
        cross_op::TKILL,
        arg(&ctx, 16),
        arg(&ctx, 24),
    )
}

#[tracepoint]
pub fn sys_enter_tgkill(ctx: TracePointContext) -> u32 {
    note(
        event_kind::SIGNAL,
        cross_op::TGKILL,
        arg(&ctx, 16),
        arg(&ctx, 32),
    )
}

#[tracepoint]
pub fn sys_enter_pidfd_send_signal(ctx: TracePointContext) -> u32 {
    let op = cross_op::PIDFD_SEND_SIGNAL;
    note(event_kind::SIGNAL, op, arg(&ctx, 16), arg(&ctx, 24))
}

#[tracepoint]
pub fn sys_enter_rt_sigqueueinfo(ctx: TracePointContext) -> u32 {
    let op = cross_op::RT_SIGQUEUEINFO;
    note(event_kind::SIGNAL, op, arg(&ctx, 16), arg(&ctx, 24))
}

#[tracepoint]
pub fn sys_enter_ptrace(ctx: TracePointContext) -> u32 {
    note(
        event_kind::PTRACE,
        cross_op::PTRACE,
        arg(&ctx, 24),
        arg(&ctx, 16),
    )
}

#[tracepoint]
pub fn sys_enter_pidfd_getfd(ctx: TracePointContext) -> u32 {
    note(event_kind::PTRACE, cross_op::PIDFD_GETFD, arg(&ctx, 16), 0)
}

#[tracepoint]
pub fn sys_enter_process_vm_readv(ctx: TracePointContext) -> u32 {
    let op = cross_op::PROCESS_VM_READV;
    note(event_kind::PTRACE, op, arg(&ctx, 16), 0)
}

#[tracepoint]
pub fn sys_enter_process_vm_writev(ctx: TracePointContext) -> u32 {
    let op = cross_op::PROCESS_VM_WRITEV;
    note(event_kind::PTRACE, op, arg(&ctx, 16), 0)
}

/// Attached to the exit tracepoint of each syscall above.
#[tracepoint]
pub fn sys_exit_cross(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let Some(op) = take_pending() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret != -EPERM || (op.kind != event_kind::SIGNAL && op.kind != event_kind::PTRACE) {
        return 0;
    }
    verdict::refuse(&task, KERNEL, op.kind, 0, |ev| {
        ev.ret = ret as i32;
        ev.op = op.path_ptr as u32;
        ev.count = op.dirfd as u32 as u64;
        ev.flags = op.flags;
    });
    0
}

const EAFNOSUPPORT: i64 = 97;

/// socket(2) refused by the task's seccomp filter (ICMP sockets, other address families) or
/// by the kernel (raw sockets without CAP_NET_RAW): seccomp skips the enter tracepoint, so the
/// errno alone says which.
#[tracepoint]
pub fn sys_exit_socket(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret != -EPERM && ret != -EAFNOSUPPORT {
        return 0;
    }
    verdict::refuse(&task, KERNEL, event_kind::SOCKET, 0, |ev| {
        ev.ret = ret as i32
    });
    0
}

/// Syscalls refused with EPERM that nothing else reports (see `event_kind::SYSCALL`): the
/// record's own syscall number says which.
#[tracepoint]
pub fn sys_exit_refused(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret != -EPERM {
        return 0;
    }
    report_syscall(&ctx, &task, ret)
}

/// Fallback mode: changes of names refused by Landlock (EACCES, or EXDEV for a link or rename
/// that would give a file more access), and truncate(2): reported without the path (the LSM
/// hooks report them with it in lsm mode).
#[tracepoint]
pub fn sys_exit_name_refused(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret != -EACCES && ret != -EXDEV {
        return 0;
    }
    report_syscall(&ctx, &task, ret)
}

/// A `SYSCALL` event for the refused syscall whose exit `ctx` is (its number names it).
#[inline(always)]
fn report_syscall(ctx: &TracePointContext, task: &task::Task, ret: i64) -> u32 {
    let nr: i32 = arg(ctx, 8);
    verdict::refuse(task, KERNEL, event_kind::SYSCALL, 0, |ev| {
        ev.ret = ret as i32;
        ev.op = nr as u32;
    });
    0
}
