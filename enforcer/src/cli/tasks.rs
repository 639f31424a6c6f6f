//! `enforcer tasks`.
use enforcer::daemon::protocol::Op;

use super::TasksArgs;

pub fn run(args: TasksArgs) -> i32 {
    let Some(v) = super::ask(&args.socket, &Op::Tasks) else {
        return 1;
    };
    if args.socket.json {
        println!("{v:#}");
        return 0;
    }
    println!(
        "{:<28} {:<18} {:>4} {:<14} {:>7} {:>8}  counters (exec/open/connect/deny)",
        "TASK", "POLICY", "GEN", "PIDS", "AGE", "TTL LEFT"
    );
    for t in v.as_array().into_iter().flatten() {
        let pids: Vec<String> = t["pids"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        let c = &t["counters"];
        println!(
            "{:<28} {:<18} {:>4} {:<14} {:>6}s {:>8}  {}/{}/{}/{}",
            t["task_id"].as_str().unwrap_or("?"),
            t["policy"].as_str().unwrap_or("?"),
            t["generation"],
            pids.join(","),
            t["age_s"],
            t["ttl_left_s"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            c["execs"],
            c["opens"],
            c["connects"],
            c["denials"]
        );
    }
    0
}
