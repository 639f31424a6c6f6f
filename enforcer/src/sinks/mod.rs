//! The daemon's event sinks (`[[sink]]` in its config): files rotated by size, stdout and
//! stderr, syslog (RFC 5424 over UDP or TCP) and HTTP POST (JSON lines or Splunk HEC). Each
//! takes its own format and filter. Network sinks go through an on-disk spool read by a
//! thread of their own, so a receiver that is down delays delivery and loses nothing until the
//! spool's bound; past it the oldest are dropped, counted and reported.
pub mod config;
pub mod deliver;
pub mod filter;
pub mod follow;
pub mod http;
pub mod metrics;
pub mod spool;
pub mod syslog;
pub mod tls;

use crate::vocab::Op;
use std::{
    collections::VecDeque,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use serde_json::json;

use self::{
    config::{Kind, SinkConfig},
    deliver::{Stats, Transport},
    spool::Spool,
};
use crate::events::{
    Format, Output, Sink,
    record::Record,
    writer::{Target, Writer},
};

/// How a spooled line is wrapped for its receiver.
enum Shape {
    Plain,
    Syslog(syslog::Origin),
    Hec { host: String, sourcetype: String },
}

/// Lines kept in memory while the spool cannot be written (a full disk).
const MAX_PENDING: usize = 100_000;

/// A network sink: lines go to its spool, its thread delivers them.
pub struct SpoolSink {
    name: String,
    spool: Arc<Mutex<Spool>>,
    shape: Shape,
    /// Lines not yet in the spool, and whether each is a loss report.
    pending: VecDeque<(String, bool)>,
    /// Lines that fit neither the spool nor memory.
    lost: u64,
    failing: bool,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SpoolSink {
    /// Moves what waits in memory into the spool, in order, saying once when that starts and
    /// stops failing; `flush` also makes it readable to the sink's thread.
    fn write_pending(&mut self, flush: bool) {
        let Ok(mut spool) = self.spool.lock() else {
            return;
        };
        while let Some((line, report)) = self.pending.front() {
            let appended = if *report {
                spool.append_report(line)
            } else {
                spool.append(line)
            };
            match appended {
                Ok(()) => {
                    self.pending.pop_front();
                    if std::mem::take(&mut self.failing) {
                        eprintln!("enforcer: sink {}: the spool works again", self.name);
                    }
                }
                Err(e) => {
                    if !self.failing {
                        eprintln!(
                            "enforcer: sink {}: {e}; {} event(s) kept in memory, retrying",
                            self.name,
                            self.pending.len()
                        );
                        self.failing = true;
                    }
                    return;
                }
            }
        }
        if !flush {
            return;
        }
        if let Err(e) = spool.flush()
            && !self.failing
        {
            eprintln!("enforcer: sink {}: {e}", self.name);
        }
    }
}

impl Sink for SpoolSink {
    fn put(&mut self, r: &Record, line: String, sink_seq: u64, seq_id: &str) {
        let line = match &self.shape {
            Shape::Plain => line,
            Shape::Syslog(origin) => syslog::message(origin, r, seq_id, sink_seq, &line),
            Shape::Hec { host, sourcetype } => {
                http::hec(&line, r.unix_ns / 1_000_000, host, sourcetype)
            }
        };
        if self.pending.len() >= MAX_PENDING {
            self.lost += 1;
            return;
        }
        self.pending.push_back((line, r.op == Op::EventsDropped));
        if !self.failing {
            // Appended now, flushed (made readable to the thread) at the next tick; while the
            // spool fails, the tick retries.
            self.write_pending(false);
        }
    }

    fn flush(&mut self) {
        self.write_pending(true);
    }

    fn finish(&mut self) {
        self.write_pending(true);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if !self.pending.is_empty() || self.lost > 0 {
            eprintln!(
                "enforcer: sink {}: {} event(s) could not be spooled and {} were lost",
                self.name,
                self.pending.len(),
                self.lost
            );
        }
    }

    fn queued(&self) -> usize {
        self.pending.len()
    }

    fn take_dropped(&mut self) -> u64 {
        let spooled = self.spool.lock().map_or(0, |mut s| s.take_dropped());
        spooled + std::mem::take(&mut self.lost)
    }

    fn status(&self) -> serde_json::Value {
        let (bytes, pending) = self
            .spool
            .lock()
            .map_or((0, 0), |s| (s.bytes(), s.pending_bytes()));
        json!({
            "queued_in_memory": self.pending.len(),
            "spool_bytes": bytes,
            "spool_pending_bytes": pending,
            "delivered": self.stats.delivered.load(Ordering::Relaxed),
            "failures": self.stats.failures.load(Ordering::Relaxed),
            "receiver_down": self.stats.down.load(Ordering::Relaxed) == 1,
        })
    }
}

/// Builds the outputs of `[[sink]]` entries. Spools live in `<spool_root>/<name>/`.
pub fn outputs(
    sinks: &[SinkConfig],
    spool_root: &Path,
    hostname: &str,
) -> Result<Vec<Output>, String> {
    let mut out = Vec::new();
    for c in sinks {
        let sink: Box<dyn Sink + Send> = match &c.kind {
            Kind::File {
                path,
                max_bytes,
                keep,
            } => {
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("sink {}: {}: {e}", c.name, dir.display()))?;
                }
                let w = Writer::open(Target::File(path.clone()))
                    .map_err(|e| format!("sink {}: {}: {e}", c.name, path.display()))?;
                Box::new(w.rotating(*max_bytes, *keep).deferred())
            }
            Kind::Stdout | Kind::Stderr => {
                let t = if c.kind == Kind::Stdout {
                    Target::Stdout
                } else {
                    Target::Stderr
                };
                Box::new(
                    Writer::open(t)
                        .map_err(|e| format!("sink {}: {e}", c.name))?
                        .deferred(),
                )
            }
            Kind::Syslog {
                tcp,
                tls,
                address,
                facility,
                app_name,
            } => {
                let shape = Shape::Syslog(syslog::Origin {
                    hostname: hostname.into(),
                    app_name: app_name.clone(),
                    pid: std::process::id(),
                    facility: *facility,
                });
                let transport = if *tcp {
                    let host = address
                        .rsplit_once(':')
                        .map_or(address.as_str(), |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    Transport::SyslogTcp {
                        address: address.clone(),
                        tls: tls
                            .as_ref()
                            .map(|f| tls::Tls::new(f, host))
                            .transpose()
                            .map_err(|e| format!("sink {}: {e}", c.name))?,
                    }
                } else {
                    Transport::SyslogUdp {
                        address: address.clone(),
                    }
                };
                Box::new(spooled(c, spool_root, shape, transport)?)
            }
            Kind::Http {
                endpoint,
                hec_token,
                gzip,
                headers,
                tls,
            } => {
                let tls = endpoint
                    .tls
                    .then(|| tls::Tls::new(tls, &endpoint.host))
                    .transpose()
                    .map_err(|e| format!("sink {}: {e}", c.name))?;
                let mut headers = headers.clone();
                let (shape, content_type, newline) = match hec_token {
                    Some(token) => {
                        headers.push(("Authorization".into(), format!("Splunk {token}")));
                        let sourcetype = match c.format {
                            Format::Ocsf => "enforcer:ocsf",
                            Format::Native => "enforcer:native",
                        };
                        (
                            Shape::Hec {
                                host: hostname.into(),
                                sourcetype: sourcetype.into(),
                            },
                            "application/json",
                            false,
                        )
                    }
                    None => (Shape::Plain, "application/x-ndjson", true),
                };
                let transport = Transport::Http {
                    endpoint: endpoint.clone(),
                    headers,
                    gzip: *gzip,
                    content_type,
                    newline,
                    tls,
                };
                Box::new(spooled(c, spool_root, shape, transport)?)
            }
        };
        let filter = c.filter.clone();
        out.push(Output {
            name: c.name.clone(),
            format: c.format,
            accept: Box::new(move |r| filter.matches(r)),
            sink_seq: 0,
            sink,
        });
    }
    Ok(out)
}

fn spooled(
    c: &SinkConfig,
    spool_root: &Path,
    shape: Shape,
    transport: Transport,
) -> Result<SpoolSink, String> {
    let dir = spool_root.join(&c.name);
    let spool = Spool::open(&dir, c.spool_bytes).map_err(|e| format!("sink {}: {e}", c.name))?;
    let spool = Arc::new(Mutex::new(spool));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let thread = deliver::spawn(
        c.name.clone(),
        spool.clone(),
        transport,
        c.batch,
        stop.clone(),
        stats.clone(),
    )
    .map_err(|e| format!("sink {}: {e}", c.name))?;
    Ok(SpoolSink {
        name: c.name.clone(),
        spool,
        shape,
        pending: VecDeque::new(),
        lost: 0,
        failing: false,
        stats,
        stop,
        thread: Some(thread),
    })
}
