//! The attack suite, sockets: datagrams to unix socket paths. (The rest is in attacks.rs.)
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
