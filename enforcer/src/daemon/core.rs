//! The daemon's state: the programs (loaded once, or adopted from their pins), the maps, the
//! task table, the policy set and the event writer. Requests and kernel events are applied
//! to it one at a time by the main loop.
use crate::vocab::EnforcementMode;
use crate::vocab::Op;
use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use aya::maps::{MapData, RingBuf};
use serde_json::json;

use super::{
    DaemonError, config::Config, inotify::Inotify, policies::PolicySet, programs::Programs,
    state::DaemonState,
};
use crate::{
    bpf::pin::PinDir,
    events::{
        Emitter,
        record::{PolicyRef, Record, TaskContext},
        time,
        writer::{Target, Writer},
    },
    kernel::{cgroup, probe::Probe},
    policy::Policy,
    runtime::{task::Saved, tasks::Runtime},
};

/// How many task numbers and rule set ids are reserved on disk at a time.
const ID_BLOCK: u64 = 256;

pub struct Core {
    pub config: Config,
    pub probe: Probe,
    /// The maps, the tasks, the drain and the emitter: what a standalone run has too.
    pub rt: Runtime,
    pub pins: PinDir,
    pub root: PathBuf,
    pub policies: PolicySet,
    /// The set's policies as parsed for tasks, by variables.
    pub parsed: super::policies::Parsed,
    /// `enforcer events --follow` clients.
    pub follow: crate::sinks::follow::Hub,
    /// Decisions counted for the metrics.
    pub counts: crate::sinks::metrics::Counts,
    /// Policy reloads that applied, and that were refused.
    pub reloads: (u64, u64),
    /// Events each sink dropped (its spool was full).
    pub sink_dropped: BTreeMap<String, u64>,
    pub state: DaemonState,
    /// The next task number and rule set id to hand out. `state` holds the bounds a
    /// restarted daemon starts from, saved a block ahead ([`ID_BLOCK`]), so that a task start
    /// writes no daemon state.
    ids: (u64, u32),
    /// Records made while answering a request, written after the reply was sent.
    pub deferred: Vec<Record>,
    pub inotify: Inotify,
    /// The inotify watch on the policy directory.
    pub policy_watch: Option<i32>,
    pub started: Instant,
    pub adopted: usize,
    /// Kept alive when this daemon loaded the programs (the pins keep them attached anyway).
    pub _ebpf: Option<aya::Ebpf>,
}

impl Core {
    /// Loads (or adopts) the programs, opens the maps, the cgroup subtree and the events.
    pub fn open(config: Config) -> Result<(Self, RingBuf<MapData>), DaemonError> {
        let probe = {
            crate::kernel::probe::ensure_tracefs().map_err(DaemonError::Kernel)?;
            let p = Probe::run(config.mode);
            p.check_requested().map_err(DaemonError::Kernel)?;
            p
        };
        let cgroup2 = probe
            .cgroup2
            .clone()
            .map_err(|e| DaemonError::Kernel(format!("{e}; tasks need cgroup v2")))?;
        let (root, root_cg) = cgroup::daemon_root(&cgroup2, &config.cgroup)?;
        let pins = PinDir::new(&config.pin_dir);
        pins.prepare()?;
        if let Some(what) = super::upgrade::recover(&pins)? {
            eprintln!("enforcer daemon: {what} ({})", pins.root.display());
        }
        std::fs::create_dir_all(config.state_dir.join("tasks"))
            .map_err(DaemonError::io(config.state_dir.display()))?;
        let saved_state = DaemonState::load(&config.state_dir);
        let (saved_tasks, bad) = Saved::load_all(&config.state_dir);
        for b in &bad {
            eprintln!("enforcer: warning: unreadable task state {b}");
        }
        let mut probe = probe;
        let Programs {
            maps,
            ring,
            ebpf,
            state,
            retired,
        } = super::programs::acquire(
            &mut probe,
            saved_state,
            !saved_tasks.is_empty(),
            &super::programs::Place {
                pins: &pins,
                root: &root,
                root_cg,
                state_dir: &config.state_dir,
            },
        )?;
        let (emitter, follow, counts) = outputs(&config)?;
        let inotify = Inotify::new().map_err(DaemonError::io("inotify"))?;
        let daemon_ctx = daemon_context(&probe, state.generation);
        let policies = PolicySet::remembered(&state);
        // Resume above whatever the last daemon of this boot may have handed out.
        let state_ids = (state.next_task, state.next_rules.max(1));
        let mut core = Self {
            config,
            probe,
            rt: Runtime::new(maps, emitter, daemon_ctx),
            pins,
            root,
            policies,
            parsed: super::policies::Parsed::default(),
            follow,
            counts,
            reloads: (0, 0),
            sink_dropped: BTreeMap::new(),
            state,
            inotify,
            policy_watch: None,
            started: Instant::now(),
            adopted: 0,
            ids: (state_ids.0, state_ids.1),
            deferred: Vec::new(),
            _ebpf: ebpf,
        };
        core.adopt(saved_tasks);
        if let Some(mut old) = retired {
            // The old programs' last events come first: they happened before the handover.
            core.drain(&mut old.ring);
            let report = old.report.clone();
            old.finish()?;
            eprintln!(
                "enforcer daemon: took the running tasks over from the pinned programs of \
                 another build: {report}"
            );
            core.emit_daemon(Op::ProgramsUpgraded, report);
        }
        core.save_state();
        Ok((core, ring))
    }

    /// Writes `daemon.json` (atomically).
    pub fn save_state(&self) {
        self.state.save(&self.config.state_dir);
    }

    pub fn mode(&self) -> EnforcementMode {
        EnforcementMode::of(self.probe.lsm_mode())
    }

    /// Writes the records a request made (after its reply went out).
    pub fn emit_deferred(&mut self) {
        for r in std::mem::take(&mut self.deferred) {
            self.rt.emitter.emit(&r);
        }
    }

    /// Emits a daemon-level event (no task).
    pub fn emit_daemon(&mut self, op: Op, details: serde_json::Value) {
        self.rt.outside.policy.generation = self.policies.generation;
        let r = Record::lifecycle(&self.rt.outside, op, std::process::id(), details);
        self.rt.emitter.emit(&r);
    }

    /// Writes what the sinks buffered, and reports each sink's losses to that sink.
    pub fn flush_events(&mut self) {
        for (output, dropped) in self.rt.emitter.take_dropped() {
            let sink = self.rt.emitter.outputs[output].name.clone();
            *self.sink_dropped.entry(sink.clone()).or_default() += dropped;
            eprintln!("enforcer daemon: sink {sink}: {dropped} event(s) dropped (spool full)");
            self.rt.outside.policy.generation = self.policies.generation;
            let r = Record::lifecycle(
                &self.rt.outside,
                Op::EventsDropped,
                std::process::id(),
                json!({
                    "sink": sink,
                    "dropped": dropped,
                    "why": "the sink's spool reached its size while the receiver did not take \
                            events; the oldest were dropped",
                    "reported_at": crate::events::time::rfc3339(time::now_unix_ns()),
                }),
            );
            self.rt.emitter.emit_to(output, &r);
        }
        self.rt.emitter.flush();
    }

    /// A new rule set id (never reused while the daemon's state lives).
    /// A new rule set id, never handed out before in this boot (also by a daemon before a
    /// restart: every id below `state.next_rules` may have been).
    pub fn next_rules(&mut self) -> u32 {
        let id = self.ids.1.max(1);
        self.ids.1 = id.saturating_add(1);
        if id >= self.state.next_rules {
            self.state.next_rules = id.saturating_add(1 + ID_BLOCK as u32);
            self.save_state();
        }
        id
    }

    /// A new task number (task ids are `<task>-<n>`), unique per boot: every number up to
    /// `state.next_task` may have been handed out.
    pub fn next_task(&mut self) -> u64 {
        self.ids.0 += 1;
        let n = self.ids.0;
        if n >= self.state.next_task {
            self.state.next_task = n + ID_BLOCK;
            self.save_state();
        }
        n
    }

    pub fn free_slot(&self) -> Option<u32> {
        (0..enforcer_common::MAX_TASKS)
            .find(|s| !self.rt.tasks.values().any(|t| t.saved.slot == *s))
    }

    /// `enforcer status`.
    pub fn status(&self) -> serde_json::Value {
        json!({
            "pid": std::process::id(),
            "uptime_s": self.started.elapsed().as_secs(),
            "mode": self.mode(),
            "fallback_reason": self.probe.fallback_reason(),
            "operations": operations(self.probe.lsm_mode()),
            "gaps": crate::envelope::setup::mode_gaps(&Policy::empty(), &self.probe),
            "programs": self.pins.link_names(),
            "programs_object_sha256": self.state.object_sha256,
            "map_abi": self.state.map_abi,
            "pin_dir": self.pins.root.display().to_string(),
            "cgroup_root": self.root.display().to_string(),
            "kernel": {
                "release": self.probe.kernel_release,
                "landlock_abi": self.probe.landlock_abi,
                "bpf_lsm_listed": self.probe.bpf_lsm_listed,
                "bpf_lsm": self.probe.bpf_lsm.as_ref().err(),
                "identity_checks": self.probe.offsets.is_ok(),
            },
            "tasks": self.rt.tasks.len(),
            "adopted_at_start": self.adopted,
            "policies": self.policies.by_name.values().map(|p| json!({
                "name": p.name, "file": p.file.display().to_string(),
                "sha256": p.sha256, "generation": p.generation,
            })).collect::<Vec<_>>(),
            "generation": self.policies.generation,
            "events_dropped": self.rt.drops_seen,
            "events_queued": self.rt.emitter.queued(),
            "seq_id": self.rt.emitter.seq_id,
            "sinks": self.rt.emitter.outputs.iter().map(|o| json!({
                "name": o.name,
                "format": match o.format { crate::events::Format::Native => "native", crate::events::Format::Ocsf => "ocsf" },
                "given": o.sink_seq,
                "state": o.sink.status(),
            })).collect::<Vec<_>>(),
        })
    }

    /// `enforcer tasks`: every task for an admin, the peer's own otherwise.
    pub fn task_list(&self, uid: Option<u32>) -> serde_json::Value {
        let now = time::boot_ns();
        let rows: Vec<_> = self
            .rt
            .tasks
            .values()
            .filter(|t| uid.is_none_or(|u| t.saved.owner_uid == u))
            .map(|t| {
                let s = &t.saved;
                let c = self.rt.maps.counters(s.slot);
                json!({
                    "task": s.task,
                    "task_id": s.task_id,
                    "policy": s.policy_name,
                    "generation": s.generation,
                    "pids": t.cgroup.pids(),
                    "age_s": now.saturating_sub(s.started_boot_ns) / 1_000_000_000,
                    "ttl_left_s": (s.deadline_boot_ns != 0)
                        .then(|| s.deadline_boot_ns.saturating_sub(now) / 1_000_000_000),
                    "owner_uid": s.owner_uid,
                    "counters": { "execs": c.execs, "opens": c.opens, "connects": c.connects, "denials": c.denials },
                    "ending": t.ending,
                })
            })
            .collect();
        json!(rows)
    }
}

/// How each operation is enforced in a mode, as `enforcer status` shows it.
pub fn operations(lsm: bool) -> serde_json::Value {
    let (files, names, maps, unix, mounts, closed) = if lsm {
        (
            "lsm hooks (EPERM, event)",
            "lsm hooks (EPERM, event)",
            "lsm hooks (EPERM, event)",
            "lsm hooks (EPERM, event)",
            "lsm hooks (EPERM, event)",
            "refused (EPERM, event)",
        )
    } else {
        (
            "Landlock (EACCES), reported by the syscall tracepoints; deny-under-allow: kill",
            "Landlock (EACCES), not reported",
            "not restricted (running an ELF interpreter directly: kill)",
            "not restricted",
            "Landlock (EPERM), not reported",
            "connects refused (EPERM); killed at the first open or exec (event)",
        )
    };
    json!({
        "connect, udp sendmsg": "cgroup programs (EPERM, event)",
        "open, exec": files,
        "create, remove, rename, link": names,
        "executable mappings": maps,
        "unix connect by path": unix,
        "mount, pivot_root, chroot": mounts,
        "ttl, max_execs, max_connects, max_denials": "in-kernel counters and deadline; the daemon kills the task (cgroup.kill)",
        "process in the subtree without a task (fail closed)": closed,
    })
}

/// Where events go: the events file, the configured sinks, `events --follow` clients and
/// (when scraped) the metrics.
fn outputs(
    config: &Config,
) -> Result<
    (
        Emitter,
        crate::sinks::follow::Hub,
        crate::sinks::metrics::Counts,
    ),
    DaemonError,
> {
    let target = Target::parse(&config.events);
    if let Target::File(path) = &target
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        // As systemd's LogsDirectory= would (the daemon may run without systemd).
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(DaemonError::io(format!("events {}", dir.display())))?;
    }
    // Written at each tick, many lines per write.
    let writer = Writer::open(target.clone())
        .map_err(DaemonError::io(format!("events {}", config.events)))?
        .deferred();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut outputs = vec![crate::events::Output::new(
        "events",
        config.format,
        Box::new(writer),
    )];
    outputs.extend(
        crate::sinks::outputs(&config.sinks, &config.spool_dir, &hostname)
            .map_err(DaemonError::Sink)?,
    );
    let follow = crate::sinks::follow::Hub::default();
    outputs.push(crate::events::Output::new(
        "follow",
        crate::events::Format::Native,
        Box::new(crate::sinks::follow::FollowSink(follow.clone())),
    ));
    // Counted only when scraped at all: the drain is the daemon's hot path.
    let counts = crate::sinks::metrics::Counts::default();
    if config.metrics.is_some() {
        outputs.push(crate::events::Output::new(
            "metrics",
            crate::events::Format::Native,
            Box::new(crate::sinks::metrics::CountingSink(counts.clone())),
        ));
    }
    Ok((Emitter::with_outputs(outputs), follow, counts))
}

/// The context of the daemon's own events (no task).
fn daemon_context(probe: &Probe, generation: u32) -> TaskContext {
    TaskContext {
        task: "enforcer-daemon".into(),
        task_id: "daemon".into(),
        intent: None,
        policy: PolicyRef {
            name: String::new(),
            version: 0,
            sha256: String::new(),
            generation,
        },
        mode: EnforcementMode::of(probe.lsm_mode()),
        unenforced: probe
            .fallback_reason()
            .into_iter()
            .map(|r| format!("fallback mode: {r}"))
            .collect(),
        boot_to_unix_ns: time::boot_to_unix_offset(),
    }
}
