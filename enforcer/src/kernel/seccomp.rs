//! The classic-BPF seccomp filter every task runs under:
//! - `clone3` answers ENOSYS: its `CLONE_INTO_CGROUP` starts a child straight in another cgroup
//!   (an `O_PATH` descriptor of the target is enough), outside every envelope, and seccomp
//!   cannot read the flags, which clone3 passes in memory. C libraries fall back to `clone`,
//!   which cannot choose a cgroup. Container runtimes refuse clone3 the same way.
//! - io_uring answers EPERM unless the policy allows it: the syscall tracepoints of the
//!   fallback mode cannot see operations submitted through a ring.

/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on every architecture
/// (they postdate the unified syscall table), and with the x32 bit on x86_64.
const IO_URING: [u32; 3] = [425, 426, 427];
/// clone3, from the unified table too.
const CLONE3: u32 = 435;
const X32_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
/// offsetof(struct seccomp_data, nr)
const NR_OFFSET: u32 = 0;

/// The filter's instructions: clone3 refused with ENOSYS, and io_uring with EPERM when
/// `refuse_io_uring`.
pub fn task_filter(refuse_io_uring: bool) -> Vec<libc::sock_filter> {
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let with_x32 = |nrs: &[u32]| -> Vec<u32> {
        nrs.iter()
            .copied()
            .chain(nrs.iter().map(|n| n | X32_BIT))
            .collect()
    };
    let enosys = with_x32(&[CLONE3]);
    let eperm = if refuse_io_uring {
        with_x32(&IO_URING)
    } else {
        Vec::new()
    };
    // Layout: load nr; one compare per number; allow; return EPERM; return ENOSYS.
    let mut prog = vec![ins(BPF_LD_W_ABS, 0, 0, NR_OFFSET)];
    let total = enosys.len() + eperm.len();
    for (i, nr) in eperm.iter().chain(enosys.iter()).enumerate() {
        // From compare i, the instructions to skip to reach the allow return are total-i-1.
        let to_allow = (total - i - 1) as u8;
        let target = if i < eperm.len() {
            to_allow + 1
        } else {
            to_allow + 2
        };
        prog.push(ins(BPF_JEQ_K, target, 0, *nr));
    }
    prog.push(ins(BPF_RET_K, 0, 0, RET_ALLOW));
    prog.push(ins(BPF_RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    prog.push(ins(BPF_RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
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

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    fn refuses_io_uring_and_clone3_and_nothing_else() {
        let prog = task_filter(true);
        for nr in IO_URING {
            assert_eq!(run(&prog, nr), EPERM);
            assert_eq!(run(&prog, nr | X32_BIT), EPERM);
        }
        assert_eq!(run(&prog, CLONE3), ENOSYS);
        assert_eq!(run(&prog, CLONE3 | X32_BIT), ENOSYS);
        for nr in [0, 1, 2, 56, 57, 58, 59, 257, 424, 428, 434, 436, 437] {
            assert_eq!(run(&prog, nr), RET_ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn io_uring_allowed_still_refuses_clone3() {
        let prog = task_filter(false);
        for nr in IO_URING {
            assert_eq!(run(&prog, nr), RET_ALLOW);
        }
        assert_eq!(run(&prog, CLONE3), ENOSYS);
        assert_eq!(run(&prog, 56), RET_ALLOW, "clone itself");
    }
}
