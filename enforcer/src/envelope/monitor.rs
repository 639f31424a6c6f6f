//! While a standalone task runs: the runtime drains the kernel's events (and ends the task on
//! a limit or a kill-on-violation); this waits for the command, enforces the TTL on time and
//! forwards the launcher's signals to the command.
use std::{
    io,
    process::ExitStatus,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    process::Child,
    signal::unix::{SignalKind, signal},
};

use crate::{events::record::Record, runtime::tasks::Runtime, vocab::Op};

enum Wake {
    Exited(io::Result<ExitStatus>),
    Ring,
    Tick,
    Ttl,
    Signal(i32),
}

/// Writes whatever the kernel has produced (the whole ring), each line by the end of the call.
pub fn drain(rt: &mut Runtime, task_id: &str, ring: &mut RingBuf<MapData>) {
    if let Some(details) = rt.drain(ring, usize::MAX)
        && let Some(t) = rt.tasks.get(task_id)
    {
        // A lost event is never silent: every increase of the kernel's drop counter is said.
        let record = Record::lifecycle(&t.ctx, Op::EventsDropped, t.saved.pid, details);
        rt.emitter.emit(&record);
    }
    rt.emitter.flush();
}

/// Runs until the command exits. The TTL, if any, ends the task at `deadline`.
pub async fn run(
    rt: &mut Runtime,
    task_id: &str,
    child: &mut Child,
    ring: &mut AsyncFd<RingBuf<MapData>>,
    deadline: Option<Instant>,
) -> io::Result<ExitStatus> {
    let pid = child.id().unwrap_or(0);
    // The programs do not wake us for ordinary events (see the eBPF side's `emit`): this tick
    // bounds their latency. Kills and limits wake us at once.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let ttl = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(ttl);
    let mut ttl_fired = false;
    loop {
        let wake = tokio::select! {
            status = child.wait() => Wake::Exited(status),
            guard = ring.readable_mut() => match guard {
                Ok(mut g) => { g.clear_ready(); Wake::Ring }
                Err(_) => Wake::Tick,
            },
            _ = tick.tick() => Wake::Tick,
            _ = &mut ttl, if !ttl_fired => Wake::Ttl,
            _ = sigint.recv() => Wake::Signal(libc::SIGINT),
            _ = sigterm.recv() => Wake::Signal(libc::SIGTERM),
            _ = sighup.recv() => Wake::Signal(libc::SIGHUP),
        };
        match wake {
            Wake::Exited(status) => return status,
            Wake::Ring | Wake::Tick => drain(rt, task_id, ring.get_mut()),
            Wake::Ttl => {
                ttl_fired = true;
                drain(rt, task_id, ring.get_mut());
                rt.ttl_expired(task_id, "limit ttl exceeded");
                rt.emitter.flush();
            }
            Wake::Signal(sig) => {
                // SAFETY: plain kill(2) of our own child.
                unsafe { libc::kill(pid as i32, sig) };
            }
        }
    }
}
