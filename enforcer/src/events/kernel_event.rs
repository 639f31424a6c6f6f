//! Kernel event records to JSON records: the decoding of every kind the tracepoints and the
//! cgroup programs write (the LSM hooks' kinds are `lsm.rs`'s), attributed to the task's
//! policy and rule.
use std::{
    net::{IpAddr, Ipv6Addr},
    path::Path,
};

use enforcer_common::{
    Event, RULE_DEFAULT_DENY, RULE_NAMELESS_EXEC, access, cross_op, decision, enforced_by,
    event_kind, limit_kind, listen_op,
};
use serde_json::{Map, json};

use super::{
    c_str,
    record::{PolicyRef, Record, TaskContext, normalize, rule_label},
    syscalls::{cross_op_name, refused_syscall},
    time,
};
use crate::{
    policy::{Policy, decide::decide_file},
    vocab::{Decision, EnforcedBy, Op},
};

fn errno_name(ret: i32) -> Option<&'static str> {
    match ret {
        -1 => Some("EPERM"),
        -13 => Some("EACCES"),
        -18 => Some("EXDEV"),
        _ => None,
    }
}

fn limit_name(kind: u32) -> &'static str {
    match kind {
        limit_kind::TTL => "ttl",
        limit_kind::EXECS => "max_execs",
        limit_kind::CONNECTS => "max_connects",
        limit_kind::DENIALS => "max_denials",
        _ => "unknown",
    }
}

/// Makes a relative path absolute from the process's cwd or directory fd, if it still exists.
fn absolute(path: &str, pid: u32, dirfd: i32) -> (String, Option<&'static str>) {
    if path.starts_with('/') || path.is_empty() {
        return (path.to_owned(), None);
    }
    let (link, how) = if dirfd == libc::AT_FDCWD {
        (format!("/proc/{pid}/cwd"), "cwd")
    } else {
        (format!("/proc/{pid}/fd/{dirfd}"), "dirfd")
    };
    match std::fs::read_link(link) {
        Ok(base) => (normalize(&base.join(path)).display().to_string(), Some(how)),
        Err(_) => (path.to_owned(), Some("unresolved")),
    }
}

/// The access an open asks for: its name in events and the bits it needs.
fn open_access(flags: u32) -> (&'static str, u32) {
    let acc = flags & libc::O_ACCMODE as u32;
    let creates = flags & (libc::O_CREAT | libc::O_TRUNC) as u32 != 0;
    if acc == libc::O_RDWR as u32 {
        ("read+write", access::READ | access::WRITE)
    } else if acc == libc::O_WRONLY as u32 || creates {
        ("write", access::WRITE)
    } else {
        ("read", access::READ)
    }
}

/// The path the kernel actually checked: symlinks resolved (the parent's, for a file that does
/// not exist yet).
fn resolved(path: &str) -> Option<String> {
    let p = Path::new(path);
    let real = std::fs::canonicalize(p).ok().or_else(|| {
        let parent = std::fs::canonicalize(p.parent()?).ok()?;
        Some(parent.join(p.file_name()?))
    })?;
    let real = real.display().to_string();
    (real != path).then_some(real)
}

fn endpoint(ev: &Event) -> String {
    let v6 = Ipv6Addr::from(ev.addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => format!("{}:{}", IpAddr::V4(v4), ev.port),
        None => format!("[{v6}]:{}", ev.port),
    }
}

/// The Landlock ABI that scopes signals (LANDLOCK_SCOPE_SIGNAL).
const LANDLOCK_SIGNAL_SCOPE_ABI: u32 = 6;

/// Turns a kernel event into a record; `None` for an observation that needs no report.
pub fn from_kernel(ev: &Event, ctx: &TaskContext, policy: &Policy) -> Option<Record> {
    let mut details = Map::new();
    let raw_path = c_str(&ev.path);
    let unix_ns = i128::from(ev.time_ns) + ctx.boot_to_unix_ns;
    let mut record = Record {
        time: time::rfc3339(unix_ns),
        unix_ns,
        task: ctx.task.clone(),
        task_id: ctx.task_id.clone(),
        policy: PolicyRef {
            generation: ev.generation.max(ctx.policy.generation),
            ..ctx.policy.clone()
        },
        pid: ev.pid,
        tid: (ev.tid != ev.pid).then_some(ev.tid),
        comm: c_str(&ev.comm),
        op: Op::Open,
        target: raw_path.clone(),
        access: "read",
        decision: Decision::Deny,
        rule: String::new(),
        enforced_by: EnforcedBy::None,
        mode: ctx.mode,
        errno: errno_name(ev.ret),
        intent: ctx.intent.clone(),
        unenforced: ctx.unenforced_topics(),
        details: Map::new(),
    };
    if super::lsm::is_lsm(ev) {
        return Some(super::lsm::fill(record, ev, policy));
    }
    match ev.kind {
        event_kind::OPEN | event_kind::EXEC => {
            let (target, resolved_from) = absolute(&raw_path, ev.pid, ev.dirfd);
            if let Some(how) = resolved_from {
                details.insert("path_as_given".into(), json!(raw_path));
                details.insert("resolved_from".into(), json!(how));
            }
            let (access_name, bit) = if ev.kind == event_kind::EXEC {
                ("exec", access::EXEC)
            } else {
                open_access(ev.flags)
            };
            record.op = if ev.kind == event_kind::EXEC {
                Op::Exec
            } else {
                Op::Open
            };
            record.access = access_name;
            record.target = target.clone();
            let checked = match resolved(&target) {
                Some(real) => {
                    details.insert("resolved_path".into(), json!(real));
                    real
                }
                None => target.clone(),
            };
            let verdict = decide_file(
                policy,
                &normalize(Path::new(&checked)).to_string_lossy(),
                bit,
            );
            let by_rule = |d: crate::policy::decide::FileDecision| match d.rule {
                Some(id) => rule_label(policy, id),
                None => rule_label(policy, RULE_DEFAULT_DENY),
            };
            match ev.decision {
                decision::ALLOW => {
                    record.decision = Decision::Allow;
                    record.rule = by_rule(verdict);
                }
                decision::DENY if verdict.allowed => {
                    // The kernel refused something this policy allows: not our decision.
                    record.rule = format!(
                        "not this policy ({} allows it): refused by the kernel's own checks, \
                         e.g. file permissions",
                        by_rule(verdict)
                    );
                    record.enforced_by = EnforcedBy::Kernel;
                }
                decision::DENY => {
                    record.rule = by_rule(verdict);
                    record.enforced_by = EnforcedBy::Landlock;
                }
                decision::KILL | decision::AUDIT => {
                    (record.decision, record.enforced_by) = if ev.decision == decision::KILL {
                        (Decision::Kill, EnforcedBy::Kill)
                    } else {
                        (Decision::Audit, EnforcedBy::None)
                    };
                    record.rule = rule_label(policy, ev.rule_id);
                    if ev.rule_id == RULE_NAMELESS_EXEC {
                        record.target = raw_path.clone();
                        details.remove("resolved_path");
                        details.insert("matched_by".into(), json!("no name (inode has no links)"));
                    } else {
                        details.insert(
                            "dev".into(),
                            json!(format!("{}:{}", ev.dev >> 20, ev.dev & 0xf_ffff)),
                        );
                        details.insert("ino".into(), json!(ev.ino));
                        details.insert("matched_by".into(), json!("identity (device, inode)"));
                    }
                }
                decision::OBSERVED => {
                    if verdict.allowed {
                        if ev.kind != event_kind::EXEC {
                            return None;
                        }
                        record.decision = Decision::Allow;
                    } else {
                        record.decision = Decision::Audit;
                    }
                    record.rule = by_rule(verdict);
                }
                _ => return None,
            }
        }
        event_kind::CONNECT | event_kind::SENDMSG => {
            record.op = if ev.kind == event_kind::CONNECT {
                Op::Connect
            } else {
                Op::Sendmsg
            };
            record.access = "connect";
            record.target = endpoint(ev);
            record.rule = rule_label(policy, ev.rule_id);
            record.decision = match ev.decision {
                decision::ALLOW => Decision::Allow,
                decision::AUDIT => Decision::Audit,
                _ => Decision::Deny,
            };
            if record.decision == Decision::Deny {
                record.enforced_by = EnforcedBy::Cgroup;
                record.errno = Some("EPERM");
            } else {
                record.errno = None;
            }
            details.insert(
                "family".into(),
                json!(if ev.family == 10 { "inet6" } else { "inet" }),
            );
        }
        event_kind::LISTEN => {
            record.op = if ev.op == listen_op::BIND {
                Op::Bind
            } else {
                Op::Listen
            };
            record.access = "listen";
            record.target = endpoint(ev);
            record.rule = rule_label(policy, ev.rule_id);
            (record.decision, record.enforced_by, record.errno) = match ev.decision {
                decision::ALLOW => (Decision::Allow, EnforcedBy::None, None),
                decision::AUDIT => (Decision::Audit, EnforcedBy::None, None),
                decision::KILL => (Decision::Kill, EnforcedBy::Kill, None),
                _ if ev.op == listen_op::BIND => {
                    (Decision::Deny, EnforcedBy::Cgroup, Some("EPERM"))
                }
                _ => (Decision::Deny, EnforcedBy::Lsm, Some("EPERM")),
            };
            let family = if ev.family == 10 { "inet6" } else { "inet" };
            details.insert("family".into(), json!(family));
        }
        event_kind::IO_URING => {
            record.op = Op::IoUring;
            record.access = "none";
            record.target = "io_uring_setup".into();
            record.rule =
                "io_uring refused in fallback mode (policy.allow_io_uring is false)".into();
            record.enforced_by = EnforcedBy::Seccomp;
        }
        event_kind::SIGNAL | event_kind::PTRACE => {
            let (op, syscall, by_fd) = cross_op_name(ev.op);
            record.op = if ev.kind == event_kind::SIGNAL {
                Op::Signal
            } else {
                Op::Ptrace
            };
            record.access = "none";
            record.target = if by_fd {
                format!("pidfd {}", ev.count)
            } else {
                format!("pid {}", ev.count)
            };
            record.rule = "another process outside the task: no task process may signal, \
                           trace or read it"
                .into();
            record.enforced_by = if ev.enforced_by == enforced_by::LSM {
                EnforcedBy::Lsm
            } else if ev.kind == event_kind::SIGNAL
                && crate::kernel::landlock::abi_version() < LANDLOCK_SIGNAL_SCOPE_ABI
            {
                // No Landlock scope for signals here: what refused it is the kernel's uid
                // check (the enforcer runs under a uid no task has, kernel::creds).
                record.rule = "another process outside the task, refused by the kernel's \
                               own uid check (signals are not scoped on this kernel)"
                    .into();
                EnforcedBy::Kernel
            } else {
                EnforcedBy::Landlock
            };
            if ev.decision == decision::AUDIT {
                record.decision = Decision::Audit;
                record.enforced_by = EnforcedBy::None;
            }
            details.insert("syscall".into(), json!(syscall));
            if ev.kind == event_kind::SIGNAL {
                details.insert("signal".into(), json!(ev.flags));
            } else if op == cross_op::PTRACE {
                details.insert("request".into(), json!(ev.flags));
            }
        }
        event_kind::SOCKET => {
            record.op = Op::Socket;
            record.access = "connect";
            let icmp = ev.ret == -libc::EPERM;
            record.target = if icmp {
                "icmp or raw socket".into()
            } else {
                "address family".into()
            };
            record.rule = if icmp {
                "ICMP (ping) sockets are refused to tasks (seccomp), raw ones need \
                 CAP_NET_RAW (kernel)"
                    .into()
            } else {
                "address families other than unix, inet, inet6 and netlink are refused to \
                 tasks (seccomp)"
                    .into()
            };
            record.enforced_by = EnforcedBy::Seccomp;
        }
        event_kind::SYSCALL => {
            let (name, why) = refused_syscall(ev.op);
            record.op = Op::Syscall;
            record.access = "none";
            record.target = name.into();
            record.rule = why.into();
            record.enforced_by = if name == "bpf" || name == "open_by_handle_at" {
                EnforcedBy::Kernel
            } else if ev.ret == -libc::EACCES || ev.ret == -libc::EXDEV {
                EnforcedBy::Landlock
            } else {
                EnforcedBy::Seccomp
            };
        }
        event_kind::LIMIT => {
            record.op = Op::Limit;
            record.access = "none";
            record.target = limit_name(ev.limit_kind).into();
            record.decision = Decision::Kill;
            record.enforced_by = EnforcedBy::Kill;
            record.rule = format!("limits.{}", limit_name(ev.limit_kind));
            record.errno = None;
            if ev.limit_kind == limit_kind::TTL {
                details.insert(
                    "deadline".into(),
                    json!(time::rfc3339(i128::from(ev.limit) + ctx.boot_to_unix_ns)),
                );
            } else {
                details.insert("count".into(), json!(ev.count));
                details.insert("limit".into(), json!(ev.limit));
            }
        }
        _ => return None,
    }
    if ev.enforced_by == enforced_by::KILL && record.enforced_by == EnforcedBy::None {
        record.enforced_by = EnforcedBy::Kill;
    }
    record.details = details;
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_map_to_read_or_write() {
        assert_eq!(open_access(libc::O_RDONLY as u32).0, "read");
        assert_eq!(open_access(libc::O_WRONLY as u32).0, "write");
        assert_eq!(
            open_access(libc::O_RDWR as u32),
            ("read+write", access::READ | access::WRITE)
        );
        assert_eq!(
            open_access((libc::O_RDONLY | libc::O_CREAT) as u32).0,
            "write"
        );
    }
}
