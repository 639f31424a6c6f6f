//! The kernel maps of one set of programs, and a task's entries in them.
use aya::{
    Ebpf,
    maps::{
        Array, HashMap, MapData, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
};
use enforcer_common::{
    InodeKey, InodeRule, NetKey, NetRule, PathKey, PathRule, TaskCounters, TaskEntry, TaskLimits,
    map_names,
};

use super::{
    BpfError,
    contents::{Contents, all, slots},
};
use crate::policy::compile::{FileEntry, NetEntry};

/// Handles to every map userspace writes or reads.
pub struct Maps {
    pub tasks: HashMap<MapData, u64, TaskEntry>,
    pub limits: Array<MapData, TaskLimits>,
    pub counters: Array<MapData, TaskCounters>,
    pub file_rules: LpmTrie<MapData, PathKey, PathRule>,
    pub net_rules: LpmTrie<MapData, NetKey, NetRule>,
    pub inode_rules: HashMap<MapData, InodeKey, InodeRule>,
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
    pub inode_rules: usize,
}

/// How many entries [`Maps::copy_from`] copied, per map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub tasks: usize,
    pub file_rules: usize,
    pub net_rules: usize,
    pub inode_rules: usize,
    /// Commands whose exit status is watched.
    pub exits: usize,
    /// Slots with limits or counters.
    pub slots: usize,
}

impl Leftovers {
    pub fn total(&self) -> usize {
        self.tasks + self.file_rules + self.net_rules + self.inode_rules
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
            inode_rules: take(ebpf, map_names::INODE_RULES)?,
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
            inode_rules: open(pins, map_names::INODE_RULES)?,
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
            self.inode_rules
                .insert(key, InodeRule::deny(*rule), 0)
                .map_err(err(map_names::INODE_RULES))?;
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
    pub fn remove_rules(&mut self, rules: u32) -> Leftovers {
        // One walk of each map: every entry of the rule set is found and removed as it is
        // found; one that could not be removed is one left.
        let mut left = Leftovers::default();
        for k in self.file_keys(rules) {
            left.file_rules += usize::from(self.file_rules.remove(&k).is_err());
        }
        for k in self.net_keys(rules) {
            left.net_rules += usize::from(self.net_rules.remove(&k).is_err());
        }
        for k in self.inode_keys(rules) {
            left.inode_rules += usize::from(self.inode_rules.remove(&k).is_err());
        }
        left
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

    /// Every entry of these maps.
    pub fn contents(&self) -> Result<Contents, BpfError> {
        Ok(Contents {
            tasks: all(map_names::TASKS, self.tasks.iter())?,
            limits: slots(map_names::LIMITS, &self.limits)?,
            counters: slots(map_names::COUNTERS, &self.counters)?,
            file_rules: all(map_names::FILE_RULES, self.file_rules.iter())?,
            net_rules: all(map_names::NET_RULES, self.net_rules.iter())?,
            inode_rules: all(map_names::INODE_RULES, self.inode_rules.iter())?,
            exits: all(map_names::EXITS, self.exits.iter())?,
        })
    }

    /// Writes every entry of `c` (another build's maps, already in this layout) into these,
    /// task tags last: a task is seen by these programs only once all it needs is in place.
    pub fn write_contents(&mut self, c: &Contents) -> Result<Copied, BpfError> {
        let err = |name| move |source| BpfError::Map { name, source };
        let mut copied = Copied::default();
        for (k, v) in &c.file_rules {
            self.file_rules
                .insert(k, v, 0)
                .map_err(err(map_names::FILE_RULES))?;
            copied.file_rules += 1;
        }
        for (k, v) in &c.net_rules {
            self.net_rules
                .insert(k, v, 0)
                .map_err(err(map_names::NET_RULES))?;
            copied.net_rules += 1;
        }
        for (k, v) in &c.inode_rules {
            self.inode_rules
                .insert(k, v, 0)
                .map_err(err(map_names::INODE_RULES))?;
            copied.inode_rules += 1;
        }
        for (k, v) in &c.exits {
            self.exits.insert(k, v, 0).map_err(err(map_names::EXITS))?;
            copied.exits += 1;
        }
        for (slot, (limits, counters)) in (0u32..).zip(c.limits.iter().zip(&c.counters)) {
            if *limits != TaskLimits::default() || *counters != TaskCounters::default() {
                self.limits
                    .set(slot, limits, 0)
                    .map_err(err(map_names::LIMITS))?;
                self.counters
                    .set(slot, counters, 0)
                    .map_err(err(map_names::COUNTERS))?;
                copied.slots += 1;
            }
        }
        for (k, v) in &c.tasks {
            self.tasks.insert(k, v, 0).map_err(err(map_names::TASKS))?;
            copied.tasks += 1;
        }
        Ok(copied)
    }

    /// Adds what the old programs counted between `before` and `now` (while both sets of
    /// programs ran) to these counters, and keeps any label they set. Returns how many
    /// operations that was.
    pub fn add_counter_deltas(&mut self, before: &[TaskCounters], now: &[TaskCounters]) -> u64 {
        let mut added = 0;
        for (slot, (before, now)) in (0u32..).zip(before.iter().zip(now)) {
            if now == before {
                continue;
            }
            let mut c = self.counters(slot);
            added += add_delta(&mut c, before, now);
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
        self.inode_rules
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.slot == slot)
            .collect()
    }

    /// Removes every entry of a task: the tag first (from then on its processes are strangers),
    /// then its rules.
    pub fn remove_task(&mut self, slot: u32, rules: u32, cgroup_id: u64) -> Leftovers {
        let _ = self.tasks.remove(&cgroup_id);
        let mut left = self.remove_rules(rules);
        let _ = self.limits.set(slot, TaskLimits::default(), 0);
        left.tasks = usize::from(self.tasks.get(&cgroup_id, 0).is_ok());
        left
    }
}

/// Adds `now - before` of every counter to `c`, keeps the furthest end and every label set.
/// Returns how many operations were added.
pub fn add_delta(c: &mut TaskCounters, before: &TaskCounters, now: &TaskCounters) -> u64 {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let delta = [
        d(now.execs, before.execs),
        d(now.opens, before.opens),
        d(now.connects, before.connects),
        d(now.denials, before.denials),
    ];
    c.execs += delta[0];
    c.opens += delta[1];
    c.connects += delta[2];
    c.denials += delta[3];
    c.bytes_out += d(now.bytes_out, before.bytes_out);
    c.cost += d(now.cost, before.cost);
    c.ended = c.ended.max(now.ended);
    for (mine, theirs) in c.labels.iter_mut().zip(now.labels) {
        *mine |= theirs;
    }
    delta.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_during_a_handover_adds_up_and_keeps_labels() {
        let before = TaskCounters {
            execs: 2,
            denials: 1,
            ..TaskCounters::default()
        };
        let mut now = TaskCounters {
            execs: 5,
            denials: 1,
            bytes_out: 100,
            ended: 4,
            ..TaskCounters::default()
        };
        now.labels[3] = 1;
        // The new programs counted on their own meanwhile.
        let mut c = TaskCounters {
            execs: 3,
            opens: 7,
            ..TaskCounters::default()
        };
        assert_eq!(add_delta(&mut c, &before, &now), 3);
        assert_eq!((c.execs, c.opens, c.denials, c.bytes_out), (6, 7, 0, 100));
        assert_eq!(c.ended, 4);
        assert_eq!(c.labels[3], 1);
    }
}
