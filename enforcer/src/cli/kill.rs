//! `enforcer kill TASK`.
use enforcer::daemon::protocol::Op;

use super::KillArgs;

pub fn run(args: KillArgs) -> i32 {
    let Some(v) = super::ask(&args.socket, &Op::Kill { task: args.task }) else {
        return 1;
    };
    println!("killed {}", v["killed"].as_str().unwrap_or("?"));
    0
}
