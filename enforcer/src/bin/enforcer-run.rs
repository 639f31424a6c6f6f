//! `enforcer-run`: the lean launcher of a task through the daemon, for callers that start many
//! short tasks (an agent's per-tool envelopes, scripts). It does what `enforcer run --task`
//! does when a daemon listens, with the same request, confinement and exit statuses, without
//! the CLI's weight: no argument-parser tree and no async runtime, so its own exec and
//! start-up, most of a short task's overhead, cost about as much as an empty Rust program's.
//!
//! Standalone runs (`--standalone`, `--events`, `--mode`, a policy file) are `enforcer run`'s.
//!
//! `no_main`: std's runtime start-up (a signal stack for its stack-overflow message, and
//! glibc reading /proc/self/maps to size the main thread's stack) costs about a quarter of a
//! millisecond per start, which this launcher does not need. `std::env::args_os` still works
//! (glibc hands std the arguments at load), and a panic aborts.
#![cfg_attr(not(test), no_main)]
use std::{ffi::OsString, path::PathBuf, process::exit};

use enforcer::{
    daemon::{client, protocol::StartRequest},
    exit_code,
    policy::values::{parse_assignment, parse_duration},
};

const USAGE: &str = "usage: enforcer-run --task NAME [--policy NAME] [--var NAME=VALUE]... \
                     [--ttl DURATION] [--intent TEXT] [--user USER] [--socket PATH] -- CMD [ARG]...";

const HELP: &str = "Run a command inside a task envelope through the enforcer daemon.

Options (as `enforcer run`'s):
  --task NAME          the task's name (appears in every event); required
  --policy NAME        a policy of the daemon's policy directory (default: the task's name)
  --var NAME=VALUE     a policy variable: ${NAME} in the policy becomes VALUE (repeatable)
  --ttl DURATION       time to live, such as 30s or 15m; overrides the policy's limits.ttl
  --intent TEXT        what the agent was asked to do (recorded in every event)
  --user USER          run the command as this user (root callers only)
  --socket PATH        the daemon's control socket (default: $ENFORCER_SOCKET, else
                       /run/enforcer/enforcer.sock)

Exit status: the command's own; 125 when the task cannot be started, 126 when the policy does
not allow executing the command, 127 when the command is not found.
Without a daemon, `enforcer run --standalone --policy FILE` runs a task in-process.";

/// Every option, as `enforcer run` spells it.
const OPTIONS: [&str; 7] = [
    "--task", "--policy", "--var", "--ttl", "--intent", "--user", "--socket",
];

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Launch {
    Help,
    Start {
        req: Box<StartRequest>,
        socket: Option<PathBuf>,
        command: Vec<OsString>,
    },
}

/// Parses the arguments after the program's name. Pure: errors are the message to print.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Launch, String> {
    let mut args = args.into_iter();
    let mut req = StartRequest::default();
    let mut socket = None;
    while let Some(arg) = args.next() {
        let Some(flag) = arg.to_str() else {
            return Err(format!("{}: options must be UTF-8", arg.to_string_lossy()));
        };
        if flag == "--" {
            let command: Vec<OsString> = args.collect();
            if command.is_empty() {
                return Err("no command given after --".into());
            }
            if req.task.is_empty() {
                return Err("--task NAME is required".into());
            }
            return Ok(Launch::Start {
                req: Box::new(req),
                socket,
                command,
            });
        }
        if flag == "--help" || flag == "-h" {
            return Ok(Launch::Help);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (flag, None),
        };
        if !OPTIONS.contains(&name) {
            return Err(format!("unknown option {name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("{name} needs a value"))?
                .into_string()
                .map_err(|v| format!("{name} {}: must be UTF-8", v.to_string_lossy()))?,
        };
        match name {
            "--task" => req.task = value,
            "--policy" => req.policy = Some(value),
            "--intent" => req.intent = Some(value),
            "--user" => req.user = Some(value),
            "--socket" => socket = Some(PathBuf::from(value)),
            "--var" => {
                let (k, v) = parse_assignment(&value).map_err(|e| format!("--var: {e}"))?;
                req.vars.insert(k, v);
            }
            // The only one left of OPTIONS.
            _ => {
                let ttl = parse_duration(&value).map_err(|e| format!("--ttl {value}: {e}"))?;
                req.ttl_ms = Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
            }
        }
    }
    Err("the command goes after --".into())
}

/// The C entry point (see `no_main` above).
#[cfg(not(test))]
#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    launch()
}

// Reached through `main`, which the unit tests' harness replaces.
#[cfg_attr(test, allow(dead_code))]
fn launch() -> ! {
    let (req, socket, command) = match parse(std::env::args_os().skip(1)) {
        Ok(Launch::Help) => {
            println!("{HELP}\n\n{USAGE}");
            exit(0);
        }
        Ok(Launch::Start {
            req,
            socket,
            command,
        }) => (req, socket.unwrap_or_else(client::default_socket), command),
        Err(e) => {
            eprintln!("enforcer-run: {e}\n{USAGE}");
            exit(exit_code::SETUP_FAILED);
        }
    };
    if let Some(policy) = &req.policy
        && let Err(e) = client::check_policy_name(policy, &socket)
    {
        eprintln!("enforcer-run: {e}");
        exit(exit_code::SETUP_FAILED);
    }
    let Some(stream) = client::connect(&socket) else {
        eprintln!(
            "enforcer-run: no daemon answers at {} (is `enforcer daemon` running? `enforcer run \
             --standalone --policy FILE` runs a task without one)",
            socket.display()
        );
        exit(exit_code::SETUP_FAILED);
    };
    exit(client::run_via_daemon(stream, *req, &command));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_option_in_both_spellings_reaches_the_request() {
        let Ok(Launch::Start {
            req,
            socket,
            command,
        }) = parse(args(&[
            "--task",
            "t",
            "--policy=p",
            "--var",
            "ws=/w",
            "--var=a_1=x=y",
            "--ttl",
            "1m30s",
            "--intent=fix the bug",
            "--user",
            "nobody",
            "--socket",
            "/tmp/s",
            "--",
            "/bin/ls",
            "--task",
        ]))
        else {
            panic!("parses");
        };
        assert_eq!(req.task, "t");
        assert_eq!(req.policy.as_deref(), Some("p"));
        assert_eq!(req.vars.get("ws").map(String::as_str), Some("/w"));
        assert_eq!(req.vars.get("a_1").map(String::as_str), Some("x=y"));
        assert_eq!(req.ttl_ms, Some(90_000));
        assert_eq!(req.intent.as_deref(), Some("fix the bug"));
        assert_eq!(req.user.as_deref(), Some("nobody"));
        assert_eq!(socket, Some(PathBuf::from("/tmp/s")));
        // After --, everything is the command's, options included.
        assert_eq!(command, args(&["/bin/ls", "--task"]));
    }

    #[test]
    fn the_help_and_the_usage_name_every_option() {
        for option in OPTIONS {
            assert!(HELP.contains(option), "{option} is not in the help");
            assert!(USAGE.contains(option), "{option} is not in the usage");
        }
    }

    #[test]
    fn mistakes_are_named() {
        let err = |a: &[&str]| parse(args(a)).expect_err("refused");
        assert!(err(&["--", "/bin/true"]).contains("--task"));
        assert!(err(&["--task", "t"]).contains("after --"));
        assert!(err(&["--task", "t", "--"]).contains("no command"));
        assert!(err(&["--task"]).contains("--task needs a value"));
        assert!(
            err(&["--task", "t", "--mode", "lsm", "--", "x"]).contains("unknown option --mode")
        );
        assert!(err(&["--task", "t", "--var", "1 x=y", "--", "x"]).contains("bad variable name"));
        assert!(err(&["--task", "t", "--ttl", "soon", "--", "x"]).contains("--ttl soon"));
        assert_eq!(parse(args(&["--help"])), Ok(Launch::Help));
    }
}
