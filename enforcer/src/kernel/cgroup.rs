//! The task's cgroup v2 directory: where the envelope lives. Its id tags every process of the
//! task in the kernel maps; `cgroup.kill` ends them all at once.
use std::{
    fs,
    io::{self, Write as _},
    os::{fd::OwnedFd, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// A process the enforcer killed when it ended a task.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Killed {
    pub pid: u32,
    pub comm: String,
}

/// Name of the directory the enforcer owns under the cgroup2 mount.
pub const ROOT_NAME: &str = "enforcer";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup v2 is not mounted (no cgroup2 entry in /proc/self/mountinfo)")]
    NotMounted,
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where cgroup2 is mounted (read from mountinfo; never assumed).
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err(Path::new("/proc/self/mountinfo")))?;
    mount_of(&info, "cgroup2").ok_or(CgroupError::NotMounted)
}

/// Whether the cgroup2 mount has `nsdelegate` (systemd's default): then a process in a cgroup
/// namespace can move nothing to or from a cgroup outside that namespace's root.
pub fn cgroup2_nsdelegate() -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| nsdelegate_in(&info))
}

fn nsdelegate_in(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        line.split_once(" - ").is_some_and(|(_, right)| {
            let mut fields = right.split_whitespace();
            fields.next() == Some("cgroup2")
                && fields
                    .nth(1)
                    .is_some_and(|opts| opts.split(',').any(|o| o == "nsdelegate"))
        })
    })
}

/// The mount point of the first mount of type `fstype` in mountinfo text.
pub fn mount_of(mountinfo: &str, fstype: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let kind = right.split_whitespace().next()?;
        if kind != fstype {
            return None;
        }
        Some(PathBuf::from(
            left.split_whitespace().nth(4)?.replace("\\040", " "),
        ))
    })
}

/// Creates (if needed) the enforcer's root cgroup `<cgroup2>/enforcer` and returns its id and
/// depth, for the programs' early exit.
pub fn enforcer_root(mount: &Path) -> Result<enforcer_common::RootCgroup, CgroupError> {
    let root = mount.join(ROOT_NAME);
    match fs::create_dir(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(&root)(e)),
    }
    let id = fs::metadata(&root).map_err(io_err(&root))?.ino();
    sweep_stale(&root);
    Ok(enforcer_common::RootCgroup {
        id,
        // `<mount>/enforcer` is one level below the hierarchy's root.
        level: 1,
        valid: enforcer_common::root_scope::SCOPE,
    })
}

/// Creates (if needed) a daemon's subtree `<cgroup2>/<relative>` and returns it with its id and
/// depth; a cgroup under it without a task entry is refused everything (fail closed).
pub fn daemon_root(
    mount: &Path,
    relative: &str,
) -> Result<(PathBuf, enforcer_common::RootCgroup), CgroupError> {
    let root = mount.join(relative);
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let id = fs::metadata(&root).map_err(io_err(&root))?.ino();
    let level = Path::new(relative).components().count() as u32;
    Ok((
        root,
        enforcer_common::RootCgroup {
            id,
            level,
            valid: enforcer_common::root_scope::FAIL_CLOSED,
        },
    ))
}

/// Removes task cgroups left by an enforcer that was killed before it could clean up: named
/// `<task>-<pid>`, that pid gone, and no process left inside.
fn sweep_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let owner_alive = Path::new(&format!("/proc/{pid}")).exists();
        let populated = fs::read_to_string(entry.path().join("cgroup.events"))
            .map(|s| s.lines().any(|l| l == "populated 1"))
            .unwrap_or(true);
        if !owner_alive && !populated && fs::remove_dir(entry.path()).is_ok() {
            eprintln!(
                "enforcer: removed the stale task cgroup {}",
                entry.path().display()
            );
        }
    }
}

/// A task's cgroup.
#[derive(Debug)]
pub struct TaskCgroup {
    pub path: PathBuf,
    /// The cgroup id: the directory's inode number, what `bpf_get_current_cgroup_id` returns.
    pub id: u64,
}

impl TaskCgroup {
    /// Creates `<cgroup2>/enforcer/<name>`.
    pub fn create(mount: &Path, name: &str) -> Result<Self, CgroupError> {
        let root = mount.join(ROOT_NAME);
        match fs::create_dir(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&root)(e)),
        }
        let path = root.join(name);
        fs::create_dir(&path).map_err(io_err(&path))?;
        let id = fs::metadata(&path).map_err(io_err(&path))?.ino();
        Ok(Self { path, id })
    }

    /// Creates `<parent>/<name>`.
    pub fn create_in(parent: &Path, name: &str) -> Result<Self, CgroupError> {
        let path = parent.join(name);
        fs::create_dir(&path).map_err(io_err(&path))?;
        Self::open(path)
    }

    /// An existing cgroup (a task adopted by a restarted daemon).
    pub fn open(path: PathBuf) -> Result<Self, CgroupError> {
        let id = fs::metadata(&path).map_err(io_err(&path))?.ino();
        Ok(Self { path, id })
    }

    /// Moves process `pid` into the cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), CgroupError> {
        let p = self.path.join("cgroup.procs");
        fs::write(&p, pid.to_string()).map_err(io_err(&p))
    }

    /// An fd of the directory, to attach cgroup programs to.
    pub fn dir(&self) -> Result<fs::File, CgroupError> {
        fs::File::open(&self.path).map_err(io_err(&self.path))
    }

    /// An fd of `cgroup.procs` opened for writing: the child writes "0" to it to move itself in
    /// before it execs.
    pub fn procs_writer(&self) -> Result<OwnedFd, CgroupError> {
        let p = self.path.join("cgroup.procs");
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(io_err(&p))?;
        Ok(f.into())
    }

    /// The pids in the cgroup.
    pub fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn populated(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.events"))
            .map(|s| s.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// Kills every process of the task, like [`Self::kill`], and names the ones that were
    /// there (pid and comm) for `task_end`.
    pub fn kill_named(&self) -> Result<Vec<Killed>, CgroupError> {
        let killed = self
            .pids()
            .into_iter()
            .map(|pid| Killed {
                pid,
                comm: fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end().to_owned())
                    .unwrap_or_default(),
            })
            .collect();
        self.kill()?;
        Ok(killed)
    }

    /// Kills every process of the task (cgroup.kill; SIGKILL to each pid on older kernels).
    pub fn kill(&self) -> Result<(), CgroupError> {
        let p = self.path.join("cgroup.kill");
        match fs::OpenOptions::new().write(true).open(&p) {
            Ok(mut f) => f.write_all(b"1").map_err(io_err(&p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                for pid in self.pids() {
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                Ok(())
            }
            Err(e) => Err(io_err(&p)(e)),
        }
    }

    /// Waits until no process is left, up to `timeout`.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.populated() {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Kills what is left and removes the directory.
    pub fn remove(&self) -> Result<(), CgroupError> {
        if self.populated() {
            self.kill()?;
            self.wait_empty(Duration::from_secs(5));
        }
        let mut last = None;
        for _ in 0..200 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                // EBUSY while the last exiting process is still being reaped.
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(io_err(&self.path)(
            last.unwrap_or_else(|| io::ErrorKind::Other.into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nsdelegate_in_the_super_options() {
        let systemd = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert!(nsdelegate_in(systemd));
        let plain = "35 24 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert!(!nsdelegate_in(plain));
    }

    #[test]
    fn finds_the_cgroup2_mount_wherever_it_is() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_of(info, "cgroup2"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let info =
            "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            mount_of(info, "cgroup2"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(mount_of("", "cgroup2"), None);
    }
}
