//! The one verdict path. Every hook finds its task and passes it through [`gate`] (the task's
//! deadline and ending, strangers failing closed), decides its own rule, and hands each
//! refusal to [`refuse`]: the only place that applies audit mode, kills on a violation, ends
//! the task, counts the denial against `max_denials`, and emits the event. A new check (flow
//! labels, grant expiry, a parent envelope) goes in [`gate`] or refuses through [`refuse`] and
//! gets all of that.
use aya_ebpf::helpers::bpf_send_signal;
use enforcer_common::{
    Event, RULE_NO_TASK, RULE_TASK_ENDED, decision, enforced_by, event_kind, task_flags,
};

/// What a hook does with an operation after [`gate`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Check it against the task's rules.
    Check,
    /// Refuse it at once, by this rule (`RULE_NO_TASK`, `RULE_TASK_ENDED`).
    Refuse(u32),
    /// Not ours to check.
    Ignore,
}

/// The start of every check of `task` (found by `task::current`, or a stranger): its deadline
/// (a `limit` event, and the kill where `by` can) and its ending, one convention per kind of
/// hook.
///
/// - A stranger (a cgroup under a daemon's root with no task entry) fails closed: the socket
///   programs refuse it; the tracepoints kill it at its first open or exec where the root says
///   so and leave it to Landlock otherwise; the LSM hooks check it, refusing with the path.
/// - Past its deadline or being ended, an LSM hook or socket program refuses; a tracepoint
///   cannot refuse, so the caller is killed and the operation left to its exit tracepoint.
/// - Audit mode records a deadline passed and refuses nothing.
#[inline(always)]
pub fn gate(task: &Task, by: By) -> Gate {
    if task.has(task_flags::NO_TASK) {
        return match by {
            By::Cgroup => Gate::Refuse(RULE_NO_TASK),
            By::Kill if task.has(task_flags::NO_TASK_KILL) => Gate::Refuse(RULE_NO_TASK),
            By::Kill => Gate::Ignore,
            By::Lsm | By::Kernel(_) => Gate::Check,
        };
    }
    let refused_now = by == By::Lsm || by == By::Cgroup;
    if let Some(hit) = task::expired(task) {
        if over_limit(task, by, Some(hit)) && refused_now {
            return Gate::Refuse(RULE_TASK_ENDED);
        }
    } else if !task.has(task_flags::AUDIT) && task::ended(task) {
        if refused_now {
            return Gate::Refuse(RULE_TASK_ENDED);
        }
        // Once the task is being ended, any process of it that tries anything dies at once.
        kill_current();
    }
    Gate::Check
}

use crate::{
    events,
    task::{self, Counter, LimitHit, Task},
};

pub const EPERM: i32 = 1;
const SIGKILL: u32 = 9;

/// Who enforces a refusal, which fixes what it does besides the event.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// An LSM hook refuses the operation itself (-EPERM).
    Lsm,
    /// A cgroup socket program refuses it (EPERM). Cgroup programs may not send signals on
    /// every kernel (not on 6.1), so going over `max_denials` ends the task from userspace.
    Cgroup,
    /// A tracepoint, after the fact: the operation happened, so its caller is killed before it
    /// returns to user mode and the task is ended.
    Kill,
    /// The kernel refused already ([`enforced_by`]: Landlock, seccomp, its own checks); this
    /// reports it. Audit mode does not change a refusal that was not ours.
    Kernel(u32),
}

/// Kills the current process before it returns to user mode; userspace kills the whole task.
#[inline(always)]
pub fn kill_current() {
    // SAFETY: allowed from tracepoints and LSM hooks; the signal is delivered before the
    // return to user mode.
    unsafe { bpf_send_signal(SIGKILL) };
}

/// Reports a refusal of one operation of `task` (in audit mode, one that would have been),
/// `rule_id` naming the rule that decided, `fill` writing the rest of the event. Returns
/// whether the operation is refused.
#[inline(always)]
pub fn refuse(task: &Task, by: By, kind: u32, rule_id: u32, fill: impl FnOnce(&mut Event)) -> bool {
    let audit = task.has(task_flags::AUDIT) && !matches!(by, By::Kernel(_));
    let (dec, by_whom) = match by {
        _ if audit => (
            decision::AUDIT,
            // An LSM verdict says so in audit mode too: userspace shows it as enforced by
            // none, but knows the hook decided (it carries the path the hook resolved).
            if by == By::Lsm {
                enforced_by::LSM
            } else {
                enforced_by::NONE
            },
        ),
        By::Lsm => (decision::DENY, enforced_by::LSM),
        By::Cgroup => (decision::DENY, enforced_by::CGROUP),
        By::Kill => (decision::KILL, enforced_by::KILL),
        By::Kernel(who) => (decision::DENY, who),
    };
    if by == By::Kill && !audit {
        kill_current();
        task::end_after_kill(task);
    }
    let ret = match by {
        By::Lsm | By::Cgroup if !audit => -EPERM,
        _ => 0,
    };
    let emit = |ev: &mut Event| {
        ev.decision = dec;
        ev.enforced_by = by_whom;
        ev.ret = ret;
        ev.rule_id = rule_id;
        fill(ev);
    };
    if by == By::Kill {
        events::emit_urgent(task, kind, emit);
    } else {
        events::emit(task, kind, emit);
    }
    // A refusal because the task is gone or being ended is not one more denial: the limit or
    // violation that ended it was.
    if rule_id != RULE_TASK_ENDED && rule_id != RULE_NO_TASK {
        count_denial(task, by);
    }
    !audit
}

/// Counts a denial; over `max_denials` the task is ended (its caller killed where the hook
/// can send a signal).
#[inline(always)]
pub fn count_denial(task: &Task, by: By) {
    if let Some(hit) = task::count(task, Counter::Denials) {
        record_limit(task, &hit);
        if by != By::Cgroup && !task.has(task_flags::AUDIT) {
            kill_current();
        }
    }
}

/// Records that `hit` happened; the first hit of a task sends its one `limit` event.
#[inline(always)]
pub fn record_limit(task: &Task, hit: &LimitHit) {
    if task::mark_ended(task, hit.kind) {
        events::emit_urgent(task, event_kind::LIMIT, |ev| {
            ev.decision = decision::KILL;
            ev.enforced_by = enforced_by::KILL;
            ev.limit_kind = hit.kind;
            ev.count = hit.count;
            ev.limit = hit.limit;
        });
    }
}

/// Applies a limit the current operation went over: recorded, and unless in audit mode the
/// caller is killed where `by` can. Returns whether the operation is refused.
#[inline(always)]
pub fn over_limit(task: &Task, by: By, hit: Option<LimitHit>) -> bool {
    let Some(hit) = hit else {
        return false;
    };
    record_limit(task, &hit);
    let audit = task.has(task_flags::AUDIT);
    if !audit && by != By::Cgroup {
        kill_current();
    }
    !audit
}
