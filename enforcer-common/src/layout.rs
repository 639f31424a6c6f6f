//! The map ABI: its version, and a compile-time fingerprint of every layout and value the
//! programs and userspace share (through pinned maps and the event ring).
use core::mem::{offset_of, size_of};

use crate::*;

/// Version of what the programs and a daemon share through pinned maps: the table of maps,
/// keys, values, flag bits, rule ids, limit kinds and the event record. A daemon takes running
/// tasks over from pinned programs of another build when this is equal, or converts their
/// entries when it is one it knows how to convert from. [`LAYOUT`] breaks the build when any
/// of it changes and this was not bumped; a change of meaning alone needs a bump by hand.
pub const MAP_ABI: u32 = 5;

/// Size of `$t`, then the offset of each named field: every field must be named.
macro_rules! shape {
    ($t:ty; $($f:ident),+) => {
        &[size_of::<$t>() as u64, $(offset_of!($t, $f) as u64),+]
    };
}

const SHAPES: &[&[u64]] = &[
    shape!(TaskEntry; slot, generation, flags, rules, parent, narrowed_by, _reserved),
    shape!(TaskLimits; deadline_ns, max_execs, max_connects, max_denials, max_bytes_out,
        max_cost, _reserved),
    shape!(TaskCounters; execs, opens, connects, denials, ended, bytes_out, cost, _reserved,
        labels),
    shape!(PathKey; slot, path),
    shape!(PathRule; allow, rule_id, labels, granted, grant_rule_id, _reserved,
        grant_deadline_ns),
    shape!(NetKey; slot, port, addr),
    shape!(NetRule; rule_id, labels, expires_ns, origin, _reserved),
    shape!(InodeKey; slot, _reserved, dev, ino),
    shape!(InodeRule; rule_id, labels),
    shape!(PendingOp; path_ptr, kind, dirfd, flags, _reserved),
    shape!(Event; time_ns, cgroup_id, dev, ino, count, limit, kind, decision, enforced_by,
        limit_kind, slot, generation, tid, pid, ret, flags, rule_id, dirfd, family, port, op,
        addr, comm, path),
];

/// Every constant the programs and userspace must agree on, module by module.
const VALUES: &[&[u64]] = &[
    access::ALL,
    task_flags::ALL,
    limit_kind::ALL,
    net_origin::ALL,
    root_scope::ALL,
    listen_op::ALL,
    file_op::ALL,
    cross_op::ALL,
    event_kind::ALL,
    decision::ALL,
    enforced_by::ALL,
    FREE_VALUES,
    FREE_OPS,
    &[
        exit_status::RUNNING as u64,
        PATH_BYTES as u64,
        KEY_PATH_BYTES as u64,
        COMM_BYTES as u64,
        MAX_TASKS as u64,
        MAX_RULES as u64,
        MAX_LABELS as u64,
    ],
];

const fn fold(mut h: u64, part: u64) -> u64 {
    h = (h ^ part).wrapping_mul(0x0100_0000_01b3);
    h
}

const fn fold_all(mut h: u64, groups: &[&[u64]]) -> u64 {
    let mut g = 0;
    while g < groups.len() {
        // The length too, so that a value moving from one group to the next is a change.
        h = fold(h, groups[g].len() as u64);
        let mut i = 0;
        while i < groups[g].len() {
            h = fold(h, groups[g][i]);
            i += 1;
        }
        g += 1;
    }
    h
}

const fn fold_maps(mut h: u64) -> u64 {
    let mut m = 0;
    while m < MAPS.len() {
        let s = &MAPS[m];
        let name = s.name.as_bytes();
        let mut i = 0;
        while i < name.len() {
            h = fold(h, name[i] as u64);
            i += 1;
        }
        h = fold(h, s.kind as u64);
        h = fold(h, s.key_size as u64);
        h = fold(h, s.value_size as u64);
        h = fold(h, s.max_entries as u64);
        h = fold(h, s.pinned as u64);
        m += 1;
    }
    h
}

/// The fingerprint: the table of maps, every shared layout and every shared value, folded
/// with FNV-1a.
pub const LAYOUT: u64 = fold_maps(fold_all(fold_all(0xcbf2_9ce4_8422_2325, SHAPES), VALUES));

// To find the new value: set this to `LAYOUT == LAYOUT`, then
// `cargo test -p enforcer-common print_layout -- --nocapture`.
const _: () = assert!(
    LAYOUT == 0xfd1f_fc3d_9650_0235,
    "a layout shared through pinned maps changed: bump MAP_ABI and set the new LAYOUT here"
);

#[cfg(test)]
mod tests {
    extern crate std;

    #[test]
    fn print_layout() {
        std::println!("LAYOUT = {:#x}", super::LAYOUT);
    }
}
