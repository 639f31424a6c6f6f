//! Enforcement of files, exec and network, checked twice each time: the kernel's answer (the
//! errno the probe got, its exit status, or its death) and the event the enforcer wrote.
use std::{
    fs,
    io::Read as _,
    net::{TcpListener, UdpSocket},
    time::Duration,
};

use enforcer_tests::{
    PolicyBuilder, Scratch, assert_common_fields, mode, probe, require_root, run,
};

fn policy(s: &Scratch) -> PolicyBuilder {
    let mut p = PolicyBuilder::default();
    p.read.push(format!("{}/", s.ws()));
    p.write.push(format!("{}/out/", s.ws()));
    p
}

#[test]
fn allowed_operations_succeed_and_are_reported() {
    if !require_root("allowed_operations_succeed_and_are_reported") {
        return;
    }
    let s = Scratch::new("allowed");
    let p = policy(&s);
    let read = run(&s, &p, &[], &[&probe(), "read", &s.path("ws/notes.txt")]);
    assert_eq!(read.probe_said(), "ok", "{}", read.stderr);
    assert_eq!(read.code, Some(0));
    let exec = read.event("exec", "allow", &probe());
    assert_common_fields(exec);
    assert_eq!(exec["rule"], format!("exec.allow[0] \"{}\"", probe()));
    assert_eq!(exec["mode"], mode().name());
    // (Rust's std reads /proc/self/maps at start-up, which this policy does not allow; that
    // denial is real and reported. Nothing the policy allows is denied.)
    let ws = s.ws();
    assert!(
        read.events("open", "deny")
            .iter()
            .all(|e| !e["target"].as_str().unwrap_or("").starts_with(&ws)),
        "{}",
        read.dump()
    );

    let target = s.path("ws/out/result.txt");
    let write = run(&s, &p, &[], &[&probe(), "write", &target]);
    assert_eq!(write.probe_said(), "ok", "{}", write.stderr);
    assert_eq!(fs::read_to_string(&target).unwrap_or_default(), "probe\n");
    assert_eq!(write.lifecycle("task_end")["exit_code"], 0);
}

#[test]
fn read_outside_the_policy_is_denied() {
    if !require_root("read_outside_the_policy_is_denied") {
        return;
    }
    let s = Scratch::new("read-denied");
    let target = s.path("outside/secret.txt");
    let out = run(&s, &policy(&s), &[], &[&probe(), "read", &target]);
    assert_eq!(out.probe_said(), mode().refused());
    assert_eq!(out.code, Some(1));
    let e = out.event("open", "deny", &target);
    assert_common_fields(e);
    assert_eq!(e["access"], "read");
    assert_eq!(e["errno"], mode().errno());
    assert_eq!(e["enforced_by"], mode().file_enforcer());
    assert_eq!(e["rule"], "default deny (no rule allows it)");
    assert_eq!(e["comm"], "probe");
}

#[test]
fn write_is_denied_where_only_read_is_allowed() {
    if !require_root("write_is_denied_where_only_read_is_allowed") {
        return;
    }
    let s = Scratch::new("write-denied");
    let target = s.path("ws/notes.txt");
    let out = run(&s, &policy(&s), &[], &[&probe(), "write", &target]);
    assert_eq!(out.probe_said(), mode().refused());
    assert_eq!(
        fs::read_to_string(&target).unwrap_or_default(),
        "workspace file\n"
    );
    let e = out.event("open", "deny", &target);
    assert_eq!(e["access"], "write");
    assert_eq!(e["enforced_by"], mode().file_enforcer());
}

#[test]
fn exec_of_a_binary_not_allowed_is_denied() {
    if !require_root("exec_of_a_binary_not_allowed_is_denied") {
        return;
    }
    let s = Scratch::new("exec-denied");
    let out = run(&s, &policy(&s), &[], &[&probe(), "exec", "/usr/bin/true"]);
    assert_eq!(out.probe_said(), mode().refused());
    let e = out.event("exec", "deny", &mode().reported("/usr/bin/true"));
    assert_common_fields(e);
    assert_eq!(e["access"], "exec");
    assert_eq!(e["enforced_by"], mode().file_enforcer());
    assert_eq!(e["errno"], mode().errno());

    // The command itself: enforcer exits 126 and reports the refused exec.
    let out = run(&s, &policy(&s), &[], &["/usr/bin/true"]);
    assert_eq!(out.code, Some(126), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("does not allow executing /usr/bin/true"),
        "{}",
        out.stderr
    );
    out.event("exec", "deny", &mode().reported("/usr/bin/true"));
}

/// A deny rule inside an allowed tree holds however the file is reached.
#[test]
fn deny_under_allow_kills_by_identity_whatever_the_path() {
    if !require_root("deny_under_allow_kills_by_identity_whatever_the_path") {
        return;
    }
    let s = Scratch::new("deny-under-allow");
    let secret = s.path("ws/out/.env");
    let mut p = policy(&s);
    p.deny.push(secret.clone());
    let ws = s.ws();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "direct path",
            vec!["read".into(), secret.clone()],
            secret.clone(),
        ),
        (
            "symlink",
            vec!["read".into(), s.path("ws/link")],
            s.path("ws/link"),
        ),
        (
            "relative path after chdir",
            vec!["chdir-read".into(), format!("{ws}/out"), ".env".into()],
            secret.clone(),
        ),
        (
            "directory fd",
            vec!["openat".into(), format!("{ws}/out"), ".env".into()],
            secret.clone(),
        ),
        (
            "hard link made inside the task",
            vec!["link-read".into(), secret.clone(), s.path("ws/out/copy")],
            s.path("ws/out/copy"),
        ),
        (
            "rename inside the task",
            vec![
                "rename-read".into(),
                secret.clone(),
                s.path("ws/out/renamed"),
            ],
            s.path("ws/out/renamed"),
        ),
    ];
    for (what, args, target) in cases {
        fs::write(&secret, "API_KEY=hunter2\n").expect("secret");
        let _ = fs::remove_file(s.path("ws/link"));
        let _ = fs::remove_file(s.path("ws/out/copy"));
        let _ = fs::remove_file(s.path("ws/out/renamed"));
        std::os::unix::fs::symlink(&secret, s.path("ws/link")).expect("symlink");
        let mut argv = vec![probe()];
        argv.extend(args);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run(&s, &p, &[], &argv);
        if mode().is_lsm() {
            // lsm mode refuses the operation itself, synchronously; nothing is killed.
            assert_eq!(out.code, Some(1), "{what}: {}", out.stderr);
            assert_eq!(out.probe_said(), "err EPERM (1)", "{what}");
            let deny = out
                .events
                .iter()
                .find(|e| {
                    e["decision"] == "deny" && e["rule"] == format!("files.deny[0] \"{secret}\"")
                })
                .unwrap_or_else(|| panic!("{what}: no deny event:\n{}", out.dump()));
            assert_common_fields(deny);
            assert_eq!(deny["enforced_by"], "lsm", "{what}");
            assert_eq!(deny["errno"], "EPERM", "{what}");
            // A hard link is refused itself: the new name would give the file access its own
            // path lacks. A rename is refused itself too: it removes the denied name.
            let (checked, by_identity, op) = match what {
                "rename inside the task" => (secret.clone(), false, "rename"),
                "hard link made inside the task" => (secret.clone(), false, "link"),
                _ => (secret.clone(), false, "open"),
            };
            assert_eq!(deny["op"], op, "{what}: {deny}");
            assert_eq!(
                deny["target"], checked,
                "{what}: the resolved path is reported"
            );
            if by_identity {
                assert_eq!(deny["matched_by"], "identity (device, inode)", "{what}");
            }
            assert_eq!(out.lifecycle("task_end")["reason"], "exited", "{what}");
            continue;
        }
        assert_eq!(
            out.code,
            Some(137),
            "{what}: the task must be killed; stdout {:?} stderr {}",
            out.stdout,
            out.stderr
        );
        assert_eq!(
            out.probe_said(),
            "",
            "{what}: the probe must not get to report"
        );
        let kill = out
            .events("open", "kill")
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{what}: no kill event:\n{}", out.dump()));
        assert_common_fields(kill);
        assert_eq!(
            kill["rule"],
            format!("files.deny[0] \"{secret}\""),
            "{what}"
        );
        assert_eq!(kill["enforced_by"], "kill", "{what}");
        assert_eq!(kill["matched_by"], "identity (device, inode)", "{what}");
        assert!(
            kill["target"]
                .as_str()
                .unwrap_or("")
                .ends_with(target.rsplit('/').next().unwrap_or("")),
            "{what}: {kill}"
        );
        assert_eq!(
            out.lifecycle("task_end")["reason"],
            "kill-on-violation",
            "{what}"
        );
    }
}

#[test]
fn connect_is_denied_over_ipv4_ipv6_and_ipv4_mapped_ipv6() {
    if !require_root("connect_is_denied_over_ipv4_ipv6_and_ipv4_mapped_ipv6") {
        return;
    }
    let s = Scratch::new("connect");
    let allowed = TcpListener::bind("127.0.0.1:0").expect("listener");
    let other = TcpListener::bind("127.0.0.1:0").expect("listener");
    let v6 = TcpListener::bind("[::1]:0").expect("v6 listener");
    let (ap, op, v6p) = (
        allowed.local_addr().unwrap().port(),
        other.local_addr().unwrap().port(),
        v6.local_addr().unwrap().port(),
    );
    let mut p = policy(&s);
    p.connect.push(format!("127.0.0.1:{ap}"));

    let ok = run(
        &s,
        &p,
        &[],
        &[&probe(), "connect", &format!("127.0.0.1:{ap}")],
    );
    assert_eq!(ok.probe_said(), "ok", "{}", ok.stderr);
    let e = ok.event("connect", "allow", &format!("127.0.0.1:{ap}"));
    assert_eq!(e["rule"], format!("network.connect[0] \"127.0.0.1:{ap}\""));

    for (sub, addr, target, family) in [
        (
            "connect",
            format!("127.0.0.1:{op}"),
            format!("127.0.0.1:{op}"),
            "inet",
        ),
        (
            "connect",
            format!("[::1]:{v6p}"),
            format!("[::1]:{v6p}"),
            "inet6",
        ),
        (
            "connect-mapped",
            format!("127.0.0.1:{op}"),
            format!("127.0.0.1:{op}"),
            "inet6",
        ),
    ] {
        let out = run(&s, &p, &[], &[&probe(), sub, &addr]);
        assert_eq!(
            out.probe_said(),
            "err EPERM (1)",
            "{sub} {addr}: {}",
            out.stderr
        );
        let e = out.event("connect", "deny", &target);
        assert_common_fields(e);
        assert_eq!(e["errno"], "EPERM");
        assert_eq!(e["enforced_by"], "cgroup");
        assert_eq!(e["family"], family);
        assert_eq!(e["rule"], "default deny (no rule allows it)");
    }

    // An IPv4 rule also admits the same address reached IPv4-mapped from an IPv6 socket.
    let mapped = run(
        &s,
        &p,
        &[],
        &[&probe(), "connect-mapped", &format!("127.0.0.1:{ap}")],
    );
    assert_eq!(mapped.probe_said(), "ok", "{}", mapped.stderr);
    mapped.event("connect", "allow", &format!("127.0.0.1:{ap}"));
}

#[test]
fn udp_sendto_without_connect_is_denied() {
    if !require_root("udp_sendto_without_connect_is_denied") {
        return;
    }
    let s = Scratch::new("udp");
    let denied = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let allowed = UdpSocket::bind("127.0.0.1:0").expect("udp");
    allowed
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (dp, ap) = (
        denied.local_addr().unwrap().port(),
        allowed.local_addr().unwrap().port(),
    );
    let mut p = policy(&s);
    p.connect.push(format!("127.0.0.1:{ap}"));

    let out = run(
        &s,
        &p,
        &[],
        &[&probe(), "sendto", &format!("127.0.0.1:{dp}")],
    );
    assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.stderr);
    let e = out.event("sendmsg", "deny", &format!("127.0.0.1:{dp}"));
    assert_eq!(e["enforced_by"], "cgroup");
    denied.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 16];
    assert!(
        denied.recv(&mut buf).is_err(),
        "the denied datagram must not arrive"
    );

    let out = run(
        &s,
        &p,
        &[],
        &[&probe(), "sendto", &format!("127.0.0.1:{ap}")],
    );
    assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
    let n = allowed
        .recv(&mut buf)
        .expect("the allowed datagram arrives");
    assert_eq!(&buf[..n], b"probe");
}

#[test]
fn children_and_grandchildren_inherit_the_envelope() {
    if !require_root("children_and_grandchildren_inherit_the_envelope") {
        return;
    }
    let s = Scratch::new("children");
    let target = s.path("outside/secret.txt");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().unwrap().port();
    let p = policy(&s);
    let pr = probe();
    let out = run(
        &s,
        &p,
        &[],
        &[&pr, "spawn", &pr, "spawn", &pr, "read", &target],
    );
    assert_eq!(out.probe_said(), mode().refused(), "{}", out.stderr);
    let denial = out.event("open", "deny", &target);
    let execs = out.events("exec", "allow");
    assert_eq!(execs.len(), 3, "{}", out.dump());
    let top = &execs[0]["pid"];
    assert_ne!(&denial["pid"], top, "the denial comes from the grandchild");
    assert_eq!(denial["pid"], execs[2]["pid"]);

    let out = run(
        &s,
        &p,
        &[],
        &[
            &pr,
            "spawn",
            &pr,
            "spawn",
            &pr,
            "connect",
            &format!("127.0.0.1:{port}"),
        ],
    );
    assert_eq!(out.probe_said(), "err EPERM (1)");
    out.event("connect", "deny", &format!("127.0.0.1:{port}"));
    drop(listener);
}

#[test]
fn io_uring_is_refused_in_fallback_mode() {
    if !require_root("io_uring_is_refused_in_fallback_mode") {
        return;
    }
    let s = Scratch::new("io-uring");
    let out = run(&s, &policy(&s), &[], &[&probe(), "io-uring"]);
    assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.stderr);
    let e = out.event("io_uring", "deny", "io_uring_setup");
    assert_eq!(e["enforced_by"], "seccomp");

    let mut allowed = policy(&s);
    allowed.extra_meta.push("allow_io_uring = true".into());
    let out = run(&s, &allowed, &[], &[&probe(), "io-uring"]);
    assert_ne!(
        out.probe_said(),
        "err EPERM (1)",
        "allow_io_uring lifts the refusal"
    );
    assert!(out.events("io_uring", "deny").is_empty());
}

#[test]
fn audit_mode_denies_nothing_and_reports_what_it_would_have() {
    if !require_root("audit_mode_denies_nothing_and_reports_what_it_would_have") {
        return;
    }
    let s = Scratch::new("audit");
    let mut p = policy(&s);
    p.mode = "audit";
    let target = s.path("outside/secret.txt");
    let out = run(&s, &p, &[], &[&probe(), "read", &target]);
    assert_eq!(out.probe_said(), "ok", "{}", out.stderr);
    let e = out.event("open", "audit", &target);
    assert_common_fields(e);
    assert_eq!(e["rule"], "default deny (no rule allows it)");

    let out = run(&s, &p, &[], &[&probe(), "exec", "/usr/bin/true"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.event("exec", "audit", &mode().reported("/usr/bin/true"));

    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().unwrap().port();
    let out = run(
        &s,
        &p,
        &[],
        &[&probe(), "connect", &format!("127.0.0.1:{port}")],
    );
    assert_eq!(out.probe_said(), "ok");
    out.event("connect", "audit", &format!("127.0.0.1:{port}"));
    let mut conn = listener
        .accept()
        .expect("the audited connect went through")
        .0;
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
}

/// After a kill-on-violation the whole task is condemned: whatever any of its processes tries
/// next dies at once, before userspace's cgroup.kill even lands.
#[test]
fn after_a_violation_the_rest_of_the_task_can_do_nothing_more() {
    if !require_root("after_a_violation_the_rest_of_the_task_can_do_nothing_more") {
        return;
    }
    let s = Scratch::new("condemned");
    let secret = s.path("ws/.env");
    fs::write(&secret, "API_KEY=hunter2\n").expect("secret");
    let mut p = policy(&s);
    p.deny.push(secret.clone());
    p.exec.push("/bin/sh".into());
    let pr = probe();
    let script = format!("{pr} read {secret}; {pr} write {}", s.path("ws/out/after"));
    let out = run(&s, &p, &[], &["/bin/sh", "-c", &script]);
    if mode().is_lsm() {
        // lsm mode refuses the read itself; the task goes on with what it may do.
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let e = out.event("open", "deny", &secret);
        assert_eq!(e["enforced_by"], "lsm");
        assert!(std::path::Path::new(&s.path("ws/out/after")).exists());
        assert_eq!(
            out.stdout.lines().collect::<Vec<_>>(),
            ["err EPERM (1)", "ok"]
        );
        assert_eq!(out.lifecycle("task_end")["reason"], "exited");
        return;
    }
    assert_eq!(out.code, Some(137), "{}", out.stderr);
    out.event("open", "kill", &secret);
    assert!(
        !std::path::Path::new(&s.path("ws/out/after")).exists(),
        "the sibling wrote after the kill"
    );
    assert_eq!(
        out.probe_said(),
        "",
        "no probe got to report: {:?}",
        out.stdout
    );
    assert_eq!(out.lifecycle("task_end")["reason"], "kill-on-violation");
}

/// A lost event is never silent: with the ring forced to overflow, every denial is either
/// written or counted as dropped, exactly, and an `events_dropped` event says so.
#[test]
fn ring_overflow_is_counted_exactly() {
    if !require_root("ring_overflow_is_counted_exactly") {
        return;
    }
    let s = Scratch::new("overflow");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .unwrap()
        .port();
    let out = run(
        &s,
        &policy(&s),
        &["--ring-bytes", "4096"],
        &[
            &probe(),
            "connect-flood",
            &format!("127.0.0.1:{port}"),
            "20000",
        ],
    );
    assert_eq!(out.probe_said(), "refused 20000", "{}", out.stderr);
    let end = out.lifecycle("task_end");
    let denials = end["counters"]["denials"].as_u64().unwrap_or(0);
    let dropped = end["events_dropped"].as_u64().unwrap_or(0);
    let written = out
        .events
        .iter()
        .filter(|e| e["decision"] == "deny")
        .count() as u64;
    assert!(
        dropped > 0,
        "a one-page ring must overflow under 20000 denials"
    );
    assert_eq!(
        written + dropped,
        denials,
        "written {written} + dropped {dropped} != {denials}"
    );
    let reported: u64 = out
        .events
        .iter()
        .filter(|e| e["op"] == "events_dropped")
        .filter_map(|e| e["dropped"].as_u64())
        .sum();
    assert_eq!(
        reported, dropped,
        "events_dropped events account for every drop"
    );
}

/// `--format ocsf`: every event is a valid OCSF 1.8 event of its class, blocks carry
/// action_id 2 / disposition_id 2 and the policy, and sequence numbers run 1, 2, 3... with no
/// gap. The native format numbers its events the same way.
#[test]
fn events_in_ocsf_validate_and_are_numbered_without_gaps() {
    if !require_root("events_in_ocsf_validate_and_are_numbered_without_gaps") {
        return;
    }
    let s = Scratch::new("ocsf");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .unwrap()
        .port();
    let secret = s.path("outside/secret.txt");
    let pr = probe();
    let script_args = [&pr, "spawn", &pr, "read", &secret];
    let out = run(&s, &policy(&s), &["--format", "ocsf"], &script_args);
    assert_eq!(out.probe_said(), mode().refused(), "{}", out.stderr);
    assert!(out.events.len() >= 4, "{}", out.dump());
    for (i, e) in out.events.iter().enumerate() {
        let problems = enforcer::events::ocsf::validate(e);
        assert!(problems.is_empty(), "{problems:?} in {e}");
        assert_eq!(
            e["metadata"]["sequence"],
            i as u64 + 1,
            "sequence gap at {e}"
        );
        assert_eq!(e["metadata"]["version"], "1.8.0");
        assert_eq!(e["unmapped"]["task"], "it");
        assert_eq!(e["unmapped"]["intent"], "integration test");
    }
    let denied = out
        .events
        .iter()
        .find(|e| e["class_uid"] == 1001 && e["file"]["path"] == secret.as_str())
        .unwrap_or_else(|| panic!("no File System Activity for the denial:\n{}", out.dump()));
    assert_eq!(denied["action_id"], 2);
    assert_eq!(denied["disposition_id"], 2);
    assert_eq!(denied["policy"]["name"], "it");
    assert_eq!(denied["policy"]["uid"].as_str().map(str::len), Some(64));
    assert_eq!(denied["unmapped"]["errno"], mode().errno());

    let out = run(
        &s,
        &policy(&s),
        &["--format", "ocsf"],
        &[&pr, "connect", &format!("127.0.0.1:{port}")],
    );
    let refused = out
        .events
        .iter()
        .find(|e| e["class_uid"] == 4001)
        .unwrap_or_else(|| panic!("no Network Activity:\n{}", out.dump()));
    assert_eq!(refused["activity_id"], 5, "Refuse");
    assert_eq!(refused["dst_endpoint"]["port"], port);

    let native = run(&s, &policy(&s), &[], &[&pr, "read", &secret]);
    let seqs: Vec<u64> = native
        .events
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=native.events.len() as u64).collect::<Vec<_>>());
    assert!(
        native
            .events
            .iter()
            .all(|e| e["boot_id"] == native.events[0]["boot_id"])
    );
}
