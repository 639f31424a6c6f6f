//! What the child does between fork and exec, in this order: join the task's cgroup, drop every
//! capability, switch user, set no_new_privs, apply Landlock, install seccomp, and arrange to
//! die with the enforcer. Only raw syscalls (async-signal-safe): no allocation after fork.
use std::io;

/// Everything the child needs, prepared by the parent before fork.
pub struct Plan {
    pub cgroup_procs_fd: i32,
    pub ruleset_fd: Option<i32>,
    pub seccomp: Option<Vec<libc::sock_filter>>,
    /// A private System V IPC namespace (needs CAP_SYS_ADMIN, so root): no segment, queue or
    /// semaphore set of an outside process is reachable. Without it, seccomp refuses them.
    pub ipc_namespace: bool,
    /// A cgroup namespace rooted at the task's cgroup (joined first; needs CAP_SYS_ADMIN):
    /// with `nsdelegate` on the cgroup2 mount the kernel refuses any move out of it, clone3's
    /// CLONE_INTO_CGROUP included.
    pub cgroup_namespace: bool,
    pub user: Option<UserIds>,
    /// Without `user`: the ids the enforcer started with, which the child takes back from
    /// the guarded ones it inherited (see `kernel::creds`).
    pub restore: Option<crate::kernel::creds::Original>,
    pub last_cap: u32,
    /// Die with the enforcer (standalone, where it is the parent); a daemon-started task
    /// outlives its launcher's exec, so it has none.
    pub pdeathsig: bool,
    /// What [`early`] did already.
    pub early: Early,
}

/// The steps of [`apply`] a launcher took while the daemon prepared its task (see [`early`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Early {
    pub ipc_namespace: bool,
    pub bounding_set: bool,
}

/// The steps of [`apply`] that need nothing from the daemon's answer, for a launcher to take
/// while the daemon works: a private IPC namespace (root only: `ipc_namespace` says whether
/// the daemon will ask for one) and the empty bounding set. Both only take authority away, and
/// a launcher the daemon then refuses exits without running anything.
///
/// # Safety
/// As [`apply`]: it changes the calling process's namespaces and capabilities.
pub unsafe fn early(ipc_namespace: bool, last_cap: u32) -> io::Result<Early> {
    // SAFETY: as in `apply`.
    unsafe {
        if ipc_namespace {
            check(libc::unshare(libc::CLONE_NEWIPC) as libc::c_long)?;
        }
        empty_bounding_set(last_cap)?;
    }
    Ok(Early {
        ipc_namespace,
        bounding_set: true,
    })
}

/// Empties the bounding set (needs CAP_SETPCAP, so before anything else drops it; a process
/// without it has nothing there it could use under no_new_privs).
unsafe fn empty_bounding_set(last_cap: u32) -> io::Result<()> {
    // SAFETY: prctl and geteuid take no pointers.
    unsafe {
        let can_setpcap = libc::prctl(libc::PR_CAPBSET_READ, 8 /* CAP_SETPCAP */, 0, 0, 0) == 1
            && libc::geteuid() == 0;
        if !can_setpcap {
            return Ok(());
        }
        for cap in 0..=last_cap {
            check(
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) as libc::c_long,
            )?;
        }
    }
    Ok(())
}

/// The identity the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserIds {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
}

fn check(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Applies `plan` to the calling process.
///
/// # Safety
/// Call only in a freshly forked child before exec: it changes the process's credentials.
pub unsafe fn apply(plan: &Plan) -> io::Result<()> {
    // SAFETY (whole body): raw syscalls on memory owned by `plan`.
    unsafe {
        // 1. Into the envelope: from here on the kernel programs see this process as the task.
        // (Through the daemon, it has moved the process already: no fd.)
        if plan.cgroup_procs_fd >= 0 {
            check(libc::write(plan.cgroup_procs_fd, b"0".as_ptr().cast(), 1) as libc::c_long)?;
        }

        // 1b. A private System V IPC (and POSIX message queue) namespace, and a cgroup
        //     namespace rooted at the task's cgroup, while the process still has its
        //     capabilities.
        if plan.ipc_namespace && !plan.early.ipc_namespace {
            check(libc::unshare(libc::CLONE_NEWIPC) as libc::c_long)?;
        }
        if plan.cgroup_namespace {
            check(libc::unshare(libc::CLONE_NEWCGROUP) as libc::c_long)?;
        }

        // 2. Empty the bounding set.
        if !plan.early.bounding_set {
            empty_bounding_set(plan.last_cap)?;
        }

        // 3. The user (or the enforcer's own original ids: it runs guarded).
        if let Some(user) = &plan.user {
            check(libc::setgroups(user.groups.len(), user.groups.as_ptr()) as libc::c_long)?;
            check(libc::setresgid(user.gid, user.gid, user.gid) as libc::c_long)?;
            check(libc::setresuid(user.uid, user.uid, user.uid) as libc::c_long)?;
        } else if let Some(ids) = plan.restore {
            check(libc::setresuid(ids.ruid, ids.euid, ids.suid) as libc::c_long)?;
        }

        // 4. No capabilities left in any set, ambient included.
        check(libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) as libc::c_long)?;
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()))?;

        // 5. Exec can never gain privileges (setuid binaries, file capabilities).
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;

        // 6. Files and exec (fallback mode).
        if let Some(fd) = plan.ruleset_fd {
            crate::kernel::landlock::restrict_self(fd)?;
        }

        // 7. clone3 refused (ENOSYS: it could start a child in another cgroup), and io_uring
        //    unless the policy allows it.
        if let Some(filter) = &plan.seccomp {
            crate::kernel::seccomp::install(filter)?;
        }

        // 8. If the enforcer dies, so does the command (set after the uid change, which clears it).
        if plan.pdeathsig {
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as libc::c_long)?;
        }
    }
    Ok(())
}

/// Looks up a user by name (or numeric uid) with its supplementary groups.
pub fn lookup_user(name: &str) -> io::Result<UserIds> {
    use std::ffi::{CStr, CString};
    let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("no such user: {name}"));
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    let rc = if let Ok(uid) = name.parse::<libc::uid_t>() {
        // SAFETY: buffers live across the call.
        unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        }
    } else {
        let c = CString::new(name).map_err(|_| not_found())?;
        // SAFETY: as above.
        unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        }
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Err(not_found());
    }
    // SAFETY: getpw*_r filled pwd with pointers into buf.
    let user_name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut n = groups.len() as libc::c_int;
    // SAFETY: groups has room for n entries.
    let rc = unsafe { libc::getgrouplist(pwd.pw_name, pwd.pw_gid, groups.as_mut_ptr(), &mut n) };
    groups.truncate(if rc < 0 { 0 } else { n as usize });
    if groups.is_empty() {
        groups.push(pwd.pw_gid);
    }
    Ok(UserIds {
        name: user_name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        groups,
    })
}

/// The user a task runs as (`--user`): any but the enforcer's own guard uid.
pub fn task_user(name: &str) -> io::Result<UserIds> {
    let user = lookup_user(name)?;
    if user.uid == crate::kernel::creds::GUARD_UID {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{name} has uid {}, the enforcer's own real uid while it runs (a task with it \
                 could signal the enforcer): no task may run as it",
                user.uid
            ),
        ));
    }
    Ok(user)
}

/// The highest capability number this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}
