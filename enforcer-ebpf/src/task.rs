//! Which task the current process belongs to, and its counters and limits.
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::helpers::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id, bpf_ktime_get_boot_ns,
};
use enforcer_common::{
    ENDED_BY_KILL, RootCgroup, TaskCounters, TaskEntry, limit_kind, root_scope, task_flags,
};

use crate::maps::{COUNTERS, LIMITS, TASKS};

pub struct Task {
    pub cgroup_id: u64,
    pub entry: TaskEntry,
}

impl Task {
    #[inline(always)]
    pub fn has(&self, flag: u32) -> bool {
        self.entry.flags & flag != 0
    }
}

/// Filled by userspace before load; zero means "unknown" (every process is looked up).
#[unsafe(no_mangle)]
static ROOT_CGROUP: RootCgroup = RootCgroup {
    id: 0,
    level: 0,
    valid: 0,
};

/// The task of the current process, or `None` for a process that is not in an envelope.
/// Processes outside the enforcer's root cgroup leave after one helper call and a compare.
#[inline(always)]
pub fn current() -> Option<Task> {
    // SAFETY: a read-only global; volatile so the loader's value is read.
    let root = unsafe { core::ptr::read_volatile(&ROOT_CGROUP) };
    if root.valid != 0
        && unsafe { bpf_get_current_ancestor_cgroup_id(root.level as i32) } != root.id
    {
        return None;
    }
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is copied out at once; userspace may replace it concurrently.
    match unsafe { TASKS.get(cgroup_id) } {
        Some(entry) => Some(Task {
            cgroup_id,
            entry: *entry,
        }),
        // Under a daemon's root every cgroup must be a task's: a stranger there (a cgroup a
        // task made for itself, or a task being torn down) is refused everything.
        None if root.valid >= root_scope::FAIL_CLOSED => Some(Task {
            cgroup_id,
            entry: TaskEntry::stranger(if root.valid == root_scope::FAIL_CLOSED {
                task_flags::NO_TASK | task_flags::NO_TASK_KILL
            } else {
                task_flags::NO_TASK
            }),
        }),
        None => None,
    }
}

/// The current task, or a stranger (refused everything) for a process in an enforcer cgroup
/// with no task entry: for programs attached only to enforcer cgroups.
#[inline(always)]
pub fn current_or_stranger() -> Task {
    current().unwrap_or_else(|| Task {
        // SAFETY: a plain helper call.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        entry: TaskEntry::stranger(task_flags::NO_TASK),
    })
}

/// A counter in [`TaskCounters`].
#[derive(Clone, Copy)]
pub enum Counter {
    Execs,
    Opens,
    Connects,
    Denials,
}

/// A limit the current operation exceeded.
pub struct LimitHit {
    pub kind: u32,
    pub count: u64,
    pub limit: u64,
}

#[inline(always)]
fn counters(task: &Task) -> Option<*mut TaskCounters> {
    COUNTERS.get_ptr_mut(task.entry.slot)
}

#[inline(always)]
fn add_one(field: *mut u64) -> u64 {
    // SAFETY: `field` points into a map value, which is 8-byte aligned and lives as long as the
    // map. BPF atomics make the add safe against other CPUs.
    // core::sync::atomic has no read-modify-write for the bpf target, and aya-build compiles
    // for the generic CPU, whose atomic add returns nothing. So: an exact atomic add, then a
    // read. Two CPUs passing a limit together may both see it exceeded; both act, which is
    // what a limit wants, and userspace reports the limit once.
    unsafe {
        let _ = atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(field, 1);
        core::ptr::read_volatile(field)
    }
}

/// Adds one to `counter` and returns the limit it now exceeds, if any.
#[inline(always)]
pub fn count(task: &Task, counter: Counter) -> Option<LimitHit> {
    let counters = counters(task)?;
    let limits = LIMITS.get(task.entry.slot)?;
    // SAFETY: `counters` is a valid map value pointer (checked non-null by get_ptr_mut).
    let (field, limit, kind) = unsafe {
        match counter {
            Counter::Execs => (
                &raw mut (*counters).execs,
                limits.max_execs,
                limit_kind::EXECS,
            ),
            Counter::Opens => (&raw mut (*counters).opens, 0, 0),
            Counter::Connects => (
                &raw mut (*counters).connects,
                limits.max_connects,
                limit_kind::CONNECTS,
            ),
            Counter::Denials => (
                &raw mut (*counters).denials,
                limits.max_denials,
                limit_kind::DENIALS,
            ),
        }
    };
    let count = add_one(field);
    (limit != 0 && count > limit).then_some(LimitHit { kind, count, limit })
}

/// The TTL hit, if the task's deadline has passed.
#[inline(always)]
pub fn expired(task: &Task) -> Option<LimitHit> {
    let limits = LIMITS.get(task.entry.slot)?;
    let deadline = limits.deadline_ns;
    if deadline == 0 {
        return None;
    }
    let now = unsafe { bpf_ktime_get_boot_ns() };
    (now > deadline).then_some(LimitHit {
        kind: limit_kind::TTL,
        count: now,
        limit: deadline,
    })
}

/// Whether the task is being ended: every further checked operation is refused.
#[inline(always)]
pub fn ended(task: &Task) -> bool {
    match counters(task) {
        // SAFETY: a valid map value pointer.
        Some(c) => unsafe { core::ptr::read_volatile(&raw const (*c).ended) != 0 },
        None => false,
    }
}

/// Marks the task as being ended after a kill-on-violation (a limit marks it itself).
#[inline(always)]
pub fn end_after_kill(task: &Task) {
    if let Some(c) = counters(task) {
        // SAFETY: a valid map value pointer; a lost race leaves another non-zero value.
        unsafe {
            let flag = &raw mut (*c).ended;
            if core::ptr::read_volatile(flag) == 0 {
                core::ptr::write_volatile(flag, ENDED_BY_KILL);
            }
        }
    }
}

/// Marks the task as being ended by the limit `kind`. True for the first mark (its `limit`
/// event is then sent once).
#[inline(always)]
pub fn mark_ended(task: &Task, kind: u32) -> bool {
    let Some(counters) = counters(task) else {
        return false;
    };
    // SAFETY: as in `add_one`. Not a compare-and-swap (see there): a race may send two limit
    // events, which userspace folds into one.
    unsafe {
        let flag = &raw mut (*counters).ended;
        let first = core::ptr::read_volatile(flag) == 0;
        if first {
            core::ptr::write_volatile(flag, u64::from(kind));
        }
        first
    }
}
