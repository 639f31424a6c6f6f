//! Values the programs and userspace agree on: access bits, task flags, limit kinds, the ids
//! of rules no policy entry stands for, and the bits packed into rule ids and keys.

constants! {
    /// Access bits used in file rules and events.
    pub mod access: u32 {
        READ = 1;
        WRITE = 2;
        EXEC = 4;
        CONNECT = 8;
        /// Mapped executable (`mmap`/`mprotect` with PROT_EXEC, and the loader's own open), as
        /// shared libraries and the ELF interpreter are; implied by EXEC. Checked in lsm mode.
        MAP_EXEC = 16;
        /// Bind to a local port, or listen (inbound): a `network.listen` rule.
        LISTEN = 32;
    }
}

constants! {
    /// Bits of [`crate::TaskEntry::flags`].
    pub mod task_flags: u32 {
        /// Deny nothing; report what would have been denied.
        AUDIT = 1;
        /// Check the identity (device, inode) of every file the task opens against
        /// `INODE_RULES`.
        DENY_INODES = 2;
        /// Also check the file's ancestor directories (some deny rule names a directory).
        DENY_DIRS = 4;
        /// Report every open and exec to userspace, which evaluates it (audit mode in fallback).
        OBSERVE_ALL = 8;
        /// Check the identity of every executed program (exec-only entries: ELF interpreters
        /// run directly). Opens are not checked unless `DENY_INODES` is set too.
        EXEC_IDENTITIES = 16;
        /// Set by the programs, never stored: a process under a fail-closed root whose cgroup
        /// has no task entry. Every checked operation of it is refused (`RULE_NO_TASK`).
        NO_TASK = 32;
        /// Set with `NO_TASK` when no LSM hook refuses for it (fallback mode): the tracepoints
        /// kill the process at its first open or exec.
        NO_TASK_KILL = 64;
    }
}

constants! {
    /// Which limit was exceeded, in [`crate::Event::limit_kind`] and
    /// [`crate::TaskCounters::ended`].
    pub mod limit_kind: u32 {
        TTL = 1;
        EXECS = 2;
        CONNECTS = 3;
        DENIALS = 4;
        /// `max_bytes_out`: bytes the task sent to the network.
        BYTES_OUT = 5;
        /// `max_cost`: what reporters charged the task.
        COST = 6;
    }
}

constants! {
    /// Values of [`crate::NetRule::origin`]: where an allowed endpoint came from.
    pub mod net_origin: u32 {
        /// The task's policy.
        POLICY = 0;
        /// An address the enforcer's resolver answered for an allowed name; it expires.
        DNS = 1;
        /// A grant to this task; it expires.
        GRANT = 2;
    }
}

/// [`crate::TaskCounters::ended`] after a kill-on-violation.
pub const ENDED_BY_KILL: u64 = 0x100;

/// [`crate::TaskEntry::parent`] of a task no other task encloses.
pub const NO_PARENT: u64 = 0;

/// Bit of an `INODE_RULES` rule id: the identity only counts when executed (an ELF interpreter
/// run directly, e.g. `ld.so /forbidden/binary`), not when opened.
pub const RULE_EXEC_ONLY: u32 = 1 << 31;

/// Bit of an `INODE_RULES` rule id: the identity only counts when written to (opened for
/// writing, truncated, or a name created beneath it): a `files.protect` rule.
pub const RULE_WRITE_ONLY: u32 = 1 << 30;

/// Bit of an `INODE_RULES` rule id: the identity refuses nothing; opening it sets the entry's
/// labels. Reserved for flow labels: nothing writes such entries yet, and the programs do not
/// test the bit until something does.
pub const RULE_LABEL_ONLY: u32 = 1 << 29;

/// Rule id meaning "no rule matched: the envelope's default deny".
pub const RULE_DEFAULT_DENY: u32 = u32::MAX;
/// Rule id meaning "no task entry for this cgroup: fail closed".
pub const RULE_NO_TASK: u32 = u32::MAX - 1;
/// Rule id meaning "the task is being ended (a limit or a violation)".
pub const RULE_TASK_ENDED: u32 = u32::MAX - 2;
/// Rule id meaning "a program with no name on any filesystem (memfd, unlinked file): no rule
/// can allow it".
pub const RULE_NAMELESS_EXEC: u32 = u32::MAX - 3;
/// Rule id meaning "a process outside the task" (the owner of an abstract unix socket): no
/// rule can allow it.
pub const RULE_OUTSIDE_TASK: u32 = u32::MAX - 4;

/// Bit of a `NET_RULES` key's slot: the entry is a `network.listen` rule (a local address and
/// port the task may bind and listen on), not a connect rule.
pub const NET_SLOT_LISTEN: u32 = 1 << 31;

/// Bits of a `NET_RULES` key before the address: slot and port.
pub const NET_KEY_FIXED_BITS: u32 = 48;
/// Bits of a `FILE_RULES` key before the path: the slot.
pub const PATH_KEY_FIXED_BITS: u32 = 32;

/// Every free-standing value above, for the layout fingerprint.
pub const FREE_VALUES: &[u64] = &[
    ENDED_BY_KILL,
    NO_PARENT,
    RULE_EXEC_ONLY as u64,
    RULE_WRITE_ONLY as u64,
    RULE_LABEL_ONLY as u64,
    RULE_DEFAULT_DENY as u64,
    RULE_NO_TASK as u64,
    RULE_TASK_ENDED as u64,
    RULE_NAMELESS_EXEC as u64,
    RULE_OUTSIDE_TASK as u64,
    NET_SLOT_LISTEN as u64,
    NET_KEY_FIXED_BITS as u64,
    PATH_KEY_FIXED_BITS as u64,
];
