//! The `enforcer` binary: argument parsing and exit codes; the work is in the library.
mod cli;

use clap::Parser as _;

use crate::cli::{Cli, Command, PolicyCommand};

fn main() {
    let parsed = match cli::run_args() {
        Some(run) => run.map(|args| Cli {
            command: Command::Run(args),
        }),
        None => Cli::try_parse(),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                // `enforcer run` promises 125 for its own failures before the command starts.
                _ if std::env::args().nth(1).as_deref() == Some("run") => {
                    enforcer::exit_code::SETUP_FAILED
                }
                _ => 2,
            };
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Daemon(args) => cli::daemon::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Tasks(args) => cli::tasks::run(args),
        Command::Kill(args) => cli::kill::run(args),
        Command::Reload(args) => cli::reload::run(args),
        Command::Events(args) => cli::events::run(args),
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => cli::policy::check(args),
    };
    std::process::exit(code);
}
