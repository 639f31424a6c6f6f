//! `enforcer run`: one task, standalone.
use enforcer::{
    envelope::{self, RunRequest},
    events::writer::Target,
};

use super::RunArgs;

pub fn run(args: RunArgs) -> i32 {
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
