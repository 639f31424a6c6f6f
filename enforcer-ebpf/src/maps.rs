//! Every map the programs share, in one place: names, kinds and capacities are those of
//! `enforcer_common::MAPS`, which userspace checks each loaded map against.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use enforcer_common::{
    InodeKey, InodeRule, NetKey, NetRule, PathKey, PathRule, PendingOp, TaskCounters, TaskEntry,
    TaskLimits, spec,
};

/// cgroup id -> task. A miss means "not ours".
#[map]
pub static TASKS: HashMap<u64, TaskEntry> = HashMap::with_max_entries(spec::TASKS.max_entries, 0);

/// slot -> limits (written by userspace when the envelope starts).
#[map]
pub static LIMITS: Array<TaskLimits> = Array::with_max_entries(spec::LIMITS.max_entries, 0);

/// slot -> counters and labels (added to by the kernel).
#[map]
pub static COUNTERS: Array<TaskCounters> = Array::with_max_entries(spec::COUNTERS.max_entries, 0);

/// (slot, path prefix) -> access in force. Read by the LSM hooks; filled in both modes.
#[map]
pub static FILE_RULES: LpmTrie<PathKey, PathRule> =
    LpmTrie::with_max_entries(spec::FILE_RULES.max_entries, 0);

/// (slot, port, address prefix) -> allowed endpoint.
#[map]
pub static NET_RULES: LpmTrie<NetKey, NetRule> =
    LpmTrie::with_max_entries(spec::NET_RULES.max_entries, 0);

/// (slot, dev, ino) -> rule: files and directories a task must never open (or write, or
/// run), by identity.
#[map]
pub static INODE_RULES: HashMap<InodeKey, InodeRule> =
    HashMap::with_max_entries(spec::INODE_RULES.max_entries, 0);

/// pid_tgid -> the syscall a task thread is in (enter tracepoint -> exit tracepoint).
#[map]
pub static PENDING: LruHashMap<u64, PendingOp> =
    LruHashMap::with_max_entries(spec::PENDING.max_entries, 0);

/// pid of a daemon task's command -> its wait status once it exits (`exit_status`). Only pids
/// the daemon put here are written.
#[map]
pub static EXITS: HashMap<u32, i32> = HashMap::with_max_entries(spec::EXITS.max_entries, 0);

/// Decisions for userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(spec::EVENTS.max_entries, 0);

/// Events that did not fit in `EVENTS`, per CPU. Userspace reports the sum.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(spec::DROPS.max_entries, 0);
