//! The enforcer's kernel programs. One module per hook family; every map lives in `maps`.
//!
//! Each program first maps the current cgroup to a task (`task::current`). A miss means the
//! process is not ours and the program returns at once: untagged processes pay one hash lookup.
#![no_std]
#![no_main]
// Atomic fetch-add and compare-exchange on map values (see task.rs).
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod events;
mod exec;
mod exit;
mod files;
mod kernel;
mod listen;
mod lsm;
mod lsm_exec;
mod lsm_files;
mod lsm_mounts;
mod lsm_net;
mod lsm_paths;
mod lsm_procs;
mod maps;
mod net;
mod path;
mod procs;
mod task;
mod verdict;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach here; this is never executed.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
