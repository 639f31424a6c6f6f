//! Helpers for the privileged integration tests: scratch directories, policies, running
//! `enforcer run` for real, and reading back the events it wrote.
use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

pub mod daemon;

/// The whole lines of a file another process is appending to: a last line without its newline
/// is still being written, and is left for the next read.
pub fn complete_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    // After the last newline: empty, or a line still being written.
    lines.pop();
    lines
}

/// True when the test can run; otherwise says loudly why it is skipped.
pub fn require_root(test: &str) -> bool {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!(
        "SKIP {test}: needs root (loads eBPF programs, creates cgroups); run the suite with \
         scripts/test.sh as root"
    );
    false
}

/// `target/<profile>`, from the test executable's own location (`target/<profile>/deps/x`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable in target/<profile>/deps")
        .to_path_buf()
}

fn built(name: &str, env: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| target_dir().join(name), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --workspace)",
        path.display()
    );
    path
}

/// The enforcer binary under test.
pub fn enforcer() -> PathBuf {
    built("enforcer", "ENFORCER_BIN")
}

/// The lean launcher (`enforcer-run`), built beside the enforcer binary.
pub fn launcher() -> PathBuf {
    let path = enforcer().with_file_name("enforcer-run");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --workspace)",
        path.display()
    );
    path
}

/// The probe binary (tests/probe.rs).
pub fn probe() -> String {
    built("probe", "PROBE_BIN").display().to_string()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory for one test, removed afterwards: `ws/` (the task's workspace) and `outside/`.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!(
            "/tmp/enforcer-it-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("ws/out")).expect("scratch ws");
        fs::create_dir_all(dir.join("outside")).expect("scratch outside");
        fs::write(dir.join("ws/notes.txt"), "workspace file\n").expect("ws file");
        fs::write(dir.join("outside/secret.txt"), "outside secret\n").expect("outside file");
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    pub fn ws(&self) -> String {
        self.path("ws")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A policy, written as TOML. Every list starts with what the probe needs to run at all.
#[derive(Clone, Debug)]
pub struct PolicyBuilder {
    pub mode: &'static str,
    pub exec: Vec<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub deny: Vec<String>,
    pub connect: Vec<String>,
    pub unix: Vec<String>,
    pub listen: Vec<String>,
    pub limits: Vec<String>,
    pub extra_meta: Vec<String>,
}

impl Default for PolicyBuilder {
    fn default() -> Self {
        Self {
            mode: "enforce",
            exec: vec![probe()],
            read: ["/usr/lib/", "/lib/", "/lib64/", "/etc/ld.so.cache"]
                .map(String::from)
                .to_vec(),
            write: Vec::new(),
            deny: Vec::new(),
            connect: Vec::new(),
            unix: Vec::new(),
            listen: Vec::new(),
            limits: Vec::new(),
            extra_meta: Vec::new(),
        }
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl PolicyBuilder {
    pub fn toml(&self) -> String {
        let mut s = format!(
            "[policy]\nname = \"it\"\nversion = 7\nmode = \"{}\"\n{}\n",
            self.mode,
            self.extra_meta.join("\n")
        );
        s.push_str(&format!("[limits]\n{}\n", self.limits.join("\n")));
        s.push_str(&format!("[exec]\nallow = {}\n", list(&self.exec)));
        s.push_str(&format!(
            "[files]\nread = {}\nwrite = {}\ndeny = {}\n",
            list(&self.read),
            list(&self.write),
            list(&self.deny)
        ));
        s.push_str(&format!(
            "[network]\nconnect = {}\nunix = {}\nlisten = {}\n",
            list(&self.connect),
            list(&self.unix),
            list(&self.listen)
        ));
        s
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub events: Vec<Value>,
    pub elapsed: Duration,
}

impl Outcome {
    /// Events of one operation and decision.
    pub fn events(&self, op: &str, decision: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| e["op"] == op && e["decision"] == decision)
            .collect()
    }

    /// The one event of `op` with `decision` whose target is `target`; panics with every
    /// event when there is none.
    pub fn event(&self, op: &str, decision: &str, target: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["op"] == op && e["decision"] == decision && e["target"] == target)
            .unwrap_or_else(|| {
                panic!(
                    "no {op}/{decision} event for {target}; events:\n{}\nstderr:\n{}",
                    self.dump(),
                    self.stderr
                )
            })
    }

    pub fn lifecycle(&self, op: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["op"] == op)
            .unwrap_or_else(|| {
                panic!(
                    "no {op} event; events:\n{}\nstderr:\n{}",
                    self.dump(),
                    self.stderr
                )
            })
    }

    pub fn dump(&self) -> String {
        self.events
            .iter()
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The probe's own verdict: its first stdout line (`ok` or `err NAME (n)`).
    pub fn probe_said(&self) -> &str {
        self.stdout.lines().next().unwrap_or("")
    }
}

/// Runs `enforcer run` with `policy` and `args` (the command), extra enforcer arguments first.
pub fn run(
    scratch: &Scratch,
    policy: &PolicyBuilder,
    enforcer_args: &[&str],
    args: &[&str],
) -> Outcome {
    let policy_path = scratch.dir.join("policy.toml");
    fs::write(&policy_path, policy.toml()).expect("write policy");
    let events = scratch.dir.join("events.jsonl");
    let _ = fs::remove_file(&events);
    let mut cmd = Command::new(enforcer());
    cmd.arg("run")
        .arg("--policy")
        .arg(&policy_path)
        .args(["--task", "it", "--intent", "integration test"])
        .arg("--events")
        .arg(&events)
        .args(enforcer_args)
        .arg("--")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn enforcer");
    let deadline = start + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "enforcer run did not finish within 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let events = fs::read_to_string(&events)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect();
    Outcome {
        code: status.code(),
        stdout,
        stderr,
        events,
        elapsed: start.elapsed(),
    }
}

/// Asserts the fields every event must carry.
pub fn assert_common_fields(e: &Value) {
    for key in [
        "time",
        "task",
        "policy",
        "pid",
        "comm",
        "op",
        "target",
        "access",
        "decision",
        "rule",
        "enforced_by",
        "intent",
        "mode",
    ] {
        assert!(e.get(key).is_some(), "event lacks {key}: {e}");
    }
    assert_eq!(e["task"], "it");
    assert_eq!(e["intent"], "integration test");
    assert_eq!(e["policy"]["name"], "it");
    assert_eq!(e["policy"]["version"], 7);
    assert_eq!(e["policy"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(e["policy"]["generation"], 1);
    let time = e["time"].as_str().unwrap_or("");
    assert!(
        time.len() == 30 && time.ends_with('Z'),
        "time is not RFC 3339 with ns: {time}"
    );
}

/// The enforcement mode for files and exec that the runs of this suite get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lsm,
    Fallback,
}

static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();

/// The mode under test: `ENFORCER_MODE` when it names one (the enforcer obeys it too), else
/// what the enforcer itself picks on this kernel (`policy check --explain`).
pub fn mode() -> Mode {
    *MODE.get_or_init(|| match std::env::var("ENFORCER_MODE").as_deref() {
        Ok("lsm") => Mode::Lsm,
        Ok("fallback") => Mode::Fallback,
        _ => {
            let dir = std::env::temp_dir().join(format!("enforcer-mode-{}", std::process::id()));
            fs::create_dir_all(&dir).expect("temp dir");
            let policy = dir.join("p.toml");
            fs::write(&policy, PolicyBuilder::default().toml()).expect("policy");
            let out = Command::new(enforcer())
                .args(["policy", "check", "--explain"])
                .arg(&policy)
                .output()
                .expect("enforcer policy check");
            let _ = fs::remove_dir_all(&dir);
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("files and exec in lsm mode") {
                Mode::Lsm
            } else {
                assert!(
                    text.contains("files and exec in fallback mode"),
                    "cannot tell the mode from:\n{text}"
                );
                Mode::Fallback
            }
        }
    })
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lsm => "lsm",
            Self::Fallback => "fallback",
        }
    }

    pub fn is_lsm(self) -> bool {
        self == Self::Lsm
    }

    /// What the probe prints when the file and exec layer refuses it.
    pub fn refused(self) -> &'static str {
        match self {
            Self::Lsm => "err EPERM (1)",
            Self::Fallback => "err EACCES (13)",
        }
    }

    /// The errno of such a refusal, as events name it.
    pub fn errno(self) -> &'static str {
        match self {
            Self::Lsm => "EPERM",
            Self::Fallback => "EACCES",
        }
    }

    /// `enforced_by` of a file or exec refusal.
    pub fn file_enforcer(self) -> &'static str {
        match self {
            Self::Lsm => "lsm",
            Self::Fallback => "landlock",
        }
    }

    /// The target an event names for `path`: the LSM hooks report the path the kernel
    /// resolved (symlinks followed); the fallback tracepoints the path as given.
    pub fn reported(self, path: &str) -> String {
        match self {
            Self::Lsm => fs::canonicalize(path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| path.to_owned()),
            Self::Fallback => path.to_owned(),
        }
    }
}
