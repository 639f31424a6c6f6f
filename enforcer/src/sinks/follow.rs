//! `enforcer events --follow`: clients on the control socket that get every event as it is
//! written (native JSON lines), filtered by task and decision. Writes never block the daemon: a
//! client that does not keep up is told so and dropped.
use std::{
    io::{self, Write as _},
    os::unix::net::UnixStream,
    sync::{Arc, Mutex},
};

use super::filter::Filter;
use crate::events::{Sink, record::Record};

/// Most bytes waiting for one client before it is dropped.
const MAX_BUFFERED: usize = 4 << 20;

struct Follower {
    stream: UnixStream,
    filter: Filter,
    buf: Vec<u8>,
    dead: bool,
}

impl Follower {
    fn push(&mut self) {
        while !self.buf.is_empty() {
            match self.stream.write(&self.buf) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }
}

/// The clients following; shared by the control socket (which adds them) and the sink.
#[derive(Clone, Default)]
pub struct Hub(Arc<Mutex<Vec<Follower>>>);

impl Hub {
    /// Adds a client whose request was accepted (its reply already sent).
    pub fn add(&self, stream: UnixStream, filter: Filter) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        if let Ok(mut f) = self.0.lock() {
            f.push(Follower {
                stream,
                filter,
                buf: Vec::new(),
                dead: false,
            });
        }
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.0.lock().map_or(0, |f| f.len())
    }
}

/// The output that feeds the hub.
pub struct FollowSink(pub Hub);

impl Sink for FollowSink {
    fn wants_line(&self) -> bool {
        self.0.count() > 0
    }

    fn put(&mut self, r: &Record, line: String, _: u64, _: &str) {
        let Ok(mut followers) = self.0.0.lock() else {
            return;
        };
        for f in followers.iter_mut().filter(|f| f.filter.matches(r)) {
            if f.buf.len() + line.len() > MAX_BUFFERED {
                let _ = f.stream.write(
                    b"{\"op\":\"follow_dropped\",\"why\":\"this client did not keep up\"}\n",
                );
                f.dead = true;
                continue;
            }
            f.buf.extend_from_slice(line.as_bytes());
            f.buf.push(b'\n');
            f.push();
        }
        followers.retain(|f| !f.dead);
    }

    fn flush(&mut self) {
        if let Ok(mut followers) = self.0.0.lock() {
            for f in followers.iter_mut() {
                f.push();
            }
            followers.retain(|f| !f.dead);
        }
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({ "clients": self.0.count() })
    }
}
