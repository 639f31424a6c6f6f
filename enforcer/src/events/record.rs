//! The JSON event: one object per line, with intent, decision and side effect together. The
//! kernel's records become these in `kernel_event.rs` (and `lsm.rs` for the LSM hooks').
use std::path::{Component, Path, PathBuf};

use enforcer_common::{
    RULE_DEFAULT_DENY, RULE_NAMELESS_EXEC, RULE_NO_TASK, RULE_OUTSIDE_TASK, RULE_TASK_ENDED,
    RULE_WRITE_ONLY,
};
use serde::Serialize;
use serde_json::{Map, Value};

use super::time;
use crate::{
    policy::Policy,
    vocab::{Decision, EnforcedBy, EnforcementMode, Op},
};

pub use enforcer_common::RULE_EXEC_ONLY as EXEC_ONLY;

/// The policy as every event names it.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyRef {
    pub name: String,
    pub version: u64,
    pub sha256: String,
    pub generation: u32,
}

/// What stays the same for every event of one task.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub task: String,
    pub task_id: String,
    pub intent: Option<String>,
    pub policy: PolicyRef,
    pub mode: EnforcementMode,
    /// Rules that cannot be enforced as written here, each with its reason: in full in the
    /// lifecycle records, by topic ([`gap_topic`]) in every other event.
    pub unenforced: Vec<String>,
    pub boot_to_unix_ns: i128,
}

impl TaskContext {
    /// The gaps as every kernel event names them: the topic of each, without its reason
    /// (which `task_start` and `--explain` give). The full list made up over half of the
    /// bytes written for an ordinary task in fallback mode.
    pub fn unenforced_topics(&self) -> Vec<String> {
        self.unenforced
            .iter()
            .map(|gap| gap_topic(gap).to_owned())
            .collect()
    }
}

/// "mount, move_mount, pivot_root: refused by Landlock ..." -> "mount, move_mount, pivot_root".
pub fn gap_topic(gap: &str) -> &str {
    gap.split_once(": ").map_or(gap, |(topic, _)| topic)
}

/// One event as written.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub time: String,
    /// The same instant as Unix nanoseconds (for formats that want epoch time).
    #[serde(skip)]
    pub unix_ns: i128,
    pub task: String,
    pub task_id: String,
    pub policy: PolicyRef,
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    pub comm: String,
    pub op: Op,
    pub target: String,
    pub access: &'static str,
    pub decision: Decision,
    pub rule: String,
    pub enforced_by: EnforcedBy,
    pub mode: EnforcementMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<&'static str>,
    pub intent: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unenforced: Vec<String>,
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl Record {
    /// The task's TTL passed: userspace ends it (the kernel refuses from then on too).
    pub fn ttl_kill(ctx: &TaskContext, pid: u32) -> Self {
        Self {
            op: Op::Limit,
            target: "ttl".into(),
            decision: Decision::Kill,
            enforced_by: EnforcedBy::Kill,
            rule: "limits.ttl".into(),
            ..Self::lifecycle(ctx, Op::Limit, pid, Value::Null)
        }
    }

    /// A record that does not come from the kernel (task_start, task_end, a userspace limit).
    pub fn lifecycle(ctx: &TaskContext, op: Op, pid: u32, details: Value) -> Self {
        let now = time::now_unix_ns();
        Self {
            time: time::rfc3339(now),
            unix_ns: now,
            task: ctx.task.clone(),
            task_id: ctx.task_id.clone(),
            policy: ctx.policy.clone(),
            pid,
            tid: None,
            comm: String::new(),
            op,
            target: ctx.task.clone(),
            access: "none",
            decision: Decision::Allow,
            rule: String::new(),
            enforced_by: EnforcedBy::None,
            mode: ctx.mode,
            errno: None,
            intent: ctx.intent.clone(),
            unenforced: ctx.unenforced.clone(),
            details: match details {
                Value::Object(m) => m,
                _ => Map::new(),
            },
        }
    }
}

/// `/a/./b/../c` -> `/a/c` (lexically; symlinks are the kernel's business).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

pub fn rule_label(policy: &Policy, id: u32) -> String {
    match id {
        RULE_DEFAULT_DENY => "default deny (no rule allows it)".into(),
        RULE_NO_TASK => "fail closed (process in an enforcer cgroup without a task)".into(),
        RULE_TASK_ENDED => {
            "the task is being ended (a limit was exceeded or a violation killed it)".into()
        }
        RULE_NAMELESS_EXEC => "a program with no name on any filesystem (memfd or unlinked \
                               file): no rule can allow it"
            .into(),
        RULE_OUTSIDE_TASK => "an abstract unix socket of a process outside the task: no rule \
                              can allow it"
            .into(),
        id if id & EXEC_ONLY != 0 => "ELF interpreter run directly (allowed only as the loader \
                                      of an allowed binary)"
            .into(),
        id if id & RULE_WRITE_ONLY != 0 => rule_label(policy, id & !RULE_WRITE_ONLY),
        id => policy.rules.get(id as usize).map_or_else(
            || format!("rule #{id}"),
            |r| format!("{} \"{}\"", r.label(), r.text),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn every_event_names_a_gap_by_its_topic() {
        assert_eq!(
            gap_topic("mount, move_mount, pivot_root: refused by Landlock (EPERM): x"),
            "mount, move_mount, pivot_root"
        );
        assert_eq!(gap_topic("no reason given"), "no reason given");
    }
}
