//! lsm mode, unix-domain sockets: a connect to a socket path, or a datagram sent to one, needs
//! a `network.unix` rule. An abstract socket has no path: a connect or datagram to one made by
//! a process outside the task is refused (`unix_stream_connect`, `unix_may_send`; Landlock's
//! abstract scoping, which would refuse first without an event, is left off in lsm mode).
//! Internet connects are the cgroup programs' (net.rs).
use aya_ebpf::{helpers::bpf_probe_read_kernel_str_bytes, macros::lsm, programs::LsmContext};
use enforcer_common::{
    RULE_OUTSIDE_TASK, UNIX_OP_ABSTRACT_CONNECT, UNIX_OP_ABSTRACT_SENDMSG, UNIX_OP_SENDMSG, access,
    event_kind,
};

use crate::{
    kernel::{DenyHit, read},
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
    lsm::decide(task, sc, len, &check, DenyHit::NONE)
}

/// unix_stream_connect(sock, other, newsk): `other` is the listening socket.
#[lsm(hook = "unix_stream_connect")]
pub fn lsm_unix_stream_connect(ctx: LsmContext) -> i32 {
    let other: u64 = ctx.arg(1);
    let task = match lsm::enter(ctx.arg(3)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    check_abstract_peer(&task, other, UNIX_OP_ABSTRACT_CONNECT)
}

/// unix_may_send(sock, other): both `struct socket *`; a datagram to `other`.
#[lsm(hook = "unix_may_send")]
pub fn lsm_unix_may_send(ctx: LsmContext) -> i32 {
    let other: u64 = ctx.arg(1);
    let task = match lsm::enter(ctx.arg(2)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let Some(o) = crate::kernel::resolved() else {
        return 0;
    };
    let Some(sk) = read::<u64>(other, o.socket_sk) else {
        return 0;
    };
    check_abstract_peer(&task, sk, UNIX_OP_ABSTRACT_SENDMSG)
}

/// Refuses reaching the unix socket `other` (a `struct sock *`) when its address is abstract
/// and it was made by a process outside the task (another cgroup). Pathname sockets are the
/// path rules' (above); unnamed ones cannot be reached by address.
#[inline(always)]
fn check_abstract_peer(task: &Task, other: u64, op: u32) -> i32 {
    let Some(o) = crate::kernel::resolved() else {
        return 0;
    };
    let addr: u64 = read(other, o.unix_sock_addr).unwrap_or(0);
    if addr == 0 {
        return 0;
    }
    let name = addr + u64::from(o.unix_address_name);
    // sockaddr_un: a 2-byte family, then the path; abstract when the path starts with a NUL.
    if read::<u8>(name, 2) != Some(0) {
        return 0;
    }
    let owner = read::<u64>(other, o.sock_cgroup)
        .and_then(|cg| read::<u64>(cg, o.cgroup_kn))
        .and_then(|kn| read::<u64>(kn, o.kernfs_node_id));
    if owner == Some(task.cgroup_id) {
        return 0;
    }
    let Some(sc) = path::scratch() else {
        return 0;
    };
    // The event names it as `@name`: the bytes after the NUL, `count` of them (the name is
    // length-delimited; what follows it in the buffer is not part of it).
    let len: i32 = read(addr, o.unix_address_len).unwrap_or(0);
    let name_len = (len - 3).clamp(0, SUN_PATH as i32 - 1) as u64;
    sc.path[0] = b'@';
    // SAFETY: the helper checks the address; the copy stops at a NUL or the buffer's end.
    let _ = unsafe {
        bpf_probe_read_kernel_str_bytes((name + 3) as *const u8, &mut sc.path[1..SUN_PATH])
    };
    let check = Check {
        kind: event_kind::UNIX_CONNECT,
        want: access::CONNECT,
        op,
        flags: 0,
        any_of: 0,
    };
    lsm::refuse(task, &check, RULE_OUTSIDE_TASK, |ev| {
        path::copy_to_event(sc, &mut ev.path);
        ev.count = name_len;
    })
}
