//! `cargo xtask bench`: what the enforcer costs, as ratios measured in one run with the sides
//! interleaved. Each round measures (a) with no enforcer loaded, then loads one and measures
//! (b) outside any task, (c) inside a task where the operation is allowed and (d) where it is
//! denied, then unloads it. The table reports the median of the per-round ratios and their
//! range. Needs root. Writes target/bench/bench.json.
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{
    bench_harness::{
        DIR, Server, Setup, cell, closed_tcp_port, closed_udp_port, median, program_totals, spread,
        wait_unloaded,
    },
    cargo, is_root, step,
};

const ROUNDS: usize = 15;

fn enforcer_run(s: &Setup, policy: &Path, events: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(&s.enforcer);
    cmd.args(["run", "--task", "bench", "--policy"])
        .arg(policy)
        .arg("--events")
        .arg(events)
        .args(extra)
        .arg("--");
    cmd
}

/// The last event of `op`, streaming the file (a flood writes hundreds of megabytes).
fn last_event(events: &Path, op: &str) -> anyhow::Result<Value> {
    let needle = format!("\"op\":\"{op}\"");
    let mut last = None;
    for line in BufReader::new(fs::File::open(events)?).lines() {
        let line = line?;
        if line.contains(&needle) {
            last = Some(line);
        }
    }
    let line = last.with_context(|| format!("no {op} event in {}", events.display()))?;
    Ok(serde_json::from_str(&line)?)
}

/// Denial events in the file: (all, those that are not connects). Streams; no JSON parsing.
fn count_denials(events: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut all, mut other) = (0, 0);
    for line in BufReader::new(fs::File::open(events)?).lines() {
        let line = line?;
        if line.contains("\"decision\":\"deny\"") {
            all += 1;
            if !line.contains("\"op\":\"connect\"") {
                other += 1;
            }
        }
    }
    Ok((all, other))
}

/// The (a)/(b)/(c)/(d) ratios.
fn ratios(s: &Setup) -> anyhow::Result<Value> {
    let events = Path::new(DIR).join("events.jsonl");
    let mut outside = Server::start({
        let mut c = Command::new(&s.bench_op);
        c.arg("serve");
        c
    })?;
    // per op: rounds of (a, b, c, d)
    let mut samples: BTreeMap<&str, Vec<[f64; 4]>> = BTreeMap::new();
    let mut stats = Value::Null;
    // The untagged tax, straight from the kernel: program time spent during the (b) batches.
    let mut untagged: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for round in 0..ROUNDS {
        eprint!("\r    round {}/{ROUNDS}", round + 1);
        wait_unloaded()?;
        let mut a = Vec::new();
        for (_, allowed, _) in &s.ops {
            a.push(outside.measure(allowed)?);
        }
        let _ = fs::remove_file(&events);
        let mut inside = Server::start({
            let mut c = enforcer_run(s, &s.policy, &events, &[]);
            c.arg(&s.bench_op).arg("serve");
            c
        })?;
        inside.measure(&s.ops[0].1.replace(" 20000", " 10"))?; // the envelope is up
        for (i, (name, allowed, denied)) in s.ops.iter().enumerate() {
            let before = program_totals();
            let b = outside.measure(allowed)?;
            let after = program_totals();
            let ops: u64 = allowed
                .split_whitespace()
                .nth(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let t = untagged.entry(name).or_default();
            *t = (
                t.0 + (after.0 - before.0),
                t.1 + (after.1 - before.1),
                t.2 + ops,
            );
            let c = inside.measure(allowed)?;
            let d = inside.measure(denied)?;
            samples.entry(name).or_default().push([a[i], b, c, d]);
        }
        inside.quit()?;
        stats = last_event(&events, "task_end")?["programs"].clone();
    }
    eprintln!();
    outside.quit()?;
    let mut out = serde_json::Map::new();
    for (name, rounds) in samples {
        let col = |k: usize| rounds.iter().map(|r| r[k]).collect::<Vec<_>>();
        let ratio = |k: usize| spread(rounds.iter().map(|x| x[k] / x[0]).collect());
        out.insert(
            name.to_owned(),
            json!({
                "ns_per_op_median": { "a": median(&mut col(0)), "b": median(&mut col(1)), "c": median(&mut col(2)), "d": median(&mut col(3)) },
                "b_over_a": ratio(1), "c_over_a": ratio(2), "d_over_a": ratio(3),
            }),
        );
    }
    for (name, (runs, ns, ops)) in untagged {
        if let Some(entry) = out.get_mut(name) {
            entry["untagged"] = json!({
                "program_runs_per_op": runs as f64 / ops as f64,
                "program_ns_per_op": ns as f64 / ops as f64,
                "ns_per_program_run": if runs > 0 { ns as f64 / runs as f64 } else { 0.0 },
            });
        }
    }
    out.insert("bpf_programs_last_round".into(), stats);
    Ok(Value::Object(out))
}

/// `enforcer run -- /usr/bin/true` against `/usr/bin/true`, interleaved.
fn startup(s: &Setup) -> anyhow::Result<Value> {
    let events = Path::new(DIR).join("startup.jsonl");
    let (mut plain, mut enforced, mut setup_us) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        ensure!(Command::new("/usr/bin/true").status()?.success());
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        let _ = fs::remove_file(&events);
        let t = Instant::now();
        let status = enforcer_run(s, &s.policy, &events, &[])
            .arg("/usr/bin/true")
            .status()?;
        enforced.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            status.success(),
            "enforcer run -- /usr/bin/true failed: {status}"
        );
        setup_us.push(
            last_event(&events, "task_start")?["setup_us"]["total"]
                .as_f64()
                .unwrap_or(0.0),
        );
    }
    let (p, e) = (median(&mut plain), median(&mut enforced));
    Ok(json!({
        "plain_ms": p, "enforced_ms": e, "overhead_ms": e - p, "ratio": e / p,
        "setup_in_process_ms": median(&mut setup_us) / 1e3,
        "mode": "standalone (no daemon yet)",
    }))
}

/// Time to write N rules into the kernel maps when an envelope starts.
fn rule_install(s: &Setup) -> anyhow::Result<Value> {
    let events = Path::new(DIR).join("rules.jsonl");
    let mut out = serde_json::Map::new();
    for n in [10usize, 1_000, 10_000] {
        let rules: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "\"10.{}.{}.{}:443\"",
                    (i >> 16) & 255,
                    (i >> 8) & 255,
                    i & 255
                )
            })
            .collect();
        let policy = Path::new(DIR).join(format!("rules-{n}.toml"));
        fs::write(
            &policy,
            format!(
                "[policy]\nname = \"bench-rules\"\nversion = 1\n[exec]\nallow = [\"/usr/bin/true\"]\n\
                 [files]\nread = [\"/usr/lib/\", \"/lib/\", \"/lib64/\", \"/etc/ld.so.cache\"]\n\
                 [network]\nconnect = [{}]\n",
                rules.join(", ")
            ),
        )?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let _ = fs::remove_file(&events);
            let status = enforcer_run(s, &policy, &events, &[])
                .arg("/usr/bin/true")
                .status()?;
            ensure!(status.success());
            let start = last_event(&events, "task_start")?;
            times.push(start["setup_us"]["install_maps"].as_f64().unwrap_or(0.0) / 1e3);
        }
        out.insert(
            n.to_string(),
            json!({ "install_ms_median": median(&mut times) }),
        );
    }
    out.insert(
        "note".into(),
        json!("map fill of a new envelope; hot reload of a running task's policy arrives with the daemon"),
    );
    Ok(Value::Object(out))
}

/// Sustained denials per second with zero loss, and an exact drop count on forced overflow.
fn event_throughput(s: &Setup, denied: &str) -> anyhow::Result<Value> {
    let events = Path::new(DIR).join("throughput.jsonl");
    let mut runs = Vec::new();
    let mut best_zero_loss = 0.0f64;
    let measure = |rate: f64, secs: f64, extra: &[&str]| -> anyhow::Result<(f64, u64, u64, u64)> {
        let _ = fs::remove_file(&events);
        let mut inside = Server::start({
            let mut c = enforcer_run(s, &s.policy, &events, extra);
            c.arg(&s.bench_op).arg("serve");
            c
        })?;
        let sent: u64 = inside
            .ask(&format!("deny-connect {denied} {secs} {rate}"))?
            .parse()?;
        inside.quit()?;
        let end = last_event(&events, "task_end")?;
        // Every denial is one event: the flood's connects, plus the few opens a process makes
        // at start-up that the policy refuses (Rust's std reads /proc/self/maps).
        let (written, other) = count_denials(&events)?;
        let _ = fs::remove_file(&events);
        let dropped = end["events_dropped"].as_u64().unwrap_or(0);
        let denials = end["counters"]["denials"].as_u64().unwrap_or(0);
        ensure!(
            denials == sent + other,
            "kernel counted {denials} denials for {sent} connects and {other} other denials"
        );
        Ok((sent as f64 / secs, written, dropped, denials))
    };
    for rate in [25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0] {
        let (achieved, written, dropped, denials) = measure(rate, 2.0, &[])?;
        let lossless = dropped == 0 && written == denials;
        if lossless {
            best_zero_loss = best_zero_loss.max(achieved);
        }
        runs.push(json!({ "target_per_s": rate, "achieved_per_s": achieved, "denials": denials, "written": written, "dropped": dropped, "lossless": lossless }));
    }
    // Force an overflow with a one-page ring: written + dropped must equal the denials exactly.
    let (achieved, written, dropped, denials) = measure(1e9, 0.5, &["--ring-bytes", "4096"])?;
    Ok(json!({
        "runs": runs,
        "max_sustained_zero_loss_per_s": best_zero_loss,
        "overflow_check": {
            "ring_bytes": 4096, "achieved_per_s": achieved, "denials": denials, "written": written,
            "dropped": dropped, "exact": written + dropped == denials && dropped > 0,
        },
    }))
}

/// Resident memory of the enforcer while one task runs.
fn memory(s: &Setup) -> anyhow::Result<Value> {
    let events = Path::new(DIR).join("memory.jsonl");
    let mut child = enforcer_run(s, &s.policy, &events, &[])
        .args(["/usr/bin/sleep", "2"])
        .spawn()?;
    std::thread::sleep(Duration::from_millis(800));
    let status = fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let _ = child.wait();
    Ok(
        json!({ "one_task_rss_kib": rss_kb, "hundred_tasks": "needs the daemon (one process serving many tasks)" }),
    )
}

fn prepare(root: &Path) -> anyhow::Result<Setup> {
    let _ = fs::remove_dir_all(DIR);
    fs::create_dir_all(Path::new(DIR).join("allowed"))?;
    fs::write(Path::new(DIR).join("allowed/file"), "x")?;
    fs::write(Path::new(DIR).join("denied-file"), "x")?;
    let (tcp_ok, tcp_no) = (closed_tcp_port()?, closed_tcp_port()?);
    let (udp_ok, udp_no) = (closed_udp_port()?, closed_udp_port()?);
    let bench_op = root.join("target/release/bench-op");
    let policy = Path::new(DIR).join("bench.toml");
    fs::write(
        &policy,
        format!(
            "[policy]\nname = \"bench\"\nversion = 1\n[exec]\nallow = [\"{}\", \"/usr/bin/true\", \"/usr/bin/sleep\"]\n\
             [files]\nread = [\"/usr/lib/\", \"/lib/\", \"/lib64/\", \"/etc/ld.so.cache\", \"{DIR}/allowed/\"]\n\
             [network]\nconnect = [\"127.0.0.1:{tcp_ok}\", \"127.0.0.1:{udp_ok}\"]\n",
            bench_op.display()
        ),
    )?;
    Ok(Setup {
        enforcer: root.join("target/release/enforcer"),
        bench_op,
        policy,
        ops: vec![
            (
                "openat+close",
                format!("open {DIR}/allowed/file 20000"),
                format!("open {DIR}/denied-file 20000"),
            ),
            (
                "connect (closed port)",
                format!("connect 127.0.0.1:{tcp_ok} 5000"),
                format!("connect 127.0.0.1:{tcp_no} 5000"),
            ),
            (
                "udp sendto",
                format!("sendto 127.0.0.1:{udp_ok} 20000"),
                format!("sendto 127.0.0.1:{udp_no} 20000"),
            ),
            (
                "fork+execve+wait",
                "exec /usr/bin/true 300".into(),
                "exec /usr/bin/false 300".into(),
            ),
        ],
    })
}

fn print_table(r: &Value) {
    println!(
        "\n| operation | (a) ns/op | (b)/(a) outside tasks | untagged program ns/op | (c)/(a) allowed in task | (d)/(a) denied in task |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    if let Some(ops) = r["ratios"].as_object() {
        for (name, v) in ops.iter().filter(|(k, _)| !k.starts_with("bpf_")) {
            let cell = |k: &str| cell(&v[k]);
            let a = f(&v["ns_per_op_median"]["a"]);
            let tax = f(&v["untagged"]["program_ns_per_op"]);
            println!(
                "| {name} | {a:.0} | {} | {tax:.1} ({:.4}x) | {} | {} |",
                cell("b_over_a"),
                1.0 + tax / a.max(1.0),
                cell("c_over_a"),
                cell("d_over_a")
            );
        }
    }
    let st = &r["startup"];
    println!(
        "\nenvelope start-up (standalone): {:.2} ms vs {:.2} ms plain exec: +{:.2} ms ({:.2}x); in-process setup {:.2} ms",
        st["enforced_ms"].as_f64().unwrap_or(0.0),
        st["plain_ms"].as_f64().unwrap_or(0.0),
        st["overhead_ms"].as_f64().unwrap_or(0.0),
        st["ratio"].as_f64().unwrap_or(0.0),
        st["setup_in_process_ms"].as_f64().unwrap_or(0.0)
    );
    for n in ["10", "1000", "10000"] {
        println!(
            "rule install, {n} rules: {:.2} ms",
            r["rule_install"][n]["install_ms_median"]
                .as_f64()
                .unwrap_or(0.0)
        );
    }
    let ev = &r["events"];
    println!(
        "sustained denials with zero loss: {:.0}/s; forced overflow: {} written + {} dropped = {} denials (exact: {})",
        ev["max_sustained_zero_loss_per_s"].as_f64().unwrap_or(0.0),
        ev["overflow_check"]["written"],
        ev["overflow_check"]["dropped"],
        ev["overflow_check"]["denials"],
        ev["overflow_check"]["exact"]
    );
    println!(
        "enforcer RSS with one task: {} KiB",
        r["memory"]["one_task_rss_kib"]
    );
    crate::bench_daemon::print(&r["daemon"]);
    crate::bench_tools::print(&r["tools"]);
}

/// The whole benchmark, or only its "real tools" table (`cargo xtask bench tools`).
pub fn run(only: Option<&str>) -> anyhow::Result<()> {
    ensure!(
        is_root(),
        "the benchmark loads eBPF programs: run it as root"
    );
    step(
        "build (release)",
        cargo().args([
            "build",
            "--release",
            "--package",
            "enforcer",
            "--package",
            "enforcer-tests",
        ]),
    )?;
    let root = std::env::current_dir()?;
    let s = prepare(&root)?;
    match only {
        None => {}
        Some("startup") => {
            eprintln!("\n==> task start-up through the daemon");
            let st = crate::bench_daemon::startup(&s)?;
            crate::bench_daemon::print_startup(&st);
            return Ok(());
        }
        Some("tools") => {
            eprintln!("\n==> real tools through the daemon");
            let tools = crate::bench_tools::run(&s)?;
            crate::bench_tools::print(&tools);
            return Ok(());
        }
        Some(other) => {
            anyhow::bail!("cargo xtask bench: unknown part {other:?} (try: tools, startup)")
        }
    }
    // Per-program run time, read back from the kernel after each round.
    let stats_was = fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap_or_default();
    let _ = fs::write("/proc/sys/kernel/bpf_stats_enabled", "1");
    eprintln!("\n==> (a)/(b)/(c)/(d) ratios, {ROUNDS} interleaved rounds");
    let ratios = ratios(&s);
    let _ = fs::write("/proc/sys/kernel/bpf_stats_enabled", stats_was.trim());
    let ratios = ratios?;
    eprintln!("==> envelope start-up");
    let startup = startup(&s)?;
    eprintln!("==> rule install time");
    let rule_install = rule_install(&s)?;
    eprintln!("==> event throughput");
    let denied = s.ops[1]
        .2
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let events = event_throughput(&s, &denied)?;
    let memory = memory(&s)?;
    eprintln!("==> through the daemon");
    let daemon = crate::bench_daemon::run(&s)?;
    eprintln!("==> real tools through the daemon");
    let tools = crate::bench_tools::run(&s)?;
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let result = json!({
        "kernel": kernel.trim(), "mode": "fallback", "rounds": ROUNDS,
        "ratios": ratios, "startup": startup, "rule_install": rule_install,
        "events": events, "memory": memory, "daemon": daemon, "tools": tools,
    });
    print_table(&result);
    let out = root.join("target/bench");
    fs::create_dir_all(&out)?;
    fs::write(
        out.join("bench.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    println!("\nwritten: {}", out.join("bench.json").display());
    Ok(())
}
