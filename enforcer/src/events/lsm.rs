//! Records for what the BPF LSM hooks decided (lsm mode): the kernel refused the operation
//! itself, on the resolved path it checked, and names the deciding rule.
use crate::vocab::{Decision, EnforcedBy, Op};
use enforcer_common::{Event, access, decision, event_kind, file_op};
use serde_json::{Map, Value, json};

use super::record::{Record, rule_label};
use crate::policy::Policy;

/// Whether `ev` comes from an LSM hook (rather than a tracepoint or a cgroup program): the
/// hooks set `enforced_by` to LSM on every event, audit ones included.
pub fn is_lsm(ev: &Event) -> bool {
    let lsm_kind = matches!(
        ev.kind,
        event_kind::OPEN
            | event_kind::EXEC
            | event_kind::FILE_OP
            | event_kind::MMAP
            | event_kind::UNIX_CONNECT
    );
    lsm_kind && ev.enforced_by == enforcer_common::enforced_by::LSM
}

/// [`enforcer_common::Event::op`] of a `UNIX_CONNECT` event for a datagram sent to a path.
const UNIX_SENDMSG: u32 = enforcer_common::UNIX_OP_SENDMSG;
use enforcer_common::{
    UNIX_OP_ABSTRACT_CONNECT as ABSTRACT_CONNECT, UNIX_OP_ABSTRACT_SENDMSG as ABSTRACT_SENDMSG,
};

/// The path operations, by their `file_op` code. Each but mount has a hook of its own,
/// `path_<name>`.
const FILE_OPS: &[(u32, Op)] = &[
    (file_op::UNLINK, Op::Unlink),
    (file_op::MKDIR, Op::Mkdir),
    (file_op::RMDIR, Op::Rmdir),
    (file_op::MKNOD, Op::Mknod),
    (file_op::RENAME, Op::Rename),
    (file_op::LINK, Op::Link),
    (file_op::SYMLINK, Op::Symlink),
    (file_op::TRUNCATE, Op::Truncate),
    (file_op::CHMOD, Op::Chmod),
    (file_op::CHOWN, Op::Chown),
    (file_op::MOUNT, Op::Mount),
    (file_op::CHROOT, Op::Chroot),
];

/// `flags >> 8` of a `LINK` refusal for access the new name would add (the target is then the
/// file's own path).
const LINK_REFER: u32 = 1;

/// The name of a path operation.
pub fn op_name(kind: u32, op: u32) -> Op {
    match kind {
        event_kind::OPEN => Op::Open,
        event_kind::EXEC => Op::Exec,
        event_kind::MMAP => Op::Mmap,
        // A datagram sent to a socket path (socket_sendmsg), or a connect.
        event_kind::UNIX_CONNECT if op == UNIX_SENDMSG || op == ABSTRACT_SENDMSG => Op::Sendmsg,
        event_kind::UNIX_CONNECT => Op::Connect,
        _ => FILE_OPS
            .iter()
            .find(|(code, _)| *code == op)
            .map_or(Op::FileOp, |(_, name)| *name),
    }
}

/// The access an LSM event asked for.
pub fn access_name(want: u32) -> &'static str {
    match want {
        w if w == access::READ | access::WRITE => "read+write",
        w if w & access::EXEC != 0 => "exec",
        w if w & access::WRITE != 0 => "write",
        access::READ => "read",
        access::WRITE => "write",
        access::EXEC => "exec",
        access::MAP_EXEC => "map_exec",
        access::CONNECT => "connect",
        _ => "none",
    }
}

/// Fills `record` (common fields already set) from an LSM event.
pub fn fill(mut record: Record, ev: &Event, policy: &Policy) -> Record {
    let want = ev.flags & 0xff;
    let prot = ev.flags >> 8;
    record.op = op_name(ev.kind, ev.op);
    record.access = access_name(want);
    let audit = ev.decision == decision::AUDIT;
    (record.decision, record.enforced_by) = if audit {
        (Decision::Audit, EnforcedBy::None)
    } else {
        (Decision::Deny, EnforcedBy::Lsm)
    };
    record.errno = (!audit).then_some("EPERM");
    record.rule = if ev.op == file_op::MOUNT {
        "no task may mount (a mount would give files a second path)".into()
    } else if ev.op == file_op::CHROOT {
        "no task may chroot (a new root would change the paths the rules see)".into()
    } else if record.target.is_empty() || record.target == "?" {
        "the path could not be resolved in the kernel: refused (fail closed)".into()
    } else {
        rule_label(policy, ev.rule_id)
    };
    if ev.kind == event_kind::UNIX_CONNECT
        && (ev.op == ABSTRACT_CONNECT || ev.op == ABSTRACT_SENDMSG)
    {
        // An abstract name: `count` bytes after the '@' (not NUL-terminated).
        let n = (ev.count as usize).min(ev.path.len() - 1);
        record.target = format!("@{}", String::from_utf8_lossy(&ev.path[1..1 + n]));
    }
    let mut details = Map::new();
    details.insert("checked_path".into(), json!(record.target));
    details.insert("checked_by".into(), json!(hook(ev.kind, ev.op)));
    if ev.dev != 0 || ev.ino != 0 {
        details.insert(
            "dev".into(),
            json!(format!("{}:{}", ev.dev >> 20, ev.dev & 0xf_ffff)),
        );
        details.insert("ino".into(), json!(ev.ino));
        details.insert("matched_by".into(), json!("identity (device, inode)"));
    }
    if ev.kind == event_kind::MMAP && prot != 0 {
        details.insert("prot".into(), json!(prot_name(prot)));
    }
    if ev.kind == event_kind::UNIX_CONNECT {
        details.insert("family".into(), json!("unix"));
    }
    if ev.kind == event_kind::FILE_OP && ev.op == file_op::LINK && prot == LINK_REFER {
        // The target is the file's own path, and the rule the one in force there.
        details.insert(
            "why".into(),
            json!("a hard link may not give a file access its own path lacks"),
        );
    }
    record.details = details;
    record
}

fn hook(kind: u32, op: u32) -> Value {
    json!(match (kind, op) {
        (event_kind::OPEN, _) => "file_open".to_owned(),
        (event_kind::EXEC, _) => "bprm_check_security".to_owned(),
        (event_kind::MMAP, enforcer_common::MMAP_OP_MPROTECT) => "file_mprotect".to_owned(),
        (event_kind::MMAP, _) => "mmap_file".to_owned(),
        (event_kind::UNIX_CONNECT, UNIX_SENDMSG) => "socket_sendmsg".to_owned(),
        (event_kind::UNIX_CONNECT, ABSTRACT_CONNECT) => "unix_stream_connect".to_owned(),
        (event_kind::UNIX_CONNECT, ABSTRACT_SENDMSG) => "unix_may_send".to_owned(),
        (event_kind::UNIX_CONNECT, _) => "socket_connect".to_owned(),
        (_, file_op::MOUNT) => "sb_mount/move_mount/sb_pivotroot".to_owned(),
        _ => format!("path_{}", op_name(kind, op)),
    })
}

fn prot_name(prot: u32) -> String {
    let mut parts = Vec::new();
    for (bit, name) in [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")] {
        if prot & bit != 0 {
            parts.push(name);
        }
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_operation_and_access() {
        assert_eq!(op_name(event_kind::FILE_OP, file_op::MOUNT), "mount");
        assert_eq!(op_name(event_kind::FILE_OP, file_op::MKNOD), "mknod");
        assert_eq!(hook(event_kind::FILE_OP, file_op::RENAME), "path_rename");
        assert_eq!(hook(event_kind::FILE_OP, file_op::CHROOT), "path_chroot");
        assert_eq!(
            hook(event_kind::FILE_OP, file_op::MOUNT),
            "sb_mount/move_mount/sb_pivotroot"
        );
        assert_eq!(
            hook(event_kind::MMAP, enforcer_common::MMAP_OP_MPROTECT),
            "file_mprotect"
        );
        assert_eq!(op_name(event_kind::UNIX_CONNECT, 0), "connect");
        assert_eq!(op_name(event_kind::MMAP, 0), "mmap");
        assert_eq!(access_name(access::READ | access::WRITE), "read+write");
        assert_eq!(access_name(access::MAP_EXEC), "map_exec");
        assert_eq!(prot_name(5), "PROT_READ|PROT_EXEC");
    }
}
