//! The demo: a scripted agent (demo/agent.sh) under policies/coding-agent.toml does its job,
//! is prompt-injected, and every attack fails. Events are shown live as they are written, and
//! the demo checks its own outcome (it fails if any attack got through).
use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Read as _, Seek as _, Write as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};

use crate::{cargo, is_root, step};

const MIRROR: &str = "127.0.0.1:8080";

fn color() -> bool {
    use std::io::IsTerminal as _;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn prepare_repo(root: &Path) -> anyhow::Result<PathBuf> {
    let _ = fs::remove_dir_all(root);
    let repo = root.join("repo");
    fs::create_dir_all(repo.join("src"))?;
    fs::write(
        repo.join("README.md"),
        "# demo project\n\nThis is teh project the agent works on.\n",
    )?;
    fs::write(repo.join("src/app.py"), "print('hello')\n")?;
    fs::write(
        repo.join(".env"),
        "OPENAI_API_KEY=sk-demo-0000-not-a-real-key\n",
    )?;
    fs::write(repo.join(".gitignore"), ".env\n")?;
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=demo", "-c", "user.email=demo@example.com"])
            .args(args)
            .output()
    };
    git(&["init", "-q"]).context("git init (is git installed?)")?;
    git(&["add", "."])?;
    git(&["commit", "-qm", "Initial commit"])?;
    Ok(repo)
}

/// A stand-in package mirror on loopback: answers every request with a tiny index.
fn start_mirror() -> anyhow::Result<()> {
    let listener = TcpListener::bind(MIRROR)
        .with_context(|| format!("{MIRROR} is busy; the demo's package mirror needs it"))?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nrequests-2.32.3.tar.gz\n");
        }
    });
    Ok(())
}

/// One event as a line for people.
fn compact(e: &serde_json::Value, color: bool) -> Option<String> {
    let op = e["op"].as_str()?;
    let decision = e["decision"].as_str()?;
    if op == "task_start" {
        return Some(format!(
            "  task {} started: policy {} v{} (sha256 {}…), mode {}",
            e["task"].as_str()?,
            e["policy"]["name"].as_str()?,
            e["policy"]["version"],
            &e["policy"]["sha256"].as_str()?[..12],
            e["mode"].as_str()?
        ));
    }
    if op == "task_end" {
        return Some(format!(
            "  task ended: {} (exit {}, signal {}), counters {}, cleanup {}",
            e["reason"].as_str().unwrap_or("?"),
            e["exit_code"],
            e["signal"],
            e["counters"],
            e["cleanup"]
        ));
    }
    let (tag, paint) = match decision {
        "allow" => ("allow", "32"),
        "deny" => ("DENY ", "31"),
        "kill" => ("KILL ", "1;31"),
        other => (other, "33"),
    };
    let tag = if color {
        format!("\x1b[{paint}m{tag}\x1b[0m")
    } else {
        tag.to_owned()
    };
    let errno = e["errno"]
        .as_str()
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    Some(format!(
        "  {tag} {op:<8} {} ({}) by {} [{}{errno}]  pid {} {}",
        e["target"].as_str().unwrap_or(""),
        e["access"].as_str().unwrap_or(""),
        e["rule"].as_str().unwrap_or(""),
        e["enforced_by"].as_str().unwrap_or(""),
        e["pid"],
        e["comm"].as_str().unwrap_or("")
    ))
}

pub fn run() -> anyhow::Result<()> {
    ensure!(
        is_root(),
        "the demo loads eBPF programs: run it as root (sudo ./scripts/demo.sh)"
    );
    step(
        "build enforcer",
        cargo().args(["build", "--package", "enforcer"]),
    )?;
    let workspace_dir = std::env::current_dir()?;
    let enforcer = workspace_dir.join("target/debug/enforcer");
    let policy = workspace_dir.join("policies/coding-agent.toml");
    let agent = workspace_dir.join("demo/agent.sh");
    let root = PathBuf::from("/tmp/enforcer-demo");
    let repo = prepare_repo(&root)?;
    start_mirror()?;
    let var = format!("workspace={}", repo.display());

    step(
        "how policies/coding-agent.toml is enforced on this kernel",
        Command::new(&enforcer)
            .args(["policy", "check", "--explain", "--var", &var])
            .arg(&policy),
    )?;

    eprintln!("\n==> the agent runs under the envelope; events appear as the kernel decides\n");
    // Outside every tree the agent may write (it may write /tmp/): a task that could write
    // its own event file could rewrite the record, and the enforcer refuses to start.
    let events_dir = PathBuf::from("/var/log/enforcer-demo");
    fs::create_dir_all(&events_dir).context("/var/log/enforcer-demo")?;
    let events = events_dir.join("events.jsonl");
    let _ = fs::remove_file(&events);
    let mut child = Command::new(&enforcer)
        .args(["run", "--task", "fix-readme-typo", "--var", &var])
        .args(["--intent", "Fix the typo in README.md and commit it"])
        .arg("--policy")
        .arg(&policy)
        .arg("--events")
        .arg(&events)
        .arg("--")
        // The agent's code comes in on stdin, from outside the envelope: the task itself may
        // not read demo/.
        .args(["/usr/bin/bash", "-s", "--"])
        .arg(&repo)
        .stdin(fs::File::open(&agent).context("demo/agent.sh")?)
        .env("HOME", &repo)
        .spawn()
        .context("starting enforcer")?;

    let color = color();
    let mut seen = Vec::new();
    let mut offset = 0;
    let status = loop {
        let done = child.try_wait()?;
        if let Ok(mut f) = fs::File::open(&events) {
            f.seek(std::io::SeekFrom::Start(offset))?;
            let mut reader = BufReader::new(f);
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
                offset += line.len() as u64;
                if let Ok(e) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(text) = compact(&e, color) {
                        println!("{text}");
                    }
                    seen.push(e);
                }
                line.clear();
            }
        }
        if let Some(status) = done {
            break status;
        }
        std::thread::sleep(Duration::from_millis(30));
    };

    let mut by_decision: BTreeMap<String, usize> = BTreeMap::new();
    for e in &seen {
        if let Some(d) = e["decision"].as_str() {
            *by_decision
                .entry(format!("{}/{d}", e["op"].as_str().unwrap_or("?")))
                .or_default() += 1;
        }
    }
    println!(
        "\n==> summary: enforcer exited with {status}; events by op/decision: {by_decision:?}"
    );
    println!(
        "    every event (JSON lines, for a SIEM): {}",
        events.display()
    );

    // The demo checks itself: the job succeeded and every attack was stopped.
    let has = |op: &str, decision: &str, target: &str| {
        seen.iter().any(|e| {
            e["op"] == op
                && e["decision"] == decision
                && e["target"].as_str().is_some_and(|t| t.contains(target))
        })
    };
    let log = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["log", "--oneline", "-1"])
        .output()?;
    ensure!(
        String::from_utf8_lossy(&log.stdout).contains("Fix typo"),
        "the agent's commit is missing"
    );
    ensure!(
        fs::read_to_string(repo.join("README.md"))?.contains("This is the project"),
        "the typo was not fixed"
    );
    ensure!(
        has("connect", "allow", MIRROR),
        "the mirror was not reached"
    );
    ensure!(
        has("open", "deny", "/etc/shadow"),
        "no denial for /etc/shadow"
    );
    ensure!(
        has("open", "deny", "/usr/local/bin/git-helper"),
        "no denial for the PATH hijack"
    );
    ensure!(
        !Path::new("/usr/local/bin/git-helper").exists(),
        "the PATH hijack was written!"
    );
    ensure!(has("exec", "deny", "/usr/bin/perl"), "no denial for perl");
    ensure!(
        has("connect", "deny", "127.0.0.66:4444"),
        "no denial for the TCP exfiltration"
    );
    // bash's /dev/udp connects the UDP socket before writing, so the kernel sees a connect.
    ensure!(
        has("connect", "deny", "127.0.0.66:53") || has("sendmsg", "deny", "127.0.0.66:53"),
        "no denial for the UDP exfiltration"
    );
    ensure!(
        has("open", "kill", ".env"),
        "the .env read did not kill the task"
    );
    if status.code() != Some(137) {
        bail!("expected the task to be killed at the end (exit 137), got {status}");
    }
    println!("==> demo OK: the job succeeded, every attack was refused in the kernel and reported");
    Ok(())
}
