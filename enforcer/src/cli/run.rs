//! `enforcer run`: one task, standalone.
use enforcer::{
    envelope::{self, RunRequest},
    events::writer::Target,
    kernel::probe::ModeRequest,
};

use super::RunArgs;

pub fn run(args: RunArgs) -> i32 {
    let mode = match args.mode.map_or_else(ModeRequest::from_env, Ok) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("enforcer: {e}");
            return 125;
        }
    };
    let request = RunRequest {
        policy: args.policy,
        task: args.task,
        vars: args.vars.into_iter().collect(),
        ttl: args.ttl,
        intent: args.intent,
        events: Target::parse(&args.events),
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
            return 125;
        }
    };
    runtime.block_on(envelope::run(request))
}
