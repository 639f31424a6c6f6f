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

use serde_json::json;
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    bpf,
    events::{
        Emitter, Format,
        record::{PolicyRef, Record, TaskContext},
        time,
        writer::{Target, Writer},
    },
    exit_code,
    kernel::{cgroup::TaskCgroup, confine, probe},
    policy::Vars,
    runtime::{
        install::{Place, install},
        programs::{Failure, load_with_fallback},
        task_end::TaskEnd,
    },
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

/// Loads the programs the plan's mode needs and attaches the global ones.
fn load_programs(plan: &setup::Prepared, ring_bytes: Option<u32>) -> Result<aya::Ebpf, Failure> {
    let root = crate::kernel::cgroup::enforcer_root(&plan.cgroup2)
        .map_err(|e| Failure::other(format!("cgroup: {e}")))?;
    let ebpf_err = |e: bpf::BpfError| Failure::other(format!("eBPF: {e}"));
    let mut ebpf = bpf::load(plan.offsets, Some(root), ring_bytes).map_err(ebpf_err)?;
    let lsm_mode = plan.probe.lsm_mode();
    bpf::attach_tracepoints(&mut ebpf, lsm_mode, None).map_err(ebpf_err)?;
    if lsm_mode {
        bpf::attach_lsm(&mut ebpf, None).map_err(Failure::lsm)?;
    }
    bpf::load_cgroup_programs(&mut ebpf).map_err(ebpf_err)?;
    Ok(ebpf)
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
    // The plan depends on the mode (the Landlock ruleset is the fallback mode's): a fall
    // back plans again, with the reason said in every event.
    let mut planned = setup::prepare(&req, None)?;
    let loaded = load_with_fallback(req.mode, |why| {
        if let Some(why) = why {
            planned = setup::prepare(&req, Some(why.to_owned())).map_err(Failure::other)?;
        }
        load_programs(&planned, req.ring_bytes)
    });
    let (mut ebpf, _) = loaded.map_err(|f| {
        RunError::Setup(if f.in_lsm {
            format!("eBPF (lsm mode; --mode fallback avoids it): {}", f.message)
        } else {
            f.message
        })
    })?;
    let plan = planned;
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
    let t_before_maps = t0.elapsed();
    let started = Instant::now();
    let ttl = req.ttl.or(policy.limits.ttl);
    let generation = 1;
    let at = Place {
        slot: SLOT,
        rules: SLOT,
        cgroup_id: cgroup.id,
        generation,
    };
    let installed = install(&mut maps, &plan, at, ttl, time::boot_ns())
        .map_err(|e| setup_err("maps")(e.to_string()))?;
    let flags = installed.entry.flags;
    let unenforced = installed.unenforced;
    for line in &unenforced {
        eprintln!("enforcer: warning: {line}");
    }

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
                "map_entries": plan.files.len() + plan.net.len() + installed.identity_entries,
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
    let mut details = TaskEnd {
        reason: monitor_end.unwrap_or_else(|| "exited".into()),
        counters,
        duration_ms: started.elapsed().as_millis() as u64,
        events_dropped: drops,
        killed: &killed,
        cgroup: cgroup_path,
        cgroup_removed,
        leftovers,
        exit: exit_detail,
    }
    .details();
    if let Some(obj) = details.as_object_mut() {
        obj.insert("programs".into(), bpf::program_stats(&ebpf));
    }
    let end = Record::lifecycle(&ctx, Op::TaskEnd, std::process::id(), details);
    writer.emit(&end);
    writer.finish();
    bpf::release_in_background(ebpf);
    Ok(status_code)
}
