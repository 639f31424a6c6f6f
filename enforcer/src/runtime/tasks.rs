//! The runtime: the loaded programs' maps, the running tasks, the drain of the kernel's events
//! and the emitter they are written with. The daemon is this plus its socket, authorization,
//! reloads, sinks and saved state; a standalone `enforcer run` is this holding one task.
//!
//! Where a task is kept, gets its events, is ended (killed) and torn down: here.
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

use aya::maps::{MapData, RingBuf};
use enforcer_common::Event;
use serde_json::Value;

use super::{
    drain::{self, Attribute, Attributed},
    ending,
    task::Task,
    task_end::TaskEnd,
};
use crate::{
    bpf::maps::Maps,
    events::{
        Emitter,
        record::{Record, TaskContext},
        time,
    },
    policy::Policy,
    vocab::Op,
};

pub struct Runtime {
    pub maps: Maps,
    /// The running tasks by task id.
    pub tasks: BTreeMap<String, Task>,
    /// Task ids by cgroup id (the kernel's events name the cgroup).
    pub by_cgroup: HashMap<u64, String>,
    pub emitter: Emitter,
    /// Names what belongs to no task (the daemon's own records).
    pub outside: TaskContext,
    /// The kernel's drop counter as last reported.
    pub drops_seen: u64,
    /// Names events of no known task.
    none: Policy,
}

impl Runtime {
    pub fn new(maps: Maps, emitter: Emitter, outside: TaskContext) -> Self {
        Self {
            maps,
            tasks: BTreeMap::new(),
            by_cgroup: HashMap::new(),
            emitter,
            outside,
            drops_seen: 0,
            none: Policy::empty(),
        }
    }

    /// Holds `task` from now on: its events are attributed to it.
    pub fn insert(&mut self, task: Task) {
        let id = task.saved.task_id.clone();
        self.by_cgroup.insert(task.saved.cgroup_id, id.clone());
        self.tasks.insert(id, task);
    }

    /// Ends a task: kills whatever is left of it. The teardown follows when its cgroup is empty.
    pub fn end_task(&mut self, task_id: &str, why: String) {
        if let Some(t) = self.tasks.get_mut(task_id) {
            ending::end(&t.cgroup, &mut t.ending, &mut t.killed, why);
        }
    }

    /// The TTL of `task_id` passed: says so, and ends it.
    pub fn ttl_expired(&mut self, task_id: &str, why: &str) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.ending.is_some() {
            return;
        }
        let record = Record::ttl_kill(&task.ctx, task.saved.pid);
        self.emitter.emit(&record);
        self.end_task(task_id, why.into());
    }

    /// The tasks whose TTL passed at `now` (boot ns) and that are not ending yet.
    pub fn expired(&self, now: u64) -> Vec<String> {
        self.tasks
            .values()
            .filter(|t| {
                t.ending.is_none()
                    && t.saved.deadline_boot_ns != 0
                    && now > t.saved.deadline_boot_ns
            })
            .map(|t| t.saved.task_id.clone())
            .collect()
    }

    /// Writes what the kernel reported (at most `max` events), attributed to each task and
    /// generation, and ends the tasks the kernel ended. Returns the details of an
    /// `events_dropped` record when the kernel dropped events since the last call.
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>, max: usize) -> Option<Value> {
        let book = Book {
            tasks: &self.tasks,
            by_cgroup: &self.by_cgroup,
            outside: &self.outside,
            none: &self.none,
        };
        let drained = drain::drain(ring, max, &book, &mut self.emitter);
        for (cgroup_id, why) in drained.ends {
            if let Some(id) = self.by_cgroup.get(&cgroup_id).cloned() {
                self.end_task(&id, why);
            }
        }
        drain::dropped_since(&mut self.drops_seen, self.maps.drops())
    }

    /// Tears an ended (empty) task down: its map entries and cgroup; writes its one
    /// `task_end` (`exit`: how its command ended; `more`: fields the caller adds). Returns
    /// the task, for what the caller keeps of it (a watch, saved state).
    pub fn finalize(
        &mut self,
        task_id: &str,
        exit: Value,
        more: Vec<(&'static str, Value)>,
    ) -> Option<Task> {
        let task = self.tasks.remove(task_id)?;
        self.by_cgroup.remove(&task.saved.cgroup_id);
        let s = &task.saved;
        let counters = self.maps.counters(s.slot);
        let leftovers = self.maps.remove_task(s.slot, s.rules, s.cgroup_id);
        let removed = task.cgroup.remove();
        if let Err(e) = &removed {
            eprintln!("enforcer: cleanup of {task_id}: {e}");
        }
        let mut details = TaskEnd {
            reason: task.ending.clone().unwrap_or_else(|| "exited".into()),
            counters,
            duration_ms: time::boot_ns().saturating_sub(s.started_boot_ns) / 1_000_000,
            events_dropped: self.drops_seen,
            killed: &task.killed,
            cgroup: s.cgroup.display().to_string(),
            cgroup_removed: removed.is_ok(),
            leftovers,
            exit,
        }
        .details();
        if let Some(obj) = details.as_object_mut() {
            for (k, v) in more {
                obj.insert(k.into(), v);
            }
        }
        self.emitter
            .emit(&Record::lifecycle(&task.ctx, Op::TaskEnd, s.pid, details));
        Some(task)
    }
}

/// The tasks as a drain attributes events: by cgroup, then by generation (the previous
/// generation's policy names the rules of events queued before a swap); an event of no known
/// task is written under `cgroup-<id>`.
struct Book<'a> {
    tasks: &'a BTreeMap<String, Task>,
    by_cgroup: &'a HashMap<u64, String>,
    outside: &'a TaskContext,
    none: &'a Policy,
}

impl Attribute for Book<'_> {
    fn attribute(&self, ev: &Event) -> Attributed<'_> {
        let task = self
            .by_cgroup
            .get(&ev.cgroup_id)
            .and_then(|id| self.tasks.get(id));
        match task {
            Some(t) => {
                let policy = match &t.previous {
                    Some(p) if ev.generation != t.saved.generation => p,
                    _ => &t.policy,
                };
                let ctx = if ev.generation == t.ctx.policy.generation {
                    Cow::Borrowed(&t.ctx)
                } else {
                    let mut ctx = t.ctx.clone();
                    ctx.policy.generation = ev.generation;
                    Cow::Owned(ctx)
                };
                Attributed {
                    ctx,
                    policy,
                    task: Some((ev.cgroup_id, t.ending.is_some())),
                }
            }
            None => {
                let mut ctx = self.outside.clone();
                ctx.task = "(none)".into();
                ctx.task_id = format!("cgroup-{}", ev.cgroup_id);
                Attributed {
                    ctx: Cow::Owned(ctx),
                    policy: self.none,
                    task: None,
                }
            }
        }
    }
}
