//! One task of the daemon: what the kernel holds for it, what events name, and what is saved
//! so a restarted daemon can adopt it.
use crate::vocab::EnforcementMode;
use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    events::record::{PolicyRef, TaskContext},
    kernel::cgroup::TaskCgroup,
    policy::Policy,
};

/// A running task.
pub struct Task {
    pub saved: Saved,
    pub cgroup: TaskCgroup,
    /// The policy of the current generation (variables substituted), for naming rules.
    pub policy: Policy,
    /// The previous generation's, for events the kernel queued before a swap.
    pub previous: Option<Policy>,
    pub ctx: TaskContext,
    /// Why the daemon is ending the task (set once; the cgroup has been killed).
    pub ending: Option<String>,
    /// The inotify watch on its `cgroup.events`.
    pub watch: Option<i32>,
    /// Every process the daemon killed to end it, named in `task_end`.
    pub killed: Vec<crate::kernel::cgroup::Killed>,
}

/// What survives a daemon restart (`<state_dir>/tasks/<task_id>.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub task: String,
    pub task_id: String,
    pub intent: Option<String>,
    pub policy_name: String,
    pub policy_file: PathBuf,
    /// The text of the generation in force (parsed again on adoption).
    pub policy_text: String,
    pub vars: BTreeMap<String, String>,
    pub generation: u32,
    pub slot: u32,
    pub rules: u32,
    pub flags: u32,
    pub cgroup: PathBuf,
    pub cgroup_id: u64,
    pub pid: u32,
    pub owner_uid: u32,
    pub command: Vec<String>,
    pub executable: PathBuf,
    pub user: Option<String>,
    pub started_unix_ns: i128,
    pub started_boot_ns: u64,
    /// `CLOCK_BOOTTIME` ns after which the task is over (0: no TTL).
    pub deadline_boot_ns: u64,
    pub mode: EnforcementMode,
    pub unenforced: Vec<String>,
}

impl Saved {
    pub fn path(state_dir: &Path, task_id: &str) -> PathBuf {
        state_dir.join("tasks").join(format!("{task_id}.json"))
    }

    /// Writes the state atomically (a temp file renamed over the old one).
    pub fn store(&self, state_dir: &Path) -> io::Result<()> {
        let path = Self::path(state_dir, &self.task_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }

    pub fn remove(state_dir: &Path, task_id: &str) {
        let _ = std::fs::remove_file(Self::path(state_dir, task_id));
    }

    /// Every saved task, and the files that could not be read.
    pub fn load_all(state_dir: &Path) -> (Vec<Self>, Vec<String>) {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let Ok(entries) = std::fs::read_dir(state_dir.join("tasks")) else {
            return (out, bad);
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => out.push(s),
                Err(e) => bad.push(format!("{}: {e}", path.display())),
            }
        }
        (out, bad)
    }

    /// The context every event of this task carries.
    pub fn context(&self, policy: &Policy, boot_to_unix_ns: i128) -> TaskContext {
        TaskContext {
            task: self.task.clone(),
            task_id: self.task_id.clone(),
            intent: self.intent.clone(),
            policy: PolicyRef {
                name: policy.name.clone(),
                version: policy.version,
                sha256: policy.sha256.clone(),
                generation: self.generation,
            },
            mode: self.mode,
            unenforced: self.unenforced.clone(),
            boot_to_unix_ns,
        }
    }
}
