//! The agent stand-in of the integration tests. Each subcommand performs one operation and
//! prints `ok` or `err NAME (errno)`; the exit status is 0 on success and 1 on error.
use std::{
    ffi::CString,
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    process::Command,
    time::Duration,
};

#[path = "probe_attacks.rs"]
mod attacks;

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ENOENT => "ENOENT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EXDEV => "EXDEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => "OTHER",
    }
}

fn report(r: io::Result<()>) -> ! {
    match r {
        Ok(()) => {
            println!("ok");
            std::process::exit(0)
        }
        Err(e) => {
            let n = e.raw_os_error().unwrap_or(0);
            println!("err {} ({n})", errno_name(n));
            std::process::exit(1)
        }
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn open(path: &str, flags: i32) -> io::Result<()> {
    // SAFETY: plain open(2).
    let fd = unsafe { libc::open(cstr(path).as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
    } else {
        f.write_all(b"probe\n")?;
    }
    Ok(())
}

fn openat(dir: &str, rel: &str) -> io::Result<()> {
    // SAFETY: plain open/openat.
    let dfd = unsafe { libc::open(cstr(dir).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if dfd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { libc::openat(dfd, cstr(rel).as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sendto(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind)?;
    sock.send_to(b"probe", addr).map(|_| ())
}

/// Connects from an AF_INET6 socket to an IPv4-mapped address.
fn connect_mapped(addr: &str) -> io::Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let SocketAddr::V4(v4) = addr else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: plain socket/connect with a correctly sized sockaddr_in6.
    unsafe {
        let fd = libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
        sa.sin6_family = libc::AF_INET6 as u16;
        sa.sin6_port = v4.port().to_be();
        sa.sin6_addr.s6_addr = v4.ip().to_ipv6_mapped().octets();
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        );
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn io_uring() -> io::Result<()> {
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(2) with a zeroed params struct.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Maps `path` executable: with PROT_EXEC at once, or readable first and then mprotect.
fn map_exec(path: &str, via_mprotect: bool) -> io::Result<()> {
    let c = cstr(path);
    // SAFETY: plain syscalls on our own fd and mapping.
    unsafe {
        let fd = check(libc::open(c.as_ptr(), libc::O_RDONLY).into())? as i32;
        let first = if via_mprotect {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_EXEC
        };
        let p = libc::mmap(std::ptr::null_mut(), 4096, first, libc::MAP_PRIVATE, fd, 0);
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        if via_mprotect {
            check(libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_EXEC).into())?;
        }
    }
    Ok(())
}

fn openat2(dir: &str, rel: &str) -> io::Result<()> {
    let d = cstr(dir);
    let r = cstr(rel);
    // struct open_how { u64 flags; u64 mode; u64 resolve; }
    let how = [libc::O_RDONLY as u64, 0, 0];
    // SAFETY: openat2(2) with a valid open_how of 24 bytes.
    unsafe {
        let dfd = check(libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY).into())?;
        check(libc::syscall(
            libc::SYS_openat2,
            dfd,
            r.as_ptr(),
            how.as_ptr(),
            24usize,
        ))?;
    }
    Ok(())
}

fn unix_connect(path: &str) -> io::Result<()> {
    std::os::unix::net::UnixStream::connect(path).map(|_| ())
}

/// In a new user and mount namespace (possible without any capability), bind-mounts `src`
/// over `dst`.
fn bind_mount(src: &str, dst: &str) -> io::Result<()> {
    let (s, d) = (cstr(src), cstr(dst));
    // SAFETY: unshare and mount with valid strings.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).into())?;
        check(
            libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
            .into(),
        )?;
    }
    Ok(())
}

/// chroot into `dir` from a new user namespace (where the capability it needs is held).
fn chroot_userns(dir: &str) -> io::Result<()> {
    let d = cstr(dir);
    // SAFETY: unshare and chroot with a valid string.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWUSER).into())?;
        check(libc::chroot(d.as_ptr()).into())?;
    }
    Ok(())
}

/// Opens `path` read-only through io_uring (IORING_OP_OPENAT); the result is the CQE's.
fn io_uring_open(path: &str) -> io::Result<()> {
    // struct io_sqring_offsets and struct io_cqring_offsets (40 bytes each).
    #[repr(C)]
    #[derive(Default)]
    struct SqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags: u32,
        dropped: u32,
        array: u32,
        resv1: u32,
        user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        overflow: u32,
        cqes: u32,
        flags: u32,
        resv1: u32,
        user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: SqOffsets,
        cq_off: CqOffsets,
    }
    const _: () = assert!(size_of::<Params>() == 120);
    let c = cstr(path);
    let mut p = Params::default();
    // SAFETY: the io_uring ABI: map the rings and SQEs the kernel describes in `p`, fill one
    // SQE, submit it and wait for its completion.
    unsafe {
        let fd = check(libc::syscall(libc::SYS_io_uring_setup, 1u32, &mut p))? as i32;
        let map = |len: usize, off: i64| {
            let m = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            );
            if m == libc::MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                Ok(m.cast::<u8>())
            }
        };
        let sq_len = p.sq_off.array as usize + 4 * p.sq_entries as usize;
        let cq_len = p.cq_off.cqes as usize + 16 * p.cq_entries as usize;
        let sq = map(sq_len, 0)?;
        let cq = map(cq_len, 0x800_0000)?;
        let sqes = map(64 * p.sq_entries as usize, 0x1000_0000)?;
        let sqe = sqes;
        std::ptr::write_bytes(sqe, 0, 64);
        *sqe = 18; // IORING_OP_OPENAT
        *(sqe.add(4) as *mut i32) = libc::AT_FDCWD; // fd
        *(sqe.add(16) as *mut u64) = c.as_ptr() as u64; // addr: the path
        *(sqe.add(28) as *mut u32) = libc::O_RDONLY as u32; // open_flags
        let tail = sq.add(p.sq_off.tail as usize) as *mut u32;
        let array = sq.add(p.sq_off.array as usize) as *mut u32;
        *array = 0;
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        *tail += 1;
        check(libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            1u32,
            1u32,
            1u32,
            0usize,
            0usize,
        ))?;
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let (head, tail) = (
            *(cq.add(p.cq_off.head as usize) as *const u32),
            *(cq.add(p.cq_off.tail as usize) as *const u32),
        );
        if tail == head {
            return Err(io::Error::other("io_uring: no completion"));
        }
        let mask = *(cq.add(p.cq_off.ring_mask as usize) as *const u32);
        let cqe = cq.add(p.cq_off.cqes as usize + 16 * (head & mask) as usize);
        let res = *(cqe.add(8) as *const i32);
        if res < 0 {
            return Err(io::Error::from_raw_os_error(-res));
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "read" => report(open(arg(2), libc::O_RDONLY)),
        "write" => report(open(arg(2), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)),
        "openat" => report(openat(arg(2), arg(3))),
        "chdir-read" => {
            report(std::env::set_current_dir(arg(2)).and_then(|()| open(arg(3), libc::O_RDONLY)))
        }
        "link" => report(std::fs::hard_link(arg(2), arg(3))),
        // Both steps inside the task: the second name is reached after the envelope started.
        "rename-read" => {
            report(std::fs::rename(arg(2), arg(3)).and_then(|()| open(arg(3), libc::O_RDONLY)))
        }
        "link-read" => {
            report(std::fs::hard_link(arg(2), arg(3)).and_then(|()| open(arg(3), libc::O_RDONLY)))
        }
        // This process's cgroup as it sees it (its cgroup namespace's view).
        "cgroup" => match std::fs::read_to_string("/proc/self/cgroup") {
            Ok(text) => {
                println!("{}", text.trim());
                std::process::exit(0)
            }
            Err(e) => report(Err(e)),
        },
        // uid, capabilities and no_new_privs, from /proc/self/status.
        "whoami" => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            for line in status.lines() {
                if [
                    "Uid:",
                    "CapEff:",
                    "CapPrm:",
                    "CapBnd:",
                    "CapAmb:",
                    "NoNewPrivs:",
                ]
                .iter()
                .any(|k| line.starts_with(k))
                {
                    println!("{line}");
                }
            }
            std::process::exit(0)
        }
        "symlink" => report(std::os::unix::fs::symlink(arg(2), arg(3))),
        "rename" => report(std::fs::rename(arg(2), arg(3))),
        "connect" => report(
            arg(2)
                .parse::<SocketAddr>()
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
                .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)))
                .map(|_| ()),
        ),
        "connect-mapped" => report(connect_mapped(arg(2))),
        // N connects in a tight loop (refused ones included): floods the event ring.
        "connect-flood" => {
            let addr: SocketAddr = arg(2)
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 9).into());
            let n: u64 = arg(3).parse().unwrap_or(1);
            // "refused" counts the enforcer's answer (EPERM) only; a closed port's
            // ECONNREFUSED or anything else is counted apart.
            let (mut refused, mut other) = (0u64, 0u64);
            for _ in 0..n {
                match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => refused += 1,
                    Err(_) => other += 1,
                    Ok(_) => {}
                }
            }
            if other > 0 {
                println!("refused {refused} other {other}");
            } else {
                println!("refused {refused}");
            }
            std::process::exit(0)
        }
        "sendto" => report(sendto(arg(2))),
        "io-uring" => report(io_uring()),
        "clone3-into" => report(attacks::clone3_into(arg(2))),
        "cgroup-move" => report(attacks::cgroup_move(arg(2))),
        "kill" => report(attacks::kill(arg(2), arg(3))),
        "ptrace" => report(attacks::ptrace(arg(2))),
        "socket" => report(attacks::socket(arg(2), arg(3), arg(4))),
        "ia32-open" => report(attacks::ia32_open(arg(2))),
        "unshare-user" => report(attacks::unshare_user()),
        "unix-sendto" => report(attacks::unix_sendto(arg(2))),
        "listen" => report(attacks::listen(arg(2), arg(3))),
        "shmat" => report(attacks::shmat(arg(2))),
        "unix-abstract" => report(attacks::unix_abstract(arg(2), arg(3))),
        "setxattr" => report(attacks::setxattr(arg(2))),
        "memfd-truncate" => report(attacks::memfd_truncate()),
        "open-trunc-read" => report(attacks::open_trunc_read(arg(2))),
        "keyctl" => report(attacks::keyctl()),
        "bpf" => report(attacks::bpf()),
        "memfd-exec" => report(attacks::memfd_exec(arg(2), &args[3..])),
        "ask" => report(attacks::ask(arg(2), arg(3))),
        "io-uring-open" => report(io_uring_open(arg(2))),
        "mmap-exec" => report(map_exec(arg(2), false)),
        "mprotect-exec" => report(map_exec(arg(2), true)),
        "openat2" => report(openat2(arg(2), arg(3))),
        "unlink" => report(std::fs::remove_file(arg(2))),
        "mkdir" => report(std::fs::create_dir(arg(2))),
        "rmdir" => report(std::fs::remove_dir(arg(2))),
        "truncate-path" => {
            let c = cstr(arg(2));
            // SAFETY: truncate(2) on a path.
            report(check(unsafe { libc::truncate(c.as_ptr(), 0) }.into()).map(|_| ()))
        }
        "chmod" => {
            let c = cstr(arg(2));
            // SAFETY: chmod(2) on a path.
            report(check(unsafe { libc::chmod(c.as_ptr(), 0o777) }.into()).map(|_| ()))
        }
        "unix-connect" => report(unix_connect(arg(2))),
        "bind-mount" => report(bind_mount(arg(2), arg(3))),
        "chroot" => report(chroot_userns(arg(2))),
        // Replace this process with another program.
        "exec" => {
            let err = Command::new(arg(2)).args(&args[3..]).exec();
            report(Err(err))
        }
        // Run a child probe and exit with its status (children, grandchildren...).
        "spawn" => {
            let status = Command::new(&args[2]).args(&args[3..]).status();
            match status {
                Ok(s) => std::process::exit(s.code().unwrap_or(128)),
                Err(e) => report(Err(e)),
            }
        }
        // Run the same probe command N times in sequence (for count limits).
        // Run several probe commands, separated by `;;`, each as a child of this one (so one
        // task tries them all): one verdict line each, in order.
        "each" => {
            let me = std::env::current_exe().unwrap_or_default();
            for cmd in args[2..].split(|a| a == ";;").filter(|c| !c.is_empty()) {
                // stdin and stderr as this one's: output() would open /dev/null for them.
                let out = Command::new(&me)
                    .args(cmd)
                    .stdin(std::process::Stdio::inherit())
                    .stderr(std::process::Stdio::inherit())
                    .output();
                let line = out
                    .as_ref()
                    .ok()
                    .and_then(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .next()
                            .map(String::from)
                    })
                    .unwrap_or_else(|| "err OTHER (0)".into());
                println!("{line}");
            }
            std::process::exit(0)
        }
        "repeat" => {
            let n: usize = arg(2).parse().unwrap_or(1);
            for _ in 0..n {
                let _ = Command::new(&args[3]).args(&args[4..]).status();
            }
            report(Ok(()))
        }
        // Wait (up to 60 s) until MARK exists, then read PATH.
        "wait-read" => {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(arg(2)).exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            report(open(arg(3), libc::O_RDONLY))
        }
        // Create MARK, wait SECS (while another task acts), then read PATH.
        "mark-sleep-read" => {
            let marked = std::fs::write(arg(2), "");
            std::thread::sleep(Duration::from_secs_f64(arg(3).parse().unwrap_or(1.0)));
            report(marked.and_then(|()| open(arg(4), libc::O_RDONLY)))
        }
        // Until its stdin closes (at most two minutes): read ALLOWED and DENIED, connect to
        // ALLOWED_ADDR and DENIED_ADDR, over and over; prints how often each was allowed and
        // refused (policy reloads run meanwhile: the allowed must never be refused, the denied
        // never allowed). The caller decides how long, so a slow machine still overlaps.
        "hammer" => {
            let end = std::time::Instant::now() + Duration::from_secs(120);
            let stdin_closed = || {
                let mut p = libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll(2) on one valid pollfd, without waiting.
                let n = unsafe { libc::poll(&mut p, 1, 0) };
                n != 0
            };
            let mut n = [0u64; 8];
            let conn = |a: &str| {
                a.parse::<SocketAddr>()
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
                    .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)))
                    .map(|_| ())
            };
            while std::time::Instant::now() < end && !stdin_closed() {
                n[usize::from(open(arg(2), libc::O_RDONLY).is_err())] += 1;
                n[2 + usize::from(open(arg(3), libc::O_RDONLY).is_err())] += 1;
                n[4 + usize::from(conn(arg(4)).is_err())] += 1;
                n[6 + usize::from(conn(arg(5)).is_err())] += 1;
                // About a thousand rounds a second: load, not a flood of the event ring.
                std::thread::sleep(Duration::from_micros(500));
            }
            println!(
                "read_allowed ok {} refused {}; read_denied ok {} refused {}; connect_allowed ok {} refused {}; connect_denied ok {} refused {}",
                n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]
            );
            std::process::exit(0)
        }
        // Dies of signal SIG (the default action; a TERM with the handler reset).
        "raise" => {
            let sig: i32 = arg(2).parse().unwrap_or(libc::SIGTERM);
            // SAFETY: restoring the default action and raising a signal in this process.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
                libc::raise(sig);
            }
            eprintln!("probe: still alive after signal {sig}");
            std::process::exit(3)
        }
        "sleep" => {
            std::thread::sleep(Duration::from_secs_f64(arg(2).parse().unwrap_or(1.0)));
            report(Ok(()))
        }
        "exists" => {
            let c = cstr(arg(2));
            // SAFETY: access(2).
            let rc = unsafe { libc::access(c.as_ptr(), libc::F_OK) };
            report(if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            })
        }
        "argv0" => {
            let me = std::env::args_os().next().unwrap_or_default();
            println!("{}", String::from_utf8_lossy(me.as_bytes()));
            report(Ok(()))
        }
        other => {
            eprintln!("probe: unknown subcommand {other:?}");
            std::process::exit(2)
        }
    }
}
