//! The words the enforcer speaks in: the enforcement mode, what an event is about, a
//! decision and who enforced it.
//! Enums in the code, the same strings as always on the wire (JSON, OCSF, syslog, metrics).
use std::fmt;

/// An enum whose values are written as fixed strings: `as_str`, `parse`, `Display`, and serde
/// as that string.
macro_rules! vocabulary {
    ($(#[$doc:meta])* pub enum $name:ident {
        $($(#[$vdoc:meta])* $variant:ident = $text:literal,)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!(
                        "unknown {} \"{s}\" (known: {})",
                        stringify!($name),
                        known.join(", ")
                    ))
                })
            }
        }
    };
}

vocabulary! {
    /// How the running tasks are enforced.
    pub enum EnforcementMode {
        /// BPF LSM hooks refuse each operation.
        Lsm = "lsm",
        /// Landlock, seccomp and cgroup programs refuse; tracepoints report and kill.
        Fallback = "fallback",
    }
}

vocabulary! {
    /// What happened to an operation.
    pub enum Decision {
        Allow = "allow",
        Deny = "deny",
        /// Refused by killing the process that did it (and ending its task).
        Kill = "kill",
        /// Audit mode: allowed, and reported as what enforcement would have refused.
        Audit = "audit",
    }
}

vocabulary! {
    /// Who enforced a decision.
    pub enum EnforcedBy {
        None = "none",
        Lsm = "lsm",
        Landlock = "landlock",
        Cgroup = "cgroup",
        Kill = "kill",
        Seccomp = "seccomp",
        /// The kernel's own checks (credentials, capabilities).
        Kernel = "kernel",
        /// The daemon refused a request before any task existed.
        Daemon = "daemon",
    }
}

vocabulary! {
    /// What an event is about: an operation of a task, or a moment of its life or the daemon's.
    pub enum Op {
        /// A file opened.
        Open = "open",
        /// A program run.
        Exec = "exec",
        /// A file mapped executable.
        Mmap = "mmap",
        /// A connect (inet or unix).
        Connect = "connect",
        /// A datagram sent to an address.
        Sendmsg = "sendmsg",
        /// A bind to a local port.
        Bind = "bind",
        /// A listen on a local port.
        Listen = "listen",
        Unlink = "unlink",
        Mkdir = "mkdir",
        Rmdir = "rmdir",
        Mknod = "mknod",
        Rename = "rename",
        Link = "link",
        Symlink = "symlink",
        Truncate = "truncate",
        Chmod = "chmod",
        Chown = "chown",
        /// mount, move_mount or pivot_root.
        Mount = "mount",
        Chroot = "chroot",
        /// A path operation the enforcer has no name for.
        FileOp = "file_op",
        /// io_uring refused.
        IoUring = "io_uring",
        /// A signal to a process outside the task.
        Signal = "signal",
        /// A trace of, or a reach into, a process outside the task.
        Ptrace = "ptrace",
        /// A socket refused.
        Socket = "socket",
        /// A syscall refused that no other op names.
        Syscall = "syscall",
        /// A limit reached: the task ends.
        Limit = "limit",
        TaskStart = "task_start",
        TaskEnd = "task_end",
        /// A request on the control socket refused.
        Control = "control",
        EventsDropped = "events_dropped",
        DaemonStart = "daemon_start",
        DaemonStop = "daemon_stop",
        ProgramsUpgraded = "programs_upgraded",
        PolicyReload = "policy_reload",
        PolicyApplied = "policy_applied",
        PolicyError = "policy_error",
    }
}

// The derives come from the macro, which has no `#[default]` for one variant.
#[allow(clippy::derivable_impls)]
impl Default for EnforcementMode {
    fn default() -> Self {
        Self::Fallback
    }
}

impl EnforcementMode {
    pub fn of(lsm: bool) -> Self {
        if lsm { Self::Lsm } else { Self::Fallback }
    }

    pub fn is_lsm(self) -> bool {
        self == Self::Lsm
    }
}

impl Decision {
    /// Whether the operation was stopped (refused or its process killed).
    pub fn refused(self) -> bool {
        matches!(self, Self::Deny | Self::Kill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_the_wire_strings_both_ways() {
        for m in EnforcementMode::ALL {
            assert_eq!(EnforcementMode::parse(m.as_str()), Some(*m));
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{m}\""));
            assert_eq!(serde_json::from_str::<EnforcementMode>(&json).unwrap(), *m);
        }
        for d in Decision::ALL {
            assert_eq!(Decision::parse(d.as_str()), Some(*d));
        }
        for e in EnforcedBy::ALL {
            assert_eq!(EnforcedBy::parse(e.as_str()), Some(*e));
        }
        for o in Op::ALL {
            assert_eq!(Op::parse(o.as_str()), Some(*o));
        }
        let err = serde_json::from_str::<EnforcementMode>("\"both\"").unwrap_err();
        assert!(err.to_string().contains("known: lsm, fallback"), "{err}");
        assert!(Decision::Kill.refused() && !Decision::Audit.refused());
    }
}
