//! The control socket: each connection sends one request line; the peer's credentials come
//! from the kernel (SO_PEERCRED, SO_PEERGROUPS), never from the request.
use crate::vocab::{Decision, EnforcedBy};
use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    path::Path,
    time::Duration,
};

use tokio::{
    io::BufReader,
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

use super::{
    authz::{self, Peer, SystemIds},
    core::Core,
    protocol::{self, Op, Reply},
};
use crate::events::record::Record;

/// One request, read and attributed, waiting for the main loop.
pub struct Incoming {
    pub peer: Peer,
    /// A pidfd of the peer, opened at accept: the process to move is the one that asked.
    pub pidfd: Option<OwnedFd>,
    pub op: Result<Op, String>,
    pub stream: UnixStream,
}

/// Binds the socket (replacing a stale one), readable and writable by everyone: who may do
/// what is decided per request from the peer's credentials.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

fn peer_of(stream: &UnixStream) -> io::Result<Peer> {
    let cred = stream.peer_cred()?;
    let fd = stream.as_raw_fd();
    let mut groups = vec![0u32; 256];
    let mut len = (groups.len() * 4) as libc::socklen_t;
    // SAFETY: getsockopt into our buffer of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    groups.truncate(if rc == 0 { len as usize / 4 } else { 0 });
    Ok(Peer {
        pid: cred.pid().unwrap_or(0),
        uid: cred.uid(),
        gid: cred.gid(),
        groups,
    })
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned from here on.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the process behind a pidfd has exited (its pidfd polls readable).
pub fn exited(pidfd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// Accepts connections; each one's request line goes to the main loop.
pub async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Incoming>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(peer) = peer_of(&stream) else { return };
            let pidfd = pidfd_open(peer.pid);
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(10), async {
                let mut limited = (&mut reader).take(protocol::MAX_LINE as u64);
                tokio::io::AsyncBufReadExt::read_line(&mut limited, &mut line).await
            })
            .await;
            let op = match read {
                Ok(Ok(n)) if n > 0 => protocol::parse_request(line.trim_end()),
                Ok(Ok(_)) => return,
                Ok(Err(e)) => Err(format!("reading the request: {e}")),
                Err(_) => Err("no request within 10 s".into()),
            };
            let _ = tx
                .send(Incoming {
                    peer,
                    pidfd,
                    op,
                    stream: reader.into_inner(),
                })
                .await;
        });
    }
}

use tokio::io::AsyncReadExt as _;

/// Handles one request and writes the reply.
pub fn handle(core: &mut Core, incoming: Incoming) {
    answer(core, incoming);
    core.emit_deferred();
}

fn answer(core: &mut Core, incoming: Incoming) {
    let Incoming {
        peer,
        pidfd,
        op,
        stream,
    } = incoming;
    if let Some(reply) = refuse_envelope_peer(core, &peer, pidfd.as_ref(), &op) {
        let mut line = serde_json::to_string(&reply).unwrap_or_default();
        line.push('\n');
        if let Err(e) = protocol::send_with_fd(stream.as_raw_fd(), line.as_bytes(), None) {
            eprintln!("enforcer: replying to pid {}: {e}", peer.pid);
        }
        return;
    }
    let ids = SystemIds;
    let admin = authz::is_admin(&core.config, &ids, &peer);
    let denied = || Reply::err("permission denied");
    let mut follow = None;
    let (reply, fd) = match op {
        Err(e) => (Reply::err(e), None),
        Ok(Op::Status) if admin => (Reply::ok(core.status()), None),
        Ok(Op::Reload) if admin => match core.reload("enforcer reload") {
            Ok(v) => (Reply::ok(v), None),
            Err(e) => (Reply::err(e.to_string()), None),
        },
        Ok(Op::Status | Op::Reload) => (denied(), None),
        Ok(Op::Follow { task, decision }) if admin => {
            let filter = crate::sinks::filter::Filter {
                task,
                decision,
                ..Default::default()
            };
            match filter.check() {
                Ok(()) => {
                    follow = Some(filter);
                    (Reply::ok(serde_json::json!({ "following": true })), None)
                }
                Err(e) => (Reply::err(e), None),
            }
        }
        Ok(Op::Follow { .. }) => (denied(), None),
        Ok(Op::Tasks) => (
            Reply::ok(core.task_list((!admin).then_some(peer.uid))),
            None,
        ),
        Ok(Op::Kill { task }) => match core.kill_request(&peer, admin, &task) {
            Ok(v) => (Reply::ok(v), None),
            Err(e) => (Reply::err(e), None),
        },
        Ok(Op::Start(req)) => {
            let policy = req.policy.clone().unwrap_or_else(|| req.task.clone());
            if !authz::may_start(&core.config, &ids, &peer, &policy) {
                (
                    Reply::err(format!(
                        "permission denied: uid {} may not start tasks with policy \"{policy}\"",
                        peer.uid
                    )),
                    None,
                )
            } else if pidfd.as_ref().is_none_or(exited) {
                (Reply::err("the requesting process is gone"), None)
            } else {
                match core.start(&peer, req) {
                    Ok((c, fd)) => (Reply::ok(serde_json::to_value(c).unwrap_or_default()), fd),
                    Err(e) => (Reply::err(e.to_string()), None),
                }
            }
        }
    };
    let mut line = serde_json::to_string(&reply).unwrap_or_default();
    line.push('\n');
    let raw = stream.as_raw_fd();
    let fd_raw = fd.as_ref().map(|f| f.as_raw_fd());
    // The reply is small and the socket's buffer empty: one send does it.
    if let Err(e) = protocol::send_with_fd(raw, line.as_bytes(), fd_raw) {
        eprintln!("enforcer: replying to pid {}: {e}", peer.pid);
        return;
    }
    if let Some(filter) = follow {
        let added = stream.into_std().and_then(|s| core.follow.add(s, filter));
        if let Err(e) = added {
            eprintln!("enforcer: following for pid {}: {e}", peer.pid);
        }
    }
}

/// A peer inside an envelope (known from its cgroup, read from the kernel, never from what it
/// says) gets nothing, whatever its uid: a task running as root would otherwise be an admin,
/// could list and kill other tasks, and could start itself a task under a wider policy. The
/// refusal is an event of the peer's task. A peer whose cgroup cannot be read is refused too.
fn refuse_envelope_peer(
    core: &mut Core,
    peer: &Peer,
    pidfd: Option<&OwnedFd>,
    op: &Result<Op, String>,
) -> Option<Reply> {
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", peer.pid));
    // Read before this check: if the process is still there, the text was its own.
    let gone = pidfd.is_none_or(exited);
    let path = match (&text, gone) {
        (Ok(text), false) => authz::cgroup_path(text).map(str::to_owned),
        _ => None,
    };
    let Some(path) = path else {
        return Some(Reply::err(
            "permission denied: cannot tell where the requesting process runs",
        ));
    };
    let roots = [
        crate::kernel::cgroup::ROOT_NAME,
        core.config.cgroup.as_str(),
    ];
    if !authz::inside_envelope(&path, &roots) {
        return None;
    }
    let cgroup_id = core
        .probe
        .cgroup2
        .as_ref()
        .ok()
        .and_then(|mount| std::fs::metadata(mount.join(path.trim_start_matches('/'))).ok())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let request = match op {
        Ok(op) => op.name(),
        Err(_) => "malformed",
    };
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", peer.pid))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default();
    let details = serde_json::json!({
        "request": request,
        "uid": peer.uid,
        "cgroup": path,
        "socket": core.config.socket.display().to_string(),
    });
    let task = cgroup_id
        .and_then(|id| core.rt.by_cgroup.get(&id))
        .and_then(|id| core.rt.tasks.get(id));
    let task_name = task.map(|t| t.saved.task_id.clone());
    let mut record = match task {
        Some(task) => Record::lifecycle(
            &task.ctx,
            crate::vocab::Op::Control,
            peer.pid as u32,
            details,
        ),
        None => {
            core.rt.outside.policy.generation = core.policies.generation;
            Record::lifecycle(
                &core.rt.outside,
                crate::vocab::Op::Control,
                peer.pid as u32,
                details,
            )
        }
    };
    record.decision = Decision::Deny;
    record.enforced_by = EnforcedBy::Daemon;
    record.comm = comm;
    record.target = core.config.socket.display().to_string();
    core.rt.emitter.emit(&record);
    Some(Reply::err(format!(
        "permission denied: a process inside a task{} may not use the control socket",
        task_name.map(|t| format!(" ({t})")).unwrap_or_default()
    )))
}
