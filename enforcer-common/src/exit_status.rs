//! Values of `EXITS` (key: the pid a daemon task's command runs as; value: its wait status).
//!
//! The daemon writes [`RUNNING`] when it starts a task; the programs write the
//! process's `task_struct.exit_code` as each of its threads exits, so the last one leaves the
//! status its parent would have read from `wait()`.

/// Not exited yet (or exited where the programs could not read the status).
pub const RUNNING: i32 = i32::MIN;

/// How a process ended, decoded from a wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// `exit(code)` or a return from main.
    Exited(u8),
    /// Killed by a signal (with a core dump or not).
    Signaled { signal: u8, core_dumped: bool },
}

/// Decodes a wait status as `WIFEXITED`/`WTERMSIG` do. `None` for [`RUNNING`] and for
/// values no exiting process has (stopped or continued states, stray high bits).
pub const fn decode(status: i32) -> Option<Ended> {
    if status == RUNNING || status < 0 || status > 0xffff {
        return None;
    }
    let signal = (status & 0x7f) as u8;
    match signal {
        0 => Some(Ended::Exited(((status >> 8) & 0xff) as u8)),
        // 0x7f is WIFSTOPPED, not an end.
        0x7f => None,
        _ if status >> 8 != 0 => None,
        _ => Some(Ended::Signaled {
            signal,
            core_dumped: status & 0x80 != 0,
        }),
    }
}
