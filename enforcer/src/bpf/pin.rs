//! The daemon's programs and maps, pinned in bpffs so enforcement outlives the daemon: a
//! `kill -9` leaves the links attached and the maps filled, and a restarted daemon opens the
//! maps from their pins instead of loading anything.
use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use aya::{
    Ebpf,
    maps::{Map, MapData},
    programs::links::FdLink,
};
use enforcer_common::{MapSpec, map_names};

use super::{BpfError, chain, table};

/// bpffs's magic number (statfs f_type).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("pinning {what} at {}: {detail}", path.display())]
    Pin {
        what: String,
        path: PathBuf,
        detail: String,
    },
    #[error("opening the pinned map {}: {detail}", path.display())]
    Open { path: PathBuf, detail: String },
    #[error("the pinned map {} is not laid out as expected: {detail}", path.display())]
    Layout { path: PathBuf, detail: String },
    #[error("{0}")]
    Bpf(#[from] BpfError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A directory in bpffs holding `maps/` and `links/`.
#[derive(Clone, Debug)]
pub struct PinDir {
    pub root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }

    fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    /// Makes sure bpffs is mounted where the pins go (a fresh machine without systemd may
    /// not have it) and creates the directories.
    pub fn prepare(&self) -> Result<(), PinError> {
        let mount = self
            .root
            .parent()
            .ok_or_else(|| io_err(&self.root)(io::ErrorKind::InvalidInput.into()))?;
        if !is_bpffs(mount) {
            let c = |s: &str| CString::new(s).map_err(|e| io_err(mount)(io::Error::other(e)));
            let (src, target) = (c("bpf")?, c(&mount.to_string_lossy())?);
            // SAFETY: valid C strings; no data argument.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    src.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io_err(mount)(io::Error::last_os_error()));
            }
        }
        for dir in [self.root.clone(), self.maps(), self.links()] {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        Ok(())
    }

    /// Whether a previous daemon left its maps pinned here.
    pub fn has_state(&self) -> bool {
        self.maps().join(map_names::TASKS).exists()
    }

    /// Pins the maps of a freshly loaded object.
    pub fn pin_maps(&self, ebpf: &Ebpf) -> Result<(), PinError> {
        for spec in table::pinned() {
            let name = spec.name;
            let path = self.maps().join(name);
            let map = ebpf.map(name).ok_or(BpfError::MissingMap(name))?;
            map.pin(&path).map_err(|e| PinError::Pin {
                what: format!("map {name}"),
                path: path.clone(),
                detail: chain(&e),
            })?;
        }
        Ok(())
    }

    /// Pins links: they keep their programs attached with no process holding them.
    pub fn pin_links(&self, links: Vec<(String, FdLink)>) -> Result<(), PinError> {
        for (name, link) in links {
            let path = self.links().join(&name);
            link.pin(&path).map_err(|e| PinError::Pin {
                what: format!("link {name}"),
                path: path.clone(),
                detail: chain(&e),
            })?;
        }
        Ok(())
    }

    /// How many links are pinned.
    pub fn link_count(&self) -> usize {
        fs::read_dir(self.links()).map_or(0, |d| d.count())
    }

    /// The names of the pinned links.
    pub fn link_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.links())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Opens one pinned map of this build's table, checked against it.
    pub fn open_map(&self, name: &'static str) -> Result<Map, PinError> {
        let spec = table::pinned()
            .find(|s| s.name == name)
            .ok_or(BpfError::MissingMap(name))?;
        self.open_as(spec)
    }

    /// Opens the pinned map `spec` names, checked against `spec` (this build's, or the frozen
    /// table of an older map ABI being converted from).
    pub fn open_as(&self, spec: &MapSpec) -> Result<Map, PinError> {
        let path = self.maps().join(spec.name);
        let open = |e: &dyn std::error::Error| PinError::Open {
            path: path.clone(),
            detail: chain(e),
        };
        let info = MapInfo::from_pin(&path).map_err(|e| open(&e))?;
        if let Some(detail) = table::mismatch(spec, &info, None) {
            return Err(PinError::Layout { path, detail });
        }
        let data = MapData::from_pin(&path).map_err(|e| open(&e))?;
        Ok(table::wrap(spec.kind, data))
    }

    /// What the kernel says of a pinned map, without a spec to check it against.
    pub fn map_info(&self, name: &str) -> Option<MapInfo> {
        MapInfo::from_pin(self.maps().join(name)).ok()
    }

    /// Unpins everything: the programs detach once no process holds them.
    pub fn remove(&self) -> Result<(), PinError> {
        for dir in [self.links(), self.maps()] {
            if let Ok(entries) = fs::read_dir(&dir) {
                for e in entries.flatten() {
                    fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
                }
            }
        }
        // What is left are directories: `maps/`, `links/` and markers.
        if let Ok(entries) = fs::read_dir(&self.root) {
            for e in entries.flatten() {
                fs::remove_dir(e.path()).map_err(io_err(&e.path()))?;
            }
        }
        match fs::remove_dir(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.root)(e)),
        }
    }

    /// Unpins the links only: their programs detach, the maps stay readable.
    pub fn unpin_links(&self) -> Result<(), PinError> {
        if let Ok(entries) = fs::read_dir(self.links()) {
            for e in entries.flatten() {
                fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }
        Ok(())
    }

    /// Where a new build's programs are pinned while they take over from these.
    pub fn staging(&self) -> PinDir {
        let mut name = self.root.as_os_str().to_owned();
        // bpffs refuses names with a dot.
        name.push("-next");
        PinDir::new(name)
    }

    /// Marks these pins as complete: every map and link is in place.
    pub fn mark_complete(&self) -> Result<(), PinError> {
        let dir = self.root.join("complete");
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err(&dir)(e)),
            _ => Ok(()),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.root.join("complete").is_dir()
    }

    /// Moves these pins to `to` (bpffs renames like any file system).
    pub fn rename_to(&self, to: &PinDir) -> Result<(), PinError> {
        fs::rename(&self.root, &to.root).map_err(io_err(&self.root))?;
        // The marker belongs to a handover in progress, not to the pins.
        let _ = fs::remove_dir(to.root.join("complete"));
        Ok(())
    }
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-parameter; `c` is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
