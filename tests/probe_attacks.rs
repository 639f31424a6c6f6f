//! The probe's attack subcommands: what a process inside a task would try to leave its
//! envelope or reach outside it. Each prints the kernel's own answer, as the others do.
use std::{
    ffi::CString,
    io::{self, BufRead as _, Write as _},
    os::unix::net::UnixStream,
};

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// clone3(CLONE_INTO_CGROUP) into the cgroup directory `dir` (opened O_PATH, as an attacker
/// would: no open check sees it). The child exits at once.
pub fn clone3_into(dir: &str) -> io::Result<()> {
    let path = CString::new(dir).map_err(io::Error::other)?;
    // SAFETY: a plain open of a NUL-terminated path.
    let fd = check(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    } as libc::c_long)?;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM: the child gets a copy of this address space and
    // only calls _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: the child leaves at once.
        unsafe { libc::_exit(0) };
    }
    check(pid)?;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
    Ok(())
}

/// Moves this process into the cgroup whose `cgroup.procs` is `procs`.
pub fn cgroup_move(procs: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(procs)?;
    f.write_all(b"0")
}

/// kill(pid, sig).
pub fn kill(pid: &str, sig: &str) -> io::Result<()> {
    let pid: i32 = if pid == "ppid" {
        // The launcher: clear the death signal first, so its death would not take this
        // process with it (what an attacker does before killing it).
        // SAFETY: plain syscalls.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
            libc::getppid()
        }
    } else {
        pid.parse().map_err(io::Error::other)?
    };
    let sig: i32 = sig.parse().map_err(io::Error::other)?;
    // SAFETY: a plain syscall.
    check(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
}

/// PTRACE_SEIZE of `pid` (detached again on success).
pub fn ptrace(pid: &str) -> io::Result<()> {
    let pid: i32 = pid.parse().map_err(io::Error::other)?;
    // SAFETY: a plain syscall; a seized process is released at once.
    unsafe {
        check(libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) as libc::c_long)?;
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
    }
    Ok(())
}

/// Sends one request line to a unix socket and prints the reply line after the verdict.
pub fn ask(socket: &str, line: &str) -> io::Result<()> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    let mut reply = String::new();
    io::BufReader::new(s).read_line(&mut reply)?;
    println!("ok");
    println!("reply {}", reply.trim_end());
    std::process::exit(0)
}

/// open(path, O_RDONLY | O_TRUNC): a read that empties the file.
pub fn open_trunc_read(path: &str) -> io::Result<()> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a plain open; the fd is closed below.
    let fd =
        check(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_TRUNC) } as libc::c_long)?;
    // SAFETY: our own fd.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// One datagram to the unix socket at `path`, from an unbound socket (sendto).
pub fn unix_sendto(path: &str) -> io::Result<()> {
    std::os::unix::net::UnixDatagram::unbound()?
        .send_to(b"exfiltrated", path)
        .map(drop)
}

/// memfd_create and ftruncate, as shared memory is made: a file with no name the task holds.
pub fn memfd_truncate() -> io::Result<()> {
    let name = CString::new("shm").map_err(io::Error::other)?;
    // SAFETY: plain syscalls on our own fd, closed below.
    unsafe {
        let fd = check(libc::memfd_create(name.as_ptr(), 0) as libc::c_long)? as i32;
        let r = check(libc::ftruncate(fd, 4096) as libc::c_long);
        libc::close(fd);
        r.map(drop)
    }
}

/// unshare(CLONE_NEWUSER): a user namespace of its own.
pub fn unshare_user() -> io::Result<()> {
    // SAFETY: a plain syscall.
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER) } as libc::c_long).map(drop)
}

/// keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0): the uid's shared keyring.
pub fn keyctl() -> io::Result<()> {
    // SAFETY: a plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_keyctl, 0, -4, 0) }).map(drop)
}

/// bpf(BPF_PROG_GET_NEXT_ID): walking the loaded programs.
pub fn bpf() -> io::Result<()> {
    let mut attr = [0u32; 4];
    // SAFETY: the attribute buffer outlives the call and is as long as the size given.
    check(unsafe { libc::syscall(libc::SYS_bpf, 11, attr.as_mut_ptr(), 16) }).map(drop)
}

/// socket(family, type, protocol), by number; the socket is closed at once.
pub fn socket(family: &str, kind: &str, protocol: &str) -> io::Result<()> {
    let n = |s: &str| s.parse::<i32>().map_err(io::Error::other);
    // SAFETY: a plain syscall; the fd is closed below.
    let fd = check(unsafe { libc::socket(n(family)?, n(kind)?, n(protocol)?) } as libc::c_long)?;
    // SAFETY: our own fd.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Reaches the abstract unix socket `@name`: `stream` connects, `dgram` sends a datagram,
/// `self` binds it in this process and connects to it (within the task: allowed).
pub fn unix_abstract(how: &str, name: &str) -> io::Result<()> {
    use std::os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram, UnixListener},
    };
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    match how {
        "stream" => UnixStream::connect_addr(&addr).map(drop),
        "dgram" => UnixDatagram::unbound()?
            .send_to_addr(b"exfiltrated", &addr)
            .map(drop),
        "self" => {
            let _listener = UnixListener::bind_addr(&addr)?;
            UnixStream::connect_addr(&addr).map(drop)
        }
        _ => Err(io::Error::other(format!("unknown kind {how}"))),
    }
}

/// shmat of the System V segment `id` (made by an outside process), read-only.
pub fn shmat(id: &str) -> io::Result<()> {
    let id: i32 = id.parse().map_err(io::Error::other)?;
    // SAFETY: a plain syscall; a mapping that succeeds is detached at once.
    let at = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
    if at as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the address shmat returned.
    unsafe { libc::shmdt(at) };
    Ok(())
}

/// setxattr(path, "user.enforcer-test", "1").
pub fn setxattr(path: &str) -> io::Result<()> {
    let c = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: NUL-terminated strings and a one-byte value.
    check(unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.enforcer-test".as_ptr(),
            b"1".as_ptr().cast(),
            1,
            0,
        )
    } as libc::c_long)
    .map(drop)
}

/// Inbound: `tcp` binds `addr` (an `ip:port` or `[ip6]:port`) and listens, `udp` binds it,
/// `tcp-nobind` listens on a fresh socket of that family with no bind (the kernel picks the
/// port, so no bind hook sees it). A listening socket is kept until the process exits.
pub fn listen(how: &str, addr: &str) -> io::Result<()> {
    use std::net::{SocketAddr, TcpListener, UdpSocket};
    let at: SocketAddr = addr.parse().map_err(io::Error::other)?;
    match how {
        "tcp" => std::mem::forget(TcpListener::bind(at)?),
        "udp" => std::mem::forget(UdpSocket::bind(at)?),
        "tcp-nobind" => {
            let family = if at.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            // SAFETY: plain syscalls on our own fd, kept open until exit.
            let fd = check(unsafe { libc::socket(family, libc::SOCK_STREAM, 0) } as libc::c_long)?;
            check(unsafe { libc::listen(fd as i32, 8) } as libc::c_long)?;
        }
        _ => return Err(io::Error::other(format!("unknown listen kind {how}"))),
    }
    Ok(())
}

/// open(path, O_RDONLY) through the 32-bit syscall ABI (`int 0x80`, i386 number 5) from this
/// 64-bit process: the fallback mode's tracepoints never see such a call, so the task's
/// seccomp filter must refuse it. The path is copied below 4 GiB, where a 32-bit call can
/// point.
#[cfg(target_arch = "x86_64")]
pub fn ia32_open(path: &str) -> io::Result<()> {
    let bytes = CString::new(path).map_err(io::Error::other)?;
    // SAFETY: a fresh private mapping below 4 GiB, written within its length, unmapped below.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        );
        if page == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let src = bytes.as_bytes_with_nul();
        std::ptr::copy_nonoverlapping(src.as_ptr(), page.cast::<u8>(), src.len().min(4096));
        let ret: i32;
        // i386 open(2): eax = 5, ebx = path, ecx = flags, edx = mode. rbx belongs to LLVM,
        // so it is saved and restored around the call.
        std::arch::asm!(
            "xchg {path:r}, rbx",
            "int 0x80",
            "xchg {path:r}, rbx",
            path = inout(reg) page as usize as u64 => _,
            inlateout("eax") 5i32 => ret,
            in("ecx") libc::O_RDONLY,
            in("edx") 0,
        );
        libc::munmap(page, 4096);
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        libc::close(ret);
    }
    Ok(())
}

/// Copies `program` into an anonymous file (memfd_create) and executes that file by its
/// descriptor (execveat with AT_EMPTY_PATH): a program with no name on any filesystem.
pub fn memfd_exec(program: &str, args: &[String]) -> io::Result<()> {
    let bytes = std::fs::read(program)?;
    let name = CString::new("payload").map_err(io::Error::other)?;
    // SAFETY: plain syscalls on our own buffers; on success execveat does not return.
    unsafe {
        let fd = check(libc::memfd_create(name.as_ptr(), 0) as libc::c_long)? as i32;
        let mut written = 0;
        while written < bytes.len() {
            let n = check(
                libc::write(fd, bytes[written..].as_ptr().cast(), bytes.len() - written)
                    as libc::c_long,
            )?;
            written += n as usize;
        }
        let argv0 = CString::new(program).map_err(io::Error::other)?;
        let rest: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()).map_err(io::Error::other))
            .collect::<io::Result<_>>()?;
        let mut argv: Vec<*const libc::c_char> = vec![argv0.as_ptr()];
        argv.extend(rest.iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let empty = CString::new("").map_err(io::Error::other)?;
        libc::syscall(
            libc::SYS_execveat,
            fd,
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
        Err(io::Error::last_os_error())
    }
}
