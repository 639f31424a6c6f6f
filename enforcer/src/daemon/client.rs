//! The client side of the control socket: requests for the CLI, and `enforcer run` through a
//! daemon, where the launcher is moved into the task, confines itself and execs in place, so
//! the command keeps the caller's pid, stdio, terminal, signals and exit status.
use std::{
    ffi::OsString,
    io::Write as _,
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::{net::UnixStream, process::CommandExt as _},
    },
    path::{Path, PathBuf},
};

use super::protocol::{self, Confinement, Op, Reply, StartRequest};
use crate::{
    exit_code,
    kernel::{confine, seccomp},
};

/// The default control socket, unless `ENFORCER_SOCKET` names another.
pub fn default_socket() -> PathBuf {
    std::env::var_os("ENFORCER_SOCKET").map_or_else(
        || PathBuf::from("/run/enforcer/enforcer.sock"),
        PathBuf::from,
    )
}

/// Sends one request; returns the reply and the fd that came with it.
pub fn request(socket: &Path, op: &Op) -> Result<(Reply, Option<OwnedFd>), String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the daemon at {}: {e} (is `enforcer daemon` running?)",
            socket.display()
        )
    })?;
    request_on(stream, op)
}

/// Sends one request on a connected stream; returns the reply and the fd that came with it.
pub fn request_on(mut stream: UnixStream, op: &Op) -> Result<(Reply, Option<OwnedFd>), String> {
    send(&mut stream, op)?;
    reply(&stream)
}

fn send(stream: &mut UnixStream, op: &Op) -> Result<(), String> {
    let mut line = protocol::encode_request(op);
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| format!("sending to the daemon: {e}"))
}

fn reply(stream: &UnixStream) -> Result<(Reply, Option<OwnedFd>), String> {
    let mut buf = Vec::new();
    let mut fd = None;
    let mut chunk = vec![0u8; 64 * 1024];
    while !buf.ends_with(b"\n") {
        let (n, got) = protocol::recv_with_fd(stream.as_raw_fd(), &mut chunk)
            .map_err(|e| format!("reading the daemon's reply: {e}"))?;
        if n == 0 {
            break;
        }
        fd = fd.or(got);
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > protocol::MAX_LINE {
            return Err("the daemon's reply is too long".into());
        }
    }
    let reply: Reply = serde_json::from_slice(&buf)
        .map_err(|e| format!("malformed reply from the daemon: {e}"))?;
    Ok((reply, fd))
}

/// Through a daemon, `--policy` names a policy of its policy directory: a path is a mistake
/// (the daemon never reads a client's file).
pub fn check_policy_name(policy: &str, socket: &Path) -> Result<(), String> {
    if policy.contains('/') || policy.ends_with(".toml") {
        return Err(format!(
            "a daemon is running ({}): --policy takes the name of a policy in its policy \
             directory, not a file (\"{policy}\"); add --standalone to run a policy file \
             yourself",
            socket.display()
        ));
    }
    Ok(())
}

/// A connection to the daemon at `socket`, if one answers.
pub fn connect(socket: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket).ok()
}

/// `enforcer run` through the daemon. Returns only on failure (the exit status to use).
pub fn run_via_daemon(mut stream: UnixStream, mut req: StartRequest, command: &[OsString]) -> i32 {
    let Some(first) = command.first() else {
        eprintln!("enforcer: no command given after --");
        return exit_code::NOT_FOUND;
    };
    let executable = match crate::envelope::setup::resolve_command(first) {
        Ok(p) if p.is_absolute() => p,
        Ok(p) => match std::env::current_dir() {
            Ok(cwd) => cwd.join(p),
            Err(e) => {
                eprintln!("enforcer: {e}");
                return exit_code::SETUP_FAILED;
            }
        },
        Err(e) => {
            eprintln!("enforcer: {e}");
            return e.exit_code();
        }
    };
    req.executable = executable.display().to_string();
    req.command = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Err(e) = send(&mut stream, &Op::Start(req)) {
        eprintln!("enforcer: {e}");
        return exit_code::SETUP_FAILED;
    }
    // While the daemon prepares the task: what needs nothing from its answer. The daemon gives
    // a root client a private IPC namespace (`ipc_namespace` in its reply says so).
    let last_cap = confine::last_cap();
    // SAFETY: single-threaded (no runtime was started for this path); it only takes authority
    // away from this process, which execs the command or exits.
    // A step that fails here (root without its capabilities) is taken again, and its failure
    // reported, once the reply is in: the daemon's answer comes first.
    let early =
        unsafe { confine::early(crate::kernel::probe::is_root(), last_cap) }.unwrap_or_default();
    let (reply, ruleset) = match reply(&stream) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("enforcer: {e}");
            return exit_code::SETUP_FAILED;
        }
    };
    if !reply.ok {
        eprintln!(
            "enforcer: the daemon refused the task: {}",
            reply.error.unwrap_or_default()
        );
        return exit_code::SETUP_FAILED;
    }
    let confinement: Confinement = match serde_json::from_value(reply.result) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("enforcer: malformed reply from the daemon: {e}");
            return exit_code::SETUP_FAILED;
        }
    };
    // One write for all of them.
    let warnings: String = confinement
        .unenforced
        .iter()
        .map(|line| format!("enforcer: warning: {line}\n"))
        .collect();
    let _ = std::io::stderr().write_all(warnings.as_bytes());
    if confinement.landlock && ruleset.is_none() {
        eprintln!("enforcer: the daemon's reply lacks the task's Landlock ruleset");
        return exit_code::SETUP_FAILED;
    }
    let plan = confine::Plan {
        cgroup_procs_fd: -1,
        ruleset_fd: ruleset.as_ref().map(|f| f.as_raw_fd()),
        seccomp: Some(seccomp::task_filter(seccomp::Refuse {
            io_uring: confinement.seccomp_io_uring,
            user_namespaces: confinement.seccomp_userns,
            sysv_ipc: !confinement.ipc_namespace,
        })),
        ipc_namespace: confinement.ipc_namespace,
        cgroup_namespace: confinement.ipc_namespace,
        user: confinement.user.as_ref().map(|u| confine::UserIds {
            name: u.name.clone(),
            uid: u.uid,
            gid: u.gid,
            groups: u.groups.clone(),
        }),
        restore: None,
        last_cap,
        pdeathsig: false,
        early,
    };
    // SAFETY: this process is single-threaded (no runtime was started for this path) and
    // about to exec: changing its own credentials is the point.
    if let Err(e) = unsafe { confine::apply(&plan) } {
        eprintln!(
            "enforcer: confining task {} failed: {e}",
            confinement.task_id
        );
        return exit_code::SETUP_FAILED;
    }
    drop(ruleset);
    let mut cmd = std::process::Command::new(&executable);
    cmd.args(command.iter().skip(1)).arg0(first);
    let e = cmd.exec();
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            eprintln!(
                "enforcer: the policy does not allow executing {} ({e})",
                executable.display()
            );
            exit_code::CANNOT_EXECUTE
        }
        std::io::ErrorKind::NotFound => {
            eprintln!("enforcer: {}: {e}", executable.display());
            exit_code::NOT_FOUND
        }
        _ => {
            eprintln!("enforcer: cannot start {}: {e}", executable.display());
            exit_code::CANNOT_EXECUTE
        }
    }
}
