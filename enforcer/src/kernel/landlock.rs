//! Landlock through its three syscalls: the fallback mode's file and exec enforcement.
//!
//! The ruleset is built in the parent (where errors can be reported) and applied by the child
//! just before exec (`restrict_self`). Everything the ABI can handle is handled, so anything
//! not granted is refused.
use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use enforcer_common::access;

use crate::policy::compile::Grant;

// Filesystem access rights, by ABI version.
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
const FS_REFER: u64 = 1 << 13; // ABI 2
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0; // ABI 6
const SCOPE_SIGNAL: u64 = 1 << 1; // ABI 6

/// Rights that apply to a file (not a directory) in a rule.
const FILE_RIGHTS: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel; 0 when Landlock is unavailable.
pub fn abi_version() -> u32 {
    // SAFETY: the documented way to query the ABI: NULL attr, size 0, the VERSION flag.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).unwrap_or(0)
}

/// Every filesystem right this ABI knows.
fn handled_fs(abi: u32) -> u64 {
    let mut fs = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_READ_DIR | MAKE_AND_REMOVE;
    if abi >= 2 {
        fs |= FS_REFER;
    }
    if abi >= 3 {
        fs |= FS_TRUNCATE;
    }
    if abi >= 5 {
        fs |= FS_IOCTL_DEV;
    }
    fs
}

/// Landlock rights for a grant's access bits, on this ABI.
pub fn rights(bits: u32, abi: u32, is_dir: bool) -> u64 {
    let mut r = 0;
    if bits & access::READ != 0 {
        r |= FS_READ_FILE | FS_READ_DIR;
    }
    if bits & access::EXEC != 0 {
        // execve opens the binary (and the ELF interpreter) for reading and executing.
        r |= FS_EXECUTE | FS_READ_FILE;
    }
    if bits & access::WRITE != 0 {
        r |= FS_WRITE_FILE
            | FS_TRUNCATE
            | FS_MAKE_REG
            | FS_MAKE_DIR
            | FS_MAKE_SYM
            | FS_MAKE_FIFO
            | FS_MAKE_SOCK
            | FS_REMOVE_FILE
            | FS_REMOVE_DIR
            | FS_REFER
            | FS_IOCTL_DEV;
    }
    r &= handled_fs(abi);
    if !is_dir {
        r &= FILE_RIGHTS;
    }
    r
}

/// Why a grant could not be added.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("Landlock is not available on this kernel")]
    Unavailable,
    #[error("cannot create the Landlock ruleset: {0}")]
    Create(io::Error),
    #[error("cannot add a Landlock rule for {path}: {source}")]
    AddRule { path: String, source: io::Error },
}

/// A grant that could not be applied because its path does not exist (reported, not fatal:
/// the path stays refused, which is the safe side).
#[derive(Debug)]
pub struct Skipped {
    pub path: String,
    pub rules: Vec<u32>,
    pub reason: String,
}

/// A ruleset ready to be applied in the child.
pub struct Ruleset {
    fd: OwnedFd,
    /// The filesystem rights this ruleset handles (refuses unless granted).
    handled: u64,
}

/// Creating and removing names, in every ABI.
const MAKE_AND_REMOVE: u64 = FS_REMOVE_DIR
    | FS_REMOVE_FILE
    | FS_MAKE_CHAR
    | FS_MAKE_DIR
    | FS_MAKE_REG
    | FS_MAKE_SOCK
    | FS_MAKE_FIFO
    | FS_MAKE_BLOCK
    | FS_MAKE_SYM;

/// Which rights a ruleset handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Fallback mode: every filesystem right the ABI knows.
    All,
    /// lsm mode: the BPF LSM decides every file operation and abstract unix sockets, so
    /// Landlock handles no filesystem right (it runs before the BPF LSM and would refuse first,
    /// without an event); it keeps only signal scoping (ABI 6).
    ScopesOnly,
}

impl Handled {
    fn rights(self, abi: u32) -> u64 {
        match self {
            Self::All => handled_fs(abi),
            Self::ScopesOnly => 0,
        }
    }
}

impl Ruleset {
    /// Builds the ruleset for `grants` (plus `extra` executable paths, e.g. ELF interpreters),
    /// handling `handled` rights, with signal and abstract-socket scoping from ABI 6.
    pub fn build(
        abi: u32,
        handled: Handled,
        grants: &[Grant],
        extra_exec: &[String],
    ) -> Result<(Self, Vec<Skipped>), LandlockError> {
        if abi == 0 {
            return Err(LandlockError::Unavailable);
        }
        let ruleset = Self::create(abi, handled)?;
        let mut skipped = Vec::new();
        if ruleset.handled == 0 {
            return Ok((ruleset, skipped));
        }
        let extra = extra_exec
            .iter()
            .map(|p| (p.as_str(), access::EXEC, Vec::new()));
        let all = grants
            .iter()
            .map(|g| (g.pattern.path.as_str(), g.access, g.rules.clone()))
            .chain(extra);
        for (path, bits, rules) in all {
            match ruleset.add(abi, path, bits) {
                Ok(()) => {}
                Err(LandlockError::AddRule { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    skipped.push(Skipped {
                        path: path.to_owned(),
                        rules,
                        reason: "does not exist when the envelope starts; Landlock can only \
                                 grant existing paths, so it stays refused"
                            .into(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        Ok((ruleset, skipped))
    }

    fn create(abi: u32, handled: Handled) -> Result<Self, LandlockError> {
        let attr = RulesetAttr {
            handled_access_fs: handled.rights(abi),
            handled_access_net: 0,
            scoped: match handled {
                _ if abi < 6 => 0,
                Handled::All => SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET,
                // lsm mode: the unix_stream_connect and unix_may_send hooks decide abstract
                // sockets, with an event.
                Handled::ScopesOnly => SCOPE_SIGNAL,
            },
        };
        let size = if abi >= 6 {
            size_of::<RulesetAttr>()
        } else if abi >= 4 {
            16
        } else {
            8
        };
        // SAFETY: attr outlives the call; size matches the fields this ABI knows.
        let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr, size, 0u32) };
        if fd < 0 {
            return Err(LandlockError::Create(io::Error::last_os_error()));
        }
        // SAFETY: a fresh fd we own.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            handled: attr.handled_access_fs,
        })
    }

    fn add(&self, abi: u32, path: &str, bits: u32) -> Result<(), LandlockError> {
        let err = |source| LandlockError::AddRule {
            path: path.to_owned(),
            source,
        };
        let c = CString::new(path).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: valid C string; O_PATH opens nothing but a reference.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let is_dir = Path::new(path).is_dir();
        let attr = PathBeneathAttr {
            allowed_access: rights(bits, abi, is_dir) & self.handled,
            parent_fd: fd.as_raw_fd(),
        };
        if attr.allowed_access == 0 {
            return Ok(());
        }
        // SAFETY: ruleset fd and attr valid for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr,
                0u32,
            )
        };
        if rc < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The ruleset's fd (to pass to a process that restricts itself with it).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Applies a ruleset to the calling thread. Async-signal-safe: for use between fork and exec.
///
/// # Safety
/// Only a raw syscall; `ruleset_fd` must be a Landlock ruleset fd.
pub unsafe fn restrict_self(ruleset_fd: i32) -> io::Result<()> {
    // SAFETY: raw syscall with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_follow_the_abi_and_the_file_type() {
        let write_dir = rights(access::WRITE, 7, true);
        assert_ne!(write_dir & FS_REFER, 0);
        assert_ne!(write_dir & FS_MAKE_REG, 0);
        assert_eq!(write_dir & FS_READ_FILE, 0, "write does not imply read");
        assert_eq!(rights(access::WRITE, 1, true) & (FS_REFER | FS_TRUNCATE), 0);
        assert_eq!(rights(access::WRITE, 7, false) & !FILE_RIGHTS, 0);
        assert_eq!(rights(access::EXEC, 7, false), FS_EXECUTE | FS_READ_FILE);
        assert_eq!(rights(access::READ, 7, true), FS_READ_FILE | FS_READ_DIR);
        assert_eq!(rights(access::READ, 7, true) & FS_MAKE_CHAR, 0);
    }
}
