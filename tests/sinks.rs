//! The daemon's sinks with real receivers on loopback: an HTTP receiver (plain JSON lines and
//! Splunk HEC) through an outage and a daemon restart, rsyslog over UDP and TCP, and a file
//! sink rotated by size and reopened on SIGHUP. Each checks the kernel's answer (the connects
//! refused with EPERM) and what arrived, by sequence numbers.
use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use enforcer_tests::{
    PolicyBuilder, Scratch, complete_lines, daemon::Daemon, enforcer, probe, require_root,
};
use serde_json::Value;

/// One POST as the receiver got it: its head and its (decompressed) body.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// An HTTP receiver on loopback that answers 200 to every POST.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(mut s: impl std::io::Read + std::io::Write) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let split = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())?;
    let mut body = buf[split + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if head.contains("Content-Encoding: gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .ok()?;
        body = out;
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    Some(Request { head, body })
}

impl Receiver {
    /// Listens on `port` (0: any) and keeps what it was sent in `got`.
    fn start(port: u16, got: Arc<Mutex<Vec<Request>>>) -> Self {
        Self::start_with(port, got, None)
    }

    /// The same over TLS, with this server configuration.
    fn start_with(
        port: u16,
        got: Arc<Mutex<Vec<Request>>>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, got2) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        let r = match &tls {
                            None => read_request(s),
                            Some(cfg) => rustls::ServerConnection::new(cfg.clone())
                                .ok()
                                .and_then(|c| read_request(rustls::StreamOwned::new(c, s))),
                        };
                        if let Some(r) = r {
                            got2.lock().unwrap().push(r);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Closes the listener: from now on connects are refused.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Every event received, in order (JSON lines, or concatenated HEC objects).
    fn events(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .flat_map(|r| {
                serde_json::Deserializer::from_slice(&r.body)
                    .into_iter::<Value>()
                    .map(|v| v.expect("the receiver got JSON"))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a task of `n` connects to a port the policy does not allow; the kernel refuses each.
fn denials(d: &Daemon, n: u32) {
    let out = Command::new(enforcer())
        .args(["run", "--task", "agent", "--socket", &d.socket(), "--"])
        .args([&probe(), "connect-flood", "127.0.0.1:9", &n.to_string()])
        .output()
        .expect("enforcer run");
    // Every connect refused with EPERM, the cgroup program's answer.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim() == format!("refused {n}"),
        "{out:?}"
    );
}

/// The deny events of the daemon's own unfiltered file, by instance (`seq_id`): their `seq`s.
fn denials_written(d: &Daemon) -> BTreeMap<String, Vec<u64>> {
    let mut by = BTreeMap::<String, Vec<u64>>::new();
    for e in d.events() {
        if e["decision"] == "deny" {
            assert_eq!(e["op"], "connect", "{e}");
            assert_eq!(e["errno"], "EPERM", "{e}");
            by.entry(e["seq_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["seq"].as_u64().unwrap());
        }
    }
    by
}

fn agent(d: &Daemon) {
    let mut p = PolicyBuilder::default();
    // The Rust runtime reads /proc/self/maps at start.
    p.read.push("/proc/".into());
    d.policy("agent", &p);
    d.cli(&["reload"]);
}

#[test]
fn an_http_sink_delivers_every_denial_once_in_order_through_an_outage_and_a_restart() {
    if !require_root(
        "an_http_sink_delivers_every_denial_once_in_order_through_an_outage_and_a_restart",
    ) {
        return;
    }
    let s = Scratch::new("sink-http");
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut rx = Receiver::start(0, got.clone());
    let port = rx.port;
    let mut d = Daemon::start(
        &s,
        "sinkhttp",
        &format!(
            "[[sink]]\nname = \"siem\"\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/ingest\"\n\
             gzip = true\nbatch = 7\n[sink.filter]\ndecision = [\"deny\"]\n"
        ),
    );
    agent(&d);

    // Up: delivered as they happen.
    denials(&d, 20);
    wait_for("20 events at the receiver", 30, || rx.events().len() >= 20);
    assert!(
        got.lock().unwrap()[0]
            .head
            .contains("Content-Encoding: gzip")
    );

    // Down: kept in the spool, said in the status, across a daemon restart.
    rx.stop();
    denials(&d, 30);
    wait_for("the sink to see the receiver down", 30, || {
        let st: Value =
            serde_json::from_slice(&d.cli(&["status", "--json"]).stdout).unwrap_or_default();
        st["sinks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["name"] == "siem" && k["state"]["receiver_down"] == true)
    });
    d.stop();
    d.spawn();
    denials(&d, 10);
    assert_eq!(
        rx.events().len(),
        20,
        "nothing arrives while the receiver is down"
    );

    // Back: everything, once, in order.
    let _rx = Receiver::start(port, got.clone());
    wait_for("60 events at the receiver", 60, || rx.events().len() >= 60);
    std::thread::sleep(Duration::from_millis(500));
    let received = rx.events();
    assert_eq!(received.len(), 60, "no duplicates");
    let written = denials_written(&d);
    assert_eq!(written.len(), 2, "two daemon instances: {written:?}");
    let mut instances: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in &received {
        assert_eq!(e["decision"], "deny");
        assert_eq!(e["sink"], "siem");
        let id = e["seq_id"].as_str().unwrap().to_owned();
        if instances.last() != Some(&id) {
            assert!(!instances.contains(&id), "instances interleaved");
            instances.push(id.clone());
        }
        by.entry(id).or_default().push(e);
    }
    for (id, events) in &by {
        let sink_seqs: Vec<u64> = events
            .iter()
            .map(|e| e["sink_seq"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(
            sink_seqs, expected,
            "sink_seq of {id} has a gap or a repeat"
        );
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            Some(&seqs),
            written.get(id),
            "the receiver's denials are exactly the ones the daemon wrote"
        );
    }
    assert_eq!(by[&instances[0]].len(), 50);
    assert_eq!(by[&instances[1]].len(), 10);
}

#[test]
fn a_hec_sink_sends_envelopes_with_its_token() {
    if !require_root("a_hec_sink_sends_envelopes_with_its_token") {
        return;
    }
    let s = Scratch::new("sink-hec");
    let got = Arc::new(Mutex::new(Vec::new()));
    let rx = Receiver::start(0, got.clone());
    let d = Daemon::start(
        &s,
        "sinkhec",
        &format!(
            "[[sink]]\nname = \"splunk\"\ntype = \"http\"\n\
             url = \"http://127.0.0.1:{}/services/collector/event\"\nhec_token = \"t0k\"\n\
             format = \"ocsf\"\n[sink.filter]\ndecision = [\"deny\"]\n",
            rx.port
        ),
    );
    agent(&d);
    denials(&d, 3);
    wait_for("3 HEC events", 30, || rx.events().len() >= 3);
    let head = got.lock().unwrap()[0].head.clone();
    assert!(head.starts_with("POST /services/collector/event HTTP/1.1"));
    assert!(head.contains("Authorization: Splunk t0k"), "{head}");
    for e in rx.events() {
        assert_eq!(e["sourcetype"], "enforcer:ocsf");
        assert_eq!(e["event"]["class_uid"], 4001, "{e}");
        assert_eq!(e["event"]["action_id"], 2);
        assert_eq!(e["event"]["disposition_id"], 2);
        assert_eq!(e["event"]["unmapped"]["sink"], "splunk");
    }
}

/// rsyslogd from Debian's package, listening on loopback UDP and TCP, writing each input's
/// raw messages to its own file.
/// Its own complaints (the readiness probe's plain connect to a TLS port makes one) go to a file
/// that is printed only when the test fails, so a passing run's log has no "error" lines to chase.
struct Rsyslog {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Rsyslog {
    fn spawn(rsyslogd: &str, conf: &Path, dir: &Path) -> Self {
        let stderr = dir.join("rsyslogd.stderr");
        Self {
            child: Command::new(rsyslogd)
                .args(["-n", "-f"])
                .arg(conf)
                .arg("-i")
                .arg(dir.join("rsyslogd.pid"))
                .stderr(fs::File::create(&stderr).expect("rsyslogd stderr file"))
                .spawn()
                .expect("rsyslogd"),
            stderr,
        }
    }

    /// Where Debian's package puts it.
    fn path() -> Option<&'static str> {
        ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let said = fs::read_to_string(&self.stderr).unwrap_or_default();
            eprintln!("rsyslogd's stderr:\n{said}");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn syslog_sinks_reach_rsyslog_over_udp_and_tcp() {
    if !require_root("syslog_sinks_reach_rsyslog_over_udp_and_tcp") {
        return;
    }
    let Some(rsyslogd) = Rsyslog::path() else {
        eprintln!(
            "SKIP syslog_sinks_reach_rsyslog_over_udp_and_tcp: rsyslogd is not installed \
             (scripts/setup.sh installs it)"
        );
        return;
    };
    let s = Scratch::new("sink-syslog");
    let dir = s.dir.join("rsyslog");
    fs::create_dir_all(&dir).unwrap();
    let (udp, tcp) = (free_port(), free_port());
    let conf = dir.join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imudp\")\nmodule(load=\"imtcp\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\" ruleset=\"udp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\" ruleset=\"tcp\")\n\
             ruleset(name=\"udp\") {{ action(type=\"omfile\" file=\"{d}/udp.log\" template=\"raw\") }}\n\
             ruleset(name=\"tcp\") {{ action(type=\"omfile\" file=\"{d}/tcp.log\" template=\"raw\") }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let _rsyslog = Rsyslog::spawn(rsyslogd, &conf, &dir);
    wait_for("rsyslogd listening on TCP", 30, || {
        TcpStream::connect(("127.0.0.1", tcp)).is_ok()
    });
    let d = Daemon::start(
        &s,
        "sinksyslog",
        &format!(
            "[[sink]]\nname = \"udp\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{udp}\"\n\
             [sink.filter]\ndecision = [\"deny\"]\n\
             [[sink]]\nname = \"tcp\"\ntype = \"syslog\"\ntransport = \"tcp\"\n\
             address = \"127.0.0.1:{tcp}\"\nformat = \"ocsf\"\n[sink.filter]\ndecision = [\"deny\"]\n"
        ),
    );
    agent(&d);
    denials(&d, 15);
    let lines = |name: &str| -> Vec<String> {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        complete_lines(&text)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    wait_for("15 messages over TCP and UDP", 30, || {
        lines("tcp.log").len() >= 15 && lines("udp.log").len() >= 15
    });
    for (file, ordered) in [("tcp.log", true), ("udp.log", false)] {
        let got = lines(file);
        assert_eq!(got.len(), 15, "{file}: {got:?}");
        let mut seqs = Vec::new();
        for m in &got {
            // authpriv (10) * 8 + warning (4), version 1.
            assert!(m.starts_with("<84>1 "), "{file}: {m}");
            assert!(m.contains(" enforcer "), "{m}");
            assert!(m.contains("decision=\"deny\""), "{m}");
            let body = m
                .split('\u{feff}')
                .nth(1)
                .expect("a BOM before the JSON body");
            let e: Value = serde_json::from_str(body).expect("the body is the event");
            if file == "tcp.log" {
                assert_eq!(e["class_uid"], 4001, "{e}");
                seqs.push(e["unmapped"]["sink_seq"].as_u64().unwrap());
            } else {
                assert_eq!(e["op"], "connect", "{e}");
                seqs.push(e["sink_seq"].as_u64().unwrap());
            }
        }
        if !ordered {
            seqs.sort_unstable();
        }
        assert_eq!(seqs, (1..=15).collect::<Vec<u64>>(), "{file}");
    }
}

#[test]
fn a_file_sink_rotates_by_size_and_reopens_on_sighup() {
    if !require_root("a_file_sink_rotates_by_size_and_reopens_on_sighup") {
        return;
    }
    let s = Scratch::new("sink-file");
    let file = s.dir.join("out/e.jsonl");
    let d = Daemon::start(
        &s,
        "sinkfile",
        &format!(
            "[[sink]]\nname = \"file\"\ntype = \"file\"\npath = \"{}\"\nmax_bytes = \"4K\"\nkeep = 2\n\
             [sink.filter]\ndecision = [\"deny\"]\n",
            file.display()
        ),
    );
    agent(&d);
    denials(&d, 40);
    let numbered = |n: u32| s.dir.join(format!("out/e.jsonl.{n}"));
    wait_for("rotated files", 30, || numbered(2).exists());
    assert!(!numbered(3).exists(), "keep = 2");
    // The kept files hold the newest events, consecutive, oldest first.
    let read = |p: &Path| -> Vec<Value> {
        let text = fs::read_to_string(p).unwrap_or_default();
        complete_lines(&text)
            .into_iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_for("the 40th denial in the file", 30, || {
        read(&file)
            .last()
            .is_some_and(|e| e["sink_seq"].as_u64() == Some(40))
            || read(&numbered(1))
                .last()
                .is_some_and(|e| e["sink_seq"].as_u64() == Some(40))
    });
    let kept_events: Vec<Value> = [numbered(2), numbered(1), file.clone()]
        .iter()
        .flat_map(|p| read(p))
        .collect();
    let kept: Vec<u64> = kept_events
        .iter()
        .map(|e| e["sink_seq"].as_u64().unwrap())
        .collect();
    let first = kept[0];
    assert_eq!(kept, (first..=40).collect::<Vec<u64>>());
    assert!(first > 1, "older files were dropped by rotation");

    // logrotate's way: move the file, SIGHUP, and the next events go to a new file.
    let moved = s.dir.join("out/moved.jsonl");
    fs::rename(&file, &moved).unwrap();
    let before = read(&moved).len();
    let pid = d.child.as_ref().unwrap().id() as i32;
    // SAFETY: kill(2) of the test's own daemon.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for("the reload after SIGHUP", 30, || d.log().contains("SIGHUP"));
    denials(&d, 1);
    wait_for("the new file", 30, || {
        read(&file)
            .iter()
            .any(|e| e["sink_seq"].as_u64() == Some(41))
    });
    assert_eq!(
        read(&moved).len(),
        before,
        "nothing more went to the moved file"
    );
}

#[test]
fn events_follow_streams_what_it_asked_for_to_admins_only() {
    if !require_root("events_follow_streams_what_it_asked_for_to_admins_only") {
        return;
    }
    let s = Scratch::new("sink-follow");
    let d = Daemon::start(&s, "follow", "");
    agent(&d);
    let follow = |output: &str| {
        Command::new(enforcer())
            .args(["events", "--follow", "--decision", "deny", "-o", output])
            .args(["--socket", &d.socket()])
            .env_remove("NO_COLOR")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("enforcer events")
    };
    let mut json_tail = follow("json");
    let mut compact_tail = follow("compact");
    // Both followers are registered once the daemon lists them.
    wait_for("two followers", 30, || {
        let st: Value =
            serde_json::from_slice(&d.cli(&["status", "--json"]).stdout).unwrap_or_default();
        st["sinks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["name"] == "follow" && k["state"]["clients"] == 2)
    });
    denials(&d, 3);
    let lines = |child: &mut Child| -> Vec<String> {
        let out = child.stdout.take().unwrap();
        let mut r = std::io::BufReader::new(out);
        (0..3)
            .map(|_| {
                let mut l = String::new();
                std::io::BufRead::read_line(&mut r, &mut l).unwrap();
                l
            })
            .collect()
    };
    for l in lines(&mut json_tail) {
        let e: Value = serde_json::from_str(&l).expect("a JSON line");
        assert_eq!(e["decision"], "deny");
        assert_eq!(e["op"], "connect");
        assert_eq!(e["errno"], "EPERM");
    }
    for l in lines(&mut compact_tail) {
        assert!(l.contains(" DENY  connect    127.0.0.1:9 [agent-"), "{l:?}");
        assert!(
            !l.contains('\x1b'),
            "no colour when stdout is not a terminal: {l:?}"
        );
    }
    let _ = json_tail.kill();
    let _ = compact_tail.kill();
    // Not an admin: refused, and nothing else said.
    let mut c = Command::new(enforcer());
    std::os::unix::process::CommandExt::uid(&mut c, 65534);
    fs::set_permissions(&s.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = c
        .args(["events", "--follow", "--socket", &d.socket()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "enforcer: permission denied"
    );
}

#[test]
fn metrics_count_decisions_reloads_and_a_sink_that_is_down() {
    if !require_root("metrics_count_decisions_reloads_and_a_sink_that_is_down") {
        return;
    }
    let s = Scratch::new("sink-metrics");
    let (metrics, closed) = (free_port(), free_port());
    let d = Daemon::start(
        &s,
        "metrics",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [[sink]]\nname = \"down\"\ntype = \"http\"\nurl = \"http://127.0.0.1:{closed}/\"\n"
        ),
    );
    agent(&d);
    denials(&d, 3);
    let get = |path: &str| -> String {
        let mut c = TcpStream::connect(("127.0.0.1", metrics)).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out
    };
    wait_for("the denials counted and the sink down", 30, || {
        let m = get("/metrics");
        m.contains(
            "enforcer_decisions_total{op=\"connect\",decision=\"deny\",policy=\"agent\"} 3\n",
        ) && m.contains("enforcer_sink_receiver_up{sink=\"down\"} 0\n")
            && m.contains("enforcer_tasks_running 0\n")
    });
    let m = get("/metrics");
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
    assert!(m.contains("Content-Type: text/plain; version=0.0.4"), "{m}");
    assert!(
        m.contains(
            "enforcer_decisions_total{op=\"task_end\",decision=\"allow\",policy=\"agent\"} 1\n"
        ),
        "{m}"
    );
    assert!(
        m.contains("enforcer_policy_reloads_total{result=\"applied\"} "),
        "{m}"
    );
    assert!(
        m.contains("enforcer_sink_delivered_total{sink=\"down\"} 0\n"),
        "{m}"
    );
    let spool: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("enforcer_sink_spool_bytes{sink=\"down\"} "))
        .and_then(|v| v.parse().ok())
        .expect("the spool size of the sink that is down");
    assert!(spool > 0, "{m}");
    assert!(get("/").starts_with("HTTP/1.1 404"));
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl;
/// and a second CA that signed none of them.
struct Certs {
    dir: std::path::PathBuf,
}

impl Certs {
    fn make(dir: &Path) -> Option<Self> {
        fs::create_dir_all(dir).unwrap();
        let sh = |script: &str| {
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let q = "-days 2 -nodes -newkey rsa:2048 2>/dev/null";
        let ok = sh(&format!(
            "openssl req -x509 {q} -keyout ca.key -out ca.pem -subj /CN=enforcer-test-ca && \
             openssl req -x509 {q} -keyout other.key -out other.pem -subj /CN=other-ca && \
             openssl req {q} -keyout server.key -out server.csr -subj /CN=127.0.0.1 && \
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
               -out server.pem -days 2 -extfile server.ext 2>/dev/null && \
             openssl req {q} -keyout client.key -out client.csr -subj /CN=enforcer-sink && \
             openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
               -out client.pem -days 2 -extfile client.ext 2>/dev/null"
        ));
        ok.then(|| Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
        let certs: Vec<_> = CertificateDer::pem_file_iter(self.path("server.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        )
    }
}

#[test]
fn an_https_sink_checks_the_receivers_certificate() {
    if !require_root("an_https_sink_checks_the_receivers_certificate") {
        return;
    }
    let s = Scratch::new("sink-https");
    let Some(certs) = Certs::make(&s.dir.join("certs")) else {
        panic!("openssl could not make the test certificates (scripts/setup.sh installs it)");
    };
    let got = Arc::new(Mutex::new(Vec::new()));
    let rx = Receiver::start_with(0, got.clone(), Some(certs.server_config()));
    let d = Daemon::start(
        &s,
        "sinkhttps",
        &format!(
            "[[sink]]\nname = \"good\"\ntype = \"http\"\nurl = \"https://127.0.0.1:{p}/in\"\n\
             ca_file = \"{ca}\"\n[sink.filter]\ndecision = [\"deny\"]\n\
             [[sink]]\nname = \"wrongca\"\ntype = \"http\"\nurl = \"https://127.0.0.1:{p}/in\"\n\
             ca_file = \"{other}\"\n[sink.filter]\ndecision = [\"deny\"]\n",
            p = rx.port,
            ca = certs.path("ca.pem"),
            other = certs.path("other.pem"),
        ),
    );
    agent(&d);
    denials(&d, 4);
    wait_for("4 events over https", 30, || rx.events().len() >= 4);
    wait_for("the sink with the wrong CA to be down", 30, || {
        let st: Value =
            serde_json::from_slice(&d.cli(&["status", "--json"]).stdout).unwrap_or_default();
        st["sinks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|k| k["name"] == "wrongca" && k["state"]["receiver_down"] == true)
    });
    std::thread::sleep(Duration::from_millis(500));
    let events = rx.events();
    assert_eq!(
        events.len(),
        4,
        "only the sink that trusts the CA delivered"
    );
    assert!(events.iter().all(|e| e["sink"] == "good"));
    assert!(
        d.log().contains("sink wrongca:") && d.log().contains("certificate"),
        "{}",
        d.log()
    );
}

#[test]
fn syslog_over_tls_with_a_client_certificate_reaches_rsyslog() {
    if !require_root("syslog_over_tls_with_a_client_certificate_reaches_rsyslog") {
        return;
    }
    let (Some(rsyslogd), true) = (
        Rsyslog::path(),
        Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so").exists(),
    ) else {
        eprintln!(
            "SKIP syslog_over_tls_with_a_client_certificate_reaches_rsyslog: rsyslog or \
             rsyslog-openssl is not installed (scripts/setup.sh installs them)"
        );
        return;
    };
    let s = Scratch::new("sink-syslog-tls");
    let Some(certs) = Certs::make(&s.dir.join("certs")) else {
        panic!("openssl could not make the test certificates (scripts/setup.sh installs it)");
    };
    let dir = s.dir.join("rsyslog");
    fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let conf = dir.join("rsyslog.conf");
    fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriver=\"ossl\"\n\
               DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{cert}\"\n\
               DefaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\"\n\
               StreamDriver.Authmode=\"x509/certvalid\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"tls\")\n\
             ruleset(name=\"tls\") {{ action(type=\"omfile\" file=\"{d}/tls.log\" template=\"raw\") }}\n",
            d = dir.display(),
            ca = certs.path("ca.pem"),
            cert = certs.path("server.pem"),
            key = certs.path("server.key"),
        ),
    )
    .unwrap();
    let _rsyslog = Rsyslog::spawn(rsyslogd, &conf, &dir);
    // A plain connect: rsyslogd logs that it was not a TLS handshake, which is this probe.
    wait_for("rsyslogd listening", 30, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let d = Daemon::start(
        &s,
        "sinksyslogtls",
        &format!(
            "[[sink]]\nname = \"tls\"\ntype = \"syslog\"\ntransport = \"tls\"\n\
             address = \"127.0.0.1:{port}\"\nca_file = \"{ca}\"\nclient_cert = \"{cert}\"\n\
             client_key = \"{key}\"\n[sink.filter]\ndecision = [\"deny\"]\n",
            ca = certs.path("ca.pem"),
            cert = certs.path("client.pem"),
            key = certs.path("client.key"),
        ),
    );
    agent(&d);
    denials(&d, 5);
    let lines = || -> Vec<String> {
        let text = fs::read_to_string(dir.join("tls.log")).unwrap_or_default();
        complete_lines(&text)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    wait_for("5 messages over TLS", 30, || lines().len() >= 5);
    let got = lines();
    assert_eq!(got.len(), 5, "{got:?}");
    for (i, m) in got.iter().enumerate() {
        assert!(m.starts_with("<84>1 "), "{m}");
        assert!(m.contains(&format!("sink_seq=\"{}\"", i + 1)), "{m}");
        let body = m
            .split('\u{feff}')
            .nth(1)
            .expect("a BOM before the JSON body");
        let e: Value = serde_json::from_str(body).unwrap();
        assert_eq!(e["errno"], "EPERM");
    }
}

#[test]
fn a_full_spool_drops_the_oldest_and_says_how_many() {
    if !require_root("a_full_spool_drops_the_oldest_and_says_how_many") {
        return;
    }
    let s = Scratch::new("sink-overflow");
    let port = free_port();
    let d = Daemon::start(
        &s,
        "overflow",
        &format!(
            "[[sink]]\nname = \"small\"\ntype = \"http\"\nurl = \"http://127.0.0.1:{port}/\"\n\
             spool_bytes = \"8K\"\n[sink.filter]\ndecision = [\"deny\"]\n"
        ),
    );
    agent(&d);
    // The receiver is down: 40 refusals (about 1 KiB each) do not fit in 8 KiB.
    denials(&d, 40);
    let log_says = || d.log().contains("sink small:") && d.log().contains("dropped (spool full)");
    wait_for("the drop to be logged", 30, log_says);
    let got = Arc::new(Mutex::new(Vec::new()));
    let rx = Receiver::start(port, got);
    wait_for("the spool delivered", 30, || {
        rx.events()
            .iter()
            .any(|e| e["op"] == "connect" && e["sink_seq"].as_u64() >= Some(40))
    });
    std::thread::sleep(Duration::from_millis(300));
    let events = rx.events();
    let reported: u64 = events
        .iter()
        .filter(|e| e["op"] == "events_dropped")
        .map(|e| {
            assert_eq!(e["sink"], "small");
            e["dropped"].as_u64().unwrap()
        })
        .sum();
    assert!(reported > 0, "a report arrived: {events:?}");
    let last = events
        .iter()
        .map(|e| e["sink_seq"].as_u64().unwrap())
        .max()
        .unwrap();
    // Every sink_seq the sink gave out either arrived or was reported dropped.
    assert_eq!(events.len() as u64 + reported, last, "{events:?}");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sink_seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    let denials_arrived = events.iter().filter(|e| e["op"] == "connect").count() as u64;
    eprintln!(
        "spool of 8 KiB, receiver down, 40 refusals: {denials_arrived} delivered, {reported} \
         reported dropped, {} events in all",
        events.len()
    );
    assert!(denials_arrived < 40, "some were dropped");
    assert!(denials_arrived >= 3, "the newest were kept");
}
