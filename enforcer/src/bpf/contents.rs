//! Every entry of a set of maps, read in full, in this build's layout: what an upgrade copies
//! (converted first when the maps are of an older layout).
use aya::maps::{Array, MapData, MapError, lpm_trie::Key};
use enforcer_common::{
    InodeKey, InodeRule, MAX_TASKS, NetKey, NetRule, PathKey, PathRule, TaskCounters, TaskEntry,
    TaskLimits,
};

use super::BpfError;

/// Every entry of a set of maps, in this build's layout.
#[derive(Default)]
pub struct Contents {
    pub tasks: Vec<(u64, TaskEntry)>,
    /// By slot, `MAX_TASKS` of each.
    pub limits: Vec<TaskLimits>,
    pub counters: Vec<TaskCounters>,
    pub file_rules: Vec<(Key<PathKey>, PathRule)>,
    pub net_rules: Vec<(Key<NetKey>, NetRule)>,
    pub inode_rules: Vec<(InodeKey, InodeRule)>,
    pub exits: Vec<(u32, i32)>,
}

/// Reads every entry of `map` (`name` for errors).
pub fn all<K, V>(
    name: &'static str,
    items: impl Iterator<Item = Result<(K, V), MapError>>,
) -> Result<Vec<(K, V)>, BpfError> {
    items
        .map(|item| item.map_err(|source| BpfError::Map { name, source }))
        .collect()
}

/// Reads every slot of an array.
pub fn slots<V: aya::Pod>(
    name: &'static str,
    array: &Array<MapData, V>,
) -> Result<Vec<V>, BpfError> {
    (0..MAX_TASKS)
        .map(|slot| {
            array
                .get(&slot, 0)
                .map_err(|source| BpfError::Map { name, source })
        })
        .collect()
}
