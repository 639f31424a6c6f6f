//! The attack suite: one probe per way out of an envelope that a process inside a task would
//! try, each asserting the kernel's answer and the event (or, where the refusal is declared
//! instead of reported, the declaration). Runs on the host and in the 6.1 and 6.12 guests, in
//! both modes. It grows with every class found.
use std::process::{Child, Command, Stdio};

use enforcer_tests::{
    Mode, Outcome, PolicyBuilder, Scratch, daemon::Daemon, enforcer, mode, probe, require_root, run,
};
use serde_json::Value;

fn cgroup2() -> String {
    enforcer::kernel::cgroup::cgroup2_mount()
        .expect("cgroup2 mounted")
        .display()
        .to_string()
}

/// A process outside every task, to be reached from inside one.
struct Outsider(Child);

impl Outsider {
    fn start() -> Self {
        Self(
            Command::new("sleep")
                .arg("60")
                .stdin(Stdio::null())
                .spawn()
                .expect("sleep"),
        )
    }

    /// An outside process with the task's uid and, like it, no capabilities: the kernel's
    /// own capability check lets a trace of it through, so the enforcer must refuse it.
    fn capless() -> Self {
        use std::os::unix::process::CommandExt as _;
        let mut c = Command::new("sleep");
        c.arg("60").stdin(Stdio::null());
        // SAFETY: only raw syscalls between fork and exec.
        unsafe {
            c.pre_exec(|| {
                #[repr(C)]
                struct Header {
                    version: u32,
                    pid: i32,
                }
                let header = Header {
                    version: 0x2008_0522,
                    pid: 0,
                };
                let data = [0u32; 6];
                if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self(c.spawn().expect("capless sleep"))
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn said(out: &Outcome, expected: &str) {
    assert_eq!(
        out.probe_said(),
        expected,
        "stdout: {}\nstderr: {}\nevents:\n{}",
        out.stdout,
        out.stderr,
        out.dump()
    );
}

#[test]
fn clone3_into_another_cgroup_is_refused_and_declared() {
    if !require_root("clone3_into_another_cgroup_is_refused_and_declared") {
        return;
    }
    let s = Scratch::new("clone3");
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", cgroup2()));
    let out = run(&s, &p, &[], &[&probe(), "clone3-into", &cgroup2()]);
    // seccomp answers before the kernel looks at the flags: the child is never created.
    said(&out, "err ENOSYS (38)");
    assert_eq!(out.code, Some(1));
    let explain = Command::new(enforcer())
        .args(["policy", "check", "--explain"])
        .arg(s.dir.join("policy.toml"))
        .output()
        .expect("policy check");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("clone3 answers ENOSYS"), "{text}");
    assert!(!text.contains("cannot leave its cgroup or"), "{text}");
}

#[test]
fn moving_itself_to_another_cgroup_is_refused_with_an_event() {
    if !require_root("moving_itself_to_another_cgroup_is_refused_with_an_event") {
        return;
    }
    let s = Scratch::new("cgroup-move");
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", cgroup2()));
    let procs = format!("{}/cgroup.procs", cgroup2());
    let out = run(&s, &p, &[], &[&probe(), "cgroup-move", &procs]);
    said(&out, mode().refused());
    let e = out.event("open", "deny", &mode().reported(&procs));
    assert_eq!(e["access"], "write");
    assert_eq!(e["enforced_by"], mode().file_enforcer());
    // Its cgroup namespace is rooted at its own cgroup: no other cgroup is in sight (and,
    // with nsdelegate on the mount, none can be moved to).
    p.read.push("/proc/".into());
    let out = run(&s, &p, &[], &[&probe(), "cgroup"]);
    let v2 = out.stdout.lines().find(|l| l.starts_with("0::"));
    assert_eq!(v2, Some("0::/"), "{}", out.dump());
}

#[test]
fn rules_that_would_open_the_envelope_are_refused_at_start() {
    if !require_root("rules_that_would_open_the_envelope_are_refused_at_start") {
        return;
    }
    let s = Scratch::new("wide-rules");
    let cases: [(Vec<String>, &[&str], &str); 4] = [
        (vec!["/sys/fs/cgroup/".into()], &[], "no rule may"),
        (vec!["/var/".into()], &[], "no rule may"),
        (
            vec!["${workspace}/".into()],
            &["--var", "workspace=/"],
            "becomes \"/\"",
        ),
        (
            vec!["${workspace}/".into()],
            &["--var", "workspace="],
            "is empty",
        ),
    ];
    // An event file the task may write: it could rewrite the record of what it did.
    let mut p = PolicyBuilder::default();
    p.write.push(format!("{}/", s.dir.display()));
    let out = run(&s, &p, &[], &[&probe(), "read", "/etc/hostname"]);
    assert_eq!(out.code, Some(125), "{}", out.stderr);
    assert!(
        out.stderr.contains("could rewrite the record"),
        "{}",
        out.stderr
    );
    // The ELF interpreter as an allowed program would run any readable file.
    let mut p = PolicyBuilder::default();
    p.exec.push("/lib64/ld-linux-x86-64.so.2".into());
    let out = run(&s, &p, &[], &[&probe(), "read", "/etc/hostname"]);
    assert_eq!(out.code, Some(125), "{}", out.stderr);
    assert!(
        out.stderr.contains("is the ELF interpreter"),
        "{}",
        out.stderr
    );
    for (write, args, expected) in cases {
        let p = PolicyBuilder {
            write: write.clone(),
            ..PolicyBuilder::default()
        };
        let out = run(&s, &p, args, &[&probe(), "read", "/etc/hostname"]);
        assert_eq!(out.code, Some(125), "{write:?} {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected) && out.stderr.contains("policy.toml:"),
            "{write:?} {args:?}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "the command ran: {}", out.stdout);
    }
}

/// Whether this run can refuse signals to outside processes: Landlock scopes them from ABI 6
/// in fallback mode; lsm mode has its own hook on every kernel.
fn signals_scoped() -> bool {
    mode() == Mode::Lsm || enforcer::kernel::landlock::abi_version() >= 6
}

#[test]
fn signals_to_outside_processes_are_refused_with_an_event() {
    if !require_root("signals_to_outside_processes_are_refused_with_an_event") {
        return;
    }
    let s = Scratch::new("signal");
    let p = PolicyBuilder::default();
    // The enforcer itself (the launcher, the command's parent) is out of reach on every
    // kernel: where nothing scopes signals, the kernel's uid check refuses (it runs with a
    // real uid no task has). The task clears its death signal first, as an attacker would.
    let out = run(&s, &p, &[], &[&probe(), "kill", "ppid", "9"]);
    said(&out, "err EPERM (1)");
    let e = out
        .events
        .iter()
        .find(|e| e["op"] == "signal" && e["decision"] == "deny")
        .unwrap_or_else(|| panic!("no signal event:\n{}", out.dump()));
    if !signals_scoped() {
        assert_eq!(e["enforced_by"], "kernel", "{e}");
    }
    assert!(out.lifecycle("task_end").is_object());
    if !signals_scoped() {
        eprintln!(
            "SKIP signals_to_outside_processes_are_refused_with_an_event (other processes): \
             fallback mode with Landlock ABI {} (< 6) cannot scope signals to processes of the \
             task's uid; `policy check --explain` declares it",
            enforcer::kernel::landlock::abi_version()
        );
        return;
    }
    let mut outsider = Outsider::start();
    let out = run(&s, &p, &[], &[&probe(), "kill", &outsider.pid(), "9"]);
    said(&out, "err EPERM (1)");
    assert!(outsider.alive(), "the outside process was killed");
    let e = out.event("signal", "deny", &format!("pid {}", outsider.pid()));
    assert_eq!(e["syscall"], "kill");
    assert_eq!(e["signal"], 9);
    // lsm mode: the task_kill hook, or Landlock where its scoping (ABI 6) decides first.
    let by = e["enforced_by"].as_str().unwrap_or("");
    assert!(by == "landlock" || (mode().is_lsm() && by == "lsm"), "{e}");
}

#[test]
fn tracing_outside_processes_is_refused_with_an_event() {
    if !require_root("tracing_outside_processes_is_refused_with_an_event") {
        return;
    }
    let s = Scratch::new("ptrace");
    let outsider = Outsider::capless();
    let mut p = PolicyBuilder::default();
    p.read.push("/proc/".into());
    let out = run(&s, &p, &[], &[&probe(), "ptrace", &outsider.pid()]);
    said(&out, "err EPERM (1)");
    let e = out.event("ptrace", "deny", &format!("pid {}", outsider.pid()));
    assert_eq!(e["syscall"], "ptrace");
    // Its environment (the same check, through /proc) is refused too.
    let environ = format!("/proc/{}/environ", outsider.pid());
    let out = run(&s, &p, &[], &[&probe(), "read", &environ]);
    assert!(out.probe_said().starts_with("err "), "{}", out.stdout);
    let declared = out.lifecycle("task_start")["unenforced"]
        .as_array()
        .is_some_and(|l| {
            l.iter()
                .any(|g| g.as_str().is_some_and(|g| g.contains("environ")))
        });
    if declared && !out.events.iter().any(|e| e["decision"] == "deny") {
        // lsm mode: the kernel's own ptrace check (the outsider runs with capabilities the
        // task lacks) refused before the hook, silently; said at start.
        assert!(mode().is_lsm(), "{}", out.dump());
    } else {
        assert!(
            out.events.iter().any(|e| e["decision"] == "deny"),
            "no event for {environ}:\n{}",
            out.dump()
        );
    }
}

#[test]
fn a_task_gets_nothing_from_the_control_socket_whatever_its_uid() {
    if !require_root("a_task_gets_nothing_from_the_control_socket_whatever_its_uid") {
        return;
    }
    let s = Scratch::new("control");
    let d = Daemon::start(&s, "control", "");
    let mut p = PolicyBuilder::default();
    // Even a policy that lets the task reach the socket gives it nothing through it.
    p.unix.push(d.socket());
    p.read.push(format!("{}/", s.dir.display()));
    d.policy("asker", &p);
    d.cli(&["reload"]);
    let requests = [
        r#"{"op":"tasks","v":1}"#,
        r#"{"op":"status","v":1}"#,
        r#"{"op":"reload","v":1}"#,
    ];
    for request in requests {
        let out = Command::new(enforcer())
            .args(["run", "--task", "asker", "--socket", &d.socket(), "--"])
            .args([&probe(), "ask", &d.socket(), request])
            .output()
            .expect("enforcer run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("permission denied: a process inside a task"),
            "{request}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("\"ok\":true"), "{stdout}");
    }
    let e: Value = d.wait_event("control", |e| e["op"] == "control");
    assert_eq!(e["decision"], "deny");
    assert_eq!(e["task"], "asker");
    assert_eq!(e["target"], d.socket());
    assert_eq!(e["request"], "tasks");
    for name in ["status", "reload"] {
        d.wait_event(name, |e| e["op"] == "control" && e["request"] == name);
    }
    let refused = d.events().iter().filter(|e| e["op"] == "control").count();
    assert_eq!(refused, requests.len());
    // The daemon still serves its admins.
    let status = d.cli(&["status"]);
    assert!(status.status.success(), "{status:?}");
}

#[test]
fn syscalls_of_another_abi_are_refused() {
    if !require_root("syscalls_of_another_abi_are_refused") {
        return;
    }
    let s = Scratch::new("abi");
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    // A 32-bit open (int 0x80) of a file the task may read: outside a task it works, so the
    // refusal inside is the filter's; the fallback mode's tracepoints would not see it.
    let file = format!("{}/notes.txt", s.ws());
    let outside = Command::new(probe())
        .args(["ia32-open", &file])
        .output()
        .expect("probe");
    let outside = String::from_utf8_lossy(&outside.stdout);
    if outside.starts_with("err ENOSYS") {
        eprintln!(
            "SKIP syscalls_of_another_abi_are_refused: this kernel has no 32-bit syscall ABI \
             (IA32_EMULATION off): nothing to refuse"
        );
        return;
    }
    assert!(outside.starts_with("ok"), "outside a task: {outside}");
    let out = run(&s, &p, &[], &[&probe(), "ia32-open", &file]);
    said(&out, "err ENOSYS (38)");
    let out = run(&s, &p, &[], &[&probe(), "read", &file]);
    said(&out, "ok");
}

#[test]
fn a_program_with_no_name_is_never_run() {
    if !require_root("a_program_with_no_name_is_never_run") {
        return;
    }
    let s = Scratch::new("memfd");
    let mut p = PolicyBuilder::default();
    // The probe may read its own binary (to copy it into the memfd) and run it by name.
    let me = probe();
    p.read.push(me.clone());
    let out = run(
        &s,
        &p,
        &[],
        &[&me, "memfd-exec", &me, "read", "/etc/hostname"],
    );
    let rule = "a program with no name on any filesystem";
    if mode().is_lsm() {
        said(&out, "err EPERM (1)");
        let e = out
            .events("exec", "deny")
            .into_iter()
            .find(|e| e["rule"].as_str().is_some_and(|r| r.starts_with(rule)))
            .unwrap_or_else(|| panic!("no nameless exec deny:\n{}", out.dump()));
        assert_eq!(e["enforced_by"], "lsm");
    } else {
        // Landlock lets a memfd through; the exec tracepoint kills it before it runs.
        assert_eq!(out.code, Some(137), "{}\n{}", out.stdout, out.dump());
        assert!(out.stdout.is_empty(), "the payload ran: {}", out.stdout);
        let e = out
            .events("exec", "kill")
            .into_iter()
            .find(|e| e["rule"].as_str().is_some_and(|r| r.starts_with(rule)))
            .unwrap_or_else(|| panic!("no nameless exec kill:\n{}", out.dump()));
        assert_eq!(e["target"], "/dev/fd/3");
    }
}

#[test]
fn user_namespaces_keyrings_and_bpf_are_refused_with_an_event() {
    if !require_root("user_namespaces_keyrings_and_bpf_are_refused_with_an_event") {
        return;
    }
    let s = Scratch::new("syscalls");
    let mut p = PolicyBuilder::default();
    // The probe runs each attempt as a child of itself: one task for all of them.
    p.read.push(probe());
    let me = probe();
    let out = run(
        &s,
        &p,
        &[],
        &[&me, "each", "unshare-user", ";;", "keyctl", ";;", "bpf"],
    );
    let verdicts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(verdicts, ["err EPERM (1)"; 3], "{}", out.dump());
    for (target, by) in [
        ("unshare", "seccomp"),
        ("keyctl", "seccomp"),
        ("bpf", "kernel"),
    ] {
        let e = out.event("syscall", "deny", target);
        assert_eq!(e["enforced_by"], by, "{e}");
    }
    // A policy may allow user namespaces.
    let mut p = PolicyBuilder::default();
    p.extra_meta.push("allow_user_namespaces = true".into());
    let out = run(&s, &p, &[], &[&probe(), "unshare-user"]);
    said(&out, "ok");
}

#[test]
fn a_file_the_task_may_only_read_cannot_be_emptied() {
    if !require_root("a_file_the_task_may_only_read_cannot_be_emptied") {
        return;
    }
    let s = Scratch::new("trunc");
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    let file = format!("{}/notes.txt", s.ws());
    // Shared memory the task makes for itself (a memfd it truncates) is no one else's file.
    let out = run(&s, &p, &[], &[&probe(), "memfd-truncate"]);
    said(&out, "ok");
    let out = run(&s, &p, &[], &[&probe(), "open-trunc-read", &file]);
    let abi = enforcer::kernel::landlock::abi_version();
    if !mode().is_lsm() && abi < 3 {
        // Landlock cannot refuse truncation below ABI 3: declared, and so it happens.
        let start = out.lifecycle("task_start");
        assert!(
            start.to_string().contains("truncate of an existing file"),
            "{start}"
        );
        eprintln!(
            "SKIP a_file_the_task_may_only_read_cannot_be_emptied: fallback mode with \
             Landlock ABI {abi} (< 3) cannot refuse truncation; declared at start"
        );
        return;
    }
    said(&out, mode().refused());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "workspace file\n",
        "the file was emptied"
    );
    let e = out
        .events
        .iter()
        .find(|e| e["decision"] == "deny" && e["target"] == mode().reported(&file).as_str())
        .unwrap_or_else(|| panic!("no refusal event:\n{}", out.dump()));
    assert_eq!(e["enforced_by"], mode().file_enforcer());
}

#[test]
fn what_runs_later_outside_the_envelope_stays_read_only() {
    if !require_root("what_runs_later_outside_the_envelope_stays_read_only") {
        return;
    }
    let s = Scratch::new("protect");
    let ws = s.ws();
    std::fs::create_dir_all(format!("{ws}/.git/hooks")).unwrap();
    std::fs::write(format!("{ws}/.git/config"), "[core]\n").unwrap();
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{ws}/"));
    p.write.push(format!("{ws}/"));
    let toml_protect = format!("protect = [\"{ws}/.git/hooks/\", \"{ws}/.git/config\"]");
    // Without protection, --explain warns.
    let policy_file = s.dir.join("open.toml");
    std::fs::write(&policy_file, p.toml()).unwrap();
    let explain = Command::new(enforcer())
        .args(["policy", "check", "--explain"])
        .arg(&policy_file)
        .output()
        .expect("policy check");
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains(".git/hooks/, which a person or a tool runs"),
        "{text}"
    );
    // The section goes into [files]: the builder writes it last among the file lists.
    let with = |p: &PolicyBuilder| {
        p.toml()
            .replacen("[network]", &format!("{toml_protect}\n[network]"), 1)
    };
    let protected = s.dir.join("protected.toml");
    std::fs::write(&protected, with(&p)).unwrap();
    let config = format!("{ws}/.git/config");
    let hook = format!("{ws}/.git/hooks/pre-commit");
    // Reading the config is fine; writing a hook or the config is not.
    let run_with = |args: &[&str]| {
        let out = Command::new(enforcer())
            .args(["run", "--policy"])
            .arg(&protected)
            .args(["--task", "it", "--events"])
            .arg(s.dir.join("ev.jsonl"))
            .arg("--")
            .args(args)
            .output()
            .expect("enforcer run");
        let events: Vec<Value> = std::fs::read_to_string(s.dir.join("ev.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let _ = std::fs::remove_file(s.dir.join("ev.jsonl"));
        (out, events)
    };
    let (out, _) = run_with(&[&probe(), "read", &config]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some("ok")
    );
    for target in [&hook, &config] {
        let (out, events) = run_with(&[&probe(), "write", target]);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        if mode().is_lsm() {
            assert!(said.starts_with("err EPERM"), "{target}: {said}");
            assert!(
                events.iter().any(|e| e["decision"] == "deny"
                    && e["rule"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("files.protect"))),
                "{target}: {events:?}"
            );
        } else {
            // Landlock lets the write through; the identity check kills the task at once.
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status).or(out.status.code()),
                Some(137)
                    .filter(|_| out.status.code().is_some())
                    .or(Some(9)),
                "{target}: {said} {events:?}"
            );
            assert!(
                events.iter().any(|e| e["decision"] == "kill"
                    && e["rule"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("files.protect"))),
                "{target}: {events:?}"
            );
        }
    }
    let left = std::fs::read_to_string(&config).unwrap();
    if mode().is_lsm() {
        assert_eq!(left, "[core]\n");
    } else {
        // Killed before it wrote a byte; an open with O_TRUNC has emptied it by then
        // (declared in --explain).
        assert!(left == "[core]\n" || left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_hard_link_gives_a_file_no_access_its_own_path_lacks() {
    if !require_root("a_hard_link_gives_a_file_no_access_its_own_path_lacks") {
        return;
    }
    let s = Scratch::new("refer");
    // A file outside every rule (not under files.deny: no identity rule knows it), linked into
    // the writable workspace and opened there.
    let secret = s.path("outside/secret");
    std::fs::write(&secret, "API_KEY=hunter2\n").expect("secret");
    let copy = s.path("ws/copy");
    let mut p = PolicyBuilder::default();
    p.write.push(format!("{}/", s.ws()));
    let out = run(&s, &p, &[], &[&probe(), "link-read", &secret, &copy]);
    assert!(out.probe_said().starts_with("err "), "{}", out.dump());
    assert!(!std::path::Path::new(&copy).exists(), "the link was made");
    if mode().is_lsm() {
        said(&out, "err EPERM (1)");
        let e = out.event("link", "deny", &secret);
        assert_eq!(e["checked_by"], "path_link", "{e}");
        // What the workspace rule (write) would add to a file no rule covers.
        assert_eq!(e["access"], "write", "{e}");
        assert!(
            e["why"].as_str().is_some_and(|w| w.contains("hard link")),
            "{e}"
        );
    } else {
        // Landlock's refer rule (ABI 2): EXDEV across directories; declared, no event.
        said(&out, "err EXDEV (18)");
        let e = out.event("syscall", "deny", "linkat");
        assert_eq!(
            (&e["errno"], &e["enforced_by"]),
            (&"EXDEV".into(), &"landlock".into())
        );
        let start = out.lifecycle("task_start").to_string();
        assert!(start.contains("linking names"), "{start}");
    }
}
