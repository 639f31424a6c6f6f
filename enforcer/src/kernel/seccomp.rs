//! A classic-BPF seccomp filter that refuses io_uring (EPERM): the syscall tracepoints of the
//! fallback mode cannot see operations submitted through a ring.

/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on every architecture
/// (they postdate the unified syscall table), and with the x32 bit on x86_64.
const IO_URING: [u32; 3] = [425, 426, 427];
const X32_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// offsetof(struct seccomp_data, nr)
const NR_OFFSET: u32 = 0;

/// The filter's instructions.
pub fn io_uring_filter() -> Vec<libc::sock_filter> {
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let denied: Vec<u32> = IO_URING
        .iter()
        .copied()
        .chain(IO_URING.iter().map(|n| n | X32_BIT))
        .collect();
    let mut prog = vec![ins(BPF_LD_W_ABS, 0, 0, NR_OFFSET)];
    let n = denied.len() as u8;
    for (i, nr) in denied.iter().enumerate() {
        // On a match jump to the errno return, which follows the allow return.
        let to_errno = n - i as u8;
        prog.push(ins(BPF_JEQ_K, to_errno, 0, *nr));
    }
    prog.push(ins(BPF_RET_K, 0, 0, RET_ALLOW));
    prog.push(ins(BPF_RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    prog
}

/// Installs `filter` on the calling thread. Async-signal-safe; needs no_new_privs first.
///
/// # Safety
/// Only raw syscalls on memory owned by `filter`.
pub unsafe fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at live instructions for the duration of the call.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter the way the kernel would, for a syscall number.
    fn run(prog: &[libc::sock_filter], nr: u32) -> u32 {
        let mut acc = 0;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            match i.code {
                BPF_LD_W_ABS => acc = nr,
                BPF_JEQ_K => {
                    pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                }
                BPF_RET_K => return i.k,
                _ => panic!("unexpected instruction"),
            }
            pc += 1;
        }
    }

    #[test]
    fn refuses_io_uring_and_nothing_else() {
        let prog = io_uring_filter();
        for nr in IO_URING {
            assert_eq!(run(&prog, nr), RET_ERRNO | libc::EPERM as u32);
            assert_eq!(run(&prog, nr | X32_BIT), RET_ERRNO | libc::EPERM as u32);
        }
        for nr in [0, 1, 2, 59, 257, 424, 428, 437] {
            assert_eq!(run(&prog, nr), RET_ALLOW, "syscall {nr}");
        }
    }
}
