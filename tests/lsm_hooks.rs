//! What only the BPF LSM hooks can decide: executable mappings, unix-socket connects, path
//! changes (unlink, mkdir, rmdir, create, rename, link, symlink, truncate, chmod), mounts,
//! chroot, and opens reached through /proc/self/root, openat2 and io_uring. In lsm mode each
//! is refused with EPERM and reported; in fallback mode the test checks the honest
//! alternative: Landlock's refusal, or the gap named in the task's `unenforced` list.
use std::os::unix::net::UnixListener;

use enforcer_tests::{
    Outcome, PolicyBuilder, Scratch, assert_common_fields, mode, probe, require_root, run,
};

fn policy(s: &Scratch) -> PolicyBuilder {
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    p.write.push(format!("{}/out/", s.ws()));
    p
}

/// [`policy`], letting the task make a user namespace of its own (refused by default), so
/// what it could do inside one is what gets tested.
fn policy_with_userns(s: &Scratch) -> PolicyBuilder {
    let mut p = policy(s);
    p.extra_meta.push("allow_user_namespaces = true".into());
    p
}

/// The task declared `gap` as not enforced in this mode (task_start and every event).
/// Fallback mode: a change of names Landlock refused is still an event (a `syscall` one,
/// without the path; an O_CREAT open is an `open` one).
fn assert_name_event(out: &Outcome, what: &str) {
    let reported = out.events.iter().any(|e| {
        e["decision"] == "deny"
            && ((e["op"] == "syscall" && e["enforced_by"] == "landlock") || e["op"] == "open")
    });
    assert!(reported, "{what}: no event:\n{}", out.dump());
}

fn assert_declared(out: &Outcome, gap: &str) {
    let start = out.lifecycle("task_start");
    let listed = start["unenforced"]
        .as_array()
        .is_some_and(|l| l.iter().any(|g| g.as_str().unwrap_or("").contains(gap)));
    assert!(listed, "\"{gap}\" is not declared unenforced: {start}");
}

fn lsm_denial<'a>(out: &'a Outcome, op: &str, target: &str) -> &'a serde_json::Value {
    assert_eq!(
        out.probe_said(),
        "err EPERM (1)",
        "{op} {target}: {}",
        out.stderr
    );
    let e = out.event(op, "deny", target);
    assert_common_fields(e);
    assert_eq!(e["enforced_by"], "lsm");
    assert_eq!(e["errno"], "EPERM");
    assert_eq!(e["mode"], "lsm");
    e
}

#[test]
fn executable_mappings_need_an_exec_or_library_rule() {
    if !require_root("executable_mappings_need_an_exec_or_library_rule") {
        return;
    }
    let s = Scratch::new("mmap-exec");
    let data = s.path("ws/notes.txt");
    let out = run(&s, &policy(&s), &[], &[&probe(), "mmap-exec", &data]);
    if mode().is_lsm() {
        let e = lsm_denial(&out, "mmap", &data);
        assert_eq!(e["access"], "map_exec");
        assert_eq!(e["prot"], "PROT_READ|PROT_EXEC");
        // The rule in force there (the workspace's read rule) grants no executable mapping.
        assert_eq!(e["rule"], format!("files.read[4] \"{}/\"", s.ws()));
    } else {
        assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
        assert_declared(&out, "executable mappings");
    }
    // mprotect adding PROT_EXEC to a read-only mapping of the same file.
    let out = run(&s, &policy(&s), &[], &[&probe(), "mprotect-exec", &data]);
    if mode().is_lsm() {
        let e = lsm_denial(&out, "mmap", &data);
        assert_eq!(e["checked_by"], "file_mprotect");
        assert_eq!(e["access"], "map_exec");
    } else {
        assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
        assert_declared(&out, "executable mappings");
    }
    // What may be executed may be mapped executable, either way.
    for how in ["mmap-exec", "mprotect-exec"] {
        let own = run(&s, &policy(&s), &[], &[&probe(), how, &probe()]);
        assert_eq!(own.probe_said(), "ok", "{how}: {}", own.stderr);
    }
}

#[test]
fn path_changes_need_a_write_rule() {
    if !require_root("path_changes_need_a_write_rule") {
        return;
    }
    let s = Scratch::new("path-ops");
    let ws = |rel: &str| s.path(&format!("ws/{rel}"));
    std::fs::create_dir_all(ws("dir")).expect("dir");
    std::fs::create_dir_all(ws("out/dir")).expect("dir");
    std::fs::write(ws("out/f"), "x").expect("file");
    std::fs::write(ws("out/g"), "x").expect("file");
    let notes = ws("notes.txt");
    // (what, probe arguments, the path the hook checks, its op); ws/ is read-only and ws/out/
    // writable, so each refused case has an allowed twin below.
    let refused: Vec<(&str, Vec<String>, String, &str)> = vec![
        ("unlink", vec![notes.clone()], notes.clone(), "unlink"),
        ("mkdir", vec![ws("new")], ws("new"), "mkdir"),
        ("rmdir", vec![ws("dir")], ws("dir"), "rmdir"),
        ("write", vec![ws("created")], ws("created"), "mknod"),
        (
            "rename",
            vec![notes.clone(), ws("out/moved")],
            notes.clone(),
            "rename",
        ),
        (
            "link",
            vec![ws("out/f"), ws("linked")],
            ws("linked"),
            "link",
        ),
        (
            "symlink",
            vec![notes.clone(), ws("sym")],
            ws("sym"),
            "symlink",
        ),
        (
            "truncate-path",
            vec![notes.clone()],
            notes.clone(),
            "truncate",
        ),
        ("chmod", vec![notes.clone()], notes.clone(), "chmod"),
    ];
    for (what, args, checked, op) in refused {
        let mut argv = vec![probe(), what.to_owned()];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run(&s, &policy(&s), &[], &argv);
        if mode().is_lsm() {
            let e = lsm_denial(&out, op, &checked);
            assert_eq!(e["access"], "write", "{what}");
            assert_eq!(e["checked_by"], format!("path_{op}"), "{what}");
            assert_eq!(
                e["rule"],
                format!("files.read[4] \"{}/\"", s.ws()),
                "{what}"
            );
            continue;
        }
        match what {
            // Landlock has no right for chmod; before ABI 3, none for truncate.
            "chmod" => {
                assert_eq!(out.probe_said(), "ok", "{what}: {}", out.stderr);
                assert_declared(&out, "chmod and chown");
            }
            "truncate-path" if out.probe_said() == "ok" => assert_declared(&out, "truncate"),
            // Across directories Landlock may answer EXDEV (no refer right) before EACCES.
            "rename" | "link" => {
                assert!(
                    ["err EACCES (13)", "err EXDEV (18)"].contains(&out.probe_said()),
                    "{what}: {} {}",
                    out.probe_said(),
                    out.stderr
                );
                assert_declared(&out, "creating, removing, renaming and linking names");
                assert_name_event(&out, what);
            }
            _ => {
                assert_eq!(
                    out.probe_said(),
                    "err EACCES (13)",
                    "{what}: {}",
                    out.stderr
                );
                assert_declared(&out, "creating, removing, renaming and linking names");
                assert_name_event(&out, what);
            }
        }
    }
    let allowed: Vec<(&str, Vec<String>)> = vec![
        ("mkdir", vec![ws("out/new")]),
        ("rmdir", vec![ws("out/dir")]),
        ("write", vec![ws("out/created")]),
        ("rename", vec![ws("out/g"), ws("out/moved")]),
        ("link", vec![ws("out/f"), ws("out/linked")]),
        ("symlink", vec![notes.clone(), ws("out/sym")]),
        ("truncate-path", vec![ws("out/f")]),
        ("chmod", vec![ws("out/f")]),
        ("unlink", vec![ws("out/f")]),
    ];
    for (what, args) in allowed {
        let mut argv = vec![probe(), what.to_owned()];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run(&s, &policy(&s), &[], &argv);
        assert_eq!(out.probe_said(), "ok", "{what} in ws/out: {}", out.stderr);
        let ws_root = s.ws();
        let denied: Vec<_> = out
            .events
            .iter()
            .filter(|e| {
                e["decision"] == "deny" && e["target"].as_str().unwrap_or("").starts_with(&ws_root)
            })
            .collect();
        assert!(denied.is_empty(), "{what} in ws/out: {denied:?}");
    }
}

#[test]
fn unix_socket_connects_need_a_rule() {
    if !require_root("unix_socket_connects_need_a_rule") {
        return;
    }
    let s = Scratch::new("unix");
    let (ok, no) = (s.path("ws/out/ok.sock"), s.path("ws/out/no.sock"));
    let _l1 = UnixListener::bind(&ok).expect("bind");
    let _l2 = UnixListener::bind(&no).expect("bind");
    let mut p = policy(&s);
    p.unix.push(ok.clone());
    let allowed = run(&s, &p, &[], &[&probe(), "unix-connect", &ok]);
    assert_eq!(allowed.probe_said(), "ok", "{}", allowed.stderr);
    let out = run(&s, &p, &[], &[&probe(), "unix-connect", &no]);
    if mode().is_lsm() {
        let e = lsm_denial(&out, "connect", &no);
        assert_eq!(e["family"], "unix");
        assert_eq!(e["access"], "connect");
    } else {
        assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
        assert_declared(&out, "unix-socket connects");
    }
}

#[test]
fn opens_through_proc_root_openat2_and_io_uring_are_checked_on_the_resolved_path() {
    if !require_root(
        "opens_through_proc_root_openat2_and_io_uring_are_checked_on_the_resolved_path",
    ) {
        return;
    }
    let s = Scratch::new("tricks");
    let secret = s.path("outside/secret.txt");
    let via_proc = format!("/proc/self/root{secret}");
    let mut p = policy(&s);
    p.extra_meta.push("allow_io_uring = true".into());
    let cases: [(&str, Vec<String>); 3] = [
        ("/proc/self/root", vec!["read".into(), via_proc.clone()]),
        (
            "openat2",
            vec!["openat2".into(), s.ws(), "../outside/secret.txt".into()],
        ),
        ("io_uring", vec!["io-uring-open".into(), secret.clone()]),
    ];
    for (what, args) in cases {
        let mut argv = vec![probe()];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run(&s, &p, &[], &argv);
        assert_eq!(out.probe_said(), mode().refused(), "{what}: {}", out.stderr);
        if what == "io_uring" && !mode().is_lsm() {
            // Landlock refuses it, but no tracepoint sees io_uring's open: declared.
            assert_declared(&out, "io_uring opens");
            continue;
        }
        if mode().is_lsm() {
            // The hook sees the file the kernel opened: the resolved path.
            let e = lsm_denial(&out, "open", &secret);
            assert_eq!(e["access"], "read", "{what}");
        } else {
            // The tracepoints report the path as given and resolve it.
            let e = out
                .events("open", "deny")
                .into_iter()
                .find(|e| e["enforced_by"] == "landlock")
                .unwrap_or_else(|| panic!("{what}: no denial:\n{}", out.dump()));
            assert_eq!(e["errno"], "EACCES", "{what}");
        }
    }
}

#[test]
fn mounts_are_refused() {
    if !require_root("mounts_are_refused") {
        return;
    }
    let s = Scratch::new("mount");
    let out = run(
        &s,
        &policy_with_userns(&s),
        &[],
        &[
            &probe(),
            "bind-mount",
            &s.path("outside/secret.txt"),
            &s.path("ws/notes.txt"),
        ],
    );
    assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.stderr);
    if mode().is_lsm() {
        // Landlock handles no filesystem right in lsm mode, so the BPF hook decides and
        // names the mount point.
        let e = lsm_denial(&out, "mount", &s.path("ws/notes.txt"));
        assert_eq!(e["checked_by"], "sb_mount/move_mount/sb_pivotroot");
    } else {
        // Landlock refuses mounts to any process whose domain handles filesystem rights.
        assert_declared(&out, "mount, move_mount, pivot_root");
    }
}

#[test]
fn chroot_is_refused_in_lsm_mode() {
    if !require_root("chroot_is_refused_in_lsm_mode") {
        return;
    }
    let s = Scratch::new("chroot");
    let out = run(
        &s,
        &policy_with_userns(&s),
        &[],
        &[&probe(), "chroot", &s.path("ws/out")],
    );
    if mode().is_lsm() {
        // A new root would change the paths bpf_d_path reports, so no task may chroot (here
        // from a user namespace of its own, where it holds CAP_SYS_CHROOT).
        let e = lsm_denial(&out, "chroot", &s.path("ws/out"));
        assert_eq!(e["checked_by"], "path_chroot");
    } else {
        // Landlock's rules follow inodes, which a new root does not change.
        assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
    }
}

/// Two enforcers on one kernel: each attaches its own programs to the same hooks. A denial by
/// either one holds while the other's programs run on the same operations (each hook keeps
/// an earlier verdict and passes processes that are not its own).
#[test]
fn two_enforcers_keep_each_others_denials() {
    if !require_root("two_enforcers_keep_each_others_denials") {
        return;
    }
    let (a, b) = (Scratch::new("chain-a"), Scratch::new("chain-b"));
    let mark = b.path("ws/out/mark");
    let (secret_a, secret_b) = (a.path("outside/secret.txt"), b.path("outside/secret.txt"));
    let events_a = a.dir.join("events.jsonl");
    let first = {
        let (mark, secret_a) = (mark.clone(), secret_a.clone());
        std::thread::spawn(move || {
            let out = run(
                &a,
                &policy(&a),
                &[],
                &[&probe(), "wait-read", &mark, &secret_a],
            );
            (a, out)
        })
    };
    // Start the second once the first task runs (its programs are attached by then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&events_a).is_ok_and(|e| e.contains("task_start")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first task did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The second marks, then waits while the first reads its secret, then reads its own.
    let second = run(
        &b,
        &policy(&b),
        &[],
        &[&probe(), "mark-sleep-read", &mark, "2", &secret_b],
    );
    let (_a, first) = first.join().expect("first task");
    for (name, out, secret) in [("first", &first, &secret_a), ("second", &second, &secret_b)] {
        assert_eq!(out.probe_said(), mode().refused(), "{name}: {}", out.stderr);
        let e = out
            .events("open", "deny")
            .into_iter()
            .find(|e| e["target"] == secret.as_str())
            .unwrap_or_else(|| panic!("{name}: no denial of {secret}:\n{}", out.dump()));
        assert_eq!(e["enforced_by"], mode().file_enforcer(), "{name}");
        assert_eq!(e["errno"], mode().errno(), "{name}");
    }
}

#[test]
fn a_refusal_through_a_symlink_names_the_file_that_was_checked() {
    if !require_root("a_refusal_through_a_symlink_names_the_file_that_was_checked") {
        return;
    }
    let s = Scratch::new("symlink-target");
    // A symlink inside a readable tree to a file outside every rule.
    let secret = s.path("outside/secret");
    std::fs::write(&secret, "API_KEY=hunter2\n").expect("secret");
    let link = s.path("ws/link");
    std::os::unix::fs::symlink(&secret, &link).expect("symlink");
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    let out = run(&s, &p, &[], &[&probe(), "read", &link]);
    assert!(out.probe_said().starts_with("err E"), "{}", out.dump());
    if mode().is_lsm() {
        // The hook sees the opened file: its own path is the target.
        let e = out.event("open", "deny", &secret);
        assert_eq!(e["checked_path"], secret.as_str(), "{e}");
    } else {
        // The path as given, and the file Landlock refused.
        let e = out.event("open", "deny", &link);
        assert_eq!(e["resolved_path"], secret.as_str(), "{e}");
    }
}
