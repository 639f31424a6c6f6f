//! Developer tasks. `cargo xtask test` runs every check and test; `cargo xtask demo` runs the
//! demo; `cargo xtask bench` measures the cost;
//! `cargo xtask deb` builds the Debian package. All expect scripts/setup.sh to have run (scripts/test.sh and scripts/demo.sh do it).
mod bench;
mod bench_daemon;
mod bench_harness;
mod bench_tools;
mod deb;
mod demo;
mod prev;
mod test;
mod vm;

use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <test|demo|bench [tools|startup]|deb|prev-build|vm-test [--kernel 6.1|6.12|all]>"
    );
    ExitCode::from(2)
}

/// Runs a command, failing with its name if it fails.
pub fn step(what: &str, cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("\n==> {what}");
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `N word` in a libtest result line such as `ok. 3 passed; 0 failed; ...`.
pub fn count(result: &str, word: &str) -> u64 {
    result
        .split(';')
        .filter_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(word)
        })
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(),
        Some("demo") => demo::run(),
        Some("bench") => bench::run(args.get(1).map(String::as_str)),
        Some("vm-test") => vm::run(&args[1..]).map(|_| ()),
        Some("deb") => deb::build().and_then(|p| deb::check(&p)),
        Some("prev-build") => prev::build().map(|_| ()),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
