//! The `task_end` record's details: how the task ended, what it did, and what was left after
//! the teardown. Built here for both the daemon and a standalone run.
use enforcer_common::TaskCounters;
use serde_json::{Value, json};

use crate::{bpf::maps::Leftovers, kernel::cgroup::Killed};

/// Everything `task_end` says.
pub struct TaskEnd<'a> {
    /// Why it ended ("exited" when its command did).
    pub reason: String,
    pub counters: TaskCounters,
    pub duration_ms: u64,
    pub events_dropped: u64,
    pub killed: &'a [Killed],
    pub cgroup: String,
    pub cgroup_removed: bool,
    pub leftovers: Leftovers,
    /// How the command exited (exit code, signal), as each side knows it.
    pub exit: Value,
}

impl TaskEnd<'_> {
    pub fn details(self) -> Value {
        let c = self.counters;
        let mut details = json!({
            "reason": self.reason,
            "counters": {
                "execs": c.execs, "opens": c.opens, "connects": c.connects, "denials": c.denials,
            },
            "duration_ms": self.duration_ms,
            "events_dropped": self.events_dropped,
            "killed": self.killed,
            "cleanup": {
                "cgroup": self.cgroup,
                "cgroup_removed": self.cgroup_removed,
                "map_entries_left": self.leftovers.total(),
            },
        });
        if let (Some(d), Value::Object(e)) = (details.as_object_mut(), self.exit) {
            d.extend(e);
        }
        details
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_names_the_reason_counts_and_leftovers_and_keeps_the_exit() {
        let d = TaskEnd {
            reason: "exited".into(),
            counters: TaskCounters {
                execs: 2,
                denials: 1,
                ..TaskCounters::default()
            },
            duration_ms: 7,
            events_dropped: 0,
            killed: &[],
            cgroup: "/sys/fs/cgroup/x".into(),
            cgroup_removed: true,
            leftovers: Leftovers::default(),
            exit: json!({ "exit_code": 3, "signal": null }),
        }
        .details();
        assert_eq!(d["reason"], "exited");
        assert_eq!(d["counters"]["execs"], 2);
        assert_eq!(d["counters"]["denials"], 1);
        assert_eq!(d["cleanup"]["map_entries_left"], 0);
        assert_eq!(d["exit_code"], 3);
    }
}
