//! Prometheus metrics (text exposition 0.0.4): decisions counted as events are written, and the
//! daemon's state read at each scrape. Off unless `[metrics] listen` is set.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use crate::events::{Sink, record::Record};

/// (operation, decision, policy).
pub type Key = (String, String, String);

/// Decisions by [`Key`].
#[derive(Clone, Default)]
pub struct Counts(Arc<Mutex<BTreeMap<Key, u64>>>);

impl Counts {
    pub fn snapshot(&self) -> BTreeMap<Key, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The output that counts every event.
pub struct CountingSink(pub Counts);

impl Sink for CountingSink {
    fn wants_line(&self) -> bool {
        false
    }

    fn put(&mut self, r: &Record, _: String, _: u64, _: &str) {
        if let Ok(mut m) = self.0.0.lock() {
            *m.entry((
                r.op.as_str().into(),
                r.decision.as_str().into(),
                r.policy.name.clone(),
            ))
            .or_default() += 1;
        }
    }
}

/// A label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Builds the exposition text.
#[derive(Default)]
pub struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// The HTTP response to a scrape of `path`.
pub fn response(path: &str, body: impl FnOnce() -> String) -> Vec<u8> {
    if path != "/metrics" {
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec();
    }
    let body = body();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The path of a request head's first line (`GET /metrics HTTP/1.1`).
pub fn request_path(head: &str) -> Option<&str> {
    let mut parts = head.lines().next()?.split_whitespace();
    (parts.next()? == "GET").then_some(())?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_escapes_labels_and_answers_only_metrics() {
        let mut t = Text::default();
        t.family("enforcer_decisions_total", "counter", "Decisions.");
        t.sample(
            "enforcer_decisions_total",
            &[("op", "open"), ("policy", "a\"b\\c")],
            3.0,
        );
        t.sample("enforcer_tasks_running", &[], 0.0);
        let text = t.finish();
        assert!(text.contains("# TYPE enforcer_decisions_total counter\n"));
        assert!(text.contains("enforcer_decisions_total{op=\"open\",policy=\"a\\\"b\\\\c\"} 3\n"));
        assert!(text.contains("enforcer_tasks_running 0\n"));
        let ok = String::from_utf8(response("/metrics", || "x 1\n".into())).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.contains("version=0.0.4"));
        assert!(ok.ends_with("\r\n\r\nx 1\n"));
        let nf = String::from_utf8(response("/", String::new)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404"));
        assert_eq!(
            request_path("GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Some("/metrics")
        );
        assert_eq!(request_path("POST /metrics HTTP/1.1\r\n"), None);
    }
}
