//! Types shared by the enforcer's eBPF programs and its userspace.
//!
//! Everything here is `#[repr(C)]`, has no `bool` and no implicit padding (explicit `_reserved`
//! fields instead), and carries compile-time size and offset asserts: the kernel programs and the
//! loader must agree on every byte. The maps are laid out so that both enforcement modes (BPF LSM
//! hooks, and the fallback of Landlock plus syscall tracepoints) read the same entries.
//!
//! - [`maps`]: the table of maps, and their keys and values;
//! - [`event`]: the record the programs write to the event ring, and its field values;
//! - [`flags`]: access bits, task flags, limit kinds and reserved rule ids;
//! - [`kernel`]: what userspace hands the programs at load (kernel offsets, the root cgroup,
//!   the LSM hooks);
//! - [`layout`]: the map ABI version and the fingerprint of everything above;
//! - [`exit_status`]: wait statuses the programs record.
#![no_std]

/// Defines a module of constants, plus `ALL`, every value in it, which the layout fingerprint
/// folds: renumbering any of them breaks the build until `MAP_ABI` is bumped.
macro_rules! constants {
    ($(#[$doc:meta])* pub mod $m:ident: $t:ty {
        $($(#[$cdoc:meta])* $name:ident = $value:expr;)*
    }) => {
        $(#[$doc])*
        pub mod $m {
            $($(#[$cdoc])* pub const $name: $t = $value;)*
            /// Every value of this module, for the layout fingerprint.
            pub const ALL: &[u64] = &[$($name as u64),*];
        }
    };
}

pub mod event;
pub mod exit_status;
pub mod flags;
pub mod kernel;
pub mod layout;
pub mod maps;

pub use event::*;
pub use flags::*;
pub use kernel::*;
pub use layout::{LAYOUT, MAP_ABI};
pub use maps::*;

/// Bytes of a path kept in events (including the terminating NUL).
pub const PATH_BYTES: usize = 256;
/// Bytes of a path in a `FILE_RULES` key: LPM-trie keys hold at most 256 data bytes, 4 of
/// which are the slot. Policy paths longer than this minus the NUL are rejected.
pub const KEY_PATH_BYTES: usize = 252;
/// Bytes of a task's `comm`.
pub const COMM_BYTES: usize = 16;
/// How many tasks one set of maps can hold at once (slots in the per-task arrays).
pub const MAX_TASKS: u32 = 1024;
/// Rules across all tasks in one rule map.
pub const MAX_RULES: u32 = 65_536;
/// Flow labels one task can carry (bytes of [`TaskCounters::labels`]).
pub const MAX_LABELS: usize = 32;

/// Converts a `st_dev` as userspace sees it (`new_encode_dev`) to the kernel's internal `dev_t`.
pub const fn kernel_dev(major: u32, minor: u32) -> u64 {
    ((major as u64) << 20) | (minor as u64 & 0xf_ffff)
}

#[cfg(test)]
mod tests {
    use super::exit_status::{Ended, RUNNING, decode};

    #[test]
    fn wait_statuses_decode_as_wait_would() {
        assert_eq!(decode(0), Some(Ended::Exited(0)));
        assert_eq!(decode(3 << 8), Some(Ended::Exited(3)));
        assert_eq!(decode(255 << 8), Some(Ended::Exited(255)));
        assert_eq!(
            decode(9),
            Some(Ended::Signaled {
                signal: 9,
                core_dumped: false
            })
        );
        assert_eq!(
            decode(11 | 0x80),
            Some(Ended::Signaled {
                signal: 11,
                core_dumped: true
            })
        );
    }

    #[test]
    fn what_no_exit_leaves_is_not_an_ending() {
        assert_eq!(decode(RUNNING), None);
        assert_eq!(decode(-1), None);
        // WIFSTOPPED (0x7f) and WIFCONTINUED (0xffff) are not ends.
        assert_eq!(decode((19 << 8) | 0x7f), None);
        assert_eq!(decode(0xffff), None);
        assert_eq!(decode(0x1_0000), None);
    }
}
