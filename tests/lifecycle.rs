//! The envelope's life: what the command runs as, exit statuses, bad input, and that nothing is
//! left behind afterwards.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use enforcer_tests::{PolicyBuilder, Scratch, enforcer, probe, require_root, run};

fn policy(s: &Scratch) -> PolicyBuilder {
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    p.read.push("/proc/".into());
    p.exec.push("/bin/sh".into());
    p.read.push("/dev/null".into());
    p
}

#[test]
fn the_command_runs_without_capabilities_and_with_no_new_privs() {
    if !require_root("the_command_runs_without_capabilities_and_with_no_new_privs") {
        return;
    }
    let s = Scratch::new("caps");
    let out = run(&s, &policy(&s), &[], &[&probe(), "whoami"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for line in [
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("Uid:\t0\t"),
        "runs as the invoking user (root): {}",
        out.stdout
    );
    assert_eq!(out.lifecycle("task_start")["user"]["uid"], 0);

    let out = run(
        &s,
        &policy(&s),
        &["--user", "nobody"],
        &[&probe(), "whoami"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("CapBnd:\t0000000000000000"),
        "{}",
        out.stdout
    );
    assert_eq!(out.lifecycle("task_start")["user"]["name"], "nobody");
}

#[test]
fn nothing_is_left_behind() {
    if !require_root("nothing_is_left_behind") {
        return;
    }
    let s = Scratch::new("cleanup");
    let pr = probe();
    // What an enforcer killed with SIGKILL leaves: an empty task cgroup whose owner is gone.
    let stale = enforcer::kernel::cgroup::cgroup2_mount()
        .expect("cgroup2")
        .join("enforcer/it-stale-99999999");
    std::fs::create_dir_all(&stale).expect("stale cgroup");
    // A background grandchild that would outlive the command.
    let out = run(
        &s,
        &policy(&s),
        &[],
        &["/bin/sh", "-c", &format!("{pr} sleep 60 & {pr} exists /")],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The sleeper really started (so its absence afterwards means something).
    let sleeper_started = out
        .events("exec", "allow")
        .iter()
        .filter(|e| e["target"] == pr.as_str())
        .count();
    assert_eq!(sleeper_started, 2, "{}", out.dump());
    let start = out.lifecycle("task_start");
    let cgroup = start["cgroup"].as_str().expect("cgroup path").to_owned();
    let end = out.lifecycle("task_end");
    assert_eq!(end["cleanup"]["map_entries_left"], 0, "{end}");
    assert_eq!(end["cleanup"]["cgroup_removed"], true, "{end}");
    assert!(!Path::new(&cgroup).exists(), "{cgroup} still exists");
    assert!(
        !stale.exists(),
        "the stale cgroup of a killed enforcer is swept"
    );
    // The background sleeper died with the task, and task_end names it.
    let killed = end["killed"].as_array().expect("task_end.killed");
    assert!(
        killed
            .iter()
            .any(|k| k["comm"] == "probe" && k["pid"].as_u64().is_some_and(|p| p > 0)),
        "the killed sleeper is not named: {end}"
    );
    let leftover = Command::new("pgrep")
        .args(["-f", &format!("{pr} sleep 60")])
        .output()
        .expect("pgrep");
    assert!(
        leftover.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
    // And the programs are gone from the kernel once the enforcer exits. The kernel frees
    // them after RCU grace periods (tasks-trace ones for LSM trampolines), which take seconds
    // in an emulated guest under load: the bound is for liveness, not speed.
    let names = ["connect4", "sendmsg6", "sys_exit_open", "sched_process_e"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let loaded: Vec<String> = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter_map(|p| p.name_as_str().map(str::to_owned))
            .filter(|n| names.contains(&n.as_str()))
            .collect();
        if loaded.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "programs still loaded: {loaded:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_exit_status_is_the_commands() {
    if !require_root("the_exit_status_is_the_commands") {
        return;
    }
    let s = Scratch::new("status");
    let out = run(&s, &policy(&s), &[], &[&probe(), "no-such-subcommand"]);
    assert_eq!(out.code, Some(2));
    assert_eq!(out.lifecycle("task_end")["exit_code"], 2);
    let out = run(&s, &policy(&s), &[], &["/bin/sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.code, Some(128 + 15), "{}", out.stderr);
    assert_eq!(out.lifecycle("task_end")["signal"], 15);
}

#[test]
fn bad_input_fails_before_the_command_starts() {
    if !require_root("bad_input_fails_before_the_command_starts") {
        return;
    }
    let s = Scratch::new("bad-input");
    // Unknown key: 125 with file:line:column.
    let mut p = policy(&s);
    p.extra_meta.push("colour = \"red\"".into());
    let out = run(&s, &p, &[], &[&probe(), "exists", "/"]);
    assert_eq!(out.code, Some(125), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("policy.toml:5:1: unknown field `colour`"),
        "{}",
        out.stderr
    );
    assert!(out.events.is_empty(), "no task started");

    // An undefined variable.
    let mut p = policy(&s);
    p.read.push("${nowhere}/".into());
    let out = run(&s, &p, &[], &[&probe(), "exists", "/"]);
    assert_eq!(out.code, Some(125));
    assert!(
        out.stderr.contains("variable ${nowhere} is not defined"),
        "{}",
        out.stderr
    );

    // A missing command: 127.
    let out = run(&s, &policy(&s), &[], &["/no/such/program"]);
    assert_eq!(out.code, Some(127), "{}", out.stderr);
    assert!(
        out.stderr.contains("/no/such/program: no such file"),
        "{}",
        out.stderr
    );

    // A bad --ttl: 125 with the reason.
    let out = run(
        &s,
        &policy(&s),
        &["--ttl", "soon"],
        &[&probe(), "exists", "/"],
    );
    assert_eq!(out.code, Some(125));
    assert!(out.stderr.contains("bad duration"), "{}", out.stderr);
}

#[test]
fn without_root_it_says_so_and_exits_125() {
    if !require_root("without_root_it_says_so_and_exits_125") {
        return;
    }
    // The enforcer itself, run inside an envelope as nobody: no root, no capabilities at all.
    let s = Scratch::new("no-root");
    let inner_policy = s.dir.join("inner.toml");
    std::fs::write(&inner_policy, policy(&s).toml()).expect("policy");
    let enforcer = enforcer().display().to_string();
    let mut p = policy(&s);
    p.exec.push(enforcer.clone());
    let inner_policy = inner_policy.display().to_string();
    let out = run(
        &s,
        &p,
        &["--user", "nobody"],
        &[
            &enforcer,
            "run",
            "--task",
            "x",
            "--policy",
            &inner_policy,
            "--",
            "/bin/true",
        ],
    );
    assert_eq!(out.code, Some(125), "{}", out.stderr);
    assert!(
        out.stderr.contains("enforcer run needs root"),
        "{}",
        out.stderr
    );
    out.event("exec", "allow", &enforcer);
}

#[test]
fn a_full_disk_for_events_loses_nothing() {
    if !require_root("a_full_disk_for_events_loses_nothing") {
        return;
    }
    let s = Scratch::new("full-disk");
    let mnt = s.dir.join("full");
    std::fs::create_dir_all(&mnt).expect("mountpoint");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    // Fill the filesystem, leaving an empty events file.
    let events = mnt.join("events.jsonl");
    std::fs::write(&events, "").expect("events file");
    let mut filler = std::fs::File::create(mnt.join("filler")).expect("filler");
    while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
    drop(filler);

    let policy_path = s.dir.join("policy.toml");
    std::fs::write(&policy_path, policy(&s).toml()).expect("policy");
    let target = s.path("outside/secret.txt");
    let out = Command::new(enforcer())
        .args([
            "run",
            "--task",
            "it",
            "--intent",
            "integration test",
            "--policy",
        ])
        .arg(&policy_path)
        .arg("--events")
        .arg(&events)
        .args(["--", &probe(), "read", &target])
        .output()
        .expect("enforcer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The command ran and was enforced as usual.
    assert_eq!(stdout.trim(), enforcer_tests::mode().refused());
    assert_eq!(out.status.code(), Some(1));
    // The failure is said, and every event reaches stderr instead.
    assert!(stderr.contains("cannot write events to"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let recovered: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ops: Vec<&str> = recovered.iter().filter_map(|e| e["op"].as_str()).collect();
    assert!(
        ops.contains(&"task_start") && ops.contains(&"task_end"),
        "{ops:?}"
    );
    assert!(
        recovered.iter().any(|e| e["op"] == "open"
            && e["decision"] == "deny"
            && e["target"] == target.as_str()),
        "the denial is not lost: {stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&events).unwrap_or_default(),
        "",
        "no partial line left"
    );
}
