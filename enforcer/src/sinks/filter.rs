//! Which events a sink gets: by decision, operation, task and policy. An empty list lets
//! everything through; a loss report (`events_dropped`) always goes through, so a receiver that
//! asked only for denials still learns that some were lost.
use crate::vocab::Op;
use serde::Deserialize;

use crate::events::record::Record;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `allow`, `deny`, `kill`, `audit`, `observed`.
    #[serde(default)]
    pub decision: Vec<String>,
    /// `open`, `exec`, `connect`, `task_start`, `task_end`, ...
    #[serde(default)]
    pub op: Vec<String>,
    /// Task names.
    #[serde(default)]
    pub task: Vec<String>,
    /// Policy names.
    #[serde(default)]
    pub policy: Vec<String>,
}

/// The decisions an event can carry.
pub const DECISIONS: &[&str] = &["allow", "deny", "kill", "audit", "observed"];

impl Filter {
    pub fn matches(&self, r: &Record) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        r.op == Op::EventsDropped
            || (any(&self.decision, r.decision.as_str())
                && any(&self.op, r.op.as_str())
                && any(&self.task, &r.task)
                && any(&self.policy, &r.policy.name))
    }

    /// A decision no event carries is a typo, not a filter.
    pub fn check(&self) -> Result<(), String> {
        for d in &self.decision {
            if !DECISIONS.contains(&d.as_str()) {
                return Err(format!(
                    "unknown decision \"{d}\" in filter; expected one of {}",
                    DECISIONS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::vocab::{Decision, EnforcementMode};
    use serde_json::json;

    use super::*;
    use crate::events::record::{PolicyRef, TaskContext};

    fn record(op: &'static str, decision: &'static str, task: &str, policy: &str) -> Record {
        let ctx = TaskContext {
            task: task.into(),
            task_id: format!("{task}-1"),
            intent: None,
            policy: PolicyRef {
                name: policy.into(),
                version: 1,
                sha256: String::new(),
                generation: 1,
            },
            mode: EnforcementMode::Lsm,
            unenforced: Vec::new(),
            boot_to_unix_ns: 0,
        };
        let mut r = Record::lifecycle(&ctx, Op::parse(op).expect("an op"), 1, json!({}));
        r.decision = Decision::parse(decision).expect("a decision");
        r
    }

    #[test]
    fn every_list_must_match_and_empty_lists_match_all() {
        let all = Filter::default();
        assert!(all.matches(&record("open", "allow", "t", "p")));
        let denials = Filter {
            decision: vec!["deny".into(), "kill".into()],
            ..Filter::default()
        };
        assert!(denials.matches(&record("open", "deny", "t", "p")));
        assert!(denials.matches(&record("exec", "kill", "t", "p")));
        assert!(!denials.matches(&record("open", "allow", "t", "p")));
        let narrow = Filter {
            decision: vec!["deny".into()],
            op: vec!["connect".into()],
            task: vec!["agent".into()],
            policy: vec!["coding".into()],
        };
        assert!(narrow.matches(&record("connect", "deny", "agent", "coding")));
        assert!(!narrow.matches(&record("open", "deny", "agent", "coding")));
        assert!(!narrow.matches(&record("connect", "deny", "other", "coding")));
        assert!(!narrow.matches(&record("connect", "deny", "agent", "other")));
    }

    #[test]
    fn loss_reports_pass_every_filter() {
        let narrow = Filter {
            decision: vec!["deny".into()],
            op: vec!["connect".into()],
            ..Filter::default()
        };
        assert!(narrow.matches(&record("events_dropped", "allow", "d", "")));
    }

    #[test]
    fn unknown_decisions_are_errors() {
        let f = Filter {
            decision: vec!["denied".into()],
            ..Filter::default()
        };
        assert!(f.check().unwrap_err().contains("\"denied\""));
    }
}
