//! One thread per network sink: reads its spool in order, sends, and commits what the receiver
//! took; on failure it keeps the lines and retries with backoff. The daemon's main loop never
//! waits on a receiver.
use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{
    http,
    spool::Spool,
    syslog,
    tls::{Stream, Tls},
};

/// How a sink's lines leave the host.
#[derive(Clone, Debug)]
pub enum Transport {
    SyslogUdp {
        address: String,
    },
    SyslogTcp {
        address: String,
        /// RFC 5425.
        tls: Option<Tls>,
    },
    Http {
        endpoint: http::Endpoint,
        headers: Vec<(String, String)>,
        gzip: bool,
        content_type: &'static str,
        /// HEC bodies are concatenated objects; plain ones are JSON lines.
        newline: bool,
        /// For https:// endpoints.
        tls: Option<Tls>,
    },
}

/// Counters a sink's thread keeps for `enforcer status` and the metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub failures: AtomicU64,
    /// 1 while the receiver fails.
    pub down: AtomicU64,
}

const TIMEOUT: Duration = Duration::from_secs(10);

struct Connection {
    transport: Transport,
    tcp: Option<Stream>,
    udp: Option<UdpSocket>,
}

/// Connects (and, with `tls`, completes the handshake: a bad certificate fails here).
fn connect(address: &str, tls: Option<&Tls>) -> std::io::Result<Stream> {
    let addr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{address}: no address")))?;
    let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    match tls {
        Some(t) => t.wrap(s),
        None => Ok(Stream::Plain(s)),
    }
}

impl Connection {
    /// Sends a batch; `Ok` once the receiver has it (as far as the transport can tell).
    fn send(&mut self, lines: &[String]) -> Result<(), String> {
        match &self.transport {
            Transport::SyslogUdp { address } => {
                if self.udp.is_none() {
                    let s = UdpSocket::bind(if address.starts_with('[') {
                        "[::]:0"
                    } else {
                        "0.0.0.0:0"
                    })
                    .map_err(|e| e.to_string())?;
                    s.connect(address.as_str()).map_err(|e| e.to_string())?;
                    self.udp = Some(s);
                }
                let s = self.udp.as_ref().ok_or("no socket")?;
                let sent = lines
                    .iter()
                    .try_for_each(|l| s.send(l.as_bytes()).map(|_| ()));
                sent.map_err(|e| {
                    self.udp = None;
                    e.to_string()
                })
            }
            Transport::SyslogTcp { address, tls } => {
                if self.tcp.is_none() {
                    self.tcp = Some(connect(address, tls.as_ref()).map_err(|e| e.to_string())?);
                }
                let mut out = Vec::new();
                for l in lines {
                    out.extend_from_slice(&syslog::frame(l));
                }
                let s = self.tcp.as_mut().ok_or("no connection")?;
                s.write_all(&out).and_then(|()| s.flush()).map_err(|e| {
                    self.tcp = None;
                    e.to_string()
                })
            }
            Transport::Http {
                endpoint,
                headers,
                gzip,
                content_type,
                newline,
                tls,
            } => {
                let mut body = Vec::new();
                for l in lines {
                    body.extend_from_slice(l.as_bytes());
                    if *newline {
                        body.push(b'\n');
                    }
                }
                let req = http::request(endpoint, &body, content_type, headers, *gzip)
                    .map_err(|e| e.to_string())?;
                let mut s =
                    connect(&endpoint.address(), tls.as_ref()).map_err(|e| e.to_string())?;
                s.write_all(&req).map_err(|e| e.to_string())?;
                let mut resp = Vec::new();
                let mut buf = [0u8; 4096];
                // The status line is enough; the receiver closes (Connection: close).
                while !resp.windows(2).any(|w| w == b"\r\n") {
                    let n = s.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    resp.extend_from_slice(&buf[..n]);
                }
                match http::status(&resp) {
                    Some(code) if (200..300).contains(&code) => Ok(()),
                    Some(code) => Err(format!("the receiver answered {code}")),
                    None => Err("no HTTP answer".into()),
                }
            }
        }
    }
}

/// Starts the thread of one sink.
pub fn spawn(
    name: String,
    spool: Arc<Mutex<Spool>>,
    transport: Transport,
    batch: usize,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let mut conn = Connection {
                transport,
                tcp: None,
                udp: None,
            };
            let mut backoff = Duration::from_millis(100);
            let mut failing: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                let read = spool.lock().map_err(|_| ()).and_then(|mut s| {
                    s.read(batch)
                        .map_err(|e| eprintln!("enforcer: sink {name}: {e}"))
                });
                let Ok(b) = read else {
                    sleep_unless(&stop, Duration::from_secs(1));
                    continue;
                };
                if b.lines.is_empty() {
                    sleep_unless(&stop, Duration::from_millis(20));
                    continue;
                }
                match conn.send(&b.lines) {
                    Ok(()) => {
                        if let Ok(mut s) = spool.lock()
                            && let Err(e) = s.commit(b.end)
                        {
                            eprintln!("enforcer: sink {name}: {e}");
                        }
                        stats
                            .delivered
                            .fetch_add(b.lines.len() as u64, Ordering::Relaxed);
                        if failing.take().is_some() {
                            eprintln!("enforcer: sink {name}: the receiver is back; delivering");
                            stats.down.store(0, Ordering::Relaxed);
                        }
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        if failing.as_deref() != Some(e.as_str()) {
                            eprintln!(
                                "enforcer: sink {name}: {e}; events are kept in the spool and \
                                 retried"
                            );
                            failing = Some(e);
                            stats.down.store(1, Ordering::Relaxed);
                        }
                        sleep_unless(&stop, backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !stop.load(Ordering::Relaxed) && !left.is_zero() {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}
