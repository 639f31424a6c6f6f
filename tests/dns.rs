//! The enforcer's upstream DNS client against a real resolver (dnsmasq on loopback, with a
//! local zone): answers, CNAME chains, truncation and TCP, a resolver that is down.
use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use enforcer::dns::{name::Name, upstream, wire};
use enforcer_tests::Scratch;

/// dnsmasq serving a local zone on 127.0.0.1:<port>, its queries logged to a file.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Dnsmasq {
    /// `None` (said loudly) when dnsmasq is not installed.
    fn start(s: &Scratch, test: &str, zone: &[&str]) -> Option<Self> {
        if Command::new("dnsmasq").arg("--version").output().is_err() {
            eprintln!(
                "SKIP {test}: dnsmasq is not installed (scripts/setup.sh installs dnsmasq-base)"
            );
            return None;
        }
        let port = free_udp_port();
        let log = s.dir.join("dnsmasq.log");
        let mut c = Command::new("dnsmasq");
        c.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--log-queries",
            "--local-ttl=30",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--log-facility={}", log.display()))
        .arg(format!(
            "--pid-file={}",
            s.dir.join("dnsmasq.pid").display()
        ))
        .args(zone)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: trivial syscall.
        if unsafe { libc::geteuid() } == 0 {
            c.arg("--user=root");
        }
        let child = c.spawn().expect("dnsmasq");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = Self { child, addr, log };
        // Ready when it answers.
        let t = Instant::now();
        let probe = Name::parse("ready.invalid").unwrap();
        while rt()
            .block_on(upstream::ask(
                &[addr],
                &probe,
                wire::TYPE_A,
                Duration::from_millis(100),
            ))
            .is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "dnsmasq did not start"
            );
        }
        Some(d)
    }

    fn queries(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ask(
    at: &[SocketAddr],
    name: &str,
    qtype: u16,
) -> Result<wire::Response, upstream::UpstreamError> {
    rt().block_on(upstream::ask(
        at,
        &Name::parse(name).unwrap(),
        qtype,
        Duration::from_secs(2),
    ))
}

#[test]
fn answers_and_cname_chains_come_from_the_upstream() {
    let s = Scratch::new("dns-answers");
    let Some(d) = Dnsmasq::start(
        &s,
        "answers_and_cname_chains_come_from_the_upstream",
        &[
            "--host-record=api.allowed.test,192.0.2.10,2001:db8::10",
            "--cname=alias.allowed.test,api.allowed.test",
        ],
    ) else {
        return;
    };
    let a = ask(&[d.addr], "API.allowed.test", wire::TYPE_A).expect("answer");
    assert_eq!(a.rcode, 0);
    let chain = wire::chain(&Name::parse("api.allowed.test").unwrap(), &a.records);
    assert_eq!(chain.addrs, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
    assert!(chain.ttl > 0);
    let aaaa = ask(&[d.addr], "api.allowed.test", wire::TYPE_AAAA).expect("answer");
    let chain = wire::chain(&Name::parse("api.allowed.test").unwrap(), &aaaa.records);
    assert_eq!(chain.addrs, vec!["2001:db8::10".parse::<IpAddr>().unwrap()]);
    let alias = ask(&[d.addr], "alias.allowed.test", wire::TYPE_A).expect("answer");
    let chain = wire::chain(&Name::parse("alias.allowed.test").unwrap(), &alias.records);
    assert_eq!(
        chain.names.iter().map(Name::as_str).collect::<Vec<_>>(),
        ["alias.allowed.test", "api.allowed.test"]
    );
    assert_eq!(chain.addrs, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
    // A name the zone does not have: NXDOMAIN (dnsmasq is authoritative-only here).
    let none = ask(&[d.addr], "missing.allowed.test", wire::TYPE_A).expect("answer");
    assert!(none.records.is_empty());
    // The upstream saw exactly the names asked, lowercased.
    let log = d.queries();
    assert!(log.contains("query[A] api.allowed.test"), "{log}");
    assert!(log.contains("query[AAAA] api.allowed.test"), "{log}");
}

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let s = Scratch::new("dns-tcp");
    let many: Vec<String> = (1..=60)
        .map(|i| {
            format!(
                "--host-record=many.allowed.test,10.0.{}.{}",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    let zone: Vec<&str> = many.iter().map(String::as_str).collect();
    let Some(d) = Dnsmasq::start(&s, "a_truncated_answer_is_asked_again_over_tcp", &zone) else {
        return;
    };
    let a = ask(&[d.addr], "many.allowed.test", wire::TYPE_A).expect("answer");
    assert!(!a.truncated, "the TCP answer is whole");
    let chain = wire::chain(&Name::parse("many.allowed.test").unwrap(), &a.records);
    assert_eq!(chain.addrs.len(), 60);
    let log = d.queries();
    assert!(
        log.matches("query[A] many.allowed.test").count() >= 2,
        "UDP then TCP: {log}"
    );
}

#[test]
fn a_resolver_that_is_down_is_said_and_the_next_one_asked() {
    let s = Scratch::new("dns-down");
    let Some(d) = Dnsmasq::start(
        &s,
        "a_resolver_that_is_down_is_said_and_the_next_one_asked",
        &["--host-record=api.allowed.test,192.0.2.10"],
    ) else {
        return;
    };
    let down: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let err = ask(&[down], "api.allowed.test", wire::TYPE_A).expect_err("down");
    assert!(err.to_string().contains(&down.to_string()), "{err}");
    let a = ask(&[down, d.addr], "api.allowed.test", wire::TYPE_A).expect("the second answers");
    assert_eq!(a.records.len(), 1);
    assert!(matches!(
        ask(&[], "api.allowed.test", wire::TYPE_A),
        Err(upstream::UpstreamError::NoneConfigured)
    ));
}
