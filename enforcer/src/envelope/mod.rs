//! A task envelope, standalone: load the programs, create the task's cgroup, fill the maps,
//! start the command inside it already confined, watch it, and tear everything down.
pub mod identity;
mod monitor;
pub mod resolve;
pub mod setup;

use crate::vocab::Op;
use std::{
    ffi::OsString,
    path::PathBuf,
    time::{Duration, Instant},
};

use enforcer_common::{TaskEntry, task_flags};
use serde_json::json;
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    bpf::{self, maps::TaskEntries},
    events::{
        Emitter, Format,
        record::{PolicyRef, Record, TaskContext},
        time,
        writer::{Target, Writer},
    },
    exit_code,
    kernel::{cgroup::TaskCgroup, confine, probe},
    policy::{Mode, Vars},
};

/// Everything `enforcer run` was asked.
#[derive(Debug)]
pub struct RunRequest {
    pub policy: PathBuf,
    pub task: String,
    pub vars: Vars,
    pub ttl: Option<Duration>,
    pub intent: Option<String>,
    pub events: Target,
    pub user: Option<String>,
    pub command: Vec<OsString>,
    /// Size of the event ring buffer in bytes (default: the programs' 4 MiB).
    pub ring_bytes: Option<u32>,
    /// The event format.
    pub format: Format,
    /// The enforcement mode asked for.
    pub mode: probe::ModeRequest,
}

/// Why a task could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The enforcer failed before the command started (exit 125).
    #[error("{0}")]
    Setup(String),
    /// The command does not exist (exit 127).
    #[error("{0}")]
    CommandNotFound(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Setup(_) => exit_code::SETUP_FAILED,
            Self::CommandNotFound(_) => exit_code::NOT_FOUND,
        }
    }
}

fn setup_err(context: &str) -> impl FnOnce(String) -> RunError + '_ {
    move |e| RunError::Setup(format!("{context}: {e}"))
}

/// Runs a task; returns the process exit status to use.
pub async fn run(req: RunRequest) -> i32 {
    match run_task(req).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("enforcer: {e}");
            e.exit_code()
        }
    }
}

/// Why the programs could not be loaded: the LSM programs (lsm mode only), or anything else.
enum LoadError {
    Lsm(String),
    Other(RunError),
}

impl LoadError {
    fn into_run(self) -> RunError {
        match self {
            Self::Lsm(why) => {
                RunError::Setup(format!("eBPF (lsm mode; --mode fallback avoids it): {why}"))
            }
            Self::Other(e) => e,
        }
    }
}

/// Loads the programs the plan's mode needs and attaches the global ones.
fn load_programs(plan: &setup::Prepared, ring_bytes: Option<u32>) -> Result<aya::Ebpf, LoadError> {
    let other = |what: &str, e: String| LoadError::Other(setup_err(what)(e));
    let root = crate::kernel::cgroup::enforcer_root(&plan.cgroup2)
        .map_err(|e| other("cgroup", e.to_string()))?;
    let mut ebpf = bpf::load(plan.offsets, Some(root), ring_bytes)
        .map_err(|e| other("eBPF", e.to_string()))?;
    let lsm_mode = plan.probe.lsm_mode();
    bpf::attach_tracepoints(&mut ebpf, lsm_mode, None).map_err(|e| other("eBPF", e.to_string()))?;
    if lsm_mode {
        bpf::attach_lsm(&mut ebpf, None).map_err(|e| LoadError::Lsm(e.to_string()))?;
    }
    bpf::load_cgroup_programs(&mut ebpf).map_err(|e| other("eBPF", e.to_string()))?;
    Ok(ebpf)
}

/// The identity deny entries of a planned task (keyed by rule set `rules`) and the task flags
/// that go with them.
pub fn kernel_identities(plan: &setup::Prepared, rules: u32) -> (identity::Identities, u32) {
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

/// Removes the cgroup if setup fails half way.
struct CgroupGuard(Option<TaskCgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take()
            && let Err(e) = cg.remove()
        {
            eprintln!("enforcer: cleanup: {e}");
        }
    }
}

async fn run_task(req: RunRequest) -> Result<i32, RunError> {
    if !probe::is_root() {
        return Err(RunError::Setup(
            "enforcer run needs root: it loads eBPF programs and creates cgroups (try sudo)".into(),
        ));
    }
    // Out of the task's reach from here on (its child takes the original ids back).
    let original_ids = crate::kernel::creds::guard_self()
        .map_err(|e| setup_err("credentials")(format!("guarding the launcher's uid: {e}")))?;
    let t0 = Instant::now();
    let plan = setup::prepare(&req, None)?;
    let (mut ebpf, plan) = match load_programs(&plan, req.ring_bytes) {
        Ok(ebpf) => (ebpf, plan),
        // The probe's trivial program loaded but the real ones did not (a verifier that
        // refuses them): in auto mode, fall back, saying so now and in every event.
        Err(LoadError::Lsm(why)) if req.mode == probe::ModeRequest::Auto => {
            let why = format!(
                "the BPF LSM programs did not load on this kernel: {}",
                bpf::brief_load_error(&why)
            );
            eprintln!("enforcer: warning: {why}; using the fallback mode");
            let plan = setup::prepare(&req, Some(why))?;
            let ebpf = load_programs(&plan, req.ring_bytes).map_err(LoadError::into_run)?;
            (ebpf, plan)
        }
        Err(e) => return Err(e.into_run()),
    };
    let policy = &plan.policy;
    let t_prepared = t0.elapsed();
    let (mut maps, ring) =
        bpf::maps::Maps::take(&mut ebpf).map_err(|e| setup_err("eBPF")(e.to_string()))?;

    let t_loaded = t0.elapsed();
    let cgroup_name = format!("{}-{}", req.task, std::process::id());
    let cgroup = TaskCgroup::create(&plan.cgroup2, &cgroup_name)
        .map_err(|e| setup_err("cgroup")(e.to_string()))?;
    let mut guard = CgroupGuard(Some(cgroup));
    let cgroup = guard
        .0
        .as_ref()
        .ok_or_else(|| RunError::Setup("cgroup vanished".into()))?;
    let dir = cgroup
        .dir()
        .map_err(|e| setup_err("cgroup")(e.to_string()))?;
    bpf::attach_cgroup(&mut ebpf, &dir, None).map_err(|e| setup_err("eBPF")(e.to_string()))?;

    const SLOT: u32 = 0;
    let (identities, flags) = kernel_identities(&plan, SLOT);
    let mut unenforced = plan.unenforced.clone();
    unenforced.extend(identities.missing.iter().cloned());
    for line in &unenforced {
        eprintln!("enforcer: warning: {line}");
    }

    let t_before_maps = t0.elapsed();
    let started = Instant::now();
    let ttl = req.ttl.or(policy.limits.ttl);
    let limits = policy.limits.kernel(req.ttl, time::boot_ns());
    let generation = 1;
    maps.install_task(&TaskEntries {
        slot: SLOT,
        rules: SLOT,
        cgroup_id: cgroup.id,
        entry: TaskEntry {
            slot: SLOT,
            generation,
            flags,
            rules: SLOT,
            ..TaskEntry::default()
        },
        limits,
        files: &plan.files,
        net: &plan.net,
        inodes: &identities.entries,
    })
    .map_err(|e| setup_err("maps")(e.to_string()))?;

    let ctx = TaskContext {
        task: req.task.clone(),
        task_id: cgroup_name.clone(),
        intent: req.intent.clone(),
        policy: PolicyRef {
            name: policy.name.clone(),
            version: policy.version,
            sha256: policy.sha256.clone(),
            generation,
        },
        mode: plan.explanation.mode,
        unenforced,
        boot_to_unix_ns: time::boot_to_unix_offset(),
    };
    // Deferred: the monitor writes what each drain of the ring produced in one write.
    let writer = Writer::open(req.events.clone())
        .map_err(|e| setup_err("events")(format!("{:?}: {e}", req.events)))?
        .deferred();
    let mut writer = Emitter::new(writer, req.format);

    let confinement = confine::Plan {
        cgroup_procs_fd: -1,
        ruleset_fd: plan.ruleset.as_ref().map(|r| r.raw_fd()),
        seccomp: Some(crate::kernel::seccomp::task_filter(
            crate::kernel::seccomp::Refuse {
                io_uring: !policy.allow_io_uring,
                user_namespaces: !policy.allow_user_namespaces,
                sysv_ipc: false,
            },
        )),
        ipc_namespace: true,
        cgroup_namespace: true,
        user: plan.user.clone(),
        restore: Some(original_ids),
        last_cap: confine::last_cap(),
        pdeathsig: true,
    };
    let procs = cgroup
        .procs_writer()
        .map_err(|e| setup_err("cgroup")(e.to_string()))?;
    let mut start_details = setup::start_details(&req.command, &plan, cgroup, ttl, flags);
    if let Some(obj) = start_details.as_object_mut() {
        let us = |d: Duration| d.as_micros() as u64;
        obj.insert(
            "setup_us".into(),
            json!({
                "prepare": us(t_prepared),
                "load_and_attach": us(t_loaded - t_prepared),
                "install_maps": us(started.elapsed()),
                "total": us(t_before_maps + started.elapsed()),
                "map_entries": plan.files.len() + plan.net.len() + identities.entries.len(),
            }),
        );
    }
    let start_record = Record::lifecycle(&ctx, Op::TaskStart, std::process::id(), start_details);
    writer.emit(&start_record);
    writer.flush();

    let spawned = setup::spawn(&plan.command_path, &req.command, confinement, procs);
    // SAFETY: the ring buffer owns its map fd, which stays open until the AsyncFd is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| setup_err("ring buffer")(e.to_string()))?;
    let mut killed = Vec::new();
    let (status_code, exit_detail, monitor_end, drops) = match spawned {
        Ok(mut child) => {
            let pid = child.id().unwrap_or(0);
            let deadline = ttl.map(|t| started + t);
            let mut monitor = monitor::Monitor::new(&ctx, policy, &mut writer, cgroup, &maps, pid);
            let status = monitor.run(&mut child, &mut ring, deadline).await;
            // The command is gone: nothing else of the task may outlive it.
            if cgroup.populated()
                && let Ok(left) = cgroup.kill_named()
            {
                monitor.killed.extend(left);
            }
            cgroup.wait_empty(Duration::from_secs(5));
            monitor.drain(ring.get_mut());
            let ended = monitor.ended_by.clone();
            let drops = monitor.drops();
            killed = std::mem::take(&mut monitor.killed);
            match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt as _;
                    let mut code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
                    let detail = json!({ "exit_code": s.code(), "signal": s.signal() });
                    // The enforcer killed the task: say so in the status even when the
                    // command's own process happened to exit before the rest was killed.
                    if ended.is_some() && s.code().is_some() {
                        code = exit_code::KILLED;
                    }
                    (code, detail, ended, drops)
                }
                Err(e) => (
                    exit_code::SETUP_FAILED,
                    json!({ "error": e.to_string() }),
                    ended,
                    drops,
                ),
            }
        }
        Err(e) => {
            // Let the tracepoints' report of the refused exec arrive first.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut monitor = monitor::Monitor::new(&ctx, policy, &mut writer, cgroup, &maps, 0);
            monitor.drain(ring.get_mut());
            let drops = monitor.drops();
            let code = match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    eprintln!(
                        "enforcer: the policy does not allow executing {} ({e})",
                        plan.command_path.display()
                    );
                    exit_code::CANNOT_EXECUTE
                }
                std::io::ErrorKind::NotFound => exit_code::NOT_FOUND,
                _ => {
                    eprintln!(
                        "enforcer: cannot start {}: {e}",
                        plan.command_path.display()
                    );
                    exit_code::CANNOT_EXECUTE
                }
            };
            (
                code,
                json!({ "exit_code": code, "error": e.to_string() }),
                Some("exec refused".into()),
                drops,
            )
        }
    };

    let counters = maps.counters(SLOT);
    let leftovers = maps.remove_task(SLOT, SLOT, cgroup.id);
    let cgroup_path = cgroup.path.display().to_string();
    let removed = guard.0.take().map(|cg| cg.remove());
    let cgroup_removed = matches!(removed, Some(Ok(())));
    if let Some(Err(e)) = removed {
        eprintln!("enforcer: cleanup: {e}");
    }
    let mut details = exit_detail;
    if let Some(obj) = details.as_object_mut() {
        obj.insert(
            "reason".into(),
            json!(monitor_end.unwrap_or_else(|| "exited".into())),
        );
        obj.insert(
            "counters".into(),
            json!({
                "execs": counters.execs,
                "opens": counters.opens,
                "connects": counters.connects,
                "denials": counters.denials,
            }),
        );
        obj.insert("events_dropped".into(), json!(drops));
        obj.insert("killed".into(), json!(killed));
        obj.insert("programs".into(), bpf::program_stats(&ebpf));
        obj.insert(
            "duration_ms".into(),
            json!(started.elapsed().as_millis() as u64),
        );
        obj.insert(
            "cleanup".into(),
            json!({
                "cgroup": cgroup_path,
                "cgroup_removed": cgroup_removed,
                "map_entries_left": leftovers.total(),
            }),
        );
    }
    let end = Record::lifecycle(&ctx, Op::TaskEnd, std::process::id(), details);
    writer.emit(&end);
    writer.finish();
    bpf::release_in_background(ebpf);
    Ok(status_code)
}
