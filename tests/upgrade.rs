//! Upgrades of the programs under a running task: a build with the same map layout takes the
//! task over without a gap; a build of the previous map ABI hands it over to this one, whose
//! maps are laid out differently, by converting every entry; a build whose maps it cannot
//! convert is refused and the pinned programs go on.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use enforcer_tests::{
    Scratch,
    daemon::{Daemon, assert_refused, base, text},
    enforcer, mode, probe, require_root, target_dir,
};

/// How many BPF programs the kernel holds (BPF_PROG_GET_NEXT_ID over every id).
fn loaded_programs() -> usize {
    let (mut id, mut n) = (0u32, 0);
    loop {
        // start_id, next_id, open_flags.
        let mut attr = [id, 0u32, 0u32, 0u32];
        // SAFETY: BPF_PROG_GET_NEXT_ID (11) reads start_id and writes next_id in `attr`.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, 11, attr.as_mut_ptr(), 16) };
        if rc != 0 {
            return n;
        }
        id = attr[1];
        n += 1;
    }
}

#[test]
fn an_upgraded_daemon_takes_running_tasks_over_without_a_gap() {
    if !require_root("an_upgraded_daemon_takes_running_tasks_over_without_a_gap") {
        return;
    }
    let s = Scratch::new("daemon-upgrade");
    let mut d = Daemon::start(&s, "upgrade", "");
    d.policy("agent", &base(&s));
    d.cli(&["reload"]);
    let go = s.path("ws/go");
    let (task, task_id) = d.waiting_task(&s, &go);
    let programs = loaded_programs();

    // The pins now look like another build's with the same map layout: the restarted daemon
    // loads its own programs, copies the task over and detaches the old ones.
    d.kill9();
    let other_build = "0".repeat(64);
    d.edit_state(|st| st["object_sha256"] = other_build.clone().into());
    d.spawn();
    assert!(
        d.log().contains("took the running tasks over"),
        "{}",
        d.log()
    );
    let up = d.wait_event("programs_upgraded", |e| e["op"] == "programs_upgraded");
    assert_eq!(up["from_object_sha256"], other_build.as_str());
    assert_eq!(up["copied"]["tasks"], 1, "{up}");
    assert!(up["copied"]["file_rules"].as_u64().unwrap() >= 1, "{up}");
    assert!(!Path::new("/sys/fs/bpf/enforcer-it-upgrade-next").exists());
    assert!(Path::new("/sys/fs/bpf/enforcer-it-upgrade/links").exists());
    let t = Instant::now();
    while loaded_programs() > programs {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the old programs are still loaded: {} programs, {programs} before",
            loaded_programs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.log().contains("1 task(s) adopted"), "{}", d.log());

    // The new programs enforce the task they were handed: refused, with its event.
    handed_over_and_enforced(&d, &s, task, &task_id, &go);

    // A build whose maps differ is refused, saying why, and the pinned programs go on.
    let go2 = s.path("ws/go2");
    let (task, task_id) = d.waiting_task(&s, &go2);
    d.kill9();
    let real = fs::read(d.dir.join("state/daemon.json")).unwrap();
    d.edit_state(|st| {
        st["object_sha256"] = "1".repeat(64).into();
        st["map_abi"] = 0.into();
    });
    let refused = Command::new(enforcer())
        .args(["daemon", "--config"])
        .arg(d.dir.join("enforcer.toml"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("whose maps differ from this build's"),
        "{}",
        text(&refused)
    );
    fs::write(&go2, "").unwrap();
    let out = task.wait_with_output().unwrap();
    assert_refused(&out);
    fs::write(d.dir.join("state/daemon.json"), real).unwrap();
    d.spawn();
    let end = d.wait_event("task_end after the refused build", |e| {
        e["op"] == "task_end" && e["task_id"] == task_id.as_str()
    });
    assert_eq!(end["reason"], "exited while the daemon was down");
    let secret = mode().reported(&s.path("outside/secret.txt"));
    let denial = d.wait_event("denial while the build was refused", |e| {
        e["op"] == "open" && e["target"] == secret.as_str() && e["task_id"] == task_id.as_str()
    });
    assert_eq!(denial["errno"], mode().errno());
}

/// A build of the previous map ABI (`cargo xtask prev-build` puts it here), or why there is none.
fn previous_build() -> Result<PathBuf, String> {
    let path = target_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("prev-abi/enforcer");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no build of the previous map ABI at {} (cargo xtask prev-build makes it from the \
             git history; a tree without history, or a guest, has none)",
            path.display()
        ))
    }
}

#[test]
fn a_daemon_of_the_previous_map_abi_hands_its_running_task_over() {
    let name = "a_daemon_of_the_previous_map_abi_hands_its_running_task_over";
    if !require_root(name) {
        return;
    }
    let previous = match previous_build() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIP {name}: {why}");
            return;
        }
    };
    let s = Scratch::new("daemon-upgrade-abi");
    let mut d = Daemon::start_with(&s, "upgrade-abi", "", &previous);
    d.policy("agent", &base(&s));
    d.cli(&["reload"]);
    let go = s.path("ws/go");
    let (task, task_id) = d.waiting_task(&s, &go);
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(d.dir.join("state/daemon.json")).unwrap()).unwrap();
    let old_abi = saved["map_abi"].as_u64().unwrap();
    assert!(old_abi < u64::from(enforcer_common_abi()), "{saved}");
    // The old build's maps, as the kernel has them: another layout than this build's.
    let old_tasks_value = pinned_value_size("/sys/fs/bpf/enforcer-it-upgrade-abi/maps/TASKS");
    assert_ne!(old_tasks_value, 32, "the previous build's task entries");

    // This build starts where the old daemon was killed, with the task running.
    d.kill9();
    d.binary = enforcer();
    d.spawn();
    assert!(
        d.log().contains("took the running tasks over"),
        "{}",
        d.log()
    );
    let up = d.wait_event("programs_upgraded", |e| e["op"] == "programs_upgraded");
    assert_eq!(up["from_map_abi"], old_abi, "{up}");
    assert_eq!(up["map_abi"], enforcer_common_abi(), "{up}");
    assert_eq!(up["copied"]["tasks"], 1, "{up}");
    assert!(up["copied"]["file_rules"].as_u64().unwrap() >= 1, "{up}");
    assert_eq!(
        pinned_value_size("/sys/fs/bpf/enforcer-it-upgrade-abi/maps/TASKS"),
        32,
        "the pins are this build's maps now"
    );
    assert!(!Path::new("/sys/fs/bpf/enforcer-it-upgrade-abi-next").exists());
    let status = d.cli(&["tasks"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&task_id),
        "{}",
        text(&status)
    );

    // The converted entries enforce: the task's read outside is refused, with its event, and
    // what the old programs counted (the probe's exec) was carried over.
    let end = handed_over_and_enforced(&d, &s, task, &task_id, &go);
    assert!(end["counters"]["execs"].as_u64().unwrap() >= 1, "{end}");

    // A new task under the converted daemon works as any: it writes its workspace and is
    // refused outside it.
    let run = |path: &str| {
        Command::new(enforcer())
            .args(["run", "--task", "agent", "--socket", &d.socket(), "--"])
            .args([&probe(), "write", path])
            .output()
            .unwrap()
    };
    let out = run(&s.path("ws/after-upgrade"));
    assert!(out.status.success(), "{}", text(&out));
    assert_refused(&run(&s.path("outside/after-upgrade")));
}

/// This build's map ABI.
fn enforcer_common_abi() -> u32 {
    enforcer_common::MAP_ABI
}

/// The value size of a pinned map, as the kernel reports it.
fn pinned_value_size(path: &str) -> u32 {
    aya::maps::MapInfo::from_pin(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .value_size()
}

/// Lets the waiting task read outside its workspace and checks the new programs refuse it
/// (the probe's errno and the event), then that its `task_end` leaves nothing behind.
/// Returns `task_end`.
fn handed_over_and_enforced(
    d: &Daemon,
    s: &Scratch,
    task: std::process::Child,
    task_id: &str,
    go: &str,
) -> serde_json::Value {
    fs::write(go, "").unwrap();
    let out = task.wait_with_output().unwrap();
    assert_refused(&out);
    let secret = mode().reported(&s.path("outside/secret.txt"));
    let denial = d.wait_event("denial by the new programs", |e| {
        e["op"] == "open" && e["target"] == secret.as_str() && e["task_id"] == task_id
    });
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["errno"], mode().errno());
    let end = d.wait_event("task_end", |e| {
        e["op"] == "task_end" && e["task_id"] == task_id
    });
    assert_eq!(end["reason"], "exited");
    assert_eq!(end["cleanup"]["map_entries_left"], 0);
    end
}
