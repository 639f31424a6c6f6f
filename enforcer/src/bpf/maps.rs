//! The kernel maps of one set of programs, and a task's entries in them.
use aya::{
    Ebpf,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
};
use enforcer_common::{
    InodeKey, NetKey, NetRule, PathKey, PathRule, TaskCounters, TaskEntry, TaskLimits, map_names,
};

use super::BpfError;
use crate::policy::compile::{FileEntry, NetEntry};

/// Handles to every map userspace writes or reads.
pub struct Maps {
    pub tasks: HashMap<MapData, u64, TaskEntry>,
    pub limits: Array<MapData, TaskLimits>,
    pub counters: Array<MapData, TaskCounters>,
    pub file_rules: LpmTrie<MapData, PathKey, PathRule>,
    pub net_rules: LpmTrie<MapData, NetKey, NetRule>,
    pub deny_inodes: HashMap<MapData, InodeKey, u32>,
    /// pid of a daemon task's command -> its wait status (`exit_status`).
    pub exits: HashMap<MapData, u32, i32>,
    pub drops: PerCpuArray<MapData, u64>,
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, BpfError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(BpfError::MissingMap(name))?;
    T::try_from(map).map_err(|source| BpfError::Map { name, source })
}

/// Everything the kernel needs to enforce one task.
pub struct TaskEntries<'a> {
    pub slot: u32,
    /// The rule set id (`TaskEntry::rules`).
    pub rules: u32,
    pub cgroup_id: u64,
    pub entry: TaskEntry,
    pub limits: TaskLimits,
    pub files: &'a [FileEntry],
    pub net: &'a [NetEntry],
    pub inodes: &'a [(InodeKey, u32)],
}

/// How many entries of a slot are left in each map (all zero after [`Maps::remove_task`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leftovers {
    pub tasks: usize,
    pub file_rules: usize,
    pub net_rules: usize,
    pub deny_inodes: usize,
}

/// How many entries [`Maps::copy_from`] copied, per map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub tasks: usize,
    pub file_rules: usize,
    pub net_rules: usize,
    pub deny_inodes: usize,
    /// Commands whose exit status is watched.
    pub exits: usize,
    /// Slots with limits or counters.
    pub slots: usize,
}

impl Leftovers {
    pub fn total(&self) -> usize {
        self.tasks + self.file_rules + self.net_rules + self.deny_inodes
    }
}

impl Maps {
    /// Takes the maps out of `ebpf` (returns the ring buffer separately, for the reader).
    pub fn take(ebpf: &mut Ebpf) -> Result<(Self, RingBuf<MapData>), BpfError> {
        let maps = Self {
            tasks: take(ebpf, map_names::TASKS)?,
            limits: take(ebpf, map_names::LIMITS)?,
            counters: take(ebpf, map_names::COUNTERS)?,
            file_rules: take(ebpf, map_names::FILE_RULES)?,
            net_rules: take(ebpf, map_names::NET_RULES)?,
            deny_inodes: take(ebpf, map_names::DENY_INODES)?,
            exits: take(ebpf, map_names::EXITS)?,
            drops: take(ebpf, map_names::DROPS)?,
        };
        let ring = take(ebpf, map_names::EVENTS)?;
        Ok((maps, ring))
    }

    /// Opens the maps a daemon pinned (returns the ring buffer separately, for the reader).
    pub fn open_pinned(
        pins: &super::pin::PinDir,
    ) -> Result<(Self, RingBuf<MapData>), super::pin::PinError> {
        fn open<T>(pins: &super::pin::PinDir, name: &'static str) -> Result<T, super::pin::PinError>
        where
            T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
        {
            T::try_from(pins.open_map(name)?)
                .map_err(|source| BpfError::Map { name, source }.into())
        }
        let maps = Self {
            tasks: open(pins, map_names::TASKS)?,
            limits: open(pins, map_names::LIMITS)?,
            counters: open(pins, map_names::COUNTERS)?,
            file_rules: open(pins, map_names::FILE_RULES)?,
            net_rules: open(pins, map_names::NET_RULES)?,
            deny_inodes: open(pins, map_names::DENY_INODES)?,
            exits: open(pins, map_names::EXITS)?,
            drops: open(pins, map_names::DROPS)?,
        };
        let ring = open(pins, map_names::EVENTS)?;
        Ok((maps, ring))
    }

    /// Writes one rule set. Nothing uses it until a task entry names it.
    pub fn install_rules(
        &mut self,
        rules: u32,
        files: &[FileEntry],
        net: &[NetEntry],
        inodes: &[(InodeKey, u32)],
    ) -> Result<(), BpfError> {
        let err = |name| move |source| BpfError::Map { name, source };
        for f in files {
            self.file_rules
                .insert(&Key::new(f.prefix_bits, f.key(rules)), f.value, 0)
                .map_err(err(map_names::FILE_RULES))?;
        }
        for n in net {
            self.net_rules
                .insert(&Key::new(n.prefix_bits(), n.key(rules)), n.value(), 0)
                .map_err(err(map_names::NET_RULES))?;
        }
        for (key, rule) in inodes {
            self.deny_inodes
                .insert(key, rule, 0)
                .map_err(err(map_names::DENY_INODES))?;
        }
        Ok(())
    }

    /// Points a task at another rule set (and generation, flags) in one map update: each
    /// operation sees the old entry or the new one, never a mix.
    pub fn swap_entry(&mut self, cgroup_id: u64, entry: TaskEntry) -> Result<(), BpfError> {
        self.tasks
            .insert(cgroup_id, entry, 0)
            .map_err(|source| BpfError::Map {
                name: map_names::TASKS,
                source,
            })
    }

    /// Removes one rule set (after no task entry names it any more).
    pub fn remove_rules(&mut self, rules: u32) {
        for k in self.file_keys(rules) {
            let _ = self.file_rules.remove(&k);
        }
        for k in self.net_keys(rules) {
            let _ = self.net_rules.remove(&k);
        }
        for k in self.inode_keys(rules) {
            let _ = self.deny_inodes.remove(&k);
        }
    }

    /// Writes a task's rules, limits and zeroed counters, and tags its cgroup last: the
    /// programs see the task only once everything it needs is in place.
    pub fn install_task(&mut self, t: &TaskEntries<'_>) -> Result<(), BpfError> {
        let err = |name| move |source| BpfError::Map { name, source };
        self.install_rules(t.rules, t.files, t.net, t.inodes)?;
        self.limits
            .set(t.slot, t.limits, 0)
            .map_err(err(map_names::LIMITS))?;
        self.counters
            .set(t.slot, TaskCounters::default(), 0)
            .map_err(err(map_names::COUNTERS))?;
        self.tasks
            .insert(t.cgroup_id, t.entry, 0)
            .map_err(err(map_names::TASKS))?;
        Ok(())
    }

    /// Copies every entry of `old` (maps of the same layout, another build's programs) into
    /// these, task tags last. Returns what was copied and the counters as copied, for
    /// [`Maps::add_counter_deltas`].
    pub fn copy_from(&mut self, old: &Maps) -> Result<(Copied, Vec<TaskCounters>), BpfError> {
        let err = |name| move |source| BpfError::Map { name, source };
        let mut copied = Copied::default();
        for item in old.file_rules.iter() {
            let (k, v) = item.map_err(err(map_names::FILE_RULES))?;
            self.file_rules
                .insert(&k, v, 0)
                .map_err(err(map_names::FILE_RULES))?;
            copied.file_rules += 1;
        }
        for item in old.net_rules.iter() {
            let (k, v) = item.map_err(err(map_names::NET_RULES))?;
            self.net_rules
                .insert(&k, v, 0)
                .map_err(err(map_names::NET_RULES))?;
            copied.net_rules += 1;
        }
        for item in old.deny_inodes.iter() {
            let (k, v) = item.map_err(err(map_names::DENY_INODES))?;
            self.deny_inodes
                .insert(k, v, 0)
                .map_err(err(map_names::DENY_INODES))?;
            copied.deny_inodes += 1;
        }
        for item in old.exits.iter() {
            let (k, v) = item.map_err(err(map_names::EXITS))?;
            self.exits.insert(k, v, 0).map_err(err(map_names::EXITS))?;
            copied.exits += 1;
        }
        let mut snapshot = Vec::with_capacity(enforcer_common::MAX_TASKS as usize);
        for slot in 0..enforcer_common::MAX_TASKS {
            let limits = old.limits.get(&slot, 0).map_err(err(map_names::LIMITS))?;
            let counters = old
                .counters
                .get(&slot, 0)
                .map_err(err(map_names::COUNTERS))?;
            if limits != TaskLimits::default() || counters != TaskCounters::default() {
                self.limits
                    .set(slot, limits, 0)
                    .map_err(err(map_names::LIMITS))?;
                self.counters
                    .set(slot, counters, 0)
                    .map_err(err(map_names::COUNTERS))?;
                copied.slots += 1;
            }
            snapshot.push(counters);
        }
        for item in old.tasks.iter() {
            let (k, v) = item.map_err(err(map_names::TASKS))?;
            self.tasks.insert(k, v, 0).map_err(err(map_names::TASKS))?;
            copied.tasks += 1;
        }
        Ok((copied, snapshot))
    }

    /// Adds what `old`'s programs counted after `snapshot` was taken (while both sets of
    /// programs ran) to these counters. Returns how many operations that was.
    pub fn add_counter_deltas(&mut self, old: &Maps, snapshot: &[TaskCounters]) -> u64 {
        let mut added = 0;
        for (slot, before) in (0u32..).zip(snapshot) {
            let Ok(now) = old.counters.get(&slot, 0) else {
                continue;
            };
            if now == *before {
                continue;
            }
            let d = |a: u64, b: u64| a.saturating_sub(b);
            let delta = [
                d(now.execs, before.execs),
                d(now.opens, before.opens),
                d(now.connects, before.connects),
                d(now.denials, before.denials),
            ];
            let mut c = self.counters(slot);
            c.execs += delta[0];
            c.opens += delta[1];
            c.connects += delta[2];
            c.denials += delta[3];
            c.ended = c.ended.max(now.ended);
            added += delta.iter().sum::<u64>();
            let _ = self.counters.set(slot, c, 0);
        }
        added
    }

    /// Asks the programs for the wait status of `pid` when it exits.
    pub fn watch_exit(&mut self, pid: u32) -> Result<(), BpfError> {
        self.exits
            .insert(pid, enforcer_common::exit_status::RUNNING, 0)
            .map_err(|source| BpfError::Map {
                name: map_names::EXITS,
                source,
            })
    }

    /// The wait status the programs saw `pid` exit with (`RUNNING` if none), forgetting it.
    pub fn take_exit(&mut self, pid: u32) -> Option<i32> {
        let status = self.exits.get(&pid, 0).ok();
        let _ = self.exits.remove(&pid);
        status
    }

    pub fn counters(&self, slot: u32) -> TaskCounters {
        self.counters.get(&slot, 0).unwrap_or_default()
    }

    /// Events the kernel could not put in the ring buffer, summed over CPUs.
    pub fn drops(&self) -> u64 {
        self.drops
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    fn file_keys(&self, slot: u32) -> Vec<Key<PathKey>> {
        let slot = slot.to_be_bytes();
        self.file_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().slot == slot)
            .collect()
    }

    fn net_keys(&self, slot: u32) -> Vec<Key<NetKey>> {
        let slot = slot.to_be_bytes();
        self.net_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.data().slot == slot)
            .collect()
    }

    fn inode_keys(&self, slot: u32) -> Vec<InodeKey> {
        self.deny_inodes
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect()
    }

    /// Removes every entry of a task: the tag first (from then on its processes are strangers),
    /// then its rules.
    pub fn remove_task(&mut self, slot: u32, rules: u32, cgroup_id: u64) -> Leftovers {
        let _ = self.tasks.remove(&cgroup_id);
        self.remove_rules(rules);
        let _ = self.limits.set(slot, TaskLimits::default(), 0);
        self.leftovers(rules, cgroup_id)
    }

    /// Entries of a task still present.
    pub fn leftovers(&self, rules: u32, cgroup_id: u64) -> Leftovers {
        Leftovers {
            tasks: usize::from(self.tasks.get(&cgroup_id, 0).is_ok()),
            file_rules: self.file_keys(rules).len(),
            net_rules: self.net_keys(rules).len(),
            deny_inodes: self.inode_keys(rules).len(),
        }
    }
}
