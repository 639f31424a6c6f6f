//! What a restarted daemon needs besides the tasks: `<state_dir>/daemon.json`.
use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::vocab::EnforcementMode;

/// What a restarted daemon needs besides the tasks (`<state_dir>/daemon.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DaemonState {
    pub object_sha256: String,
    /// `enforcer_common::MAP_ABI` of the pinned programs (0: a build from before it existed).
    #[serde(default)]
    pub map_abi: u32,
    pub mode: EnforcementMode,
    pub fallback_reason: Option<String>,
    pub root_cgroup_id: u64,
    pub next_rules: u32,
    /// Numbers task ids (`<task>-<n>`), unique per boot.
    pub next_task: u64,
    pub generation: u32,
    /// Each policy's sha256 and generation, so a restart does not renumber unchanged ones.
    #[serde(default)]
    pub policies: BTreeMap<String, (String, u32)>,
}

impl DaemonState {
    /// The state the last daemon left in `state_dir`, if it left one that reads.
    pub fn load(state_dir: &Path) -> Option<Self> {
        std::fs::read(state_dir.join("daemon.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Writes it to `state_dir` atomically (a crash leaves the old file or the new one).
    pub fn save(&self, state_dir: &Path) {
        let path = state_dir.join("daemon.json");
        let tmp = path.with_extension("json.tmp");
        let ok = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = ok {
            eprintln!("enforcer: cannot save {}: {e}", path.display());
        }
    }
}
