//! What only the BPF LSM hooks can decide: executable mappings, unix-socket connects, mounts,
//! and opens reached through /proc/self/root, openat2 and io_uring. In lsm mode each is
//! refused with EPERM and reported; in fallback mode the test checks the honest alternative:
//! Landlock's refusal, or the gap named in the task's `unenforced` list.
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

/// The task declared `gap` as not enforced in this mode (task_start and every event).
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
    // What may be executed may be mapped executable.
    let own = run(&s, &policy(&s), &[], &[&probe(), "mmap-exec", &probe()]);
    assert_eq!(own.probe_said(), "ok", "{}", own.stderr);
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
        if what == "io_uring" {
            // Measured: with io_uring allowed, its open goes through in both modes (fallback on
            // 6.18, lsm on 6.12). Never silently: the gap is declared in every event. When a
            // kernel starts refusing it, this fails and the gap can go.
            assert_eq!(out.probe_said(), "ok", "{what}: {}", out.stderr);
            assert_declared(&out, "io_uring opens");
            continue;
        }
        assert_eq!(out.probe_said(), mode().refused(), "{what}: {}", out.stderr);
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
        &policy(&s),
        &[],
        &[
            &probe(),
            "bind-mount",
            &s.path("outside/secret.txt"),
            &s.path("ws/notes.txt"),
        ],
    );
    // Landlock comes before the BPF LSM in the kernel's order and refuses mounts to any
    // process whose domain handles filesystem rights (both modes apply such a domain), so the
    // BPF hook is the second line and usually has nothing to report.
    assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.stderr);
    assert_declared(&out, "mount, move_mount, pivot_root");
    for e in out.events("mount", "deny") {
        assert_eq!(e["enforced_by"], "lsm", "{e}");
    }
}
