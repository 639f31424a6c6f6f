//! Command-line interface: one module per subcommand.
pub mod daemon;
pub mod events;
pub mod kill;
pub mod policy;
pub mod reload;
pub mod run;
pub mod status;
pub mod tasks;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use enforcer::kernel::probe::ModeRequest;

#[derive(Debug, Parser)]
#[command(
    name = "enforcer",
    version,
    about = "Kernel-level runtime enforcer for AI-agent tasks",
    long_about = "Runs each agent task in an envelope: the minimum binaries, files and network \
                  endpoints, for a bounded time and budget, checked in the kernel at every \
                  request, logged, and revoked when the task ends."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(about = RUN_ABOUT)]
    Run(RunArgs),
    /// Run the enforcer daemon (as a systemd service).
    Daemon(DaemonArgs),
    /// The daemon's mode, programs, kernel features, tasks and event drops.
    Status(SocketArgs),
    /// The daemon's tasks: policy and generation, pids, age, TTL left, counters.
    Tasks(TasksArgs),
    /// End a task now (its processes are killed; one task_end event says why).
    Kill(KillArgs),
    /// Make the daemon read its policy directory again.
    Reload(SocketArgs),
    /// A live tail of the daemon's events.
    Events(EventsArgs),
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files; exit 0 when all are valid, 1 otherwise.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The daemon's control socket (default: $ENFORCER_SOCKET, else /run/enforcer/enforcer.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print the daemon's JSON reply instead of a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The daemon's configuration.
    #[arg(long, value_name = "FILE", default_value = enforcer::daemon::config::DEFAULT_PATH)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Stream events as the daemon writes them (until interrupted).
    #[arg(long, required = true)]
    pub follow: bool,
    /// Only this task (a name; repeatable).
    #[arg(long, value_name = "NAME")]
    pub task: Vec<String>,
    /// Only this decision: allow, deny, kill, audit, observed (repeatable).
    #[arg(long, value_name = "DECISION")]
    pub decision: Vec<String>,
    /// `compact` (one short line each, coloured on a terminal unless NO_COLOR is set) or
    /// `json` (the native JSON lines).
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "compact",
          value_parser = ["compact", "json"])]
    pub output: String,
    /// The daemon's control socket (default: $ENFORCER_SOCKET, else /run/enforcer/enforcer.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// A task id (as `enforcer tasks` shows it), or a task name that only one task has.
    #[arg(value_name = "TASK")]
    pub task: String,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// What `enforcer run` does, for the full command tree and for [`run_args`].
pub const RUN_ABOUT: &str =
    "Run a command inside a task envelope (through the daemon when one is running).";

/// `enforcer run`'s arguments, parsed without building the rest of the command tree: a task
/// started through the daemon is mostly this process's own start-up, and the whole tree costs
/// more to build than the request takes to answer. `None` when the subcommand is another one.
pub fn run_args() -> Option<Result<RunArgs, clap::Error>> {
    use clap::FromArgMatches as _;
    let mut argv = std::env::args_os();
    let bin = argv.next()?;
    if argv.next().is_none_or(|a| a != "run") {
        return None;
    }
    let cmd = RunArgs::augment_args(
        clap::Command::new("run")
            .bin_name(format!(
                "{} run",
                Path::new(&bin)
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ))
            .about(RUN_ABOUT),
    );
    Some(
        cmd.try_get_matches_from(std::env::args_os().skip(1))
            .and_then(|m| RunArgs::from_arg_matches(&m)),
    )
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The policy: a file (standalone), or a policy name of the daemon's policy directory
    /// (default there: the policy named like the task).
    #[arg(long, value_name = "FILE|NAME")]
    pub policy: Option<String>,
    /// The task's name (appears in every event).
    #[arg(long, value_name = "NAME")]
    pub task: String,
    /// A policy variable: `${name}` in the policy becomes VALUE.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Time to live; overrides the policy's `limits.ttl`.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Option<Duration>,
    /// What the agent was asked to do (recorded in every event).
    #[arg(long, value_name = "TEXT")]
    pub intent: Option<String>,
    /// Where events go (standalone): a file, `-` for stdout, or `stderr` (the default).
    #[arg(long, value_name = "PATH|-")]
    pub events: Option<String>,
    /// Run the command as this user (name or uid) instead of the invoking user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run without the daemon even when one is running: this process loads its own programs.
    #[arg(long)]
    pub standalone: bool,
    /// The daemon's control socket (default: $ENFORCER_SOCKET, else /run/enforcer/enforcer.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Event format: `native` (the enforcer's JSON) or `ocsf` (OCSF 1.8).
    #[arg(long, value_name = "FORMAT", default_value = "native", value_parser = enforcer::events::Format::parse)]
    pub format: enforcer::events::Format,
    /// Enforcement mode for files and exec: `auto` (BPF LSM where the kernel allows it),
    /// `lsm` (fail if unavailable) or `fallback`. Default: $ENFORCER_MODE, else auto.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<ModeRequest>,
    /// Size of the kernel's event ring buffer in bytes (tests and the benchmark).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub ring_bytes: Option<u32>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print, for each rule, how it is enforced on this kernel.
    #[arg(long)]
    pub explain: bool,
    /// The enforcement mode to explain (as `run --mode`).
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<ModeRequest>,
    /// A policy variable: `${name}` in the policy becomes VALUE.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Policy files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    enforcer::policy::values::parse_assignment(s)
}

fn parse_mode(s: &str) -> Result<ModeRequest, String> {
    ModeRequest::parse(s)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    enforcer::policy::values::parse_duration(s)
}

/// Sends one request to the daemon; prints the error and returns `None` on failure.
fn ask(args: &SocketArgs, op: &enforcer::daemon::protocol::Op) -> Option<serde_json::Value> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(enforcer::daemon::client::default_socket);
    match enforcer::daemon::client::request(&socket, op) {
        Ok((reply, _)) if reply.ok => Some(reply.result),
        Ok((reply, _)) => {
            eprintln!("enforcer: {}", reply.error.unwrap_or_default());
            None
        }
        Err(e) => {
            eprintln!("enforcer: {e}");
            None
        }
    }
}
