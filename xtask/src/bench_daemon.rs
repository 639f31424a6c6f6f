//! The benchmark through the daemon: the same operations inside a task the daemon started,
//! against the same operations with no enforcer loaded, in one run with the sides interleaved
//! (each round starts a daemon, measures, and stops it; a clean stop with no task removes the
//! pins). Then the start-up of `enforcer run --task` through the daemon against a plain exec.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::bench_harness::{DIR, Server, Setup, cell, median, spread, wait_unloaded};

const ROUNDS: usize = 7;
const NAME: &str = "enforcer-bench";

pub(crate) struct Daemon {
    child: Child,
    socket: PathBuf,
    events: PathBuf,
}

impl Daemon {
    fn start(s: &Setup) -> anyhow::Result<Self> {
        Self::start_with(s, &[("bench", &s.policy)])
    }

    /// A daemon whose policy directory holds `policies` (name, file).
    pub(crate) fn start_with(s: &Setup, policies: &[(&str, &Path)]) -> anyhow::Result<Self> {
        let dir = Path::new(DIR).join("daemon");
        let _ = fs::remove_dir_all(dir.join("policies"));
        fs::create_dir_all(dir.join("policies"))?;
        for (name, file) in policies {
            fs::copy(file, dir.join(format!("policies/{name}.toml")))?;
        }
        let config = dir.join("enforcer.toml");
        fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{d}/state\"\npolicies = \"{d}/policies\"\n\
                 pin_dir = \"/sys/fs/bpf/{NAME}\"\ncgroup = \"enforcer/{NAME}\"\n\
                 events = \"{d}/events.jsonl\"\n",
                d = dir.display()
            ),
        )?;
        let log = dir.join("daemon.log");
        let _ = fs::remove_file(&log);
        let child = Command::new(&s.enforcer)
            .args(["daemon", "--config"])
            .arg(&config)
            .stderr(fs::File::create(&log)?)
            .stdout(Stdio::null())
            .spawn()
            .context("enforcer daemon")?;
        let mut d = Self {
            child,
            socket: dir.join("state/enforcer.sock"),
            events: dir.join("events.jsonl"),
        };
        let t = Instant::now();
        while !fs::read_to_string(&log)?.contains("ready (") {
            if let Some(status) = d.child.try_wait()? {
                anyhow::bail!(
                    "the daemon exited ({status}): {}",
                    fs::read_to_string(&log)?
                );
            }
            ensure!(
                t.elapsed() < Duration::from_secs(60),
                "the daemon did not get ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// `enforcer run --task bench` through this daemon.
    fn run(&self, s: &Setup) -> Command {
        let mut c = self.run_task(s, "bench");
        c.arg("--");
        c
    }

    /// `enforcer run --task TASK` through this daemon, before any `--var` and the `--`.
    pub(crate) fn run_task(&self, s: &Setup, task: &str) -> Command {
        let mut c = Command::new(&s.enforcer);
        c.args(["run", "--task", task, "--socket"])
            .arg(&self.socket);
        c
    }

    /// Lines and bytes in the daemon's event file so far.
    pub(crate) fn events_written(&self) -> anyhow::Result<(usize, u64)> {
        use std::io::BufRead as _;
        let f = fs::File::open(&self.events)?;
        let bytes = f.metadata()?.len();
        Ok((std::io::BufReader::new(f).lines().count(), bytes))
    }

    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait()?;
        ensure!(status.success(), "the daemon stopped with {status}");
        Ok(())
    }
}

impl Drop for Daemon {
    /// A benchmark that fails half way stops its daemon too (after `stop`, a no-op).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) of our own child, still running.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

pub fn run(s: &Setup) -> anyhow::Result<Value> {
    let mut outside = Server::start({
        let mut c = Command::new(&s.bench_op);
        c.arg("serve");
        c
    })?;
    let mut samples: BTreeMap<&str, Vec<[f64; 3]>> = BTreeMap::new();
    for round in 0..ROUNDS {
        eprint!("\r    round {}/{ROUNDS}", round + 1);
        wait_unloaded()?;
        let a: Vec<f64> = s
            .ops
            .iter()
            .map(|(_, allowed, _)| outside.measure(allowed))
            .collect::<anyhow::Result<_>>()?;
        let daemon = Daemon::start(s)?;
        let mut inside = Server::start({
            let mut c = daemon.run(s);
            c.arg(&s.bench_op).arg("serve");
            c
        })?;
        inside.measure(&s.ops[0].1.replace(" 20000", " 10"))?;
        for (i, (name, allowed, denied)) in s.ops.iter().enumerate() {
            let c = inside.measure(allowed)?;
            let d = inside.measure(denied)?;
            samples.entry(name).or_default().push([a[i], c, d]);
        }
        inside.quit()?;
        // The task's end, seen by the daemon, before it is stopped.
        std::thread::sleep(Duration::from_millis(300));
        daemon.stop()?;
    }
    eprintln!();
    let mut out = serde_json::Map::new();
    for (name, rounds) in samples {
        let ratio = |k: usize| spread(rounds.iter().map(|x| x[k] / x[0]).collect());
        out.insert(
            name.to_owned(),
            json!({ "allowed_over_plain": ratio(1), "denied_over_plain": ratio(2) }),
        );
    }

    Ok(json!({
        "rounds": ROUNDS,
        "ratios": out,
        "startup": startup(s)?,
    }))
}

/// Start-up: a plain exec against `enforcer run --task` and the lean launcher `enforcer-run`
/// through the daemon, interleaved.
pub fn startup(s: &Setup) -> anyhow::Result<Value> {
    let daemon = Daemon::start(s)?;
    let launcher = s.enforcer.with_file_name("enforcer-run");
    let (mut plain, mut via, mut lean) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..STARTS {
        let t = Instant::now();
        ensure!(Command::new("/usr/bin/true").status()?.success());
        plain.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let status = daemon
            .run(s)
            .arg("/usr/bin/true")
            .stderr(Stdio::null())
            .status()?;
        via.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            status.success(),
            "enforcer run --task through the daemon: {status}"
        );
        let t = Instant::now();
        let status = Command::new(&launcher)
            .args(["--task", "bench", "--socket"])
            .arg(&daemon.socket)
            .args(["--", "/usr/bin/true"])
            .stderr(Stdio::null())
            .status()?;
        lean.push(t.elapsed().as_secs_f64() * 1e3);
        ensure!(
            status.success(),
            "enforcer-run through the daemon: {status}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    daemon.stop()?;
    wait_unloaded()?;
    let (p, v, l) = (median(&mut plain), median(&mut via), median(&mut lean));
    Ok(json!({
        "starts": STARTS,
        "plain_ms": p,
        "via_daemon_ms": v,
        "ratio": v / p,
        "launcher_ms": l,
        "launcher_over_plain_ms": l - p,
    }))
}

/// Start-ups measured, each kind (medians).
const STARTS: usize = 40;

pub fn print(r: &Value) {
    println!("\nthrough the daemon ({} rounds):", r["rounds"]);
    println!("| operation | allowed in task / plain | denied in task / plain |");
    println!("| --- | --- | --- |");
    if let Some(ops) = r["ratios"].as_object() {
        for (name, v) in ops {
            let cell = |k: &str| cell(&v[k]);
            println!(
                "| {name} | {} | {} |",
                cell("allowed_over_plain"),
                cell("denied_over_plain")
            );
        }
    }
    print_startup(&r["startup"]);
}

pub fn print_startup(st: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    println!(
        "task start-up through the daemon ({} starts, medians), over a plain exec of {:.2} ms:\n\
         \x20 enforcer-run (the lean launcher): {:.2} ms, +{:.2} ms\n\
         \x20 enforcer run --task:             {:.2} ms, +{:.2} ms",
        st["starts"],
        f(&st["plain_ms"]),
        f(&st["launcher_ms"]),
        f(&st["launcher_ms"]) - f(&st["plain_ms"]),
        f(&st["via_daemon_ms"]),
        f(&st["via_daemon_ms"]) - f(&st["plain_ms"]),
    );
}
