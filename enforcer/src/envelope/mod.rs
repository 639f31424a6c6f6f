//! A task envelope, standalone: load the programs, create the task's cgroup, fill the maps,
//! start the command inside it already confined, watch it, and tear everything down.
mod error;
pub mod identity;
mod monitor;
pub mod resolve;
pub mod setup;

pub use error::RunError;

use crate::vocab::Op;
use std::{
    ffi::OsString,
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{Interest, unix::AsyncFd},
    process::Child,
};

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
        task::{Saved, Task},
        tasks::Runtime,
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
        .map_err(|e| Failure::other(RunError::Cgroup(e)))?;
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
        return Err(RunError::NotRoot);
    }
    // Out of the task's reach from here on (its child takes the original ids back).
    let original_ids = crate::kernel::creds::guard_self().map_err(RunError::Credentials)?;
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
    let (mut ebpf, _) = loaded.map_err(|f| RunError::Programs {
        in_lsm: f.in_lsm,
        message: f.message,
    })?;
    let plan = planned;
    let policy = &plan.policy;
    let t_prepared = t0.elapsed();
    let (mut maps, ring) = bpf::maps::Maps::take(&mut ebpf)?;

    let t_loaded = t0.elapsed();
    let cgroup_name = format!("{}-{}", req.task, std::process::id());
    let cgroup = TaskCgroup::create(&plan.cgroup2, &cgroup_name)?;
    let attached = cgroup
        .dir()
        .map_err(RunError::from)
        .and_then(|dir| Ok(bpf::attach_cgroup(&mut ebpf, &dir, None)?));
    let guard = CgroupGuard(Some(cgroup));
    attached?;
    let Some(cgroup) = guard.0.as_ref() else {
        return Err(RunError::Kernel("the task's cgroup vanished".into()));
    };

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
    let now = time::boot_ns();
    let installed = install(&mut maps, &plan, at, ttl, now).map_err(RunError::Maps)?;
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
        unenforced: unenforced.clone(),
        boot_to_unix_ns: time::boot_to_unix_offset(),
    };
    // Deferred: each drain of the ring is written in one write.
    let writer = Writer::open(req.events.clone())
        .map_err(|source| RunError::Events {
            target: format!("{:?}", req.events),
            source,
        })?
        .deferred();
    let mut rt = Runtime::new(maps, Emitter::new(writer, req.format), ctx.clone());

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
        early: confine::Early::default(),
    };
    let procs = cgroup.procs_writer()?;
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
    rt.emitter.emit(&start_record);
    rt.emitter.flush();

    // SAFETY: the ring buffer owns its map fd, which stays open until the AsyncFd is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| RunError::Ring(e.into()))?;
    let spawned = setup::spawn(&plan.command_path, &req.command, confinement, procs);
    let pid = spawned.as_ref().ok().and_then(Child::id).unwrap_or(0);
    // The one task this runtime holds, as the daemon would hold it.
    let saved = Saved {
        task: req.task.clone(),
        task_id: cgroup_name.clone(),
        intent: req.intent.clone(),
        policy_name: policy.name.clone(),
        policy_file: policy.file.clone(),
        policy_text: String::new(),
        vars: req.vars.clone().into_iter().collect(),
        generation,
        slot: SLOT,
        rules: SLOT,
        flags,
        cgroup: cgroup.path.clone(),
        cgroup_id: cgroup.id,
        pid,
        owner_uid: original_ids.ruid,
        command: req
            .command
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect(),
        executable: plan.command_path.clone(),
        user: req.user.clone(),
        started_unix_ns: time::now_unix_ns(),
        started_boot_ns: now,
        deadline_boot_ns: installed.limits.deadline_ns,
        mode: plan.explanation.mode,
        unenforced,
    };
    let mut guard = guard;
    let Some(cgroup) = guard.0.take() else {
        return Err(RunError::Kernel("the task's cgroup vanished".into()));
    };
    rt.insert(Task {
        saved,
        cgroup,
        policy: plan.policy.clone(),
        previous: None,
        ctx,
        ending: None,
        watch: None,
        killed: Vec::new(),
    });
    let id = cgroup_name.as_str();

    let (status_code, exit_detail) = match spawned {
        Ok(mut child) => {
            let deadline = ttl.map(|t| started + t);
            let status = monitor::run(&mut rt, id, &mut child, &mut ring, deadline).await;
            // The command is gone: nothing else of the task may outlive it.
            if let Some(t) = rt.tasks.get_mut(id) {
                if t.cgroup.populated()
                    && let Ok(left) = t.cgroup.kill_named()
                {
                    t.killed.extend(left);
                }
                t.cgroup.wait_empty(Duration::from_secs(5));
            }
            monitor::drain(&mut rt, id, ring.get_mut());
            let ended = rt.tasks.get(id).is_some_and(|t| t.ending.is_some());
            match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt as _;
                    let mut code = s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0));
                    let detail = json!({ "exit_code": s.code(), "signal": s.signal() });
                    // The enforcer killed the task: say so in the status even when the
                    // command's own process happened to exit before the rest was killed.
                    if ended && s.code().is_some() {
                        code = exit_code::KILLED;
                    }
                    (code, detail)
                }
                Err(e) => (exit_code::SETUP_FAILED, json!({ "error": e.to_string() })),
            }
        }
        Err(e) => {
            // Let the tracepoints' report of the refused exec arrive first.
            tokio::time::sleep(Duration::from_millis(20)).await;
            monitor::drain(&mut rt, id, ring.get_mut());
            if let Some(t) = rt.tasks.get_mut(id) {
                t.ending.get_or_insert_with(|| "exec refused".into());
            }
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
            (code, json!({ "exit_code": code, "error": e.to_string() }))
        }
    };

    let programs = bpf::program_stats(&ebpf);
    rt.finalize(id, exit_detail, vec![("programs", programs)]);
    rt.emitter.finish();
    bpf::release_in_background(ebpf);
    Ok(status_code)
}
