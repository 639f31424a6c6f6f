//! connect(2) and UDP sendmsg(2) of a task: cgroup sock_addr programs attached to the task's
//! cgroup decide synchronously (EPERM) from `NET_RULES`. IPv4 is looked up IPv4-mapped, so
//! IPv4, IPv6 and `::ffff:a.b.c.d` destinations hit the same rules.
use aya_ebpf::{macros::cgroup_sock_addr, maps::lpm_trie::Key, programs::SockAddrContext};
use enforcer_common::{
    Event, NET_KEY_FIXED_BITS, NetKey, RULE_DEFAULT_DENY, RULE_TASK_ENDED, access, decision,
    enforced_by, event_kind,
};

use crate::{
    events,
    maps::NET_RULES,
    task::{self, Counter, Task},
    verdict::{self, By, Gate},
};

pub const ALLOW: i32 = 1;
pub const REJECT: i32 = 0;
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    check(event_kind::CONNECT, AF_INET, v4(&ctx), port(&ctx))
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    check(event_kind::SENDMSG, AF_INET, v4(&ctx), port(&ctx))
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    check(event_kind::CONNECT, AF_INET6, v6(&ctx), port(&ctx))
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    check(event_kind::SENDMSG, AF_INET6, v6(&ctx), port(&ctx))
}

#[inline(always)]
pub fn port(ctx: &SockAddrContext) -> u16 {
    // SAFETY: the kernel hands a valid bpf_sock_addr; user_port holds the port in network
    // order in its low 16 bits.
    let raw = unsafe { (*ctx.sock_addr).user_port };
    u16::from_be(raw as u16)
}

#[inline(always)]
pub fn v4(ctx: &SockAddrContext) -> [u8; 16] {
    // SAFETY: as above; user_ip4 is in network order, so its in-memory bytes are the address.
    let ip = unsafe { (*ctx.sock_addr).user_ip4 }.to_ne_bytes();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ip[0], ip[1], ip[2], ip[3],
    ]
}

#[inline(always)]
pub fn v6(ctx: &SockAddrContext) -> [u8; 16] {
    let mut out = [0u8; 16];
    // SAFETY: as above; the verifier wants 4-byte loads of user_ip6.
    let words = unsafe {
        [
            (*ctx.sock_addr).user_ip6[0],
            (*ctx.sock_addr).user_ip6[1],
            (*ctx.sock_addr).user_ip6[2],
            (*ctx.sock_addr).user_ip6[3],
        ]
    };
    let mut i = 0;
    while i < 4 {
        let b = words[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

#[inline(always)]
pub fn rule_for(slot: u32, port: u16, addr: [u8; 16]) -> Option<u32> {
    let exact = Key::new(
        NET_KEY_FIXED_BITS + 128,
        NetKey {
            slot: slot.to_be_bytes(),
            port: port.to_be_bytes(),
            addr,
        },
    );
    if let Some(rule) = NET_RULES.get(&exact) {
        return Some(rule.rule_id);
    }
    let any_port = Key::new(
        NET_KEY_FIXED_BITS + 128,
        NetKey {
            slot: slot.to_be_bytes(),
            port: [0, 0],
            addr,
        },
    );
    NET_RULES.get(&any_port).map(|rule| rule.rule_id)
}

/// Reports an allowed connect.
#[inline(always)]
fn report_allowed(task: &Task, kind: u32, at: Endpoint, rule: u32) {
    events::emit(task, kind, |ev| {
        ev.decision = decision::ALLOW;
        ev.enforced_by = enforced_by::NONE;
        ev.rule_id = rule;
        fill(ev, kind, 0, at);
    });
}

/// The network part of an event (`op`: [`enforcer_common::listen_op`] for a `LISTEN`).
#[inline(always)]
pub fn fill(ev: &mut Event, kind: u32, op: u32, at: Endpoint) {
    ev.family = at.family;
    ev.port = at.port;
    ev.addr = at.addr;
    ev.op = op;
    ev.flags = if kind == event_kind::LISTEN {
        access::LISTEN
    } else {
        access::CONNECT
    };
}

/// An address and port (IPv4 mapped) of one family.
#[derive(Clone, Copy)]
pub struct Endpoint {
    pub family: u16,
    pub addr: [u8; 16],
    pub port: u16,
}

/// The deciding rule for one connect or datagram of `task`, past the gate: `Ok` allows,
/// `Err` refuses. Connects are counted here; the refusal itself is the verdict path's.
#[inline(always)]
fn decide(task: &Task, kind: u32, port: u16, addr: [u8; 16]) -> Result<u32, u32> {
    if kind == event_kind::CONNECT
        && verdict::over_limit(task, By::Cgroup, task::count(task, Counter::Connects))
    {
        return Err(RULE_TASK_ENDED);
    }
    rule_for(task.entry.rules, port, addr).ok_or(RULE_DEFAULT_DENY)
}

#[inline(always)]
fn check(kind: u32, family: u16, addr: [u8; 16], port: u16) -> i32 {
    // These programs are attached only to enforcer cgroups: a process there without a task
    // entry is a stranger, refused by the gate (fail closed).
    let task = task::current_or_stranger();
    let verdict = match verdict::gate(&task, By::Cgroup) {
        Gate::Check => decide(&task, kind, port, addr),
        Gate::Refuse(rule) => Err(rule),
        Gate::Ignore => return ALLOW,
    };
    let at = Endpoint { family, addr, port };
    match verdict {
        // Allowed UDP sends are not reported (one per datagram); allowed connects are.
        Ok(rule) => {
            if kind == event_kind::CONNECT {
                report_allowed(&task, kind, at, rule);
            }
            ALLOW
        }
        Err(rule) if refuse(&task, kind, 0, at, rule) => REJECT,
        Err(_) => ALLOW,
    }
}

/// Refuses a connect, datagram, bind or listen to `at` by `rule` (audit mode: reports what
/// would have been refused). Returns whether it is refused.
#[inline(always)]
pub fn refuse(task: &Task, kind: u32, op: u32, at: Endpoint, rule: u32) -> bool {
    verdict::refuse(task, By::Cgroup, kind, rule, |ev| fill(ev, kind, op, at))
}
