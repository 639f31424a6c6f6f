//! Every map the programs share, in one place. Names match `enforcer_common::map_names`.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use enforcer_common::{
    InodeKey, MAX_RULES, MAX_TASKS, NetKey, NetRule, PathKey, PathRule, PendingOp, TaskCounters,
    TaskEntry, TaskLimits,
};

/// cgroup id -> task. A miss means "not ours".
#[map]
pub static TASKS: HashMap<u64, TaskEntry> = HashMap::with_max_entries(MAX_TASKS, 0);

/// slot -> limits (written by userspace when the envelope starts).
#[map]
pub static LIMITS: Array<TaskLimits> = Array::with_max_entries(MAX_TASKS, 0);

/// slot -> counters (added to by the kernel).
#[map]
pub static COUNTERS: Array<TaskCounters> = Array::with_max_entries(MAX_TASKS, 0);

/// (slot, path prefix) -> access in force. Read by the LSM hooks; filled in both modes.
#[map]
pub static FILE_RULES: LpmTrie<PathKey, PathRule> = LpmTrie::with_max_entries(MAX_RULES, 0);

/// (slot, port, address prefix) -> allowed endpoint.
#[map]
pub static NET_RULES: LpmTrie<NetKey, NetRule> = LpmTrie::with_max_entries(MAX_RULES, 0);

/// (slot, dev, ino) -> deny rule id: files and directories a task must never open.
#[map]
pub static DENY_INODES: HashMap<InodeKey, u32> = HashMap::with_max_entries(MAX_RULES, 0);

/// pid_tgid -> the syscall a task thread is in (enter tracepoint -> exit tracepoint).
#[map]
pub static PENDING: LruHashMap<u64, PendingOp> = LruHashMap::with_max_entries(16_384, 0);

/// pid of a daemon task's command -> its wait status once it exits (`exit_status`). Only pids
/// the daemon put here are written.
#[map]
pub static EXITS: HashMap<u32, i32> = HashMap::with_max_entries(MAX_TASKS, 0);

/// Decisions for userspace. 4 MiB: about 10,000 events of 392 bytes.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Events that did not fit in `EVENTS`, per CPU. Userspace reports the sum.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
