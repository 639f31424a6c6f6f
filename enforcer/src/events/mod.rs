//! Events: kernel records decoded, attributed to the policy rule that decided them, and
//! written as JSON lines.
pub mod kernel_event;
pub mod lsm;
pub mod ocsf;
pub mod record;
pub mod syscalls;
pub mod time;
pub mod writer;

use enforcer_common::Event;
use serde_json::json;

use self::{record::Record, writer::Writer};

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The enforcer's own JSON (see the README).
    Native,
    /// OCSF 1.8 (see [`ocsf`]).
    Ocsf,
}

impl Format {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Self::Native),
            "ocsf" => Ok(Self::Ocsf),
            other => Err(format!(
                "unknown event format \"{other}\"; expected native or ocsf"
            )),
        }
    }
}

/// Where one output's formatted lines go: a [`Writer`] (file, stdout, stderr) or a daemon's
/// spooled network sink.
pub trait Sink {
    /// Takes one event, already formatted.
    fn put(&mut self, r: &Record, line: String, sink_seq: u64, seq_id: &str);
    /// Writes what is buffered (called every tick).
    fn flush(&mut self) {}
    /// The last chance to write (the process is ending).
    fn finish(&mut self) {}
    /// Lines waiting in memory.
    fn queued(&self) -> usize {
        0
    }
    /// Lines this sink dropped since the last call (its spool overflowed).
    fn take_dropped(&mut self) -> u64 {
        0
    }
    /// Reopens files (SIGHUP, after logrotate moved them).
    fn reopen(&mut self) {}
    /// Whether `put` needs the formatted line (a counter does not; nor a hub with no client).
    fn wants_line(&self) -> bool {
        true
    }
    /// What `enforcer status` says of it.
    fn status(&self) -> serde_json::Value {
        json!({ "queued": self.queued() })
    }
}

impl Sink for Writer {
    fn put(&mut self, _: &Record, line: String, _: u64, _: &str) {
        self.write(line);
    }
    fn flush(&mut self) {
        Writer::flush(self);
    }
    fn finish(&mut self) {
        Writer::finish(self);
    }
    fn queued(&self) -> usize {
        Writer::queued(self)
    }
    fn reopen(&mut self) {
        Writer::reopen(self);
    }
    fn status(&self) -> serde_json::Value {
        json!({ "queued": self.queued(), "lost": self.lost, "target": self.target_name() })
    }
}

/// One event as JSON, in each format some output asked for.
#[derive(Default)]
struct Formatted {
    native: Option<Native>,
    ocsf: Option<serde_json::Value>,
}

/// Fields the emitter adds to a native record (the outputs add the last two).
const EMITTER_FIELDS: [&str; 5] = ["seq", "seq_id", "boot_id", "sink", "sink_seq"];

/// A native record as built once per event.
enum Native {
    /// The usual case: the record's JSON with the emitter's fields, without the closing brace,
    /// so each output appends its own two fields to a copy of a string (no `Value` tree: the
    /// drain under a flood spends its time here).
    Open(String),
    /// A record whose details use one of [`EMITTER_FIELDS`] (a sink's loss report names the
    /// sink): built as a `Value`, where the emitter's fields replace the record's.
    Tree(serde_json::Value),
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// One destination with its format, its filter and its own sequence numbers.
pub struct Output {
    pub name: String,
    pub format: Format,
    pub accept: Box<dyn Fn(&Record) -> bool + Send>,
    /// Numbers what this output was given, so a receiver of a filtered stream can still
    /// prove that nothing it should have had is missing.
    pub sink_seq: u64,
    pub sink: Box<dyn Sink + Send>,
}

impl Output {
    pub fn new(name: &str, format: Format, sink: Box<dyn Sink + Send>) -> Self {
        Self {
            name: name.into(),
            format,
            accept: Box::new(|_| true),
            sink_seq: 0,
            sink,
        }
    }
}

/// Numbers, formats and writes records. `seq` numbers every event of this emitter (one
/// `enforcer run`, or one daemon start) under `seq_id`, a random id of its own; each output
/// also numbers what it was given (`sink_seq`). With the kernel's boot id, a receiver can prove
/// nothing was lost or duplicated.
pub struct Emitter {
    pub outputs: Vec<Output>,
    seq: u64,
    pub seq_id: String,
    boot_id: String,
    hostname: String,
}

fn read_trimmed(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The native JSON of `r` with the emitter's fields, built once per event.
fn native_base(r: &Record, seq: u64, seq_id: &str, boot_id: &str) -> Native {
    let tree = || {
        let mut v = serde_json::to_value(r).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        v["seq"] = json!(seq);
        v["seq_id"] = json!(seq_id);
        v["boot_id"] = json!(boot_id);
        Native::Tree(v)
    };
    if EMITTER_FIELDS.iter().any(|k| r.details.contains_key(*k)) {
        return tree();
    }
    match serde_json::to_string(r) {
        // A record always has fields, so its JSON is `{...}` with something inside.
        Ok(mut s) if s.len() > 2 && s.ends_with('}') => {
            s.pop();
            s.push_str(",\"seq\":");
            s.push_str(&seq.to_string());
            s.push_str(",\"seq_id\":");
            s.push_str(&json_str(seq_id));
            s.push_str(",\"boot_id\":");
            s.push_str(&json_str(boot_id));
            Native::Open(s)
        }
        _ => tree(),
    }
}

impl Emitter {
    /// One output: a writer in one format.
    pub fn new(writer: Writer, format: Format) -> Self {
        Self::with_outputs(vec![Output::new("events", format, Box::new(writer))])
    }

    pub fn with_outputs(outputs: Vec<Output>) -> Self {
        Self {
            outputs,
            seq: 0,
            seq_id: read_trimmed("/proc/sys/kernel/random/uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
        }
    }

    pub fn emit(&mut self, r: &Record) {
        self.seq += 1;
        let mut cache = Formatted::default();
        for i in 0..self.outputs.len() {
            if (self.outputs[i].accept)(r) {
                self.put(i, r, &mut cache);
            }
        }
    }

    /// To one output only (its own loss report).
    pub fn emit_to(&mut self, output: usize, r: &Record) {
        if output < self.outputs.len() {
            self.seq += 1;
            self.put(output, r, &mut Formatted::default());
        }
    }

    fn put(&mut self, i: usize, r: &Record, cache: &mut Formatted) {
        let seq = self.seq;
        let o = &mut self.outputs[i];
        o.sink_seq += 1;
        if !o.sink.wants_line() {
            o.sink.put(r, String::new(), o.sink_seq, &self.seq_id);
            return;
        }
        // Each format is built once per event; outputs add their own fields to a copy.
        let line = match o.format {
            Format::Native => {
                let native = cache
                    .native
                    .get_or_insert_with(|| native_base(r, seq, &self.seq_id, &self.boot_id));
                match native {
                    Native::Open(base) => {
                        let name = json_str(&o.name);
                        let mut line = String::with_capacity(base.len() + name.len() + 32);
                        line.push_str(base);
                        line.push_str(",\"sink\":");
                        line.push_str(&name);
                        line.push_str(",\"sink_seq\":");
                        line.push_str(&o.sink_seq.to_string());
                        line.push('}');
                        line
                    }
                    Native::Tree(v) => {
                        let mut v = v.clone();
                        v["sink"] = json!(o.name);
                        v["sink_seq"] = json!(o.sink_seq);
                        v.to_string()
                    }
                }
            }
            Format::Ocsf => {
                let mut v = cache
                    .ocsf
                    .get_or_insert_with(|| {
                        let ms = (r.unix_ns / 1_000_000) as i64;
                        let mut v = ocsf::to_ocsf(r, ms, seq, &self.seq_id, &self.hostname);
                        v["unmapped"]["boot_id"] = json!(self.boot_id);
                        v["unmapped"]["seq_id"] = json!(self.seq_id);
                        v
                    })
                    .clone();
                v["unmapped"]["sink"] = json!(o.name);
                v["unmapped"]["sink_seq"] = json!(o.sink_seq);
                v.to_string()
            }
        };
        o.sink.put(r, line, o.sink_seq, &self.seq_id);
    }

    pub fn flush(&mut self) {
        for o in &mut self.outputs {
            o.sink.flush();
        }
    }

    pub fn reopen(&mut self) {
        for o in &mut self.outputs {
            o.sink.reopen();
        }
    }

    /// (output, lines dropped) for each output that dropped some since the last call.
    pub fn take_dropped(&mut self) -> Vec<(usize, u64)> {
        self.outputs
            .iter_mut()
            .enumerate()
            .filter_map(|(i, o)| {
                let n = o.sink.take_dropped();
                (n > 0).then_some((i, n))
            })
            .collect()
    }

    pub fn queued(&self) -> usize {
        self.outputs.iter().map(|o| o.sink.queued()).sum()
    }

    pub fn finish(&mut self) {
        for o in &mut self.outputs {
            o.sink.finish();
        }
    }
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: the length is checked and Event is plain data valid for any bytes.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// A NUL-terminated byte array as a string.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::events::ocsf::tests::record;

    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Sink for Capture {
        fn put(&mut self, _: &Record, line: String, _: u64, _: &str) {
            self.0.lock().unwrap().push(line);
        }
    }

    fn two_outputs() -> (Emitter, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let outputs = ["a", "b"]
            .iter()
            .map(|n| Output::new(n, Format::Native, Box::new(Capture(lines.clone()))))
            .collect();
        (Emitter::with_outputs(outputs), lines)
    }

    #[test]
    fn native_lines_are_the_record_with_the_emitters_and_each_outputs_fields() {
        let (mut e, lines) = two_outputs();
        let mut r = record("connect", "deny", "127.0.0.66:4444");
        r.details.insert("counters".into(), json!({ "denials": 3 }));
        e.emit(&r);
        e.emit(&r);
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 4);
        for (i, line) in lines.iter().enumerate() {
            let got: serde_json::Value = serde_json::from_str(line).unwrap();
            // The same object the Value tree gives, field for field.
            let mut want = serde_json::to_value(&r).unwrap();
            want["seq"] = json!(i / 2 + 1);
            want["seq_id"] = json!(e.seq_id);
            want["boot_id"] = json!(e.boot_id);
            want["sink"] = json!(if i % 2 == 0 { "a" } else { "b" });
            want["sink_seq"] = json!(i / 2 + 1);
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn a_record_naming_a_sink_gets_the_emitters_fields_once() {
        let (mut e, lines) = two_outputs();
        let mut r = record("events_dropped", "allow", "t");
        r.details.insert("sink".into(), json!("elsewhere"));
        r.details.insert("dropped".into(), json!(7));
        e.emit(&r);
        let lines = lines.lock().unwrap();
        for (line, name) in lines.iter().zip(["a", "b"]) {
            assert_eq!(line.matches("\"sink\":").count(), 1, "{line}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["sink"], name);
            assert_eq!(v["dropped"], 7);
        }
    }
}
