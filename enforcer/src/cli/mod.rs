//! Command-line interface: one module per subcommand.
pub mod policy;
pub mod run;

use std::{ffi::OsString, path::PathBuf, time::Duration};

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
    /// Run a command inside a task envelope.
    Run(RunArgs),
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
pub struct RunArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
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
    /// Where events go: a file, `-` for stdout, or `stderr`.
    #[arg(long, value_name = "PATH|-", default_value = "stderr")]
    pub events: String,
    /// Run the command as this user (name or uid) instead of the invoking user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Run without a daemon (the only mode of this version; accepted for compatibility).
    #[arg(long)]
    pub standalone: bool,
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
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{s}\""))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad variable name \"{name}\""));
    }
    Ok((name.to_owned(), value.to_owned()))
}

fn parse_mode(s: &str) -> Result<ModeRequest, String> {
    ModeRequest::parse(s)
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    enforcer::policy::values::parse_duration(s)
}
