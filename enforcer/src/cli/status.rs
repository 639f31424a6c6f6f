//! `enforcer status`.
use enforcer::daemon::protocol::Op;

use super::SocketArgs;

pub fn run(args: SocketArgs) -> i32 {
    let Some(v) = super::ask(&args, &Op::Status) else {
        return 1;
    };
    if args.json {
        println!("{v:#}");
        return 0;
    }
    let s = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v[k].to_string())
    };
    println!("mode:        {}", s("mode"));
    if let Some(why) = v["fallback_reason"].as_str() {
        println!("  fallback because: {why}");
    }
    let programs = v["programs"].as_array().map_or(0, Vec::len);
    println!(
        "programs:    {programs} attached, pinned in {}",
        s("pin_dir")
    );
    println!("cgroup root: {}", s("cgroup_root"));
    let k = &v["kernel"];
    println!(
        "kernel:      {} (Landlock ABI {}, BPF LSM listed: {}, identity checks: {})",
        k["release"].as_str().unwrap_or("?"),
        k["landlock_abi"],
        k["bpf_lsm_listed"],
        k["identity_checks"]
    );
    println!("enforcement:");
    if let Some(ops) = v["operations"].as_object() {
        for (op, how) in ops {
            println!("  {op}: {}", how.as_str().unwrap_or("?"));
        }
    }
    for gap in v["gaps"].as_array().into_iter().flatten() {
        println!("  not enforced as asked: {}", gap.as_str().unwrap_or("?"));
    }
    println!("tasks:       {}", v["tasks"]);
    println!("generation:  {}", v["generation"]);
    if let Some(ps) = v["policies"].as_array() {
        for p in ps {
            println!(
                "  policy {} (generation {}, {})",
                p["name"].as_str().unwrap_or("?"),
                p["generation"],
                p["file"].as_str().unwrap_or("?")
            );
        }
    }
    println!("events dropped: {}", v["events_dropped"]);
    println!("event sequence: seq_id {}", s("seq_id"));
    for k in v["sinks"].as_array().into_iter().flatten() {
        let st = &k["state"];
        let mut parts = vec![format!("{} given", k["given"])];
        for (key, label) in [
            ("delivered", "delivered"),
            ("failures", "failures"),
            ("spool_pending_bytes", "bytes waiting in the spool"),
            ("queued", "queued"),
            ("clients", "clients"),
        ] {
            if let Some(n) = st[key].as_u64() {
                parts.push(format!("{n} {label}"));
            }
        }
        if st["receiver_down"] == true {
            parts.push("RECEIVER DOWN".into());
        }
        println!(
            "  sink {} ({}): {}",
            k["name"].as_str().unwrap_or("?"),
            k["format"].as_str().unwrap_or("?"),
            parts.join(", ")
        );
    }
    0
}
