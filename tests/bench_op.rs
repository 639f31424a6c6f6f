//! The benchmark's workload. `bench-op serve` reads batches from stdin, one per line:
//! `open PATH N`, `connect ADDR N`, `sendto ADDR N`, `exec PATH N`, `deny-connect ADDR SECS RATE`
//! and answers each with `NS_PER_OP FAILURES` (or `SENT` for deny-connect) on stdout. The same
//! binary runs inside an envelope and outside it, so both sides do exactly the same work.
use std::{
    ffi::CString,
    io::{BufRead as _, Write as _},
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

fn open_close(path: &CString) -> bool {
    // SAFETY: plain open/close.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::close(fd);
        }
        fd >= 0
    }
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_in, u32) {
    let SocketAddr::V4(v4) = addr else {
        panic!("bench addresses are IPv4");
    };
    // SAFETY: zeroed sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = v4.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    (sa, size_of::<libc::sockaddr_in>() as u32)
}

fn connect_close(addr: &SocketAddr) -> bool {
    let (sa, len) = sockaddr(addr);
    // SAFETY: plain socket/connect/close.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        let rc = libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), len);
        libc::close(fd);
        rc == 0
    }
}

fn fork_exec_wait(path: &CString) -> bool {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    // SAFETY: the child only calls execve and _exit.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
    }
}

/// Runs `op` n times; returns (ns per op, failures).
fn time(n: u64, mut op: impl FnMut() -> bool) -> (f64, u64) {
    let mut failures = 0;
    let start = Instant::now();
    for _ in 0..n {
        if !op() {
            failures += 1;
        }
    }
    (
        start.elapsed().as_nanos() as f64 / n.max(1) as f64,
        failures,
    )
}

/// Denied connects at `rate` per second for `secs`; returns how many were attempted.
fn deny_connect(addr: &SocketAddr, secs: f64, rate: f64) -> u64 {
    let (sa, len) = sockaddr(addr);
    // SAFETY: one socket, reused: a refused connect leaves it unconnected.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    let start = Instant::now();
    let end = Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while start.elapsed() < end {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        // At most a small batch between clock checks, so an unreachable rate still ends on time.
        let batch_end = due.min(sent + 256);
        while sent < batch_end {
            // SAFETY: as above.
            unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), len) };
            sent += 1;
        }
        std::hint::spin_loop();
    }
    // SAFETY: close our socket.
    unsafe { libc::close(fd) };
    sent
}

/// Runs on the last CPU, so the enforcer's own work (on the others) does not share it.
fn pin_to_last_cpu() {
    // SAFETY: a zeroed cpu_set_t filled with one CPU, for this thread.
    unsafe {
        let n = libc::sysconf(libc::_SC_NPROCESSORS_ONLN).max(1) as usize;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(n - 1, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() != Some("serve") {
        eprintln!("usage: bench-op serve");
        std::process::exit(2);
    }
    pin_to_last_cpu();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (op, target) = (
            parts.first().copied().unwrap_or(""),
            parts.get(1).copied().unwrap_or(""),
        );
        let n: u64 = parts.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
        let answer = match op {
            "open" => {
                let p = CString::new(target).unwrap_or_default();
                let (ns, f) = time(n, || open_close(&p));
                format!("{ns:.1} {f}")
            }
            "connect" => {
                let a: SocketAddr = target.parse().expect("address");
                let (ns, f) = time(n, || connect_close(&a));
                format!("{ns:.1} {f}")
            }
            "sendto" => {
                let a: SocketAddr = target.parse().expect("address");
                let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
                let (ns, f) = time(n, || sock.send_to(b"x", a).is_ok());
                format!("{ns:.1} {f}")
            }
            "exec" => {
                let p = CString::new(target).unwrap_or_default();
                let (ns, f) = time(n, || fork_exec_wait(&p));
                format!("{ns:.1} {f}")
            }
            "deny-connect" => {
                let a: SocketAddr = target.parse().expect("address");
                let secs: f64 = parts.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
                let rate: f64 = parts.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000.0);
                format!("{}", deny_connect(&a, secs, rate))
            }
            "quit" => break,
            _ => "error unknown op".to_owned(),
        };
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}
