//! A daemon for the tests: its own socket, state, pins, cgroup subtree and policy directory.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{PolicyBuilder, Scratch, enforcer, mode, probe};

/// Reads and writes the workspace, reads /proc: what the daemon tests' tasks run under.
pub fn base(s: &Scratch) -> PolicyBuilder {
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    p.write.push(format!("{}/", s.ws()));
    p.read.push("/proc/".into());
    p
}

/// The probe's operation was refused by the kernel (exit 1, the mode's refusal).
pub fn assert_refused(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(mode().refused()),
        "{}",
        text(out)
    );
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A daemon with its own socket, state, pins, cgroup subtree and policy directory.
pub struct Daemon {
    pub child: Option<Child>,
    /// The enforcer build this daemon runs (and its tasks are started with).
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub name: String,
}

impl Daemon {
    pub fn start(s: &Scratch, name: &str, extra: &str) -> Self {
        Self::start_with(s, name, extra, &enforcer())
    }

    /// A daemon of another enforcer build (an older one, for upgrades).
    pub fn start_with(s: &Scratch, name: &str, extra: &str, binary: &Path) -> Self {
        let dir = s.dir.join("daemon");
        fs::create_dir_all(dir.join("policies")).expect("policies dir");
        let config = format!(
            "[daemon]\nstate_dir = \"{d}/state\"\npolicies = \"{d}/policies\"\n\
             pin_dir = \"/sys/fs/bpf/enforcer-it-{name}\"\ncgroup = \"enforcer/it-{name}\"\n\
             events = \"{d}/events.jsonl\"\nmode = \"{mode}\"\n{extra}\n",
            d = dir.display(),
            mode = mode().name(),
        );
        fs::write(dir.join("enforcer.toml"), config).expect("config");
        let mut d = Self {
            child: None,
            binary: binary.to_owned(),
            dir,
            name: name.into(),
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("log");
        let child = Command::new(&self.binary)
            .args(["daemon", "--config"])
            .arg(self.dir.join("enforcer.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("enforcer daemon");
        self.child = Some(child);
        let t = Instant::now();
        let before = self.log().matches("ready (").count();
        while self.log().matches("ready (").count() == before {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "the daemon did not get ready:\n{}",
                self.log()
            );
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn socket(&self) -> String {
        self.dir.join("state/enforcer.sock").display().to_string()
    }

    pub fn policy(&self, name: &str, p: &PolicyBuilder) {
        let text = p
            .toml()
            .replacen("name = \"it\"", &format!("name = \"{name}\""), 1);
        let tmp = self.dir.join(format!(".{name}.toml.tmp"));
        fs::write(&tmp, text).expect("policy");
        fs::rename(&tmp, self.dir.join("policies").join(format!("{name}.toml"))).expect("rename");
    }

    pub fn events(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.dir.join("events.jsonl")).unwrap_or_default();
        crate::complete_lines(&text)
            .into_iter()
            .map(|l| serde_json::from_str(l).expect("event line is JSON"))
            .collect()
    }

    /// Waits for an event matching `f`.
    pub fn wait_event(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            if let Some(e) = self.events().into_iter().find(|e| f(e)) {
                return e;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no {what} event; events:\n{}\nlog:\n{}",
                self.events()
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `enforcer <args> --socket S`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .args(["--socket", &self.socket()])
            .output()
            .expect("enforcer cli")
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) of our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // Whatever a failed test left: tasks, pins, the subtree.
        let root = Path::new("/sys/fs/cgroup/unified");
        let root = if root.exists() {
            root
        } else {
            Path::new("/sys/fs/cgroup")
        };
        let sub = root.join(format!("enforcer/it-{}", self.name));
        if let Ok(entries) = fs::read_dir(&sub) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = fs::write(e.path().join("cgroup.kill"), "1");
                std::thread::sleep(Duration::from_millis(50));
                let _ = fs::remove_dir(e.path());
            }
        }
        let _ = fs::remove_dir(&sub);
        let _ = fs::remove_dir_all(format!("/sys/fs/bpf/enforcer-it-{}", self.name));
    }
}

impl Daemon {
    /// Rewrites the daemon's saved state (`daemon.json`) while it is down.
    pub fn edit_state(&self, f: impl FnOnce(&mut Value)) {
        let path = self.dir.join("state/daemon.json");
        let mut st: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        f(&mut st);
        fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    }

    /// Starts a task that waits for `go` and then reads the secret (refused).
    pub fn waiting_task(&self, s: &Scratch, go: &str) -> (Child, String) {
        let task = Command::new(&self.binary)
            .args(["run", "--task", "agent", "--socket", &self.socket(), "--"])
            .args([&probe(), "wait-read", go, &s.path("outside/secret.txt")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = self.wait_event("task_start", |e| {
            e["op"] == "task_start"
                && e["command"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == go))
        });
        let id = start["task_id"].as_str().unwrap().to_owned();
        // Running the probe: the launcher is done with the daemon (a slow guest may still be
        // between the reply and the exec when task_start is written).
        self.wait_event("the probe's exec", |e| {
            e["op"] == "exec"
                && e["task_id"] == id.as_str()
                && e["target"].as_str().is_some_and(|t| t.ends_with("/probe"))
        });
        (task, id)
    }
}
