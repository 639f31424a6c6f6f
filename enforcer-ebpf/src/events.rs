//! Writing events to the ring buffer; a full ring is counted in `DROPS`, never ignored.
use aya_ebpf::bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
    bpf_probe_read_user_str_bytes,
};
use enforcer_common::Event;

use crate::{
    maps::{DROPS, EVENTS},
    task::Task,
};

#[inline(always)]
fn count_drop() {
    if let Some(drops) = DROPS.get_ptr_mut(0) {
        // SAFETY: per-CPU value; nothing else on this CPU runs concurrently with us.
        unsafe { *drops += 1 };
    }
}

/// Reserves an event, fills the common header, lets `fill` write the rest, and submits it
/// without waking the reader: userspace drains the ring on a short timer, so a burst of events
/// costs no wake-up each (on a VM a wake-up costs microseconds). Kills and limits, which
/// userspace must act on at once, use [`emit_urgent`].
#[inline(always)]
pub fn emit(task: &Task, kind: u32, fill: impl FnOnce(&mut Event)) {
    emit_with(task, kind, BPF_RB_NO_WAKEUP as u64, fill);
}

/// Like [`emit`], but wakes the reader now.
#[inline(always)]
pub fn emit_urgent(task: &Task, kind: u32, fill: impl FnOnce(&mut Event)) {
    emit_with(task, kind, BPF_RB_FORCE_WAKEUP as u64, fill);
}

#[inline(always)]
fn emit_with(task: &Task, kind: u32, wakeup: u64, fill: impl FnOnce(&mut Event)) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        count_drop();
        return;
    };
    let ptr = entry.as_mut_ptr();
    // SAFETY: `ptr` is a reserved, exclusively owned ring-buffer record of size_of::<Event>.
    unsafe {
        core::ptr::write_bytes(ptr, 0, 1);
        let ev = &mut *ptr;
        let id = bpf_get_current_pid_tgid();
        ev.time_ns = bpf_ktime_get_boot_ns();
        ev.cgroup_id = task.cgroup_id;
        ev.kind = kind;
        ev.slot = task.entry.slot;
        ev.generation = task.entry.generation;
        ev.tid = id as u32;
        ev.pid = (id >> 32) as u32;
        if let Ok(comm) = bpf_get_current_comm() {
            ev.comm = comm;
        }
        fill(ev);
    }
    entry.submit(wakeup);
}

/// Copies a user-space path into the event (best effort: a bad pointer leaves it empty).
#[inline(always)]
pub fn read_user_path(ev: &mut Event, ptr: u64) {
    if ptr != 0 {
        // SAFETY: the helper checks the pointer; a fault returns an error.
        let _ = unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, &mut ev.path) };
    }
}
