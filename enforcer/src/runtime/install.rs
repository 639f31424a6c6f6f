//! Where a task starts in the kernel: its rules, identities, flags, limits and, last, the tag
//! on its cgroup, written for a planned policy. The daemon and a standalone run both start
//! tasks here; a reload writes a new rule set with [`identities`] and swaps the entry.
use std::time::Duration;

use enforcer_common::{TaskEntry, TaskLimits, task_flags};

use crate::{
    bpf::{
        BpfError,
        maps::{Maps, TaskEntries},
    },
    envelope::{identity, setup::Prepared},
    policy::Mode,
};

/// Where in the maps a task goes.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub slot: u32,
    /// The rule set id (`TaskEntry::rules`).
    pub rules: u32,
    pub cgroup_id: u64,
    /// The policy generation that planned it.
    pub generation: u32,
}

/// What was written for a task.
pub struct Installed {
    pub entry: TaskEntry,
    pub limits: TaskLimits,
    /// The plan's unenforced rules and the identities that could not be found.
    pub unenforced: Vec<String>,
    /// Identity entries written (for the start record's counts).
    pub identity_entries: usize,
}

/// Writes a planned task's entries and tags its cgroup (last: the programs see the task only
/// once everything it needs is in place). On error nothing of it is left in the maps.
pub fn install(
    maps: &mut Maps,
    plan: &Prepared,
    at: Place,
    ttl: Option<Duration>,
    now_ns: u64,
) -> Result<Installed, BpfError> {
    let (ids, flags) = identities(plan, at.rules);
    let limits = plan.policy.limits.kernel(ttl, now_ns);
    let entry = TaskEntry {
        slot: at.slot,
        generation: at.generation,
        flags,
        rules: at.rules,
        ..TaskEntry::default()
    };
    let written = maps.install_task(&TaskEntries {
        slot: at.slot,
        rules: at.rules,
        cgroup_id: at.cgroup_id,
        entry,
        limits,
        files: &plan.files,
        net: &plan.net,
        inodes: &ids.entries,
    });
    if let Err(e) = written {
        maps.remove_task(at.slot, at.rules, at.cgroup_id);
        return Err(e);
    }
    let mut unenforced = plan.unenforced.clone();
    unenforced.extend(ids.missing.iter().cloned());
    Ok(Installed {
        entry,
        limits,
        unenforced,
        identity_entries: ids.entries.len(),
    })
}

/// The identity deny entries of a planned task (keyed by rule set `rules`) and the task flags
/// that go with them.
pub fn identities(plan: &Prepared, rules: u32) -> (identity::Identities, u32) {
    let policy = &plan.policy;
    let mut identities = identity::deny_identities(policy, rules);
    identities.entries.extend(identity::interpreter_identities(
        policy,
        &plan.interpreters,
        rules,
    ));
    let mut flags = 0;
    if plan.offsets.is_some() {
        let exec_only = |(_, rule): &&(_, u32)| rule & enforcer_common::RULE_EXEC_ONLY != 0;
        if identities.entries.iter().any(|e| !exec_only(&e)) {
            flags |= task_flags::DENY_INODES;
        }
        if identities.entries.iter().any(|e| exec_only(&e)) {
            flags |= task_flags::EXEC_IDENTITIES;
        }
    }
    if identities.has_dirs {
        flags |= task_flags::DENY_DIRS;
    }
    if policy.mode == Mode::Audit {
        // In lsm mode the hooks decide audit-mode operations themselves; in fallback mode
        // nothing refuses them, so every open and exec is reported for userspace to decide.
        flags |= task_flags::AUDIT;
        if !plan.probe.lsm_mode() {
            flags |= task_flags::OBSERVE_ALL;
        }
    }
    (identities, flags)
}
