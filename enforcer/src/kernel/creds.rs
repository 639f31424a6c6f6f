//! The enforcer's own credentials while it runs: out of a task's reach on every kernel.
//!
//! A process may signal another when its real or effective uid equals the other's real or
//! saved uid (kernel/signal.c, `kill_ok_by_cred`), and trace it only when its uid equals all
//! three of the other's. A task runs without capabilities, so where nothing else scopes
//! signals (fallback mode under Landlock ABI < 6) a task running as root could kill its root
//! launcher or the daemon, which would take the cgroup programs with them. The enforcer
//! therefore keeps its effective uid 0 (and with it its capabilities) but moves its real and
//! saved uid to [`GUARD_UID`], which no task may have: no task can then signal, trace or read
//! it by the kernel's own checks. A child it starts restores the ids it had before
//! ([`Original`]) before it runs anything.
use std::{io, sync::OnceLock};

/// The real and saved uid of a running enforcer: `(uid_t)-2`, the highest uid the initial
/// user namespace maps (-1 means "unchanged" to setresuid). No task may run as it.
pub const GUARD_UID: libc::uid_t = u32::MAX - 1;

/// The ids the enforcer was started with, which every task it starts gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Original {
    pub ruid: libc::uid_t,
    pub euid: libc::uid_t,
    pub suid: libc::uid_t,
}

static ORIGINAL: OnceLock<Original> = OnceLock::new();

fn current() -> io::Result<Original> {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    if unsafe { libc::getresuid(&mut ruid, &mut euid, &mut suid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Original { ruid, euid, suid })
}

/// The ids the enforcer started with (its current ones when it never guarded itself).
pub fn original() -> Original {
    match ORIGINAL.get() {
        Some(o) => *o,
        None => current().unwrap_or(Original {
            ruid: 0,
            euid: 0,
            suid: 0,
        }),
    }
}

/// Moves the calling process's real and saved uid to [`GUARD_UID`], keeping effective uid 0
/// and every capability. Idempotent; a process that is not root is left as it is (it could
/// not do it, and it loads nothing).
pub fn guard_self() -> io::Result<Original> {
    let now = current()?;
    let original = *ORIGINAL.get_or_init(|| now);
    if now.euid != 0 || (now.ruid == GUARD_UID && now.suid == GUARD_UID) {
        return Ok(original);
    }
    // SAFETY: plain syscall; glibc applies it to every thread of the process. Effective uid 0
    // stays, so capabilities stay (capabilities(7): only when all three leave 0).
    if unsafe { libc::setresuid(GUARD_UID, u32::MAX, GUARD_UID) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(original)
}
