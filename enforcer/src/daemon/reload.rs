//! Hot reload: the policy directory validated as a whole, then each running task of a changed
//! policy moved to the new generation in one map update (a new rule set, then the swap).
use crate::vocab::Op;
use enforcer_common::{TaskEntry, TaskLimits};
use serde_json::json;

use super::{core::Core, policies};
use crate::{envelope::setup, policy};

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
#[error("the policy set is invalid; generation {kept} stays in force:\n{}", errors.join("\n"))]
pub struct ReloadError {
    pub kept: u32,
    pub errors: Vec<String>,
}

/// Why one running task could not be moved to a new generation (it keeps its rules).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the task ended meanwhile")]
    TaskGone,
    #[error("{0}")]
    Policy(#[from] policy::PolicyErrors),
    #[error("{0}")]
    Setup(#[from] crate::envelope::RunError),
    #[error("{0}")]
    Maps(#[from] crate::bpf::BpfError),
}

impl Core {
    /// Reads the policy directory; a bad set changes nothing and is reported (log and event).
    pub fn reload(&mut self, trigger: &str) -> Result<serde_json::Value, ReloadError> {
        let files = match policies::read(&self.config.policies) {
            Ok(f) => f,
            Err(errors) => {
                for e in &errors {
                    eprintln!("enforcer: policy error: {e}");
                }
                eprintln!(
                    "enforcer: the policies of generation {} stay in force",
                    self.policies.generation
                );
                let kept = self.policies.generation;
                self.reloads.1 += 1;
                self.emit_daemon(
                    Op::PolicyError,
                    json!({ "trigger": trigger, "errors": errors, "kept_generation": kept }),
                );
                return Err(ReloadError { kept, errors });
            }
        };
        let (set, change) = self.policies.replace(files);
        self.policies = set;
        // Parsed again for the next tasks (running ones keep theirs).
        self.parsed = super::policies::Parsed::default();
        self.state.generation = self.policies.generation;
        self.state.policies = self
            .policies
            .by_name
            .values()
            .map(|p| (p.name.clone(), (p.sha256.clone(), p.generation)))
            .collect();
        self.save_state();
        if !change.is_empty() {
            self.emit_daemon(
                Op::PolicyReload,
                json!({
                    "trigger": trigger,
                    "generation": self.policies.generation,
                    "changed": change.changed,
                    "added": change.added,
                    "removed": change.removed,
                }),
            );
        }
        let stale: Vec<(String, policies::PolicyFile)> = self
            .rt
            .tasks
            .values()
            .filter_map(|t| {
                let pf = self.policies.by_name.get(&t.saved.policy_name)?;
                (pf.text != t.saved.policy_text).then(|| (t.saved.task_id.clone(), pf.clone()))
            })
            .collect();
        let mut applied = Vec::new();
        let mut failed = Vec::new();
        for (id, pf) in stale {
            match self.apply_generation(&id, &pf) {
                Ok(()) => applied.push(id),
                Err(e) => {
                    eprintln!("enforcer: task {id} keeps its generation: {e}");
                    failed.push(json!({ "task_id": id, "error": e.to_string() }));
                }
            }
        }
        self.reloads.0 += 1;
        Ok(json!({
            "generation": self.policies.generation,
            "changed": change.changed,
            "added": change.added,
            "removed": change.removed,
            "tasks_updated": applied,
            "tasks_failed": failed,
        }))
    }

    /// Moves one task to `pf`'s generation: its new rules are written under a new rule set id,
    /// the task entry is swapped in one update, and only then are the old rules removed.
    fn apply_generation(
        &mut self,
        task_id: &str,
        pf: &policies::PolicyFile,
    ) -> Result<(), ApplyError> {
        let (vars, executable, slot, old_rules, cgroup_id, deadline, from) = {
            let t = self.rt.tasks.get(task_id).ok_or(ApplyError::TaskGone)?;
            let s = &t.saved;
            let vars: policy::Vars = s.vars.clone().into_iter().collect();
            (
                vars,
                s.executable.clone(),
                s.slot,
                s.rules,
                s.cgroup_id,
                s.deadline_boot_ns,
                s.generation,
            )
        };
        let parsed = policy::parse(&pf.file, &pf.text, &vars)?;
        let plan = setup::plan(parsed, executable, None, self.probe.clone())?;
        let rules = self.next_rules();
        let (identities, flags) = crate::runtime::install::identities(&plan, rules);
        self.rt
            .maps
            .install_rules(rules, &plan.files, &plan.net, &identities.entries)
            .inspect_err(|_| {
                self.rt.maps.remove_rules(rules);
            })?;
        // The deadline is the task's own, set when it started; a reload changes the rest.
        let limits = TaskLimits {
            deadline_ns: deadline,
            ..plan.policy.limits.kernel(None, 0)
        };
        let entry = TaskEntry {
            slot,
            generation: pf.generation,
            flags,
            rules,
            ..TaskEntry::default()
        };
        if let Err(e) = self.rt.maps.swap_entry(cgroup_id, entry) {
            self.rt.maps.remove_rules(rules);
            return Err(e.into());
        }
        let _ = self.rt.maps.limits.set(slot, limits, 0);
        self.rt.maps.remove_rules(old_rules);

        let mut unenforced = plan.unenforced.clone();
        unenforced.extend(identities.missing.iter().cloned());
        let lsm = self.probe.lsm_mode();
        let start_generation = self.rt.tasks.get(task_id).map_or(from, |t| {
            t.saved
                .unenforced
                .iter()
                .find_map(|u| landlock_generation(u))
                .unwrap_or(from)
        });
        if !lsm {
            unenforced.push(format!(
                "files and exec: the Landlock ruleset of generation {start_generation}, applied when \
                 the task started, stays in force (fallback mode cannot change a running task's \
                 Landlock domain); generation {}'s network rules, deny rules and limits are enforced",
                pf.generation
            ));
        }
        let Some(t) = self.rt.tasks.get_mut(task_id) else {
            return Ok(());
        };
        t.saved.generation = pf.generation;
        t.saved.rules = rules;
        t.saved.flags = flags;
        t.saved.policy_text = pf.text.clone();
        t.saved.unenforced = unenforced;
        let old = std::mem::replace(&mut t.policy, plan.policy);
        t.previous = Some(old);
        t.ctx = t.saved.context(&t.policy, t.ctx.boot_to_unix_ns);
        if let Err(e) = t.saved.store(&self.config.state_dir) {
            eprintln!("enforcer: warning: cannot save task {task_id}: {e}");
        }
        let r = crate::events::record::Record::lifecycle(
            &t.ctx,
            Op::PolicyApplied,
            t.saved.pid,
            json!({ "from_generation": from, "to_generation": pf.generation, "rule_entries": plan.files.len() + plan.net.len() }),
        );
        self.rt.emitter.emit(&r);
        Ok(())
    }
}

/// The generation named by an earlier fallback-mode Landlock note, if any.
fn landlock_generation(note: &str) -> Option<u32> {
    note.strip_prefix("files and exec: the Landlock ruleset of generation ")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}
