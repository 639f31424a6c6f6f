//! Syslog messages (RFC 5424) carrying one event each, and the octet-counting framing of
//! syslog over TCP and TLS (RFC 6587 §3.4.1, RFC 5425 §4.3): `LEN SP MSG`.
use crate::events::record::Record;
use crate::vocab::{Decision, Op};

/// Facilities by name (RFC 5424 §6.2.1).
pub const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

pub fn facility(name: &str) -> Option<u8> {
    FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Warning for refusals, error for kills, informational for the rest.
fn severity(r: &Record) -> u8 {
    match r.decision {
        Decision::Kill => 3,
        Decision::Deny => 4,
        _ if r.op == Op::EventsDropped || r.op == Op::PolicyError => 4,
        _ => 6,
    }
}

/// Printable US-ASCII without spaces, at most `max` bytes; `-` when empty (RFC 5424 NILVALUE).
fn token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() { "-".into() } else { t }
}

/// An SD-PARAM value: `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn param(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Who sends: host, app and process, fixed for a daemon.
#[derive(Clone, Debug)]
pub struct Origin {
    pub hostname: String,
    pub app_name: String,
    pub pid: u32,
    pub facility: u8,
}

/// One RFC 5424 message. `body` is the event as the sink formats it (a JSON line); the
/// structured data repeats what a receiver filters on, and the sequence numbers.
pub fn message(o: &Origin, r: &Record, seq_id: &str, sink_seq: u64, body: &str) -> String {
    let pri = u16::from(o.facility) * 8 + u16::from(severity(r));
    format!(
        "<{pri}>1 {time} {host} {app} {pid} {msgid} [enforcer@32473 seq_id=\"{sid}\" \
         sink_seq=\"{sink_seq}\" task=\"{task}\" task_id=\"{task_id}\" decision=\"{decision}\" \
         policy=\"{policy}\" generation=\"{generation}\"] \u{feff}{body}",
        time = token(&r.time, 48),
        host = token(&o.hostname, 255),
        app = token(&o.app_name, 48),
        pid = o.pid,
        msgid = token(r.op.as_str(), 32),
        sid = param(seq_id),
        task = param(&r.task),
        task_id = param(&r.task_id),
        decision = param(r.decision.as_str()),
        policy = param(&r.policy.name),
        generation = r.policy.generation,
    )
}

/// Octet-counting framing for stream transports.
pub fn frame(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::record::{PolicyRef, TaskContext};
    use crate::vocab::EnforcementMode;

    fn record() -> Record {
        let ctx = TaskContext {
            task: "fix \"42\"".into(),
            task_id: "fix-42-1".into(),
            intent: None,
            policy: PolicyRef {
                name: "coding]agent".into(),
                version: 1,
                sha256: String::new(),
                generation: 3,
            },
            mode: EnforcementMode::Lsm,
            unenforced: Vec::new(),
            boot_to_unix_ns: 0,
        };
        let mut r = Record::lifecycle(&ctx, Op::Open, 1, json!({}));
        r.decision = Decision::Deny;
        r
    }

    #[test]
    fn a_refusal_is_a_warning_with_escaped_structured_data() {
        let o = Origin {
            hostname: "agent host".into(),
            app_name: "enforcer".into(),
            pid: 7,
            facility: facility("authpriv").unwrap(),
        };
        let m = message(&o, &record(), "abc", 12, "{\"x\":1}");
        // authpriv (10) * 8 + warning (4).
        assert!(m.starts_with("<84>1 "), "{m}");
        let fields: Vec<&str> = m.splitn(8, ' ').collect();
        assert_eq!(fields[2], "agenthost");
        assert_eq!(fields[3], "enforcer");
        assert_eq!(fields[4], "7");
        assert_eq!(fields[5], "open");
        assert!(m.contains("task=\"fix \\\"42\\\"\""), "{m}");
        assert!(m.contains("policy=\"coding\\]agent\""), "{m}");
        assert!(m.contains("sink_seq=\"12\" "), "{m}");
        assert!(m.ends_with("] \u{feff}{\"x\":1}"), "{m}");
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let f = frame("é1");
        assert_eq!(f, b"3 \xc3\xa91");
    }
}
