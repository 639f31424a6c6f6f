//! While the task runs: read the kernel's events, attribute and write them, end the task on a
//! limit or a kill-on-violation, enforce the TTL, forward signals, report ring-buffer drops.
use crate::vocab::Op;
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

use crate::{
    bpf::maps::Maps,
    events::{
        Emitter,
        record::{Record, TaskContext},
    },
    kernel::cgroup::{Killed, TaskCgroup},
    policy::Policy,
    runtime::{
        drain::{self, Attribute, Attributed},
        ending,
    },
};

/// A standalone run's task table: its one task (the programs see no other).
struct OneTask<'a> {
    ctx: &'a TaskContext,
    policy: &'a Policy,
    ending: bool,
}

impl Attribute for OneTask<'_> {
    fn attribute(&self, ev: &enforcer_common::Event) -> Attributed<'_> {
        Attributed {
            ctx: std::borrow::Cow::Borrowed(self.ctx),
            policy: self.policy,
            task: Some((ev.cgroup_id, self.ending)),
        }
    }
}

pub struct Monitor<'a> {
    pub ctx: &'a TaskContext,
    pub policy: &'a Policy,
    pub writer: &'a mut Emitter,
    pub cgroup: &'a TaskCgroup,
    pub maps: &'a Maps,
    pub child_pid: u32,
    /// Why the task was ended early, if it was.
    pub ended_by: Option<String>,
    /// Every process the enforcer killed, named in `task_end`.
    pub killed: Vec<Killed>,
    drops_seen: u64,
}

enum Wake {
    Exited(io::Result<ExitStatus>),
    Ring,
    Tick,
    Ttl,
    Signal(i32),
}

impl<'a> Monitor<'a> {
    pub fn new(
        ctx: &'a TaskContext,
        policy: &'a Policy,
        writer: &'a mut Emitter,
        cgroup: &'a TaskCgroup,
        maps: &'a Maps,
        child_pid: u32,
    ) -> Self {
        Self {
            ctx,
            policy,
            writer,
            cgroup,
            maps,
            child_pid,
            ended_by: None,
            killed: Vec::new(),
            drops_seen: 0,
        }
    }

    fn end_task(&mut self, why: String) {
        ending::end(self.cgroup, &mut self.ended_by, &mut self.killed, why);
    }

    /// Writes whatever the kernel has produced (the whole ring), and ends the task if the
    /// kernel ended it.
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        let book = OneTask {
            ctx: self.ctx,
            policy: self.policy,
            ending: self.ended_by.is_some(),
        };
        let drained = drain::drain(ring, usize::MAX, &book, self.writer);
        for (_, why) in drained.ends {
            self.end_task(why);
        }
        if let Some(d) = drain::dropped_since(&mut self.drops_seen, self.maps.drops()) {
            let record = Record::lifecycle(self.ctx, Op::EventsDropped, self.child_pid, d);
            self.writer.emit(&record);
        }
        self.writer.flush();
    }

    pub fn drops(&self) -> u64 {
        self.drops_seen
    }

    /// Runs until the command exits. The TTL, if any, ends the task at `deadline`.
    pub async fn run(
        &mut self,
        child: &mut Child,
        ring: &mut AsyncFd<RingBuf<MapData>>,
        deadline: Option<Instant>,
    ) -> io::Result<ExitStatus> {
        // The programs do not wake us for ordinary events (see the eBPF side's `emit`): this
        // tick bounds their latency. Kills and limits wake us at once.
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
                Wake::Ring | Wake::Tick => self.drain(ring.get_mut()),
                Wake::Ttl => {
                    ttl_fired = true;
                    self.drain(ring.get_mut());
                    if self.ended_by.is_none() {
                        self.writer
                            .emit(&Record::ttl_kill(self.ctx, self.child_pid));
                        self.writer.flush();
                        self.end_task("limit ttl exceeded".into());
                    }
                }
                Wake::Signal(sig) => {
                    // SAFETY: plain kill(2) of our own child.
                    unsafe { libc::kill(self.child_pid as i32, sig) };
                }
            }
        }
    }
}
