//! Events in OCSF 1.8: exec and task lifecycle as Process Activity (1007), opens as File System
//! Activity (1001), connects and sends as Network Activity (4001), the io_uring refusal as Kernel
//! Activity (1003), lost events as Event Log Activity (1008). Decisions use the Security Control
//! profile: `action_id` 2 / `disposition_id` 2 for a block, and a `policy` object naming the
//! policy's name, version, sha256 and generation. What OCSF has no field for (task, intent,
//! rule, enforcement mechanism) goes in `unmapped`.
use crate::vocab::{Decision, Op};
use serde_json::{Map, Value, json};

use super::record::Record;

pub const OCSF_VERSION: &str = "1.8.0";

/// Class and activity of a record.
fn class_and_activity(r: &Record) -> (u32, u32) {
    match r.op {
        Op::Exec | Op::TaskStart => (1007, 1), // Process Activity: Launch
        Op::TaskEnd | Op::Limit => (1007, 2),  // Process Activity: Terminate
        Op::Open => (1001, 14),                // File System Activity: Open
        Op::Mount => (1001, 12),               // File System Activity: Mount
        Op::Mkdir | Op::Mknod | Op::Symlink | Op::Link => (1001, 1), // File System Activity: Create
        Op::Truncate => (1001, 3),             // File System Activity: Update
        Op::Unlink | Op::Rmdir => (1001, 4),   // File System Activity: Delete
        Op::Rename => (1001, 5),               // File System Activity: Rename
        Op::Chmod | Op::Chown => (1001, 7),    // File System Activity: Set Security
        Op::Chroot => (1001, 99),              // File System Activity: Other
        Op::Mmap => (1004, 9),                 // Memory Activity: Map View
        Op::Connect if r.decision == Decision::Deny => (4001, 5), // Network Activity: Refuse
        Op::Connect => (4001, 1),              // Network Activity: Open
        Op::Sendmsg if r.decision == Decision::Deny => (4001, 5), // Network Activity: Refuse
        Op::Sendmsg => (4001, 6),              // Network Activity: Traffic
        Op::Bind | Op::Listen if r.decision == Decision::Allow => (4001, 99), // Network Activity: Other
        Op::Bind | Op::Listen => (4001, 5), // Network Activity: Refuse
        Op::IoUring => (1003, 4),           // Kernel Activity: Invoke
        Op::Signal => (1007, 99),           // Process Activity: Other
        Op::Socket => (4001, 5),            // Network Activity: Refuse
        Op::Syscall => (1003, 4),           // Kernel Activity: Invoke
        Op::Ptrace => (1007, 4),            // Process Activity: Inject
        Op::EventsDropped => (1008, 99),    // Event Log Activity: Other
        // The daemon itself: Application Lifecycle (Start, Stop, Update, Other).
        Op::DaemonStart => (6002, 3),
        Op::DaemonStop => (6002, 4),
        Op::PolicyReload | Op::PolicyApplied | Op::ProgramsUpgraded => (6002, 8),
        Op::PolicyError => (6002, 99),
        // A process inside a task refused by the control socket: API Activity, Other.
        Op::Control => (6003, 99),
        _ => (1003, 99),
    }
}

/// (action_id, disposition_id, severity_id, status_id) of a decision.
fn disposition(decision: Decision) -> (u32, u32, u32, u32) {
    match decision {
        // Denied / Blocked / Medium / Failure
        Decision::Deny => (2, 2, 3, 2),
        // Denied / Blocked / High / Failure: the task was killed for it
        Decision::Kill => (2, 2, 4, 2),
        // Allowed / Logged / Low / Success: audit mode let it through
        Decision::Audit => (1, 17, 2, 1),
        // Allowed / Allowed / Informational / Success
        Decision::Allow => (1, 1, 1, 1),
    }
}

fn endpoint(target: &str) -> Value {
    let (ip, port) = match target.rsplit_once(':') {
        Some((ip, port)) => (ip.trim_start_matches('[').trim_end_matches(']'), port),
        None => (target, "0"),
    };
    json!({ "ip": ip, "port": port.parse::<u16>().unwrap_or(0) })
}

/// The OCSF object for one record. `seq` numbers the events of this boot (`boot_id`).
pub fn to_ocsf(r: &Record, time_ms: i64, seq: u64, boot_id: &str, hostname: &str) -> Value {
    let (class_uid, activity_id) = class_and_activity(r);
    let (action_id, disposition_id, severity_id, status_id) = disposition(r.decision);
    let process = json!({ "pid": r.pid, "name": r.comm });
    let mut e = Map::new();
    e.insert("class_uid".into(), json!(class_uid));
    e.insert("category_uid".into(), json!(class_uid / 1000));
    e.insert("activity_id".into(), json!(activity_id));
    e.insert(
        "type_uid".into(),
        json!(u64::from(class_uid) * 100 + u64::from(activity_id)),
    );
    e.insert("severity_id".into(), json!(severity_id));
    e.insert("status_id".into(), json!(status_id));
    e.insert("time".into(), json!(time_ms));
    e.insert("time_dt".into(), json!(r.time));
    e.insert("action_id".into(), json!(action_id));
    e.insert("disposition_id".into(), json!(disposition_id));
    e.insert("is_alert".into(), json!(r.decision.refused()));
    e.insert(
        "message".into(),
        json!(format!(
            "{} {} ({}): {} by {}",
            r.op,
            r.target,
            r.access,
            r.decision,
            if r.rule.is_empty() { "-" } else { &r.rule }
        )),
    );
    e.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": { "name": "enforcer", "vendor_name": "enforcer", "version": env!("CARGO_PKG_VERSION") },
            "sequence": seq,
            "uid": format!("{boot_id}:{seq}"),
            "log_name": "enforcer",
        }),
    );
    e.insert(
        "policy".into(),
        json!({
            "name": r.policy.name,
            "uid": r.policy.sha256,
            "version": format!("{} (generation {})", r.policy.version, r.policy.generation),
            // Audit mode reports what the policy would have done without applying it.
            "is_applied": r.decision != Decision::Audit,
        }),
    );
    e.insert("actor".into(), json!({ "process": process }));
    e.insert(
        "device".into(),
        json!({ "hostname": hostname, "type_id": 1, "os": { "name": "Linux", "type_id": 100 } }),
    );
    match class_uid {
        1007 | 1004 => {
            let path = if matches!(r.op, Op::Exec | Op::Mmap) {
                r.target.clone()
            } else {
                String::new()
            };
            e.insert(
                "process".into(),
                json!({ "pid": r.pid, "name": r.comm, "file": { "path": path, "name": path.rsplit('/').next().unwrap_or(""), "type_id": 1 } }),
            );
        }
        1001 => {
            e.insert(
                "file".into(),
                json!({ "path": r.target, "name": r.target.rsplit('/').next().unwrap_or(""), "type_id": 1 }),
            );
        }
        4001 if r.target.starts_with('/') => {
            // A unix-domain socket: its path is its name.
            e.insert("dst_endpoint".into(), json!({ "name": r.target }));
            e.insert("connection_info".into(), json!({ "protocol_name": "unix" }));
        }
        4001 if r.op == Op::Bind || r.op == Op::Listen => {
            // Inbound: the task's own address and port.
            e.insert("src_endpoint".into(), endpoint(&r.target));
        }
        4001 => {
            e.insert("dst_endpoint".into(), endpoint(&r.target));
            e.insert(
                "connection_info".into(),
                json!({ "protocol_name": if r.op == Op::Sendmsg { "udp" } else { "tcp" } }),
            );
        }
        6002 => {
            e.insert(
                "app".into(),
                json!({ "name": "enforcer", "vendor_name": "enforcer", "version": env!("CARGO_PKG_VERSION") }),
            );
        }
        1003 => {
            e.insert(
                "kernel".into(),
                json!({ "name": r.target, "type_id": 2, "system_call": r.target }),
            );
        }
        _ => {}
    }
    let mut unmapped = Map::new();
    unmapped.insert("task".into(), json!(r.task));
    unmapped.insert("task_id".into(), json!(r.task_id));
    unmapped.insert("intent".into(), json!(r.intent));
    unmapped.insert("op".into(), json!(r.op));
    unmapped.insert("decision".into(), json!(r.decision));
    unmapped.insert("rule".into(), json!(r.rule));
    unmapped.insert("enforced_by".into(), json!(r.enforced_by));
    unmapped.insert("mode".into(), json!(r.mode));
    if let Some(errno) = r.errno {
        unmapped.insert("errno".into(), json!(errno));
    }
    if !r.unenforced.is_empty() {
        unmapped.insert("unenforced".into(), json!(r.unenforced));
    }
    for (k, v) in &r.details {
        unmapped.insert(k.clone(), v.clone());
    }
    e.insert("unmapped".into(), Value::Object(unmapped));
    Value::Object(e)
}

/// The attributes OCSF 1.8 requires of each class we emit: the base event's, the System
/// category's `actor` and `device`, and the class's own.
pub fn required(class_uid: u64) -> Vec<&'static str> {
    let mut keys = vec![
        "activity_id",
        "category_uid",
        "class_uid",
        "type_uid",
        "severity_id",
        "time",
        "metadata",
    ];
    if class_uid / 1000 == 1 {
        keys.extend(["actor", "device"]);
    }
    match class_uid {
        1007 | 1004 => keys.push("process"),
        1001 => keys.push("file"),
        1003 => keys.push("kernel"),
        6002 => keys.push("app"),
        _ => {}
    }
    keys
}

/// Checks one OCSF event against [`required`] and the numbering rules; the problems found.
pub fn validate(e: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let class = e["class_uid"].as_u64().unwrap_or(0);
    for key in required(class) {
        if e.get(key).is_none_or(Value::is_null) {
            problems.push(format!("class {class}: missing {key}"));
        }
    }
    let activity = e["activity_id"].as_u64().unwrap_or(0);
    if e["type_uid"].as_u64() != Some(class * 100 + activity) {
        problems.push(format!(
            "type_uid is not class_uid * 100 + activity_id: {}",
            e["type_uid"]
        ));
    }
    if e["category_uid"].as_u64() != Some(class / 1000) {
        problems.push("category_uid does not match class_uid".into());
    }
    for key in ["product", "version"] {
        if e["metadata"].get(key).is_none() {
            problems.push(format!("metadata.{key} missing"));
        }
    }
    if e["metadata"]["product"].get("name").is_none() {
        problems.push("metadata.product.name missing".into());
    }
    if class == 1007 && e["process"].get("pid").is_none() {
        problems.push("process needs pid".into());
    }
    if class == 1001 && (e["file"].get("name").is_none() || e["file"].get("type_id").is_none()) {
        problems.push("file needs name and type_id".into());
    }
    if class == 1003 && (e["kernel"].get("name").is_none() || e["kernel"].get("type_id").is_none())
    {
        problems.push("kernel needs name and type_id".into());
    }
    if matches!(e["unmapped"]["decision"].as_str(), Some("deny" | "kill"))
        && (e["action_id"] != 2 || e["disposition_id"] != 2)
    {
        problems.push("a block must carry action_id 2 and disposition_id 2".into());
    }
    for key in ["name", "uid", "version"] {
        if e["policy"].get(key).is_none() {
            problems.push(format!("policy.{key} missing"));
        }
    }
    problems
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::record::{PolicyRef, TaskContext};
    use crate::vocab::EnforcementMode;

    /// A record of every field, for format tests.
    pub(crate) fn record(op: &'static str, decision: &'static str, target: &str) -> Record {
        let ctx = TaskContext {
            task: "t".into(),
            task_id: "t-1".into(),
            intent: Some("fix".into()),
            policy: PolicyRef {
                name: "p".into(),
                version: 3,
                sha256: "ab".repeat(32),
                generation: 2,
            },
            mode: EnforcementMode::Fallback,
            unenforced: vec![],
            boot_to_unix_ns: 0,
        };
        let mut r = Record::lifecycle(&ctx, Op::parse(op).expect("an op"), 42, json!({}));
        r.decision = Decision::parse(decision).expect("a decision");
        r.target = target.into();
        r.comm = "probe".into();
        r
    }

    #[test]
    fn every_event_kind_meets_its_class_requirements() {
        let cases = [
            (record("exec", "deny", "/usr/bin/perl"), 1007, 1),
            (record("exec", "allow", "/usr/bin/git"), 1007, 1),
            (record("open", "deny", "/etc/shadow"), 1001, 14),
            (record("open", "kill", "/srv/repo/.env"), 1001, 14),
            (record("open", "audit", "/etc/shadow"), 1001, 14),
            (record("connect", "deny", "127.0.0.66:4444"), 4001, 5),
            (record("connect", "allow", "[::1]:8080"), 4001, 1),
            (record("mount", "deny", ""), 1001, 12),
            (record("mmap", "deny", "/tmp/evil"), 1004, 9),
            (record("connect", "deny", "/run/docker.sock"), 4001, 5),
            (record("sendmsg", "deny", "127.0.0.66:53"), 4001, 5),
            (record("io_uring", "deny", "io_uring_setup"), 1003, 4),
            (record("limit", "kill", "max_connects"), 1007, 2),
            (record("task_start", "allow", "t"), 1007, 1),
            (record("task_end", "allow", "t"), 1007, 2),
            (record("events_dropped", "allow", "t"), 1008, 99),
            (record("unlink", "deny", "/srv/repo/x"), 1001, 4),
            (record("mkdir", "deny", "/etc/x"), 1001, 1),
            (record("rmdir", "deny", "/etc/x"), 1001, 4),
            (record("mknod", "deny", "/dev/x"), 1001, 1),
            (record("rename", "deny", "/etc/x"), 1001, 5),
            (record("link", "deny", "/etc/x"), 1001, 1),
            (record("symlink", "deny", "/etc/x"), 1001, 1),
            (record("truncate", "deny", "/etc/x"), 1001, 3),
            (record("chmod", "deny", "/etc/x"), 1001, 7),
            (record("chown", "deny", "/etc/x"), 1001, 7),
            (record("chroot", "deny", "/tmp/root"), 1001, 99),
            (record("daemon_start", "allow", ""), 6002, 3),
            (record("daemon_stop", "allow", ""), 6002, 4),
            (record("policy_reload", "allow", ""), 6002, 8),
            (record("policy_applied", "allow", ""), 6002, 8),
            (record("programs_upgraded", "allow", ""), 6002, 8),
            (record("policy_error", "allow", ""), 6002, 99),
            (
                record("control", "deny", "/run/enforcer/enforcer.sock"),
                6003,
                99,
            ),
            (record("signal", "deny", "pid 1"), 1007, 99),
            (record("socket", "deny", "address family"), 4001, 5),
            (record("syscall", "deny", "unshare"), 1003, 4),
            (record("ptrace", "deny", "pid 1"), 1007, 4),
        ];
        for (i, (r, class, activity)) in cases.iter().enumerate() {
            let e = to_ocsf(r, 1_795_000_000_000, i as u64, "boot", "host");
            assert_eq!(e["class_uid"], *class, "{}", r.op);
            assert_eq!(e["activity_id"], *activity, "{}", r.op);
            assert_eq!(validate(&e), Vec::<String>::new(), "{}: {e}", r.op);
            assert_eq!(e["metadata"]["sequence"], i as u64);
            assert_eq!(e["policy"]["uid"], "ab".repeat(32));
        }
        let blocked = to_ocsf(&cases[0].0, 0, 0, "b", "h");
        assert_eq!(
            (
                blocked["action_id"].clone(),
                blocked["disposition_id"].clone()
            ),
            (json!(2), json!(2))
        );
        let net = to_ocsf(&cases[6].0, 0, 0, "b", "h");
        assert_eq!(net["dst_endpoint"], json!({ "ip": "::1", "port": 8080 }));
    }

    #[test]
    fn validation_catches_a_broken_event() {
        let mut e = to_ocsf(&record("open", "deny", "/x"), 0, 0, "b", "h");
        e.as_object_mut().unwrap().remove("file");
        e["type_uid"] = json!(1);
        assert_eq!(
            validate(&e),
            vec![
                "class 1001: missing file".to_owned(),
                "type_uid is not class_uid * 100 + activity_id: 1".to_owned(),
                "file needs name and type_id".to_owned(),
            ]
        );
    }
}
