//! `enforcer reload`.
use enforcer::daemon::protocol::Op;

use super::SocketArgs;

pub fn run(args: SocketArgs) -> i32 {
    let Some(v) = super::ask(&args, &Op::Reload) else {
        return 1;
    };
    if args.json {
        println!("{v:#}");
    } else {
        println!(
            "generation {}; changed {}, added {}, removed {}; tasks updated {}",
            v["generation"], v["changed"], v["added"], v["removed"], v["tasks_updated"]
        );
    }
    0
}
