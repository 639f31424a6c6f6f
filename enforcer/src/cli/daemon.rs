//! `enforcer daemon`.
use super::DaemonArgs;

pub fn run(args: DaemonArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("enforcer daemon: cannot start the runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(enforcer::daemon::run(&args.config))
}
