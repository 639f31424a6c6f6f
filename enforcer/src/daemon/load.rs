//! Loading the programs once for the daemon, attaching them, and pinning maps and links.
use std::path::Path;

use aya::Ebpf;
use enforcer_common::{RootCgroup, root_scope};

use super::DaemonError;
use crate::{
    bpf::{self, pin::PinDir},
    kernel::probe::Probe,
    runtime::programs::{Failure, load_with_fallback},
};

/// What runs after the maps are pinned and before any program is attached (a handover copies
/// the running tasks' entries in).
pub type BeforeAttach<'a> = &'a mut dyn FnMut(&PinDir) -> Result<(), String>;

/// Loads the programs, pins the maps, runs `before_attach`, attaches everything and pins the
/// links. An error says whether an LSM program failed (`true`).
pub fn attach_all(
    probe: &Probe,
    lsm: bool,
    root_cg: RootCgroup,
    root: &Path,
    pins: &PinDir,
    before_attach: BeforeAttach<'_>,
) -> Result<Ebpf, (bool, String)> {
    let other = |e: String| (false, e);
    // Who refuses a stranger under the root: the LSM hooks, or (fallback) a kill.
    let root_cg = RootCgroup {
        valid: if lsm {
            root_scope::FAIL_CLOSED_LSM
        } else {
            root_scope::FAIL_CLOSED
        },
        ..root_cg
    };
    let mut ebpf = bpf::load(probe.offsets.clone().ok(), Some(root_cg), None)
        .map_err(|e| other(e.to_string()))?;
    pins.pin_maps(&ebpf).map_err(|e| other(e.to_string()))?;
    before_attach(pins).map_err(other)?;
    let mut links = Vec::new();
    bpf::attach_tracepoints(&mut ebpf, lsm, Some(&mut links)).map_err(|e| other(e.to_string()))?;
    if lsm {
        bpf::attach_lsm(&mut ebpf, Some(&mut links)).map_err(|e| (true, e.to_string()))?;
    }
    bpf::load_cgroup_programs(&mut ebpf).map_err(|e| other(e.to_string()))?;
    // Attached once, to the subtree's root: every task cgroup below inherits them.
    let dir = std::fs::File::open(root).map_err(|e| other(format!("{}: {e}", root.display())))?;
    bpf::attach_cgroup(&mut ebpf, &dir, Some(&mut links)).map_err(|e| other(e.to_string()))?;
    pins.pin_links(links).map_err(|e| other(e.to_string()))?;
    Ok(ebpf)
}

/// Loads, attaches and pins. In auto mode, LSM programs the verifier refuses demote the daemon
/// to the fallback mode, with the reason returned (said at start and in every event).
pub fn load_and_pin(
    probe: &Probe,
    root_cg: RootCgroup,
    root: &Path,
    pins: &PinDir,
) -> Result<(Ebpf, Option<String>), DaemonError> {
    let mut nothing = |_: &PinDir| Ok(());
    let loaded = load_with_fallback(probe.requested, |why| {
        if why.is_some() {
            // What the refused attempt pinned goes first.
            let _ = pins.remove();
            pins.prepare().map_err(Failure::other)?;
        }
        let lsm = why.is_none() && probe.lsm_mode();
        attach_all(probe, lsm, root_cg, root, pins, &mut nothing)
            .map_err(|(in_lsm, message)| Failure { in_lsm, message })
    });
    loaded.map_err(|f| {
        let _ = pins.remove();
        DaemonError::Load(f.message)
    })
}
