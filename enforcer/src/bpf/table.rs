//! The table of maps (`enforcer_common::MAPS`) on the userspace side: which aya type wraps
//! each kind, and a check that a map the kernel holds is the one the table describes, so a
//! drift between the eBPF declarations, the pins and this build is an error naming the map,
//! never a silent misread.
use aya::{
    Ebpf,
    maps::{Map, MapData, MapInfo},
};
use enforcer_common::{MAPS, MapKind, MapSpec};

use super::BpfError;

/// Wraps a map's data as the aya type of its kind.
pub fn wrap(kind: MapKind, data: MapData) -> Map {
    match kind {
        MapKind::Hash => Map::HashMap(data),
        MapKind::Array => Map::Array(data),
        MapKind::PerCpuArray => Map::PerCpuArray(data),
        MapKind::LruHash => Map::LruHashMap(data),
        MapKind::LpmTrie => Map::LpmTrie(data),
        MapKind::RingBuf => Map::RingBuf(data),
    }
}

/// The data behind a map of one of the table's kinds.
fn data(map: &Map) -> Option<&MapData> {
    match map {
        Map::HashMap(d)
        | Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::LruHashMap(d)
        | Map::LpmTrie(d)
        | Map::RingBuf(d) => Some(d),
        _ => None,
    }
}

/// How `info` differs from `spec`, if it does. A ring buffer's size may be overridden
/// (`ring_bytes`); everything else must be equal.
pub fn mismatch(spec: &MapSpec, info: &MapInfo, ring_bytes: Option<u32>) -> Option<String> {
    let kind = info.map_type().map_or(u32::MAX, |t| t as isize as u32);
    let entries = match spec.kind {
        MapKind::RingBuf => ring_bytes.unwrap_or(spec.max_entries),
        _ => spec.max_entries,
    };
    let want = (spec.kind as u32, spec.key_size, spec.value_size, entries);
    let have = (kind, info.key_size(), info.value_size(), info.max_entries());
    (want != have).then(|| {
        format!(
            "kind {} key {} value {} entries {}, where this build expects kind {} key {} value \
             {} entries {}",
            have.0, have.1, have.2, have.3, want.0, want.1, want.2, want.3
        )
    })
}

/// Checks every map of a freshly loaded object against the table.
pub fn check_loaded(ebpf: &Ebpf, ring_bytes: Option<u32>) -> Result<(), BpfError> {
    for spec in MAPS {
        let map = ebpf.map(spec.name).ok_or(BpfError::MissingMap(spec.name))?;
        let info = data(map)
            .ok_or(BpfError::MissingMap(spec.name))?
            .info()
            .map_err(|source| BpfError::Map {
                name: spec.name,
                source,
            })?;
        if let Some(detail) = mismatch(spec, &info, ring_bytes) {
            return Err(BpfError::Layout {
                name: spec.name,
                detail,
            });
        }
    }
    Ok(())
}

/// The maps that outlive the daemon in bpffs.
pub fn pinned() -> impl Iterator<Item = &'static MapSpec> {
    MAPS.iter().filter(|m| m.pinned)
}

#[cfg(test)]
mod tests {
    use enforcer_common::map_names;

    use super::*;

    #[test]
    fn every_map_has_a_unique_name_and_the_ring_is_pinned() {
        let mut names: Vec<&str> = MAPS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MAPS.len());
        assert!(pinned().any(|m| m.name == map_names::EVENTS));
        // Per-syscall scratch state is each program set's own.
        assert!(!pinned().any(|m| m.name == map_names::PENDING));
    }
}
