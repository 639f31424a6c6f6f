//! Reading pinned maps of this map ABI or of an older one, as this build's entries: what lets
//! a daemon take running tasks over from programs whose maps are laid out differently.
//!
//! Each older layout this build converts from is frozen here (its table and its values, as
//! that build had them) with a pure conversion per value. Entries are read in full, converted,
//! then written to the new maps by [`super::maps::Maps::write_contents`], task tags last.
use aya::maps::{Array, HashMap, MapData, MapError, RingBuf, lpm_trie::LpmTrie};
use enforcer_common::{
    InodeKey, InodeRule, MAP_ABI, MAX_TASKS, NetKey, NetRule, PathKey, PathRule, TaskCounters,
    TaskEntry, TaskLimits, map_names, spec,
};

use super::{
    BpfError,
    contents::{Contents, all, slots},
    maps::Maps,
    pin::{PinDir, PinError},
};

/// The map ABIs whose pinned maps this build can read.
pub const CONVERTS_FROM: &[u32] = &[4, MAP_ABI];

/// Whether pinned maps of `abi` can be taken over by this build.
pub fn can_convert(abi: u32) -> bool {
    CONVERTS_FROM.contains(&abi)
}

/// A pinned set of maps being taken over: this build's layout, or a frozen older one.
pub enum Pinned {
    Current(Maps),
    V4(v4::Maps),
}

impl Pinned {
    /// Opens the pinned maps of map ABI `abi` (and their event ring, to drain).
    pub fn open(pins: &PinDir, abi: u32) -> Result<(Self, RingBuf<MapData>), PinError> {
        match abi {
            MAP_ABI => {
                let (maps, ring) = Maps::open_pinned(pins)?;
                Ok((Self::Current(maps), ring))
            }
            4 => {
                let (maps, ring) = v4::Maps::open(pins)?;
                Ok((Self::V4(maps), ring))
            }
            _ => Err(BpfError::Layout {
                name: map_names::TASKS,
                detail: format!("map ABI {abi} is not one this build converts from"),
            }
            .into()),
        }
    }

    /// Which map ABI these maps have.
    pub fn abi(&self) -> u32 {
        match self {
            Self::Current(_) => MAP_ABI,
            Self::V4(_) => 4,
        }
    }

    /// Every entry, converted.
    pub fn contents(&self) -> Result<Contents, BpfError> {
        match self {
            Self::Current(m) => m.contents(),
            Self::V4(m) => m.contents(),
        }
    }

    /// The counters of every slot as they are now, converted (for what the old programs
    /// counted while both sets ran).
    pub fn counters(&self) -> Vec<TaskCounters> {
        match self {
            Self::Current(m) => (0..MAX_TASKS).map(|slot| m.counters(slot)).collect(),
            Self::V4(m) => (0..MAX_TASKS)
                .map(|slot| {
                    m.counters
                        .get(&slot, 0)
                        .map(v4::counters)
                        .unwrap_or_default()
                })
                .collect(),
        }
    }

    /// Events the old programs could not put in their ring.
    pub fn drops(&self) -> u64 {
        match self {
            Self::Current(m) => m.drops(),
            Self::V4(m) => m
                .drops
                .get(&0, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0),
        }
    }
}

/// Map ABI 4 (issue 13's build): 16-byte task entries, limits and counters without budgets or
/// labels, rules without labels, grants or expiry, and `DENY_INODES` holding a bare rule id.
pub mod v4 {
    use aya::maps::PerCpuArray;
    use enforcer_common::{MapKind, MapSpec, NO_PARENT};

    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TaskEntry4 {
        pub slot: u32,
        pub generation: u32,
        pub flags: u32,
        pub rules: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TaskLimits4 {
        pub deadline_ns: u64,
        pub max_execs: u64,
        pub max_connects: u64,
        pub max_denials: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TaskCounters4 {
        pub execs: u64,
        pub opens: u64,
        pub connects: u64,
        pub denials: u64,
        pub ended: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PathRule4 {
        pub allow: u32,
        pub rule_id: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NetRule4 {
        pub rule_id: u32,
        pub _reserved: u32,
    }

    // SAFETY: #[repr(C)], Copy, integers only, no padding (sizes asserted below).
    unsafe impl aya::Pod for TaskEntry4 {}
    unsafe impl aya::Pod for TaskLimits4 {}
    unsafe impl aya::Pod for TaskCounters4 {}
    unsafe impl aya::Pod for PathRule4 {}
    unsafe impl aya::Pod for NetRule4 {}

    const _: () = {
        assert!(size_of::<TaskEntry4>() == 16);
        assert!(size_of::<TaskLimits4>() == 32);
        assert!(size_of::<TaskCounters4>() == 40);
        assert!(size_of::<PathRule4>() == 8);
        assert!(size_of::<NetRule4>() == 8);
    };

    const fn with(base: MapSpec, value_size: u32) -> MapSpec {
        MapSpec { value_size, ..base }
    }

    /// The pinned maps of ABI 4, as that build declared them.
    pub const TASKS: MapSpec = with(spec::TASKS, 16);
    pub const LIMITS: MapSpec = with(spec::LIMITS, 32);
    pub const COUNTERS: MapSpec = with(spec::COUNTERS, 40);
    pub const FILE_RULES: MapSpec = with(spec::FILE_RULES, 8);
    pub const NET_RULES: MapSpec = with(spec::NET_RULES, 8);
    pub const DENY_INODES: MapSpec = MapSpec {
        name: "DENY_INODES",
        kind: MapKind::Hash,
        key_size: 24,
        value_size: 4,
        max_entries: 65_536,
        pinned: true,
    };

    pub fn task(e: TaskEntry4) -> TaskEntry {
        TaskEntry {
            slot: e.slot,
            generation: e.generation,
            flags: e.flags,
            rules: e.rules,
            parent: NO_PARENT,
            ..TaskEntry::default()
        }
    }

    pub fn limits(l: TaskLimits4) -> TaskLimits {
        TaskLimits {
            deadline_ns: l.deadline_ns,
            max_execs: l.max_execs,
            max_connects: l.max_connects,
            max_denials: l.max_denials,
            ..TaskLimits::default()
        }
    }

    pub fn counters(c: TaskCounters4) -> TaskCounters {
        TaskCounters {
            execs: c.execs,
            opens: c.opens,
            connects: c.connects,
            denials: c.denials,
            ended: c.ended,
            ..TaskCounters::default()
        }
    }

    pub fn path_rule(r: PathRule4) -> PathRule {
        PathRule {
            allow: r.allow,
            rule_id: r.rule_id,
            ..PathRule::default()
        }
    }

    pub fn net_rule(r: NetRule4) -> NetRule {
        NetRule {
            rule_id: r.rule_id,
            ..NetRule::default()
        }
    }

    /// The pinned maps of a daemon of map ABI 4.
    pub struct Maps {
        pub tasks: HashMap<MapData, u64, TaskEntry4>,
        pub limits: Array<MapData, TaskLimits4>,
        pub counters: Array<MapData, TaskCounters4>,
        pub file_rules: LpmTrie<MapData, PathKey, PathRule4>,
        pub net_rules: LpmTrie<MapData, NetKey, NetRule4>,
        pub deny_inodes: HashMap<MapData, InodeKey, u32>,
        pub exits: HashMap<MapData, u32, i32>,
        pub drops: PerCpuArray<MapData, u64>,
    }

    fn open<T>(pins: &PinDir, spec: &MapSpec) -> Result<T, PinError>
    where
        T: TryFrom<aya::maps::Map, Error = MapError>,
    {
        T::try_from(pins.open_as(spec)?).map_err(|source| {
            BpfError::Map {
                name: spec.name,
                source,
            }
            .into()
        })
    }

    impl Maps {
        pub fn open(pins: &PinDir) -> Result<(Self, RingBuf<MapData>), PinError> {
            let maps = Self {
                tasks: open(pins, &TASKS)?,
                limits: open(pins, &LIMITS)?,
                counters: open(pins, &COUNTERS)?,
                file_rules: open(pins, &FILE_RULES)?,
                net_rules: open(pins, &NET_RULES)?,
                deny_inodes: open(pins, &DENY_INODES)?,
                exits: open(pins, &spec::EXITS)?,
                drops: open(pins, &spec::DROPS)?,
            };
            Ok((maps, open(pins, &spec::EVENTS)?))
        }

        pub fn contents(&self) -> Result<Contents, BpfError> {
            Ok(Contents {
                tasks: all(map_names::TASKS, self.tasks.iter())?
                    .into_iter()
                    .map(|(k, v)| (k, task(v)))
                    .collect(),
                limits: slots(map_names::LIMITS, &self.limits)?
                    .into_iter()
                    .map(limits)
                    .collect(),
                counters: slots(map_names::COUNTERS, &self.counters)?
                    .into_iter()
                    .map(counters)
                    .collect(),
                file_rules: all(map_names::FILE_RULES, self.file_rules.iter())?
                    .into_iter()
                    .map(|(k, v)| (k, path_rule(v)))
                    .collect(),
                net_rules: all(map_names::NET_RULES, self.net_rules.iter())?
                    .into_iter()
                    .map(|(k, v)| (k, net_rule(v)))
                    .collect(),
                inode_rules: all("DENY_INODES", self.deny_inodes.iter())?
                    .into_iter()
                    .map(|(k, v)| (k, InodeRule::deny(v)))
                    .collect(),
                exits: all(map_names::EXITS, self.exits.iter())?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use enforcer_common::{NO_PARENT, RULE_EXEC_ONLY, task_flags};

    use super::{v4::*, *};

    #[test]
    fn abi_4_entries_keep_every_value_and_gain_neutral_new_fields() {
        let t = task(TaskEntry4 {
            slot: 3,
            generation: 9,
            flags: task_flags::AUDIT | task_flags::DENY_INODES,
            rules: 1027,
        });
        assert_eq!((t.slot, t.generation, t.rules), (3, 9, 1027));
        assert_eq!(t.flags, task_flags::AUDIT | task_flags::DENY_INODES);
        assert_eq!((t.parent, t.narrowed_by), (NO_PARENT, 0));

        let l = limits(TaskLimits4 {
            deadline_ns: 5,
            max_execs: 6,
            max_connects: 7,
            max_denials: 8,
        });
        assert_eq!(
            (l.deadline_ns, l.max_execs, l.max_connects, l.max_denials),
            (5, 6, 7, 8)
        );
        // New budgets start unlimited.
        assert_eq!((l.max_bytes_out, l.max_cost), (0, 0));

        let c = counters(TaskCounters4 {
            execs: 1,
            opens: 2,
            connects: 3,
            denials: 4,
            ended: enforcer_common::ENDED_BY_KILL,
        });
        assert_eq!(
            (c.execs, c.opens, c.connects, c.denials, c.ended),
            (1, 2, 3, 4, enforcer_common::ENDED_BY_KILL)
        );
        assert_eq!(c.labels, [0; enforcer_common::MAX_LABELS]);

        let p = path_rule(PathRule4 {
            allow: 7,
            rule_id: 12,
        });
        assert_eq!((p.allow, p.rule_id, p.labels, p.granted), (7, 12, 0, 0));
        let n = net_rule(NetRule4 {
            rule_id: 4,
            _reserved: 0,
        });
        // A policy rule: never expires.
        assert_eq!((n.rule_id, n.expires_ns, n.labels), (4, 0, 0));
        let i = InodeRule::deny(5 | RULE_EXEC_ONLY);
        assert_eq!(i.rule_id, 5 | RULE_EXEC_ONLY);
        assert_eq!(i.labels, 0);
    }

    #[test]
    fn only_known_layouts_convert() {
        assert!(can_convert(MAP_ABI));
        assert!(can_convert(4));
        assert!(!can_convert(3));
        assert!(!can_convert(0));
        assert!(!can_convert(MAP_ABI + 1));
    }

    #[test]
    fn the_frozen_specs_differ_from_this_build_only_where_the_layout_changed() {
        assert_eq!(TASKS.max_entries, spec::TASKS.max_entries);
        assert_ne!(TASKS.value_size, spec::TASKS.value_size);
        assert_eq!(DENY_INODES.key_size, spec::INODE_RULES.key_size);
    }
}
