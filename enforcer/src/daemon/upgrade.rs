//! Upgrading the programs under running tasks. A daemon of a new build that finds pinned
//! programs of another build, with maps of its own layout ([`MAP_ABI`]) or of one it converts
//! from ([`convert::CONVERTS_FROM`]), takes over without a gap in enforcement:
//!
//! 1. it loads its own programs and pins their maps in `<pin_dir>-next`;
//! 2. it copies every entry of the old maps (task tags last) into them, converted to its
//!    layout;
//! 3. it attaches its programs: from here on both sets check every operation, with the same
//!    entries, so nothing the old ones refused is allowed;
//! 4. it marks `<pin_dir>-next` complete, unpins the old links (the old programs detach), adds
//!    what the old programs counted meanwhile, and hands back the old event ring;
//! 5. the caller drains that ring and calls [`Retired::finish`], which removes the old pins and
//!    renames `<pin_dir>-next` to `<pin_dir>`.
//!
//! A crash at any point leaves a state [`recover`] turns back into one set of pins.
use std::path::Path;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use enforcer_common::{MAP_ABI, RootCgroup};
use serde_json::json;

use super::{DaemonError, load, state::DaemonState};
use crate::{
    bpf::{
        convert::{self, Pinned},
        maps::{Copied, Maps},
        pin::PinDir,
    },
    kernel::probe::Probe,
};

/// The old programs' remains after a handover: their event ring, to drain, and their pins.
pub struct Retired {
    pub ring: RingBuf<MapData>,
    old: PinDir,
    staging: PinDir,
    /// The old programs' maps; kept open until their ring is drained.
    _maps: Pinned,
    pub report: serde_json::Value,
}

impl Retired {
    /// Removes the old pins and moves the new ones to their place.
    pub fn finish(self) -> Result<(), DaemonError> {
        self.old.remove()?;
        Ok(self.staging.rename_to(&self.old)?)
    }
}

/// Whether the pinned programs described by `saved` can be handed over to this build.
pub fn possible(saved: &DaemonState, sha: &str, root_cgroup_id: u64) -> bool {
    saved.object_sha256 != sha
        && convert::can_convert(saved.map_abi)
        && saved.root_cgroup_id == root_cgroup_id
}

/// Finishes or undoes a handover a crash interrupted. Returns what it did, to log.
pub fn recover(pins: &PinDir) -> Result<Option<&'static str>, DaemonError> {
    let staging = pins.staging();
    if !staging.root.exists() {
        return Ok(None);
    }
    if staging.is_complete() {
        // The new programs were attached with every entry: they are the ones to keep.
        pins.remove()?;
        staging.rename_to(pins)?;
        Ok(Some("finished an interrupted program upgrade"))
    } else {
        // The old programs were never detached.
        staging.remove()?;
        Ok(Some("undid an interrupted program upgrade"))
    }
}

/// Loads this build's programs next to the pinned ones and moves the running tasks to them.
/// The mode stays the one the tasks were started in. On error the old programs are untouched
/// and keep enforcing.
pub fn hand_over(
    probe: &Probe,
    saved: &DaemonState,
    root_cg: RootCgroup,
    root: &Path,
    pins: &PinDir,
) -> Result<(Ebpf, Maps, RingBuf<MapData>, Retired), DaemonError> {
    let setup = DaemonError::Upgrade;
    let lsm = saved.mode.is_lsm();
    if lsm && !probe.lsm_mode() {
        return Err(setup(format!(
            "the running tasks are enforced by lsm-mode programs and this daemon cannot load \
             them ({}); the pinned programs keep enforcing",
            probe.fallback_reason().unwrap_or_default()
        )));
    }
    let (old, old_ring) = Pinned::open(pins, saved.map_abi)?;
    let staging = pins.staging();
    staging.remove()?;
    staging.prepare()?;
    let mut copied = Copied::default();
    let mut snapshot = Vec::new();
    let mut copy = |new_pins: &PinDir| -> Result<(), String> {
        let (mut new, _) = Maps::open_pinned(new_pins).map_err(|e| e.to_string())?;
        let contents = old.contents().map_err(|e| e.to_string())?;
        copied = new.write_contents(&contents).map_err(|e| e.to_string())?;
        snapshot = contents.counters;
        Ok(())
    };
    let result = load::attach_all(probe, lsm, root_cg, root, &staging, &mut copy);
    let mut ebpf = match result {
        Ok(ebpf) => ebpf,
        Err((_, e)) => {
            let _ = staging.remove();
            return Err(setup(format!(
                "upgrading the pinned programs failed: {e}; the pinned programs keep enforcing"
            )));
        }
    };
    let done = staging.mark_complete().and_then(|()| pins.unpin_links());
    if let Err(e) = done {
        // Both sets are attached; the next start finishes the upgrade (see `recover`).
        return Err(setup(format!("upgrading the pinned programs: {e}")));
    }
    let (mut maps, ring) = Maps::take(&mut ebpf)?;
    let counted_meanwhile = maps.add_counter_deltas(&snapshot, &old.counters());
    let report = json!({
        "from_object_sha256": saved.object_sha256,
        "from_map_abi": old.abi(),
        "map_abi": MAP_ABI,
        "mode": saved.mode,
        "copied": copied,
        "counted_during_overlap": counted_meanwhile,
    });
    Ok((
        ebpf,
        maps,
        ring,
        Retired {
            ring: old_ring,
            old: pins.clone(),
            staging,
            _maps: old,
            report,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sha: &str, abi: u32, root: u64) -> DaemonState {
        DaemonState {
            object_sha256: sha.into(),
            map_abi: abi,
            root_cgroup_id: root,
            ..DaemonState::default()
        }
    }

    #[test]
    fn only_another_build_with_the_same_maps_and_root_is_handed_over() {
        assert!(possible(&state("old", MAP_ABI, 7), "new", 7));
        // The same build is adopted as it is, not upgraded.
        assert!(!possible(&state("new", MAP_ABI, 7), "new", 7));
        // Maps of the previous layout are converted.
        assert!(possible(&state("old", 4, 7), "new", 7));
        // Other maps (or a build from before MAP_ABI: 0), or another cgroup root.
        assert!(!possible(&state("old", MAP_ABI + 1, 7), "new", 7));
        assert!(!possible(&state("old", 3, 7), "new", 7));
        assert!(!possible(&state("old", 0, 7), "new", 7));
        assert!(!possible(&state("old", MAP_ABI, 8), "new", 7));
    }

    #[test]
    fn the_staging_pins_have_a_name_bpffs_accepts() {
        // bpffs refuses names with a dot (bpf_dname_reserved).
        let staging = PinDir::new("/sys/fs/bpf/enforcer").staging();
        assert_eq!(staging.root, Path::new("/sys/fs/bpf/enforcer-next"));
        let name = staging
            .root
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!name.contains('.'));
    }
}
