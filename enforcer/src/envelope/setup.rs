//! Everything decided before the task starts: the policy, the kernel's abilities, what each
//! rule compiles to, the Landlock ruleset, and how the command is started.
use std::{
    ffi::OsString,
    io,
    os::fd::{AsRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use enforcer_common::KernelOffsets;
use serde_json::{Value, json};

use super::{RunError, RunRequest, identity, resolve};
use crate::{
    kernel::{
        cgroup::TaskCgroup,
        confine::{self, UserIds},
        landlock::{Handled, Ruleset},
        probe::{self, Probe},
    },
    policy::{
        self, Mode, Policy,
        compile::{FileEntry, NetEntry, file_entries, landlock_grants, net_entries},
        explain::{Explanation, explain},
    },
};

/// The outcome of preparation.
pub struct Prepared {
    pub policy: Policy,
    pub explanation: Explanation,
    pub probe: Probe,
    pub offsets: Option<KernelOffsets>,
    pub cgroup2: PathBuf,
    pub command_path: PathBuf,
    pub user: Option<UserIds>,
    pub interpreters: Vec<String>,
    pub files: Vec<FileEntry>,
    pub net: Vec<NetEntry>,
    pub ruleset: Option<Ruleset>,
    /// Rules that cannot be enforced as written, as report lines.
    pub unenforced: Vec<String>,
}

/// Task names become cgroup directory names and appear in every event.
pub fn check_task_name(name: &str) -> Result<(), RunError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(RunError::TaskName(name.to_owned()))
    }
}

/// Finds the command like a shell does: a path as given, or the first match on PATH.
pub fn resolve_command(command: &OsString) -> Result<PathBuf, RunError> {
    let given = Path::new(command);
    if given.as_os_str().is_empty() {
        return Err(RunError::CommandNotFound("empty command".into()));
    }
    if given.components().count() > 1 || given.is_absolute() {
        return if given.exists() {
            Ok(given.to_path_buf())
        } else {
            Err(RunError::CommandNotFound(format!(
                "{}: no such file",
                given.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(given))
        .find(|p| p.is_file())
        .ok_or_else(|| RunError::CommandNotFound(format!("{}: command not found", given.display())))
}

/// Plans the task. `lsm_refused` demotes an auto-mode choice of lsm to the fallback mode,
/// with the reason (the LSM programs did not load).
pub fn prepare(req: &RunRequest, lsm_refused: Option<String>) -> Result<Prepared, RunError> {
    let policy = policy::load(&req.policy, &req.vars)?;
    check_task_name(&req.task)?;
    check_events_file(&policy, &req.events)?;
    let command = req
        .command
        .first()
        .ok_or_else(|| RunError::CommandNotFound("no command given after --".into()))?;
    let command_path = resolve_command(command)?;
    let user = req
        .user
        .as_deref()
        .map(confine::task_user)
        .transpose()
        .map_err(RunError::User)?;

    probe::ensure_tracefs().map_err(RunError::Kernel)?;
    let mut probe = Probe::run(req.mode);
    if let Some(why) = lsm_refused {
        probe.bpf_lsm = Err(why);
    }
    probe.check_requested().map_err(RunError::Kernel)?;
    plan(policy, command_path, user, probe)
}

/// The task's own event file must be out of its reach: a task that could write it could
/// rewrite or forge the record of what it did.
fn check_events_file(
    policy: &Policy,
    events: &crate::events::writer::Target,
) -> Result<(), RunError> {
    let crate::events::writer::Target::File(path) = events else {
        return Ok(());
    };
    if policy.mode != Mode::Enforce {
        return Ok(());
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let text = absolute.display().to_string();
    if policy::decide::decide_file(policy, &text, enforcer_common::access::WRITE).allowed {
        return Err(RunError::EventsWritable(text));
    }
    Ok(())
}

/// Plans a task of `policy` (variables already substituted) on a probed kernel: what every
/// rule compiles to, the Landlock ruleset, and what cannot be enforced as written.
pub fn plan(
    mut policy: Policy,
    command_path: PathBuf,
    user: Option<UserIds>,
    probe: Probe,
) -> Result<Prepared, RunError> {
    policy.add_resolved_paths(|p| {
        std::fs::canonicalize(p)
            .ok()
            .map(|r| r.display().to_string())
    });
    let cgroup2 = probe.cgroup2.clone().map_err(RunError::NoCgroup2)?;
    let support = probe.support();
    let explanation = explain(&policy, &support);
    let problems = explanation.problems();
    if !problems.is_empty() && policy.mode == Mode::Enforce {
        return Err(RunError::CannotEnforce(problems));
    }
    let mut unenforced = problems;

    let (resolved, unresolved) = resolve::resolve_hosts(&policy);
    unenforced.extend(unresolved);
    let lsm = probe.lsm_mode();
    // In lsm mode the ELF interpreter needs no grant: the hooks let it be mapped (a library)
    // but not executed directly.
    let interpreters = if lsm {
        Vec::new()
    } else {
        identity::interpreters(&policy, &command_path)
    };
    unenforced.extend(mode_gaps(&policy, &probe));
    let files = file_entries(&policy);
    let net = net_entries(&policy, &resolved);

    // Audit mode refuses nothing, so it gets no ruleset in either mode. In lsm mode Landlock
    // only scopes signals (ABI 6); below that it has nothing to add.
    let ruleset = if lsm && probe.landlock_abi < 6 {
        None
    } else if policy.mode == Mode::Enforce {
        let handled = if lsm {
            Handled::ScopesOnly
        } else {
            Handled::All
        };
        let (ruleset, skipped) = Ruleset::build(
            probe.landlock_abi,
            handled,
            &landlock_grants(&policy),
            &interpreters,
        )?;
        for s in skipped {
            let labels: Vec<String> = s
                .rules
                .iter()
                .map(|id| policy.rules[*id as usize].label())
                .collect();
            unenforced.push(format!(
                "{} \"{}\": {}",
                labels.join(", "),
                s.path,
                s.reason
            ));
        }
        Some(ruleset)
    } else {
        None
    };

    Ok(Prepared {
        offsets: probe.offsets.clone().ok(),
        policy,
        explanation,
        probe,
        cgroup2,
        command_path,
        user,
        interpreters,
        files,
        net,
        ruleset,
        unenforced,
    })
}

/// What the chosen mode cannot restrict on this kernel, as report lines (repeated in every
/// event): never a silent gap.
pub fn mode_gaps(policy: &Policy, probe: &Probe) -> Vec<String> {
    let mut gaps = Vec::new();
    let has_unix = policy
        .rules
        .iter()
        .any(|r| r.section == policy::Section::NetworkUnix);
    if probe.lsm_mode() {
        if policy.mode == policy::Mode::Enforce {
            gaps.push(
                "opens of another process's /proc/<pid> entries (environ, mem): refused; \
                 without an event when the kernel's own ptrace check decides before the BPF \
                 LSM (a target with capabilities the task lacks, or Landlock's scoping)"
                    .to_owned(),
            );
        }
        return gaps;
    }
    if policy.mode == policy::Mode::Enforce && probe.landlock_abi > 0 {
        gaps.push(
            "mount, move_mount, pivot_root: refused by Landlock (EPERM) without an event in \
             fallback mode"
                .to_owned(),
        );
    }
    if policy.mode == policy::Mode::Enforce && probe.landlock_abi < 6 {
        gaps.push(format!(
            "signals to processes outside the task: not restricted in fallback mode (Landlock \
             scopes them from ABI 6; this kernel has {}) except by the kernel's uid check \
             (the enforcer itself is out of reach: it runs with real uid 4294967294); ptrace \
             of them is refused",
            probe.landlock_abi
        ));
    }
    let why = probe.fallback_reason().unwrap_or_default();
    gaps.push(format!(
        "creating, removing, renaming and linking names, and truncate(2): refused by Landlock \
         (EACCES, or EXDEV for a link or rename that would give a file more access), reported \
         as a syscall event without the path in fallback mode ({why})"
    ));
    if policy.mode == policy::Mode::Enforce {
        gaps.push(if probe.landlock_abi >= 6 {
            "abstract unix sockets of processes outside the task: refused by Landlock's \
             scoping (EPERM) without an event in fallback mode"
                .to_owned()
        } else {
            format!(
                "abstract unix sockets of processes outside the task: not restricted in \
                 fallback mode (Landlock scopes them from ABI 6; this kernel has {})",
                probe.landlock_abi
            )
        });
    }
    gaps.push(format!(
        "unix-socket connects and datagrams by path{}: not restricted in fallback mode \
         ({why})",
        if has_unix {
            " (network.unix rules)"
        } else {
            ""
        }
    ));
    gaps.push(format!(
        "executable mappings (exec.libraries): not restricted in fallback mode, only running an \
         ELF interpreter directly is caught; {why}"
    ));
    gaps.push(format!(
        "chmod and chown: not restricted in fallback mode (Landlock has no right for them; \
         {why})"
    ));
    if policy.allow_io_uring {
        gaps.push(format!(
            "io_uring opens (allow_io_uring): refused by Landlock (EACCES) without an event in \
             fallback mode; the tracepoints do not see them ({why})"
        ));
    }
    if policy.mode == policy::Mode::Enforce
        && policy
            .rules_in(policy::Section::FilesProtect)
            .next()
            .is_some()
    {
        gaps.push(format!(
            "files.protect: a write beneath a protected path kills the task (identity check \
             in fallback mode), but removing the path and creating it anew is not seen ({why})"
        ));
        for (_, rule) in policy.rules_in(policy::Section::FilesProtect) {
            if let Some(p) = rule.path()
                && !std::path::Path::new(&p.path).exists()
            {
                gaps.push(format!(
                    "{} \"{}\": does not exist when the task starts, so fallback mode cannot \
                     protect it (its identity is what is checked)",
                    rule.label(),
                    rule.text
                ));
            }
        }
    }
    if probe.landlock_abi < 3 {
        gaps.push(
            "truncate of an existing file: not restricted (Landlock ABI 3 needed)".to_owned(),
        );
    }
    gaps
}

/// What `task_start` says: the command, the envelope, and how each rule is enforced here.
pub fn start_details(
    command: &[OsString],
    plan: &Prepared,
    cgroup: &TaskCgroup,
    ttl: Option<Duration>,
    flags: u32,
) -> Value {
    let rules: Vec<Value> = plan
        .explanation
        .rules
        .iter()
        .map(|r| json!({ "rule": r.label, "text": r.text, "enforced_by": r.enforced_by, "how": r.how }))
        .collect();
    let l = &plan.policy.limits;
    json!({
        "command": command.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "executable": plan.command_path.display().to_string(),
        "user": plan.user.as_ref().map_or_else(
            || json!({ "uid": crate::kernel::creds::original().ruid, "as": "invoking user" }),
            |u| json!({ "uid": u.uid, "gid": u.gid, "name": u.name }),
        ),
        "cgroup": cgroup.path.display().to_string(),
        "cgroup_id": cgroup.id,
        "policy_file": plan.policy.file.display().to_string(),
        "policy_mode": plan.policy.mode.as_str(),
        "limits": {
            "ttl_s": ttl.map(|t| t.as_secs_f64()),
            "max_execs": l.max_execs,
            "max_connects": l.max_connects,
            "max_denials": l.max_denials,
        },
        "rules": rules,
        "limit_enforcement": plan.explanation.limits,
        "notes": plan.explanation.notes,
        "implicit_grants": plan.interpreters.iter().map(|i| format!(
            "execute {i}: the ELF interpreter of the allowed binaries; running it directly kills the task"
        )).collect::<Vec<_>>(),
        "kernel": {
            "release": plan.probe.kernel_release,
            "landlock_abi": plan.probe.landlock_abi,
            "bpf_lsm_listed": plan.probe.bpf_lsm_listed,
            "mode": plan.explanation.mode,
            "fallback_reason": plan.probe.fallback_reason(),
            "identity_checks": plan.offsets.is_some(),
            "task_flags": flags,
        },
    })
}

/// Writes "enforcer: <what> failed: errno N" to stderr without allocating (after fork).
fn child_fail(what: &[u8], err: &io::Error) -> ! {
    let mut buf = [0u8; 160];
    let mut n = 0;
    for part in [
        b"enforcer: ".as_slice(),
        what,
        b" failed before exec: errno ".as_slice(),
    ] {
        let take = part.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    let mut code = err.raw_os_error().unwrap_or(0).unsigned_abs();
    let mut digits = [0u8; 10];
    let mut d = 0;
    loop {
        digits[d] = b'0' + (code % 10) as u8;
        d += 1;
        code /= 10;
        if code == 0 || d == digits.len() {
            break;
        }
    }
    while d > 0 && n < buf.len() - 1 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b'\n';
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n + 1);
        libc::_exit(crate::exit_code::SETUP_FAILED)
    }
}

/// Starts the command: after fork the child confines itself (cgroup first, so the kernel
/// programs see it from then on) and execs. A confinement failure exits 125 with a message; an
/// exec refused by the policy comes back as the spawn error (PermissionDenied).
pub fn spawn(
    path: &Path,
    command: &[OsString],
    mut plan: confine::Plan,
    procs: OwnedFd,
) -> io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(command.iter().skip(1));
    if let Some(arg0) = command.first() {
        std::os::unix::process::CommandExt::arg0(cmd.as_std_mut(), arg0);
    }
    plan.cgroup_procs_fd = procs.as_raw_fd();
    // SAFETY: the closure only makes raw syscalls (see confine::apply) and never allocates.
    unsafe {
        cmd.pre_exec(move || {
            let _keep_open = &procs;
            if let Err(e) = confine::apply(&plan) {
                child_fail(b"confining the command", &e);
            }
            Ok(())
        });
    }
    cmd.kill_on_drop(true);
    cmd.spawn()
}
