//! `enforcer daemon`: the programs loaded once and pinned, a cgroup subtree for tasks, a control
//! socket, hot-reloaded policies, and adoption of the tasks a previous daemon left running.
pub mod authz;
pub mod client;
pub mod config;
mod core;
mod inotify;
mod lifecycle;
mod load;
mod metrics;
mod notify;
pub mod policies;
mod programs;
pub mod protocol;
mod reload;
mod server;
mod state;
mod upgrade;

use crate::vocab::Op;
use std::{
    path::Path,
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use self::{config::Config, core::Core};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the daemon needs root: it loads eBPF programs and owns a cgroup subtree")]
    NotRoot,
    /// The config file (with file:line:column).
    #[error("{0}")]
    Config(#[from] crate::policy::PolicyError),
    /// What the kernel lacks or refuses (tracefs, cgroup v2, the mode asked for).
    #[error("{0}")]
    Kernel(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::kernel::cgroup::CgroupError),
    #[error(transparent)]
    Pins(#[from] crate::bpf::pin::PinError),
    #[error(transparent)]
    Bpf(#[from] crate::bpf::BpfError),
    /// Loading or attaching the programs (the verifier's verdict, cut short).
    #[error("eBPF: {0}")]
    Load(String),
    /// A sink's configuration.
    #[error("{0}")]
    Sink(String),
    /// The pinned programs cannot be taken over by this build; they keep enforcing.
    #[error("{0}")]
    Upgrade(String),
}

impl DaemonError {
    /// An I/O error with what was being done.
    pub fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.to_string();
        move |source| Self::Io { what, source }
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit status.
pub async fn run(config_path: &Path) -> i32 {
    match serve(config_path).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("enforcer daemon: {e}");
            1
        }
    }
}

async fn serve(config_path: &Path) -> Result<(), DaemonError> {
    if !crate::kernel::probe::is_root() {
        return Err(DaemonError::NotRoot);
    }
    // Out of every task's reach (kernel::creds): a task running as root cannot signal it.
    crate::kernel::creds::guard_self().map_err(DaemonError::io("guarding the daemon's uid"))?;
    if !config_path.exists() {
        eprintln!(
            "enforcer daemon: {} does not exist; using the defaults",
            config_path.display()
        );
    }
    let config = Config::load(config_path)?;
    let socket = config.socket.clone();
    let policies_dir = config.policies.clone();
    let (mut core, ring) = Core::open(config)?;
    // SAFETY: the ring buffer owns its map fd, which stays open until the AsyncFd is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| DaemonError::io("ring buffer")(e.into()))?;

    // Policies: watched first, then read, so no change falls between the two.
    let mask = libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_TO
        | libc::IN_MOVED_FROM
        | libc::IN_DELETE
        | libc::IN_CREATE;
    match core.inotify.watch(&policies_dir, mask) {
        Ok(wd) => core.policy_watch = Some(wd),
        Err(e) => eprintln!(
            "enforcer daemon: warning: cannot watch {}: {e}; reload with SIGHUP or `enforcer \
             reload`",
            policies_dir.display()
        ),
    }
    if let Err(e) = core.reload("daemon start") {
        eprintln!("enforcer daemon: {e}");
    }
    // What the kernel reported while no daemon ran, then what ended meanwhile.
    core.drain(ring.get_mut());
    core.settle_adopted();
    let inotify_owned = core
        .inotify
        .as_fd_owned()
        .map_err(DaemonError::io("inotify"))?;
    // SAFETY: the OwnedFd moves into the AsyncFd and stays open as long as it.
    let inotify_fd = unsafe { AsyncFd::register_with_interest(inotify_owned, Interest::READABLE) }
        .map_err(|e| DaemonError::io("inotify")(e.into()))?;

    let listener = server::bind(&socket).map_err(DaemonError::io(socket.display()))?;
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(server::accept_loop(listener, tx));
    let (scrape_tx, mut scrapes) = mpsc::channel::<metrics::Scrape>(16);
    if let Some(listen) = core.config.metrics.clone() {
        metrics::bind(&listen, scrape_tx).await?;
        eprintln!("enforcer daemon: metrics on {listen}/metrics");
    }
    let signals = |k| signal(k).map_err(DaemonError::io("signals"));
    let mut sighup = signals(SignalKind::hangup())?;
    let mut sigterm = signals(SignalKind::terminate())?;
    let mut sigint = signals(SignalKind::interrupt())?;

    let start_details = json!({
        "mode": core.mode(),
        "fallback_reason": core.probe.fallback_reason(),
        "programs": core.pins.link_count(),
        "adopted_tasks": core.adopted,
        "socket": socket.display().to_string(),
        "generation": core.policies.generation,
    });
    core.emit_daemon(Op::DaemonStart, start_details);
    eprintln!(
        "enforcer daemon: ready ({} mode, {} programs pinned in {}, {} task(s) adopted, socket {})",
        core.mode(),
        core.pins.link_count(),
        core.pins.root.display(),
        core.adopted,
        socket.display()
    );
    for (op, how) in core::operations(core.probe.lsm_mode())
        .as_object()
        .into_iter()
        .flatten()
    {
        eprintln!("enforcer daemon:   {op}: {}", how.as_str().unwrap_or("?"));
    }
    for gap in crate::envelope::setup::mode_gaps(&crate::policy::Policy::empty(), &core.probe) {
        eprintln!("enforcer daemon: warning: {gap}");
    }
    notify::notify("READY=1\nSTATUS=enforcing");
    let watchdog = notify::watchdog_interval();
    let mut last_ping = Instant::now();
    let mut reload_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            Some(incoming) = rx.recv() => server::handle(&mut core, incoming),
            Some(scrape) = scrapes.recv() => {
                let _ = scrape.send(core.metrics_text());
            }
            guard = ring.readable_mut() => {
                if let Ok(mut g) = guard { g.clear_ready(); }
                core.drain(ring.get_mut());
            }
            guard = inotify_fd.readable() => {
                if let Ok(mut g) = guard { g.clear_ready(); }
                let wds = core.inotify.read();
                if core.policy_watch.is_some_and(|w| wds.contains(&w)) {
                    // Editors write in several steps: read the set once they are done.
                    reload_at.get_or_insert_with(|| Instant::now() + Duration::from_millis(50));
                }
                core.drain(ring.get_mut());
                core.check_populated(Some(&wds));
            }
            _ = tick.tick() => {
                core.drain(ring.get_mut());
                core.tick();
                core.flush_events();
                if reload_at.is_some_and(|t| Instant::now() >= t) {
                    reload_at = None;
                    let _ = core.reload("inotify");
                }
                if let Some(every) = watchdog && last_ping.elapsed() >= every {
                    notify::notify("WATCHDOG=1");
                    last_ping = Instant::now();
                }
            }
            _ = sighup.recv() => {
                notify::notify("RELOADING=1");
                // logrotate moved the files: write to new ones.
                core.rt.emitter.reopen();
                let _ = core.reload("SIGHUP");
                eprintln!("enforcer daemon: SIGHUP: event files reopened, policies read");
                notify::notify("READY=1");
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    notify::notify("STOPPING=1");
    core.drain(ring.get_mut());
    let running = core.rt.tasks.len();
    if running == 0 {
        // Nothing to enforce: the programs go with the pins.
        if let Err(e) = core.pins.remove() {
            eprintln!("enforcer daemon: {e}");
        }
        let _ = std::fs::remove_file(core.config.state_dir.join("daemon.json"));
        let _ = std::fs::remove_dir(&core.root);
    } else {
        eprintln!(
            "enforcer daemon: {running} task(s) keep running, enforced by the pinned programs; \
             a restarted daemon adopts them"
        );
    }
    core.emit_daemon(Op::DaemonStop, json!({ "tasks_left_running": running }));
    core.rt.emitter.finish();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
