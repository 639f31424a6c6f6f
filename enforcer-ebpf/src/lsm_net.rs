//! lsm mode, unix-domain sockets: a connect to a socket path needs a `network.unix` rule.
//! Internet connects are the cgroup programs' (net.rs). Abstract sockets have no path: where
//! Landlock can scope them (ABI 6), the launcher does.
use aya_ebpf::{helpers::bpf_probe_read_kernel_str_bytes, macros::lsm, programs::LsmContext};
use enforcer_common::{access, event_kind};

use crate::{
    kernel::read,
    lsm::{self, Check},
    path,
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
    if read::<u16>(address, 0) != Some(AF_UNIX) || addrlen <= 2 {
        return 0;
    }
    let Some(sc) = path::scratch() else {
        return 0;
    };
    // The address was copied into the kernel by connect(2).
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
        op: 0,
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
    lsm::decide(&task, sc, len, &check, None)
}
