//! The attack suite, channels: ICMP ping sockets, address families no hook sees, datagrams to
//! unix socket paths, inbound binds and listens, System V IPC and extended attributes shared
//! with outside processes. (The rest is in attacks.rs.)
use std::{os::unix::net::UnixDatagram, time::Duration};

use enforcer_tests::{PolicyBuilder, Scratch, mode, probe, require_root, run};

#[test]
fn datagrams_to_a_unix_socket_path_need_a_rule() {
    if !require_root("datagrams_to_a_unix_socket_path_need_a_rule") {
        return;
    }
    let s = Scratch::new("unix-dgram");
    let path = s.path("outside/sink.sock");
    let sink = UnixDatagram::bind(&path).expect("bind the outside socket");
    sink.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let p = PolicyBuilder::default();
    let out = run(&s, &p, &[], &[&probe(), "unix-sendto", &path]);
    if mode().is_lsm() {
        assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.dump());
        let e = out.event("sendmsg", "deny", &path);
        assert_eq!(e["checked_by"], "socket_sendmsg");
        assert!(sink.recv(&mut buf).is_err(), "the datagram arrived");
    } else {
        // Fallback mode cannot restrict unix sockets by path: declared, and so it arrives.
        let start = out.lifecycle("task_start");
        assert!(
            start
                .to_string()
                .contains("unix-socket connects and datagrams by path"),
            "{start}"
        );
        assert_eq!(out.probe_said(), "ok");
        assert!(sink.recv(&mut buf).is_ok(), "the datagram did not arrive");
    }
    // With a rule for the path, it is sent in both modes.
    let mut p = PolicyBuilder::default();
    p.unix.push(path.clone());
    let out = run(&s, &p, &[], &[&probe(), "unix-sendto", &path]);
    assert_eq!(out.probe_said(), "ok", "{}", out.dump());
    let n = sink.recv(&mut buf).expect("the allowed datagram");
    assert_eq!(&buf[..n], b"exfiltrated");
}

#[test]
fn ping_sockets_and_other_address_families_are_refused_with_an_event() {
    if !require_root("ping_sockets_and_other_address_families_are_refused_with_an_event") {
        return;
    }
    let s = Scratch::new("sockets");
    let mut p = PolicyBuilder::default();
    // The probe runs each attempt as a child of itself: one task for all of them.
    p.read.push(probe());
    let n = |v: i32| v.to_string();
    let cases = [
        // (family, type, protocol, answer, target)
        (
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::IPPROTO_ICMP,
            "err EPERM (1)",
            "icmp or raw socket",
        ),
        (
            libc::AF_INET6,
            libc::SOCK_DGRAM,
            libc::IPPROTO_ICMPV6,
            "err EPERM (1)",
            "icmp or raw socket",
        ),
        (
            libc::AF_VSOCK,
            libc::SOCK_STREAM,
            0,
            "err EAFNOSUPPORT (97)",
            "address family",
        ),
        (
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            0,
            "err EAFNOSUPPORT (97)",
            "address family",
        ),
    ];
    let me = probe();
    let mut args: Vec<String> = vec![me.clone(), "each".into()];
    for (family, kind, protocol, _, _) in cases {
        args.extend([
            "socket".into(),
            n(family),
            n(kind),
            n(protocol),
            ";;".into(),
        ]);
    }
    // Ordinary sockets still work.
    args.extend([
        "socket".into(),
        n(libc::AF_INET),
        n(libc::SOCK_DGRAM),
        "0".into(),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&s, &p, &[], &argv);
    let verdicts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(verdicts.len(), cases.len() + 1, "{}", out.stdout);
    for (i, (_, _, _, answer, target)) in cases.iter().enumerate() {
        assert_eq!(verdicts[i], *answer, "case {i}: {}", out.dump());
        let e = out.event("socket", "deny", target);
        assert_eq!(e["enforced_by"], "seccomp");
    }
    assert_eq!(verdicts[cases.len()], "ok", "an ordinary socket");
    assert_eq!(
        out.events("socket", "deny").len(),
        cases.len(),
        "{}",
        out.dump()
    );
}

#[test]
fn inbound_binds_and_listens_need_a_listen_rule() {
    if !require_root("inbound_binds_and_listens_need_a_listen_rule") {
        return;
    }
    let s = Scratch::new("listen");
    let allowed = "127.0.0.1:47011";
    let mut p = PolicyBuilder::default();
    p.read.push(probe());
    p.listen.push(allowed.into());
    let cases = [
        // (kind, address, answer, the refused event's op)
        ("tcp", allowed, "ok", None),
        // All interfaces is more than loopback; another port; UDP; the other family.
        ("tcp", "0.0.0.0:47011", "err EPERM (1)", Some("bind")),
        ("tcp", "127.0.0.1:47012", "err EPERM (1)", Some("bind")),
        ("udp", "127.0.0.1:47013", "err EPERM (1)", Some("bind")),
        ("tcp", "[::1]:47011", "err EPERM (1)", Some("bind")),
    ];
    let mut args: Vec<String> = vec![probe(), "each".into()];
    for (kind, addr, _, _) in cases {
        args.extend(["listen".into(), kind.into(), addr.into(), ";;".into()]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&s, &p, &[], &argv);
    let verdicts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(verdicts.len(), cases.len(), "{}", out.dump());
    for (i, (_, addr, answer, op)) in cases.iter().enumerate() {
        assert_eq!(verdicts[i], *answer, "case {i} ({addr}): {}", out.dump());
        if let Some(op) = op {
            let e = out.event(op, "deny", addr);
            assert_eq!(e["enforced_by"], "cgroup", "{e}");
            assert_eq!(e["access"], "listen", "{e}");
        }
    }

    // A listen with no bind: the kernel picks the port, and no bind hook sees it.
    let out = run(
        &s,
        &p,
        &[],
        &[&probe(), "listen", "tcp-nobind", "127.0.0.1:0"],
    );
    if mode().is_lsm() {
        assert_eq!(out.probe_said(), "err EPERM (1)", "{}", out.dump());
        let e = out.event("listen", "deny", "0.0.0.0:0");
        assert_eq!(e["enforced_by"], "lsm", "{e}");
    } else {
        // Fallback mode cannot refuse it: the listen kills the task, with the event.
        assert_eq!(out.code, Some(137), "{}", out.dump());
        let e = out.event("listen", "kill", "0.0.0.0:0");
        assert_eq!(e["enforced_by"], "kill", "{e}");
    }
}

#[test]
fn outside_ipc_and_extended_attributes_are_out_of_reach() {
    if !require_root("outside_ipc_and_extended_attributes_are_out_of_reach") {
        return;
    }
    let s = Scratch::new("ipc-xattr");
    // A System V shared memory segment of an outside process (same uid), by its id.
    // SAFETY: plain syscalls; the segment is removed below.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    // A file the task may read, with an ACL-like attribute an attacker would set.
    let file = s.path("ws/readme");
    std::fs::write(&file, "hello\n").expect("file");
    let mut p = PolicyBuilder::default();
    p.read.push(probe());
    p.read.push(format!("{}/", s.ws()));
    let me = probe();
    let id_text = id.to_string();
    let out = run(
        &s,
        &p,
        &[],
        &[&me, "each", "shmat", &id_text, ";;", "setxattr", &file],
    );
    // SAFETY: our own segment.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    let verdicts: Vec<&str> = out.stdout.lines().collect();
    // The task has its own IPC namespace: the outside id names nothing there.
    assert_eq!(verdicts.first(), Some(&"err EINVAL (22)"), "{}", out.dump());
    assert_eq!(verdicts.get(1), Some(&"err EPERM (1)"), "{}", out.dump());
    let e = out.event("syscall", "deny", "setxattr");
    assert_eq!(e["enforced_by"], "seccomp", "{e}");
    assert!(
        std::fs::read_dir(s.ws()).is_ok() && xattr_absent(&file),
        "the attribute was set"
    );
}

fn xattr_absent(path: &str) -> bool {
    let c = std::ffi::CString::new(path).expect("path");
    let name = c"user.enforcer-test";
    let mut buf = [0u8; 16];
    // SAFETY: NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n < 0
}

#[test]
fn abstract_unix_sockets_of_outside_processes_are_out_of_reach() {
    use std::os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram, UnixListener},
    };
    if !require_root("abstract_unix_sockets_of_outside_processes_are_out_of_reach") {
        return;
    }
    let s = Scratch::new("abstract");
    let stream = format!("enforcer-it-{}-stream", std::process::id());
    let dgram = format!("enforcer-it-{}-dgram", std::process::id());
    let abstract_addr = |n: &str| SocketAddr::from_abstract_name(n.as_bytes()).expect("name");
    let _listener = UnixListener::bind_addr(&abstract_addr(&stream)).expect("outside listener");
    let sink = UnixDatagram::bind_addr(&abstract_addr(&dgram)).expect("outside sink");
    sink.set_nonblocking(true).expect("nonblocking");
    let mut p = PolicyBuilder::default();
    p.read.push(probe());
    let me = probe();
    let own = format!("enforcer-it-{}-own", std::process::id());
    let argv = [
        me.as_str(),
        "each",
        "unix-abstract",
        "stream",
        &stream,
        ";;",
        "unix-abstract",
        "dgram",
        &dgram,
        ";;",
        "unix-abstract",
        "self",
        &own,
    ];
    let out = run(&s, &p, &[], &argv);
    let verdicts: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(verdicts.len(), 3, "{}", out.dump());
    // Its own abstract sockets stay usable.
    assert_eq!(verdicts[2], "ok", "{}", out.dump());
    let mut buf = [0u8; 32];
    let abi = enforcer::kernel::landlock::abi_version();
    if mode().is_lsm() {
        assert_eq!(verdicts[..2], ["err EPERM (1)"; 2], "{}", out.dump());
        let e = out.event("connect", "deny", &format!("@{stream}"));
        assert_eq!(e["checked_by"], "unix_stream_connect", "{e}");
        let e = out.event("sendmsg", "deny", &format!("@{dgram}"));
        assert_eq!(e["checked_by"], "unix_may_send", "{e}");
        assert!(sink.recv(&mut buf).is_err(), "the datagram arrived");
        return;
    }
    let start = out.lifecycle("task_start").to_string();
    assert!(
        start.contains("abstract unix sockets of processes outside"),
        "{start}"
    );
    if abi >= 6 {
        assert_eq!(verdicts[..2], ["err EPERM (1)"; 2], "{}", out.dump());
        assert!(sink.recv(&mut buf).is_err(), "the datagram arrived");
    } else {
        eprintln!(
            "SKIP abstract_unix_sockets_of_outside_processes_are_out_of_reach: fallback mode \
             with Landlock ABI {abi} (< 6) cannot scope abstract sockets; declared"
        );
    }
}
