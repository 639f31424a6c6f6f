//! Which kernel events end a task. The kernel marks the task ended itself (a limit, or a
//! kill-on-violation); userspace then kills what is left of it, once.
use enforcer_common::{Event, decision, event_kind};

use crate::{
    events::record::Record,
    kernel::cgroup::{Killed, TaskCgroup},
};

/// Ends a task: the first reason given is the one `task_end` says; whatever is left in its
/// cgroup is killed, each process named in `killed`. The teardown follows once it is empty.
pub fn end(
    cgroup: &TaskCgroup,
    ending: &mut Option<String>,
    killed: &mut Vec<Killed>,
    why: String,
) {
    if ending.is_none() {
        *ending = Some(why);
    }
    match cgroup.kill_named() {
        Ok(k) => killed.extend(k),
        Err(e) => eprintln!(
            "enforcer: cannot kill the task in {}: {e}",
            cgroup.path.display()
        ),
    }
}

/// Why `ev` ends its task (`record` is what it was decoded to), or `None`.
pub fn of(ev: &Event, record: Option<&Record>) -> Option<String> {
    if ev.kind == event_kind::LIMIT {
        let name = record.map_or("limit", |r| r.target.as_str());
        Some(format!("limit {name} exceeded"))
    } else if ev.decision == decision::KILL {
        Some("kill-on-violation".into())
    } else {
        None
    }
}

/// Whether a second report of the same ending should be dropped: two CPUs may both report
/// a limit; the task ends, and says so, once.
pub fn is_repeat(ev: &Event, already_ending: bool) -> bool {
    ev.kind == event_kind::LIMIT && already_ending
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u32, dec: u32) -> Event {
        // SAFETY: Event is plain integers and byte arrays; all zero is a valid value.
        let mut ev: Event = unsafe { std::mem::zeroed() };
        ev.kind = kind;
        ev.decision = dec;
        ev
    }

    #[test]
    fn limits_and_kills_end_a_task_and_nothing_else_does() {
        let limit = event(event_kind::LIMIT, decision::KILL);
        assert_eq!(of(&limit, None).as_deref(), Some("limit limit exceeded"));
        let kill = event(event_kind::OPEN, decision::KILL);
        assert_eq!(of(&kill, None).as_deref(), Some("kill-on-violation"));
        assert_eq!(of(&event(event_kind::OPEN, decision::DENY), None), None);
        assert_eq!(of(&event(event_kind::CONNECT, decision::AUDIT), None), None);
        assert!(is_repeat(&limit, true));
        assert!(!is_repeat(&limit, false));
        assert!(!is_repeat(&kill, true));
    }
}
