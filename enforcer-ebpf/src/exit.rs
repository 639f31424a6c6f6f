//! Process exit: the wait status of a daemon task's command, for its `task_end` event. The
//! command is exec'd in place by `enforcer run`, so its parent is the caller's shell and the
//! daemon can learn the status only here.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};

use crate::{kernel, maps::EXITS, task};

/// Every thread passes here as it exits (`do_exit`, after `exit_code` is set). Each writes the
/// status, so the last thread of the process leaves the one `wait()` would report.
#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    // Processes outside the enforcer's cgroups leave after one cgroup compare.
    if task::current().is_none() {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(slot) = EXITS.get_ptr_mut(tgid) else {
        return 0;
    };
    if let Some(o) = kernel::resolved()
        && let Some(code) = kernel::exit_code(&o)
    {
        // SAFETY: the map's own i32 value; userspace reads it only after the process is gone.
        unsafe { *slot = code };
    }
    0
}
