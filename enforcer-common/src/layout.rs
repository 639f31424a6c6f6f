//! The map ABI: its version, and a compile-time fingerprint of every layout and value the
//! pinned maps depend on.
use core::mem::{offset_of, size_of};

use crate::*;

/// Version of what the programs and a daemon share through pinned maps: keys, values, flag bits,
/// rule ids, limit kinds and the event record. A daemon of another build takes running tasks
/// over from pinned programs only when this is equal. [`LAYOUT`] breaks the build when a layout
/// or value changes and this was not bumped; a change of meaning alone needs a bump by hand.
pub const MAP_ABI: u32 = 4;

/// The sizes, offsets and values the pinned maps depend on, folded with FNV-1a.
pub const LAYOUT: u64 = {
    let parts: [u64; 51] = [
        size_of::<TaskEntry>() as u64,
        offset_of!(TaskEntry, generation) as u64,
        offset_of!(TaskEntry, flags) as u64,
        offset_of!(TaskEntry, rules) as u64,
        size_of::<TaskLimits>() as u64,
        size_of::<TaskCounters>() as u64,
        offset_of!(TaskCounters, ended) as u64,
        size_of::<PathKey>() as u64,
        size_of::<PathRule>() as u64,
        size_of::<NetKey>() as u64,
        size_of::<NetRule>() as u64,
        size_of::<InodeKey>() as u64,
        size_of::<Event>() as u64,
        offset_of!(Event, kind) as u64,
        offset_of!(Event, slot) as u64,
        offset_of!(Event, pid) as u64,
        offset_of!(Event, rule_id) as u64,
        offset_of!(Event, family) as u64,
        offset_of!(Event, op) as u64,
        offset_of!(Event, path) as u64,
        MAX_TASKS as u64,
        MAX_RULES as u64,
        task_flags::AUDIT as u64,
        task_flags::DENY_INODES as u64,
        task_flags::DENY_DIRS as u64,
        task_flags::OBSERVE_ALL as u64,
        task_flags::EXEC_IDENTITIES as u64,
        task_flags::NO_TASK as u64,
        task_flags::NO_TASK_KILL as u64,
        ENDED_BY_KILL,
        limit_kind::DENIALS as u64,
        event_kind::SYSCALL as u64,
        cross_op::PROCESS_VM_WRITEV as u64,
        decision::OBSERVED as u64,
        enforced_by::SECCOMP as u64,
        access::MAP_EXEC as u64,
        file_op::CHROOT as u64,
        RULE_EXEC_ONLY as u64,
        RULE_WRITE_ONLY as u64,
        RULE_DEFAULT_DENY as u64,
        RULE_NO_TASK as u64,
        RULE_TASK_ENDED as u64,
        RULE_NAMELESS_EXEC as u64,
        RULE_OUTSIDE_TASK as u64,
        NET_KEY_FIXED_BITS as u64,
        NET_SLOT_LISTEN as u64,
        access::LISTEN as u64,
        event_kind::LISTEN as u64,
        PATH_KEY_FIXED_BITS as u64,
        root_scope::FAIL_CLOSED_LSM as u64,
        exit_status::RUNNING as u32 as u64,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        h = (h ^ parts[i]).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
};

// To find the new value: print LAYOUT from a scratch test with this assertion left out.
const _: () = assert!(
    LAYOUT == 0x3148_207a_c9bf_e3b6,
    "a layout shared through pinned maps changed: bump MAP_ABI and set the new LAYOUT here"
);
