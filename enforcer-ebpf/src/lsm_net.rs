//! lsm mode, unix-domain sockets: a connect to a socket path, or a datagram sent to one, needs
//! a `network.unix` rule.
//! Internet connects are the cgroup programs' (net.rs). Abstract sockets have no path: where
//! Landlock can scope them (ABI 6), the launcher does.
use aya_ebpf::{helpers::bpf_probe_read_kernel_str_bytes, macros::lsm, programs::LsmContext};
use enforcer_common::{UNIX_OP_SENDMSG, access, event_kind};

use crate::{
    kernel::read,
    lsm::{self, Check},
    path,
    task::Task,
};

const AF_UNIX: u16 = 1;
/// sizeof(sockaddr_un.sun_path).
const SUN_PATH: usize = 108;

#[lsm(hook = "socket_connect")]
pub fn lsm_socket_connect(ctx: LsmContext) -> i32 {
    let address: u64 = ctx.arg(1);
    let addrlen: i32 = ctx.arg(2);
    let task = match lsm::enter(ctx.arg(3)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    check_unix_path(&task, address, addrlen, 0)
}

/// socket_sendmsg(sock, msg, size): a datagram sent to a unix socket path (sendto, sendmsg
/// with an address) needs the same rule as a connect to it. Sends on connected sockets carry
/// no address; their connect was checked.
#[lsm(hook = "socket_sendmsg")]
pub fn lsm_socket_sendmsg(ctx: LsmContext) -> i32 {
    let msg: u64 = ctx.arg(1);
    let task = match lsm::enter(ctx.arg(3)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let Some(o) = crate::kernel::resolved() else {
        return 0;
    };
    // The kernel copied the address in (move_addr_to_kernel) before this hook.
    let address: u64 = read(msg, o.msghdr_name).unwrap_or(0);
    if address == 0 {
        return 0;
    }
    check_unix_path(&task, address, SUN_PATH as i32 + 2, UNIX_OP_SENDMSG)
}

/// Checks a `struct sockaddr` at `address` (kernel memory): a unix socket path needs a
/// `network.unix` rule; other families and abstract sockets are left to their own checks.
#[inline(always)]
fn check_unix_path(task: &Task, address: u64, addrlen: i32, op: u32) -> i32 {
    if read::<u16>(address, 0) != Some(AF_UNIX) || addrlen <= 2 {
        return 0;
    }
    let Some(sc) = path::scratch() else {
        return 0;
    };
    // SAFETY: the helper checks the address; the copy stops at the NUL or the buffer's end.
    let read = unsafe {
        bpf_probe_read_kernel_str_bytes((address + 2) as *const u8, &mut sc.path[..SUN_PATH])
    };
    let len = match read {
        Ok([]) => return 0, // abstract: starts with a NUL
        Ok(s) => s.len() + 1,
        Err(_) => lsm::unresolved(sc),
    };
    let check = Check {
        kind: event_kind::UNIX_CONNECT,
        want: access::CONNECT,
        op,
        flags: 0,
        any_of: 0,
    };
    // A relative socket path is resolved from the caller's cwd, which is not checked here:
    // only absolute paths can match a rule.
    let len = if len > 0 && sc.path[0] == b'/' {
        len
    } else {
        0
    };
    lsm::decide(task, sc, len, &check, None)
}
