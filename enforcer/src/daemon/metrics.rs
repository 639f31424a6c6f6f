//! The metrics endpoint: a scrape asks the main loop for the text (the state lives there) and
//! answers from its own task, so a slow scraper never holds the daemon up.
use std::{os::unix::fs::FileTypeExt as _, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpListener, UnixListener},
    sync::{mpsc, oneshot},
};

use super::{DaemonError, core::Core};
use crate::sinks::metrics::{Text, request_path, response};

/// A scrape waiting for the text.
pub type Scrape = oneshot::Sender<String>;

async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, tx: mpsc::Sender<Scrape>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = request_path(&head).unwrap_or("").to_owned();
    let text = if path == "/metrics" {
        let (otx, orx) = oneshot::channel();
        if tx.send(otx).await.is_err() {
            return;
        }
        orx.await.unwrap_or_default()
    } else {
        String::new()
    };
    let _ = s.write_all(&response(&path, || text)).await;
    let _ = s.shutdown().await;
}

/// Binds `listen` (`host:port` or `unix:PATH`) and serves scrapes.
pub async fn bind(listen: &str, tx: mpsc::Sender<Scrape>) -> Result<(), DaemonError> {
    let err = |e: std::io::Error| DaemonError::Io {
        what: format!("metrics {listen}"),
        source: e,
    };
    if let Some(path) = listen.strip_prefix("unix:") {
        // A socket left by an earlier daemon is replaced; anything else at the path is kept.
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path).map_err(err)?,
            Ok(_) => {
                return Err(DaemonError::Kernel(format!(
                    "metrics {listen}: {path} exists and is not a socket; not replacing it"
                )));
            }
            Err(_) => {}
        }
        let l = UnixListener::bind(path).map_err(err)?;
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve_one(s, tx.clone()));
            }
        });
    } else {
        let l = TcpListener::bind(listen).await.map_err(err)?;
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve_one(s, tx.clone()));
            }
        });
    }
    Ok(())
}

impl Core {
    /// The exposition text, from the state as it is now.
    pub fn metrics_text(&self) -> String {
        let mut t = Text::default();
        t.family(
            "enforcer_decisions_total",
            "counter",
            "Events written, by operation, decision and policy.",
        );
        for ((op, decision, policy), n) in self.counts.snapshot() {
            t.sample(
                "enforcer_decisions_total",
                &[("op", &op), ("decision", &decision), ("policy", &policy)],
                n as f64,
            );
        }
        t.family(
            "enforcer_ring_events_dropped_total",
            "counter",
            "Events the kernel could not queue in the ring buffer.",
        );
        t.sample(
            "enforcer_ring_events_dropped_total",
            &[],
            self.rt.drops_seen as f64,
        );
        let sinks: Vec<(String, serde_json::Value)> = self
            .rt
            .emitter
            .outputs
            .iter()
            .filter(|o| o.name != "metrics" && o.name != "follow")
            .map(|o| (o.name.clone(), o.sink.status()))
            .collect();
        let families = [
            (
                "enforcer_sink_queue_events",
                "gauge",
                "Events waiting in memory.",
                "queued",
            ),
            (
                "enforcer_sink_spool_bytes",
                "gauge",
                "Bytes in the sink's on-disk spool.",
                "spool_bytes",
            ),
            (
                "enforcer_sink_spool_pending_bytes",
                "gauge",
                "Spooled bytes not yet delivered.",
                "spool_pending_bytes",
            ),
            (
                "enforcer_sink_delivered_total",
                "counter",
                "Events the receiver took.",
                "delivered",
            ),
            (
                "enforcer_sink_failures_total",
                "counter",
                "Failed deliveries (each retried).",
                "failures",
            ),
        ];
        for (name, kind, help, key) in families {
            t.family(name, kind, help);
            for (sink, st) in &sinks {
                let v = st[key]
                    .as_u64()
                    .or_else(|| (key == "queued").then(|| st["queued_in_memory"].as_u64())?);
                if let Some(v) = v {
                    t.sample(name, &[("sink", sink)], v as f64);
                }
            }
        }
        t.family(
            "enforcer_sink_receiver_up",
            "gauge",
            "1 while the sink's receiver takes events.",
        );
        for (sink, st) in &sinks {
            if let Some(down) = st["receiver_down"].as_bool() {
                t.sample(
                    "enforcer_sink_receiver_up",
                    &[("sink", sink)],
                    if down { 0.0 } else { 1.0 },
                );
            }
        }
        t.family(
            "enforcer_sink_dropped_total",
            "counter",
            "Events dropped because the sink's spool was full.",
        );
        for (sink, _) in &sinks {
            let n = self.sink_dropped.get(sink).copied().unwrap_or(0);
            t.sample("enforcer_sink_dropped_total", &[("sink", sink)], n as f64);
        }
        t.family(
            "enforcer_policy_reloads_total",
            "counter",
            "Policy set reloads, applied or refused (the last good set stays).",
        );
        t.sample(
            "enforcer_policy_reloads_total",
            &[("result", "applied")],
            self.reloads.0 as f64,
        );
        t.sample(
            "enforcer_policy_reloads_total",
            &[("result", "refused")],
            self.reloads.1 as f64,
        );
        t.family(
            "enforcer_policy_generation",
            "gauge",
            "The newest policy generation.",
        );
        t.sample(
            "enforcer_policy_generation",
            &[],
            f64::from(self.policies.generation),
        );
        t.family(
            "enforcer_tasks_running",
            "gauge",
            "Tasks the daemon enforces now.",
        );
        t.sample("enforcer_tasks_running", &[], self.rt.tasks.len() as f64);
        t.family(
            "enforcer_info",
            "gauge",
            "The daemon's version and enforcement mode.",
        );
        t.sample(
            "enforcer_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("mode", self.mode().as_str()),
            ],
            1.0,
        );
        t.finish()
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::UnixStream,
    };

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("enforcer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn scrape(path: &std::path::Path, request: &str) -> String {
        let mut c = UnixStream::connect(path).await.unwrap();
        c.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_unix_socket_answers_scrapes_with_the_main_loops_text() {
        let dir = scratch("metrics-unix");
        let sock = dir.join("metrics.sock");
        // A socket left by an earlier daemon is replaced.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        let (tx, mut rx) = mpsc::channel::<Scrape>(4);
        bind(&format!("unix:{}", sock.display()), tx).await.unwrap();
        tokio::spawn(async move {
            while let Some(answer) = rx.recv().await {
                let _ = answer.send("enforcer_tasks_running 2\n".into());
            }
        });
        let m = scrape(&sock, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
        assert!(m.ends_with("enforcer_tasks_running 2\n"), "{m}");
        let other = scrape(&sock, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_socket_is_left_alone_and_refused() {
        let dir = scratch("metrics-file");
        let file = dir.join("precious");
        std::fs::write(&file, "keep me").unwrap();
        let (tx, _rx) = mpsc::channel::<Scrape>(1);
        let e = bind(&format!("unix:{}", file.display()), tx)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
