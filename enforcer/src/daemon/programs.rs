//! How a starting daemon gets its programs: it adopts the pinned ones of its own build, takes
//! running tasks over from another build's (converting their maps), or loads and pins its own.
use std::path::Path;

use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use enforcer_common::{MAP_ABI, RootCgroup};
use sha2::Digest as _;

use super::{DaemonError, load, state::DaemonState, upgrade};
use crate::{
    bpf::{self, maps::Maps, pin::PinDir},
    kernel::probe::Probe,
    vocab::EnforcementMode,
};

/// The sha256 of the embedded eBPF object: pins from another build are not adopted.
pub fn object_sha256() -> String {
    let digest = sha2::Sha256::digest(bpf::object());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the daemon's programs live.
pub struct Place<'a> {
    pub pins: &'a PinDir,
    /// The cgroup subtree the tasks live in, and its id and level.
    pub root: &'a Path,
    pub root_cg: RootCgroup,
    pub state_dir: &'a Path,
}

/// The programs the daemon runs with.
pub struct Programs {
    pub maps: Maps,
    pub ring: RingBuf<MapData>,
    /// The loaded object, when this daemon loaded it (not when it adopted pins).
    pub ebpf: Option<Ebpf>,
    pub state: DaemonState,
    /// The programs an upgrade retired, whose last events are still to be drained.
    pub retired: Option<upgrade::Retired>,
}

/// Adopts, takes over or loads. `probe` learns the mode the pinned programs run in.
pub fn acquire(
    probe: &mut Probe,
    saved: Option<DaemonState>,
    tasks_saved: bool,
    at: &Place<'_>,
) -> Result<Programs, DaemonError> {
    let sha = object_sha256();
    let pins = at.pins;
    let pinned = pins.has_state();
    // A fresh load keeps the policy generations of the last daemon of this boot.
    let (prev_generation, prev_policies) = saved
        .as_ref()
        .map(|s| (s.generation, s.policies.clone()))
        .unwrap_or_default();
    match saved {
        Some(st) if pinned && st.object_sha256 == sha && st.root_cgroup_id == at.root_cg.id => {
            let (maps, ring) = Maps::open_pinned(pins)?;
            keep_mode(probe, &st);
            Ok(Programs {
                maps,
                ring,
                ebpf: None,
                state: st,
                retired: None,
            })
        }
        Some(st) if pinned && tasks_saved && upgrade::possible(&st, &sha, at.root_cg.id) => {
            let (ebpf, maps, ring, old) =
                upgrade::hand_over(probe, &st, at.root_cg, at.root, pins)?;
            keep_mode(probe, &st);
            Ok(Programs {
                maps,
                ring,
                ebpf: Some(ebpf),
                state: DaemonState {
                    object_sha256: sha,
                    map_abi: MAP_ABI,
                    ..st
                },
                retired: Some(old),
            })
        }
        _ if pinned && tasks_saved => Err(DaemonError::Upgrade(format!(
            "{} holds pinned programs of another enforcer build whose maps differ from this \
             build's (or of another cgroup root), and task(s) are saved in {}: they keep being \
             enforced by the pinned programs; end them (or reboot) before starting this daemon",
            pins.root.display(),
            at.state_dir.display()
        ))),
        _ => {
            if pinned {
                pins.remove()?;
                pins.prepare()?;
            }
            let (mut ebpf, mode_reason) = load::load_and_pin(probe, at.root_cg, at.root, pins)?;
            if let Some(why) = &mode_reason {
                probe.bpf_lsm = Err(why.clone());
            }
            let (maps, ring) = Maps::take(&mut ebpf)?;
            Ok(Programs {
                maps,
                ring,
                ebpf: Some(ebpf),
                state: DaemonState {
                    object_sha256: sha,
                    map_abi: MAP_ABI,
                    mode: EnforcementMode::of(probe.lsm_mode()),
                    fallback_reason: probe.fallback_reason(),
                    root_cgroup_id: at.root_cg.id,
                    next_rules: 1,
                    next_task: 0,
                    generation: prev_generation,
                    policies: prev_policies,
                },
                retired: None,
            })
        }
    }
}

/// The running tasks keep the mode they were started in: a daemon taking over pinned programs
/// of the fallback mode runs in it, with the reason they were started so.
fn keep_mode(probe: &mut Probe, st: &DaemonState) {
    if !st.mode.is_lsm() {
        probe.bpf_lsm = Err(st
            .fallback_reason
            .clone()
            .unwrap_or_else(|| "the running tasks were started in the fallback mode".into()));
    }
}
