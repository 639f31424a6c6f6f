//! Events: kernel records decoded, attributed to the policy rule that decided them, and
//! written as JSON lines.
pub mod lsm;
pub mod ocsf;
pub mod record;
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

/// Numbers, formats and writes records. Sequence numbers start at 1 for each run and come with
/// the kernel's boot id and the run's task id, so a receiver can prove nothing was lost or
/// duplicated.
pub struct Emitter {
    pub writer: Writer,
    format: Format,
    seq: u64,
    boot_id: String,
    hostname: String,
}

impl Emitter {
    pub fn new(writer: Writer, format: Format) -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            writer,
            format,
            seq: 0,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }

    pub fn emit(&mut self, r: &Record) {
        self.seq += 1;
        let line = match self.format {
            Format::Native => {
                let mut v =
                    serde_json::to_value(r).unwrap_or_else(|e| json!({ "error": e.to_string() }));
                v["seq"] = json!(self.seq);
                v["boot_id"] = json!(self.boot_id);
                v.to_string()
            }
            Format::Ocsf => {
                let ms = (r.unix_ns / 1_000_000) as i64;
                ocsf::to_ocsf(r, ms, self.seq, &self.boot_id, &self.hostname).to_string()
            }
        };
        self.writer.write(line);
    }

    pub fn finish(&mut self) {
        self.writer.finish();
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
