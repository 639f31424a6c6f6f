//! `enforcer run`: one task, through the daemon when one is listening, else standalone.
use std::{os::unix::net::UnixStream, path::PathBuf};

use enforcer::{
    daemon::{client, protocol::StartRequest},
    envelope::{self, RunRequest},
    events::writer::Target,
    exit_code,
    kernel::probe::ModeRequest,
};

use super::RunArgs;

pub fn run(args: RunArgs) -> i32 {
    let socket = args.socket.clone().unwrap_or_else(client::default_socket);
    // One connection: it tells whether a daemon listens, and carries the request.
    if !args.standalone
        && let Some(stream) = client::connect(&socket)
    {
        return via_daemon(args, &socket, stream);
    }
    standalone(args)
}

fn via_daemon(args: RunArgs, socket: &std::path::Path, stream: UnixStream) -> i32 {
    let standalone_only = [
        (args.events.is_some(), "--events"),
        (args.mode.is_some(), "--mode"),
        (args.ring_bytes.is_some(), "--ring-bytes"),
    ];
    for (given, flag) in standalone_only {
        if given {
            eprintln!(
                "enforcer: {flag} applies to standalone runs; the daemon at {} decides it in its \
                 config (add --standalone to run without the daemon)",
                socket.display()
            );
            return exit_code::SETUP_FAILED;
        }
    }
    if let Some(p) = &args.policy
        && let Err(e) = client::check_policy_name(p, socket)
    {
        eprintln!("enforcer: {e}");
        return exit_code::SETUP_FAILED;
    }
    let req = StartRequest {
        task: args.task,
        policy: args.policy,
        vars: args.vars.into_iter().collect(),
        ttl_ms: args.ttl.map(|t| t.as_millis() as u64),
        intent: args.intent,
        user: args.user,
        ..StartRequest::default()
    };
    client::run_via_daemon(stream, req, &args.command)
}

fn standalone(args: RunArgs) -> i32 {
    let Some(policy) = args.policy else {
        eprintln!("enforcer: --policy FILE is required without a daemon");
        return exit_code::SETUP_FAILED;
    };
    let mode = match args.mode.map_or_else(ModeRequest::from_env, Ok) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("enforcer: {e}");
            return exit_code::SETUP_FAILED;
        }
    };
    let request = RunRequest {
        policy: PathBuf::from(policy),
        task: args.task,
        vars: args.vars.into_iter().collect(),
        ttl: args.ttl,
        intent: args.intent,
        events: Target::parse(args.events.as_deref().unwrap_or("stderr")),
        user: args.user,
        command: args.command,
        ring_bytes: args.ring_bytes,
        format: args.format,
        mode,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enforcer: cannot start the runtime: {e}");
            return exit_code::SETUP_FAILED;
        }
    };
    runtime.block_on(envelope::run(request))
}
