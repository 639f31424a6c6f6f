//! The table of maps the programs share with userspace, and their keys and values.
//!
//! [`MAPS`] is the one description of every map: the eBPF side declares each map with its
//! spec's capacity, userspace pins, opens and copies what the table says, checks every map it
//! loads or opens against it, and the layout fingerprint folds it.
//!
//! The per-task state is laid out for what runs under it now and what this round adds, so a
//! running task converts once:
//! - `TASKS` (cgroup id → [`TaskEntry`]): the rule set, flags, the enclosing task (sub-agents)
//!   and the labels that narrow it (flow rules);
//! - `LIMITS`/`COUNTERS` (slot → [`TaskLimits`]/[`TaskCounters`]): deadline and budgets, and
//!   what the kernel counted against them, with the flow labels set so far;
//! - `FILE_RULES`/`NET_RULES`/`INODE_RULES`: rules, each able to carry labels it sets, and
//!   entries that expire in the kernel (grants, addresses learned from DNS answers).
use core::mem::{offset_of, size_of};

use crate::{KEY_PATH_BYTES, MAX_LABELS, MAX_RULES, MAX_TASKS};

/// Map names, shared so userspace never spells them differently from the kernel side.
pub mod map_names {
    pub const TASKS: &str = "TASKS";
    pub const LIMITS: &str = "LIMITS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const FILE_RULES: &str = "FILE_RULES";
    pub const NET_RULES: &str = "NET_RULES";
    pub const INODE_RULES: &str = "INODE_RULES";
    pub const EVENTS: &str = "EVENTS";
    pub const DROPS: &str = "DROPS";
    pub const PENDING: &str = "PENDING";
    pub const EXITS: &str = "EXITS";
}

/// A map's kind, as the kernel numbers it (`enum bpf_map_type`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Hash = 1,
    Array = 2,
    PerCpuArray = 6,
    LruHash = 9,
    LpmTrie = 11,
    RingBuf = 27,
}

/// One map: what the kernel knows of it (kind, sizes, capacity) and whether it is pinned (it
/// outlives the daemon, and an upgrade carries its entries over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub name: &'static str,
    pub kind: MapKind,
    /// Bytes of a key as the kernel sees it (an LPM-trie key includes its 4-byte prefix length).
    pub key_size: u32,
    pub value_size: u32,
    /// Entries, or bytes for a ring buffer.
    pub max_entries: u32,
    pub pinned: bool,
}

const fn spec(
    name: &'static str,
    kind: MapKind,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
    pinned: bool,
) -> MapSpec {
    MapSpec {
        name,
        kind,
        key_size: key_size as u32,
        value_size: value_size as u32,
        max_entries,
        pinned,
    }
}

/// Bytes of the prefix length in front of every LPM-trie key.
const LPM_PREFIX: usize = 4;

/// Each map's spec, by name.
pub mod spec {
    use super::*;
    pub const TASKS: MapSpec = spec(
        map_names::TASKS,
        MapKind::Hash,
        size_of::<u64>(),
        size_of::<TaskEntry>(),
        MAX_TASKS,
        true,
    );
    pub const LIMITS: MapSpec = spec(
        map_names::LIMITS,
        MapKind::Array,
        size_of::<u32>(),
        size_of::<TaskLimits>(),
        MAX_TASKS,
        true,
    );
    pub const COUNTERS: MapSpec = spec(
        map_names::COUNTERS,
        MapKind::Array,
        size_of::<u32>(),
        size_of::<TaskCounters>(),
        MAX_TASKS,
        true,
    );
    pub const FILE_RULES: MapSpec = spec(
        map_names::FILE_RULES,
        MapKind::LpmTrie,
        LPM_PREFIX + size_of::<PathKey>(),
        size_of::<PathRule>(),
        MAX_RULES,
        true,
    );
    pub const NET_RULES: MapSpec = spec(
        map_names::NET_RULES,
        MapKind::LpmTrie,
        LPM_PREFIX + size_of::<NetKey>(),
        size_of::<NetRule>(),
        MAX_RULES,
        true,
    );
    pub const INODE_RULES: MapSpec = spec(
        map_names::INODE_RULES,
        MapKind::Hash,
        size_of::<InodeKey>(),
        size_of::<InodeRule>(),
        MAX_RULES,
        true,
    );
    /// pid of a daemon task's command → its wait status (`exit_status`).
    pub const EXITS: MapSpec = spec(
        map_names::EXITS,
        MapKind::Hash,
        size_of::<u32>(),
        size_of::<i32>(),
        MAX_TASKS,
        true,
    );
    /// Decisions for userspace: 4 MiB, about 10,000 events.
    pub const EVENTS: MapSpec = spec(map_names::EVENTS, MapKind::RingBuf, 0, 0, 4 << 20, true);
    /// Events that did not fit in `EVENTS`, per CPU.
    pub const DROPS: MapSpec = spec(
        map_names::DROPS,
        MapKind::PerCpuArray,
        size_of::<u32>(),
        size_of::<u64>(),
        1,
        true,
    );
    /// pid_tgid → the syscall a thread is in (enter tracepoint → exit tracepoint). Each set of
    /// programs has its own: an upgrade loses at most the syscalls in flight, which the new
    /// programs see at their next enter.
    pub const PENDING: MapSpec = spec(
        map_names::PENDING,
        MapKind::LruHash,
        size_of::<u64>(),
        size_of::<PendingOp>(),
        16_384,
        false,
    );
}

/// Every map of the programs.
pub const MAPS: &[MapSpec] = &[
    spec::TASKS,
    spec::LIMITS,
    spec::COUNTERS,
    spec::FILE_RULES,
    spec::NET_RULES,
    spec::INODE_RULES,
    spec::EXITS,
    spec::EVENTS,
    spec::DROPS,
    spec::PENDING,
];

/// The spec of the map called `name`.
pub fn map_spec(name: &str) -> Option<&'static MapSpec> {
    MAPS.iter().find(|m| m.name.as_bytes() == name.as_bytes())
}

/// Value of `TASKS`, keyed by cgroup id (the inode number of the task's cgroup directory).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskEntry {
    /// Index into the per-task arrays and part of every rule key.
    pub slot: u32,
    /// Policy generation that filled this task's rules.
    pub generation: u32,
    /// [`crate::task_flags`] bits.
    pub flags: u32,
    /// The rule set: the slot part of every rule key (`FILE_RULES`, `NET_RULES`,
    /// `INODE_RULES`). A policy reload fills a new rule set and then swaps this entry in one
    /// update, so each operation sees either the old rules or the new ones, never a mix;
    /// `slot` (counters, limits) stays.
    pub rules: u32,
    /// Cgroup id of the task that encloses this one (a sub-agent is held inside its parent's
    /// envelope), or [`crate::NO_PARENT`].
    pub parent: u64,
    /// Bit `i` set: label `i` narrows this task once set (an `[[after]]` block names it).
    pub narrowed_by: u32,
    pub _reserved: u32,
}

/// Value of `LIMITS`, an array indexed by slot. Zero means "no limit".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// `CLOCK_BOOTTIME` nanoseconds after which every operation is refused and the task killed.
    pub deadline_ns: u64,
    pub max_execs: u64,
    pub max_connects: u64,
    pub max_denials: u64,
    /// Bytes the task may send to the network.
    pub max_bytes_out: u64,
    /// What reporters may charge the task, in millionths of their unit.
    pub max_cost: u64,
    pub _reserved: [u64; 2],
}

/// Value of `COUNTERS`, an array indexed by slot; the kernel adds atomically.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounters {
    pub execs: u64,
    pub opens: u64,
    pub connects: u64,
    pub denials: u64,
    /// Non-zero once the task is being ended: the [`crate::limit_kind`] that was exceeded (so
    /// its event is sent once), or [`crate::ENDED_BY_KILL`] after a kill-on-violation. From
    /// then on every checked operation of any process of the task is refused or kills its
    /// caller.
    pub ended: u64,
    /// Bytes sent to the network.
    pub bytes_out: u64,
    /// Charged so far, in millionths of the reporter's unit.
    pub cost: u64,
    pub _reserved: u64,
    /// Byte `i` non-zero: flow label `i` is set. One byte each, so that two CPUs setting two
    /// labels at once need no read-modify-write (the programs' CPU target has no atomic OR);
    /// a label is never cleared while the task runs.
    pub labels: [u8; MAX_LABELS],
}

/// Data of a `FILE_RULES` LPM-trie key: the slot (big-endian, so it is matched as a prefix)
/// followed by the path bytes. Directory rules end in `/`; exact-file rules include the NUL, so
/// `/srv/repo` never matches `/srv/repository`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    pub slot: [u8; 4],
    pub path: [u8; KEY_PATH_BYTES],
}

/// Value of `FILE_RULES`: the access in force at this prefix (already merged with every
/// shorter rule, so the longest match alone decides) and the policy entry that set it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathRule {
    /// [`crate::access`] bits allowed at and below this prefix.
    pub allow: u32,
    /// Index of the deciding rule in the compiled policy's rule table.
    pub rule_id: u32,
    /// Bit `i`: an allowed open or exec here sets flow label `i` for the task.
    pub labels: u32,
    /// Access bits a grant adds here until `grant_deadline_ns` (`CLOCK_BOOTTIME`).
    pub granted: u32,
    /// The grant's entry in the compiled rule table, named by decisions it makes.
    pub grant_rule_id: u32,
    pub _reserved: u32,
    pub grant_deadline_ns: u64,
}

/// Data of a `NET_RULES` LPM-trie key. IPv4 addresses are stored IPv4-mapped
/// (`::ffff:a.b.c.d`) so IPv4, IPv6 and mapped addresses hit the same entries. Port 0 in a key
/// means "any port": the programs look up the exact port first, then port 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetKey {
    pub slot: [u8; 4],
    /// Big-endian port.
    pub port: [u8; 2],
    pub addr: [u8; 16],
}

/// Value of `NET_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetRule {
    pub rule_id: u32,
    /// Bit `i`: a connect here sets flow label `i` for the task.
    pub labels: u32,
    /// `CLOCK_BOOTTIME` nanoseconds after which the entry allows nothing (0: never): an address
    /// learned from a DNS answer, or a grant.
    pub expires_ns: u64,
    /// [`crate::net_origin`].
    pub origin: u32,
    pub _reserved: u32,
}

/// Key of `INODE_RULES`: a file (or directory) by identity, so that symlinks, hard links,
/// renames, relative paths and directory fds all reach the same entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InodeKey {
    pub slot: u32,
    pub _reserved: u32,
    /// The kernel's `dev_t` encoding (`major << 20 | minor`), as in `super_block::s_dev`.
    pub dev: u64,
    pub ino: u64,
}

/// Value of `INODE_RULES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InodeRule {
    /// The deny rule, with [`crate::RULE_EXEC_ONLY`], [`crate::RULE_WRITE_ONLY`] or
    /// [`crate::RULE_LABEL_ONLY`] bits.
    pub rule_id: u32,
    /// Bit `i`: opening this file sets flow label `i` for the task.
    pub labels: u32,
}

impl TaskEntry {
    /// The entry the programs make up for a process under a fail-closed root whose cgroup has
    /// no task: no slot, no rules, and `flags` (`NO_TASK`, with `NO_TASK_KILL` where no LSM
    /// hook refuses for it).
    pub const fn stranger(flags: u32) -> Self {
        Self {
            slot: u32::MAX,
            generation: 0,
            flags,
            rules: u32::MAX,
            parent: crate::NO_PARENT,
            narrowed_by: 0,
            _reserved: 0,
        }
    }
}

impl InodeRule {
    pub const fn deny(rule_id: u32) -> Self {
        Self { rule_id, labels: 0 }
    }
}

/// Value of `PENDING`: what a syscall's enter tracepoint saw, for its exit tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingOp {
    /// User pointer to the path argument.
    pub path_ptr: u64,
    pub kind: u32,
    pub dirfd: i32,
    pub flags: u32,
    pub _reserved: u32,
}

impl PathKey {
    /// A key for `slot` holding `path` (truncated to [`KEY_PATH_BYTES`]).
    pub fn new(slot: u32, path: &[u8]) -> Self {
        let mut key = Self {
            slot: slot.to_be_bytes(),
            path: [0; KEY_PATH_BYTES],
        };
        let n = if path.len() < KEY_PATH_BYTES {
            path.len()
        } else {
            KEY_PATH_BYTES
        };
        key.path[..n].copy_from_slice(&path[..n]);
        key
    }
}

const _: () = {
    assert!(size_of::<TaskEntry>() == 32);
    assert!(offset_of!(TaskEntry, parent) == 16);
    assert!(size_of::<TaskLimits>() == 64);
    assert!(size_of::<TaskCounters>() == 64 + MAX_LABELS);
    assert!(offset_of!(TaskCounters, labels) == 64);
    assert!(MAX_LABELS <= 32, "label bits are u32 masks");
    assert!(size_of::<PathKey>() == 4 + KEY_PATH_BYTES);
    // The kernel's LPM_DATA_SIZE_MAX.
    assert!(size_of::<PathKey>() <= 256);
    assert!(offset_of!(PathKey, path) == 4);
    assert!(size_of::<PathRule>() == 32);
    assert!(offset_of!(PathRule, grant_deadline_ns) == 24);
    assert!(size_of::<NetKey>() == 22);
    assert!(offset_of!(NetKey, port) == 4);
    assert!(offset_of!(NetKey, addr) == 6);
    assert!(size_of::<NetRule>() == 24);
    assert!(offset_of!(NetRule, expires_ns) == 8);
    assert!(size_of::<InodeKey>() == 24);
    assert!(offset_of!(InodeKey, dev) == 8);
    assert!(size_of::<InodeRule>() == 8);
    assert!(size_of::<PendingOp>() == 24);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], Copy, made only of integers and byte arrays, with
    // every byte covered by a field (checked by the size asserts above).
    unsafe impl aya::Pod for TaskEntry {}
    unsafe impl aya::Pod for TaskLimits {}
    unsafe impl aya::Pod for TaskCounters {}
    unsafe impl aya::Pod for PathKey {}
    unsafe impl aya::Pod for PathRule {}
    unsafe impl aya::Pod for NetKey {}
    unsafe impl aya::Pod for NetRule {}
    unsafe impl aya::Pod for InodeKey {}
    unsafe impl aya::Pod for InodeRule {}
    unsafe impl aya::Pod for PendingOp {}
}
