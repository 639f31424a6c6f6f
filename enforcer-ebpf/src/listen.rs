//! Inbound: a task binds a local port or listens only where a `network.listen` rule allows
//! (the `NET_RULES` entries under the slot's `NET_SLOT_LISTEN` bit).
//!
//! - Both modes: the cgroup `bind4`/`bind6` programs refuse a bind to a port (EPERM). A bind to
//!   port 0 (the kernel picks one, as clients do) passes: a listen on it is checked below.
//! - lsm mode: the `socket_listen` hook checks the socket's local address and port (EPERM),
//!   which covers a listen on a port the kernel picked (bind to 0, or no bind at all).
//! - fallback mode: no hook can refuse a listen, so the `inet_sock_set_state` tracepoint sees
//!   the socket enter LISTEN and kills the caller and ends the task; any accept that still
//!   returns in that task kills its caller before it can use the connection.
use aya_ebpf::{
    macros::{cgroup_sock_addr, lsm, tracepoint},
    programs::{LsmContext, SockAddrContext, TracePointContext},
};
use enforcer_common::{NET_SLOT_LISTEN, RULE_DEFAULT_DENY, event_kind, listen_op, task_flags};

use crate::{
    files::arg,
    kernel::read,
    lsm,
    net::{self, AF_INET, AF_INET6, ALLOW, Endpoint, REJECT},
    task::{self, Task},
    verdict::{self, By, kill_current},
};
/// `TCP_LISTEN` in `enum tcp_state` (the tracepoint's `newstate`).
const TCP_LISTEN: i32 = 10;

#[cgroup_sock_addr(bind4)]
pub fn bind4(ctx: SockAddrContext) -> i32 {
    bind(AF_INET, net::v4(&ctx), net::port(&ctx))
}

#[cgroup_sock_addr(bind6)]
pub fn bind6(ctx: SockAddrContext) -> i32 {
    bind(AF_INET6, net::v6(&ctx), net::port(&ctx))
}

/// Whether `task` may bind or listen on `addr`:`port`: the deciding rule, or `None`. A
/// stranger in an enforcer cgroup (no task entry) may not.
#[inline(always)]
fn listen_rule(task: &Task, port: u16, addr: [u8; 16]) -> Option<u32> {
    if task.has(task_flags::NO_TASK) {
        return None;
    }
    net::rule_for(task.entry.rules | NET_SLOT_LISTEN, port, addr)
}

/// Refuses a bind or listen (audit mode: reports one that would have been), counted toward
/// `max_denials`; over it, the limit event ends the task from userspace (a cgroup program may
/// not send signals on every kernel: not on 6.1). Allowed ones are not reported: a refusal is
/// what an auditor needs here, and each report costs every start of the envelope its
/// verification.
#[inline(always)]
fn refused(task: &Task, op: u32, at: Endpoint) -> bool {
    net::refuse(task, event_kind::LISTEN, op, at, RULE_DEFAULT_DENY)
}

#[inline(always)]
fn bind(family: u16, addr: [u8; 16], port: u16) -> i32 {
    if port == 0 {
        return ALLOW;
    }
    let task = task::current_or_stranger();
    if listen_rule(&task, port, addr).is_some() {
        return ALLOW;
    }
    let at = Endpoint { family, addr, port };
    if refused(&task, listen_op::BIND, at) {
        REJECT
    } else {
        ALLOW
    }
}

/// The local address of an inet socket (`struct socket *`), or `None` for another family.
#[inline(always)]
fn local_endpoint(sock: u64) -> Option<Endpoint> {
    let o = crate::kernel::resolved()?;
    let sk: u64 = read(sock, o.socket_sk)?;
    let family: u16 = read(sk, o.sock_family)?;
    let port: u16 = read(sk, o.sock_num)?;
    let addr = match family {
        AF_INET => {
            let ip: [u8; 4] = read(sk, o.sock_rcv_saddr)?;
            [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[0], ip[1], ip[2], ip[3],
            ]
        }
        AF_INET6 => read(sk, o.sock_v6_rcv_saddr)?,
        _ => return None,
    };
    Some(Endpoint { family, addr, port })
}

/// socket_listen(sock, backlog): lsm mode. The port is 0 when the socket was never bound (the
/// kernel picks one now): only a rule for any port allows that.
#[lsm(hook = "socket_listen")]
pub fn lsm_socket_listen(ctx: LsmContext) -> i32 {
    let sock: u64 = ctx.arg(0);
    let task = match lsm::enter(ctx.arg(2)) {
        Ok(task) => task,
        Err(ret) => return ret,
    };
    let Some(at) = local_endpoint(sock) else {
        return 0;
    };
    if listen_rule(&task, at.port, at.addr).is_some() {
        return 0;
    }
    verdict::refuse(
        &task,
        By::Lsm,
        event_kind::LISTEN,
        RULE_DEFAULT_DENY,
        |ev| net::fill(ev, event_kind::LISTEN, listen_op::LISTEN, at),
    );
    lsm::refused_value(&task)
}

/// sock:inet_sock_set_state, fallback mode: a TCP socket of a task entering LISTEN where no
/// rule allows it. The listen has happened; its caller dies before it returns to user mode,
/// and the task ends.
#[tracepoint]
pub fn sock_listen(ctx: TracePointContext) -> u32 {
    let newstate: i32 = arg(&ctx, 20);
    if newstate != TCP_LISTEN {
        return 0;
    }
    let Some(task) = task::current() else {
        return 0;
    };
    let family: u16 = arg(&ctx, 28);
    let port: u16 = arg(&ctx, 24);
    // Whole-word context loads (the verifier refuses byte loads through a moved pointer).
    let addr = if family == AF_INET6 {
        let (hi, lo) = (arg::<u64>(&ctx, 40), arg::<u64>(&ctx, 48));
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&hi.to_ne_bytes());
        a[8..].copy_from_slice(&lo.to_ne_bytes());
        a
    } else {
        let ip = arg::<u32>(&ctx, 32).to_ne_bytes();
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[0], ip[1], ip[2], ip[3],
        ]
    };
    if listen_rule(&task, port, addr).is_some() {
        return 0;
    }
    let at = Endpoint { family, addr, port };
    verdict::refuse(
        &task,
        By::Kill,
        event_kind::LISTEN,
        RULE_DEFAULT_DENY,
        |ev| net::fill(ev, event_kind::LISTEN, listen_op::LISTEN, at),
    );
    0
}

/// sys_exit_accept/accept4, fallback mode: a connection accepted in a task that is being ended
/// (after a listen it was not allowed) kills the caller before it can use it.
#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    let Some(task) = task::current() else {
        return 0;
    };
    let ret: i64 = arg(&ctx, 16);
    if ret >= 0 && !task.has(task_flags::AUDIT) && ended(&task) {
        kill_current();
    }
    0
}

#[inline(always)]
fn ended(task: &Task) -> bool {
    task::ended(task) || task.has(task_flags::NO_TASK)
}
