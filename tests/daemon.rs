//! The daemon for real: tasks started through its socket, who may start them, hot reload under
//! load, `kill -9` of the daemon with a task running, fail closed, and the systemd unit.
//! Upgrades of the programs under a running task are in `upgrade.rs`.
use std::{
    fs,
    net::TcpListener,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use enforcer_tests::{
    Scratch,
    daemon::{Daemon, assert_refused, base, text},
    enforcer, launcher, mode, probe, require_root,
};
use serde_json::Value;

/// `enforcer run --task T --socket S <args> -- cmd`, optionally as another uid.
fn run_task(d: &Daemon, task: &str, args: &[&str], uid: Option<u32>, cmd: &[&str]) -> Output {
    use std::os::unix::process::CommandExt as _;
    let mut c = Command::new(enforcer());
    c.args(["run", "--task", task, "--socket", &d.socket()])
        .args(args)
        .arg("--")
        .args(cmd);
    if let Some(uid) = uid {
        c.uid(uid).gid(uid);
    }
    c.output().expect("enforcer run")
}

/// The probe's read of `outside/secret.txt` was refused by the kernel, and its denial event
/// (of `task`, with the mode's errno and enforcer) is in the daemon's events.
fn secret_refused(d: &Daemon, s: &Scratch, out: &Output, task: &str) -> Value {
    assert_refused(out);
    let secret = mode().reported(&s.path("outside/secret.txt"));
    let denial = d.wait_event("denial", |e| {
        e["op"] == "open" && e["target"] == secret.as_str()
    });
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["errno"], mode().errno());
    assert_eq!(denial["enforced_by"], mode().file_enforcer());
    assert_eq!(denial["task"], task);
    denial
}

/// `enforcer-run --task T --socket S -- cmd`: the lean launcher.
fn launch(d: &Daemon, task: &str, cmd: &[&str]) -> Output {
    Command::new(launcher())
        .args(["--task", task, "--socket", &d.socket(), "--"])
        .args(cmd)
        .output()
        .expect("enforcer-run")
}

#[test]
fn the_lean_launcher_starts_the_same_task_and_cannot_nest() {
    if !require_root("the_lean_launcher_starts_the_same_task_and_cannot_nest") {
        return;
    }
    let s = Scratch::new("launcher");
    let d = Daemon::start(&s, "launcher", "");
    d.policy("agent", &base(&s));
    // A task that may reach the socket and run the launcher: it still cannot start a task.
    let mut nester = base(&s);
    nester.unix.push(d.socket());
    nester.exec.push(launcher().display().to_string());
    nester.read.push(format!("{}/", s.dir.display()));
    d.policy("nester", &nester);
    d.cli(&["reload"]);

    let ok = launch(&d, "agent", &[&probe(), "read", &s.path("ws/notes.txt")]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = launch(
        &d,
        "agent",
        &[&probe(), "read", &s.path("outside/secret.txt")],
    );
    let denial = secret_refused(&d, &s, &out, "agent");
    let task_id = denial["task_id"].as_str().unwrap().to_owned();
    let start = d.wait_event("task_start", |e| {
        e["op"] == "task_start" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(start["via"], "daemon");
    let end = d.wait_event("task_end", |e| {
        e["op"] == "task_end" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(end["exit_code"], 1, "{end}");
    assert_eq!(end["cleanup"]["cgroup_removed"], true);

    // Bad input: named, 125 (127 for a missing command), and no task starts.
    let starts = || {
        d.events()
            .iter()
            .filter(|e| e["op"] == "task_start")
            .count()
    };
    let before = starts();
    let out = Command::new(launcher())
        .args(["--task", "agent", "--mode", "lsm", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        text(&out).contains("unknown option --mode"),
        "{}",
        text(&out)
    );
    let out = Command::new(launcher())
        .args([
            "--task",
            "agent",
            "--socket",
            &s.path("nothing.sock"),
            "--",
            "/bin/true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(text(&out).contains("no daemon answers"), "{}", text(&out));
    let out = launch(&d, "agent", &["/no/such/command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    let out = launch(&d, "agent", &["--policy"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert_eq!(starts(), before, "a refused launch started a task");

    // From inside a task, the launcher gets nothing from the daemon: refused, and said.
    let launcher = launcher().display().to_string();
    let out = launch(
        &d,
        "nester",
        &[
            &launcher,
            "--task",
            "agent",
            "--socket",
            &d.socket(),
            "--",
            &probe(),
            "whoami",
        ],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        text(&out).contains("permission denied: a process inside a task"),
        "{}",
        text(&out)
    );
    let refused = d.wait_event("control", |e| e["op"] == "control");
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["task"], "nester");
    assert_eq!(refused["request"], "start");
}

#[test]
fn tasks_start_through_the_daemon_and_leave_nothing_behind() {
    if !require_root("tasks_start_through_the_daemon_and_leave_nothing_behind") {
        return;
    }
    let s = Scratch::new("daemon-run");
    let d = Daemon::start(
        &s,
        "run",
        "[[grant]]\nusers = [\"nobody\"]\npolicies = [\"shared\"]\n",
    );
    d.policy("agent", &base(&s));
    d.policy("shared", &base(&s));
    fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    d.cli(&["reload"]);

    // Root: the read in the workspace works, the one outside is refused by the kernel, and
    // the command's own exit status comes back as is.
    let ok = run_task(
        &d,
        "agent",
        &[],
        None,
        &[&probe(), "read", &s.path("ws/notes.txt")],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = run_task(
        &d,
        "agent",
        &[],
        None,
        &[&probe(), "read", &s.path("outside/secret.txt")],
    );
    let denial = secret_refused(&d, &s, &out, "agent");
    assert_eq!(denial["policy"]["name"], "agent");
    assert!(denial["policy"]["generation"].as_u64().unwrap() >= 1);
    let task_id = denial["task_id"].as_str().unwrap().to_owned();
    let end = d.wait_event("task_end", |e| {
        e["op"] == "task_end" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(end["reason"], "exited");
    // The command's status as its caller saw it, learnt by the programs at its exit.
    assert_eq!(end["exit_code"], out.status.code().unwrap(), "{end}");
    assert_eq!(end["signal"], Value::Null, "{end}");
    assert_eq!(end["cleanup"]["cgroup_removed"], true);
    assert_eq!(end["cleanup"]["map_entries_left"], 0);
    assert!(end["counters"]["denials"].as_u64().unwrap() >= 1);
    // A command killed by a signal: the caller sees the signal, and so does task_end.
    let out = run_task(&d, "agent", &[], None, &[&probe(), "raise", "15"]);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(15),
        "{}",
        text(&out)
    );
    let end = d.wait_event("task_end of the signalled command", |e| {
        e["op"] == "task_end" && e["signal"] == 15
    });
    assert_eq!(end["exit_code"], Value::Null, "{end}");
    assert_eq!(end["core_dumped"], false, "{end}");
    let start = d.wait_event("task_start", |e| {
        e["op"] == "task_start" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(start["via"], "daemon");
    assert!(!Path::new(start["cgroup"].as_str().unwrap()).exists());

    // nobody may start "shared" (and it runs as nobody) but not "agent"; status is admin-only.
    let out = run_task(&d, "shared", &[], Some(65534), &[&probe(), "whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Uid:\t65534"),
        "{}",
        text(&out)
    );
    let out = run_task(&d, "agent", &[], Some(65534), &[&probe(), "whoami"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("permission denied: uid 65534 may not start tasks with policy \"agent\""),
        "{}",
        text(&out)
    );
    let mut status = Command::new(enforcer());
    std::os::unix::process::CommandExt::uid(&mut status, 65534);
    let out = status
        .args(["status", "--socket", &d.socket()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        text(&out)
    );
    // Bad input: a file where the daemon wants a policy name; an unknown policy.
    let out = run_task(
        &d,
        "agent",
        &["--policy", "/etc/x.toml"],
        None,
        &["/bin/true"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--standalone"),
        "{}",
        text(&out)
    );
    let out = run_task(&d, "nope", &[], None, &["/bin/true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no policy \"nope\""),
        "{}",
        text(&out)
    );

    // The status names the mode and the programs; no task is left.
    let out = d.cli(&["status", "--json"]);
    let st: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(st["mode"], mode().name());
    assert!(st["programs"].as_array().unwrap().len() >= 4);
    let closed = st["operations"]["process in the subtree without a task (fail closed)"]
        .as_str()
        .unwrap();
    assert!(
        closed.contains(if mode().is_lsm() { "refused" } else { "killed" }),
        "{st}"
    );
    if !mode().is_lsm() {
        assert!(
            !st["gaps"].as_array().unwrap().is_empty(),
            "fallback gaps are said: {st}"
        );
    }
    assert_eq!(st["tasks"], 0);
}

#[test]
fn a_killed_daemon_leaves_enforcement_on_and_a_restart_adopts_the_task() {
    if !require_root("a_killed_daemon_leaves_enforcement_on_and_a_restart_adopts_the_task") {
        return;
    }
    let s = Scratch::new("daemon-kill9");
    let mut d = Daemon::start(&s, "kill9", "");
    d.policy("agent", &base(&s));
    d.cli(&["reload"]);
    let go = s.path("ws/go");
    let (task, task_id) = d.waiting_task(&s, &go);

    d.kill9();
    // No daemon: the pinned programs still refuse, and the task is still running.
    fs::write(&go, "").unwrap();
    let out = task.wait_with_output().unwrap();
    assert_refused(&out);

    // A restart drains what happened meanwhile and ends the adopted task.
    d.spawn();
    assert!(d.log().contains("1 task(s) adopted"), "{}", d.log());
    let secret = mode().reported(&s.path("outside/secret.txt"));
    let denial = d.wait_event("denial while down", |e| {
        e["op"] == "open" && e["target"] == secret.as_str() && e["task_id"] == task_id.as_str()
    });
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["errno"], mode().errno());
    let end = d.wait_event("task_end", |e| {
        e["op"] == "task_end" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(end["reason"], "exited while the daemon was down");
    // The pinned programs noted the exit status while no daemon ran.
    assert_eq!(end["exit_code"], out.status.code().unwrap(), "{end}");
    assert_eq!(end["cleanup"]["map_entries_left"], 0);
    let restarted = d.wait_event("daemon_start", |e| {
        e["op"] == "daemon_start" && e["adopted_tasks"] == 1
    });
    assert_eq!(restarted["mode"], mode().name());

    // The in-kernel TTL holds while no daemon runs: the task dies on its next operation.
    let mut task = Command::new(enforcer())
        .args([
            "run",
            "--task",
            "agent",
            "--ttl",
            "1s",
            "--socket",
            &d.socket(),
            "--",
        ])
        .args([
            &probe(),
            "mark-sleep-read",
            &s.path("ws/mark"),
            "3",
            &s.path("ws/notes.txt"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !Path::new(&s.path("ws/mark")).exists() {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let status = task.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "killed by the kernel at its first operation past the TTL: {status:?}"
    );
    d.spawn();
    let end = d.wait_event("ttl task_end", |e| {
        e["op"] == "task_end"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("limit ttl exceeded"))
    });
    assert_eq!(end["signal"], libc::SIGKILL, "{end}");
    assert_eq!(end["exit_code"], Value::Null, "{end}");
    assert_eq!(end["cleanup"]["map_entries_left"], 0);
    d.wait_event("kernel ttl event", |e| {
        e["op"] == "limit" && e["target"] == "ttl"
    });
}

#[test]
fn reloads_under_load_never_mix_generations_and_bad_files_change_nothing() {
    if !require_root("reloads_under_load_never_mix_generations_and_bad_files_change_nothing") {
        return;
    }
    let s = Scratch::new("daemon-reload");
    let d = Daemon::start(&s, "reload", "");
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let extra = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = |l: &TcpListener| l.local_addr().unwrap().to_string();
    // Accept (and drop) whatever connects, so the backlog never fills.
    for l in [&allowed, &extra] {
        let l = l.try_clone().unwrap();
        std::thread::spawn(move || while l.accept().is_ok() {});
    }
    let v1 = {
        let mut p = base(&s);
        p.connect.push(addr(&allowed));
        p
    };
    let v2 = {
        let mut p = v1.clone();
        p.connect.push(addr(&extra));
        p.read.push(s.path("outside/other.txt"));
        p
    };
    d.policy("agent", &v1);
    d.cli(&["reload"]);
    let task = Command::new(enforcer())
        .args(["run", "--task", "agent", "--socket", &d.socket(), "--"])
        .args([
            &probe(),
            "hammer",
            &s.path("ws/notes.txt"),
            &s.path("outside/secret.txt"),
            &addr(&allowed),
            &addr(&denied),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    d.wait_event("task_start", |e| e["op"] == "task_start");
    // Rewrites ten a second through inotify while the task hammers: at least 40, and until
    // the daemon has swapped generations 6 times (a slow guest applies fewer per second).
    let generation = || {
        let out = d.cli(&["status", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["generation"]
            .as_u64()
            .unwrap()
    };
    let first = generation();
    let t = Instant::now();
    let mut i = 0;
    while i < 40 || (generation() < first + 6 && t.elapsed() < Duration::from_secs(90)) {
        d.policy("agent", if i % 2 == 0 { &v2 } else { &v1 });
        std::thread::sleep(Duration::from_millis(100));
        i += 1;
    }
    // The hammer stops when its stdin closes.
    let out = task.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // "<what> ok N refused M" for each of the four operations.
    let ok_refused = |what: &str| -> (u64, u64) {
        let rest = said
            .split(&format!("{what} ok "))
            .nth(1)
            .unwrap_or_else(|| panic!("{said}"));
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .take(2)
            .map(|t| t.parse().unwrap())
            .collect();
        (nums[0], nums[1])
    };
    let (ok, refused) = ok_refused("read_allowed");
    assert!(
        ok > 10 && refused == 0,
        "allowed reads refused during reloads: {said}"
    );
    let (ok, refused) = ok_refused("read_denied");
    assert!(
        ok == 0 && refused > 10,
        "denied reads allowed during reloads: {said}"
    );
    let (ok, refused) = ok_refused("connect_allowed");
    assert!(
        ok > 10 && refused == 0,
        "allowed connects refused during reloads: {said}"
    );
    let (ok, refused) = ok_refused("connect_denied");
    assert!(
        ok == 0 && refused > 10,
        "denied connects allowed during reloads: {said}"
    );
    let applied: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["op"] == "policy_applied")
        .collect();
    assert!(
        applied.len() >= 5,
        "only {} generation swaps in {:?} ({i} rewrites); log:\n{}",
        applied.len(),
        t.elapsed(),
        d.log()
    );
    let gens: Vec<u64> = applied
        .iter()
        .map(|e| e["to_generation"].as_u64().unwrap())
        .collect();
    assert!(
        gens.windows(2).all(|w| w[1] > w[0]),
        "generations must increase: {gens:?}"
    );
    // Denials name the generation that decided them.
    let denied_connects: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| e["op"] == "connect" && e["decision"] == "deny")
        .collect();
    assert!(!denied_connects.is_empty());
    let seen: std::collections::BTreeSet<u64> = denied_connects
        .iter()
        .map(|e| e["policy"]["generation"].as_u64().unwrap())
        .collect();
    assert!(
        seen.len() > 2,
        "denials carry their deciding generation: {seen:?}"
    );

    // A bad file: reported with file:line:column, and the last good set stays.
    let before = d.cli(&["status", "--json"]);
    let generation = serde_json::from_slice::<Value>(&before.stdout).unwrap()["generation"].clone();
    fs::write(
        d.dir.join("policies/bad.toml"),
        "[policy]\nname = \"bad\"\nversoin = 1\n",
    )
    .unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:1"), "{err}");
    let e = d.wait_event("policy_error", |e| e["op"] == "policy_error");
    assert!(
        e["errors"][0].as_str().unwrap().contains("bad.toml:3:1"),
        "{e}"
    );
    assert_eq!(e["kept_generation"], generation);
    let after = d.cli(&["status", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&after.stdout).unwrap()["generation"],
        generation
    );
}

#[test]
fn a_process_in_the_daemons_subtree_without_a_task_is_refused() {
    if !require_root("a_process_in_the_daemons_subtree_without_a_task_is_refused") {
        return;
    }
    let s = Scratch::new("daemon-failclosed");
    let d = Daemon::start(&s, "closed", "");
    let status = d.cli(&["status", "--json"]);
    let st: Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", text(&status)));
    let stranger = Path::new(st["cgroup_root"].as_str().unwrap()).join("stranger");
    fs::create_dir(&stranger).unwrap();
    let procs = stranger.join("cgroup.procs");
    let out = Command::new("/bin/sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {}; exec {} read /etc/hostname",
                procs.display(),
                probe()
            ),
        ])
        .output()
        .unwrap();
    let event = d.wait_event("fail closed", |e| {
        e["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("fail closed"))
    });
    if mode().is_lsm() {
        assert_eq!(out.status.code(), Some(126), "{}", text(&out));
        assert_eq!(event["decision"], "deny");
    } else {
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{}",
            text(&out)
        );
        assert_eq!(event["decision"], "kill");
    }
    assert_eq!(event["task"], "(none)");
    let _ = fs::remove_dir(&stranger);
}

#[test]
fn the_systemd_unit_verifies() {
    // Embedded: the VM guests have the test executables but not the source tree.
    let text = include_str!("../packaging/enforcer.service");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "KillMode=",
        "CapabilityBoundingSet=",
    ] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
    let Ok(which) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIP the_systemd_unit_verifies: systemd-analyze is not installed");
        return;
    };
    assert!(which.status.success());
    // Verify the unit as installed, with ExecStart pointing at the binary under test.
    let dir = std::env::temp_dir().join(format!("enforcer-unit-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let local = dir.join("enforcer.service");
    fs::write(
        &local,
        text.replace("/usr/bin/enforcer", &enforcer().display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&local)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{err}"
    );
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("enforcer.service"))
        .collect();
    assert!(
        lines.is_empty(),
        "warnings about the unit:\n{}",
        lines.join("\n")
    );
}
