//! What both benchmarks (standalone and through the daemon) measure with: the workload server
//! in a task, the setup, waiting for the programs to unload, and the statistics.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, UdpSocket},
    path::PathBuf,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

pub(crate) const DIR: &str = "/tmp/enforcer-bench";

/// A bench-op process we can send batches to.
pub(crate) struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Server {
    pub(crate) fn start(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting bench-op")?;
        let input = child.stdin.take().context("stdin")?;
        let output = BufReader::new(child.stdout.take().context("stdout")?);
        Ok(Self {
            child,
            input,
            output,
        })
    }

    pub(crate) fn ask(&mut self, line: &str) -> anyhow::Result<String> {
        writeln!(self.input, "{line}")?;
        self.input.flush()?;
        let mut answer = String::new();
        if self.output.read_line(&mut answer)? == 0 {
            bail!("bench-op exited while asked {line:?}");
        }
        Ok(answer.trim().to_owned())
    }

    /// ns per op of a batch.
    pub(crate) fn measure(&mut self, line: &str) -> anyhow::Result<f64> {
        let answer = self.ask(line)?;
        answer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("bad answer {answer:?} to {line:?}"))
    }

    pub(crate) fn quit(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let _ = writeln!(self.input, "quit");
        drop(self.input);
        Ok(self.child.wait()?)
    }
}

pub(crate) fn closed_tcp_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn closed_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) struct Setup {
    pub enforcer: PathBuf,
    pub bench_op: PathBuf,
    pub policy: PathBuf,
    /// (name, allowed batch, denied batch)
    pub ops: Vec<(&'static str, String, String)>,
}

/// The enforcer's programs as the kernel lists them (names are cut to 15 bytes).
const PROGRAMS: &[&str] = &[
    "sys_enter_opena",
    "sys_enter_open",
    "sys_enter_creat",
    "sys_exit_open",
    "sys_enter_execv",
    "sys_exit_exec",
    "sched_process_e",
    "connect4",
    "connect6",
    "sendmsg4",
    "sendmsg6",
];

/// (invocations, nanoseconds) of every loaded enforcer program, summed.
pub(crate) fn program_totals() -> (u64, u64) {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|n| PROGRAMS.contains(&n)))
        .fold((0, 0), |(c, t), p| {
            (c + p.run_count(), t + p.run_time().as_nanos() as u64)
        })
}

/// Waits until no enforcer program is loaded (a finished run releases them in the background).
pub(crate) fn wait_unloaded() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .any(|p| p.name_as_str().is_some_and(|n| PROGRAMS.contains(&n)))
    {
        ensure!(
            Instant::now() < deadline,
            "enforcer programs still loaded after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `median (min-max)` of a [`spread`].
pub(crate) fn cell(v: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    format!(
        "{:.3} ({:.3}-{:.3})",
        f(&v["median"]),
        f(&v["min"]),
        f(&v["max"])
    )
}

/// Median, min and max of per-round ratios.
pub(crate) fn spread(mut r: Vec<f64>) -> Value {
    let med = median(&mut r);
    json!({ "median": med, "min": r[0], "max": r[r.len() - 1] })
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
