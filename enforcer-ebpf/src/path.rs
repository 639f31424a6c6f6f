//! The path an LSM hook checks, and its rule.
//!
//! `bpf_d_path` on a `struct path` the hook was given (file_open, mmap_file, bprm_check): the
//! kernel's own d_path, after symlinks, `..`, relative names and directory fds are resolved.
//!
//! The path ends up NUL-terminated at the start of [`Scratch::path`]; [`lookup`] matches it
//! against the task's `FILE_RULES`, most specific prefix first.
use aya_ebpf::{
    helpers::{bpf_d_path, bpf_probe_read_kernel_buf},
    macros::map,
    maps::{PerCpuArray, lpm_trie::Key},
};
use enforcer_common::{
    KEY_PATH_BYTES, KernelOffsets, PATH_BYTES, PATH_KEY_FIXED_BITS, PathKey, RULE_DEFAULT_DENY,
};

use crate::{kernel::read, maps::FILE_RULES};

/// Bytes of a path the programs can resolve (the kernel's PATH_MAX).
pub const PATH_MAX: usize = 4096;
const MASK: usize = PATH_MAX - 1;
/// Room after `PATH_MAX` so that writes at a masked offset plus a bounded length stay inside.
const AREA: usize = PATH_MAX + 512;

const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;

#[repr(C)]
pub struct Scratch {
    pub key: Key<PathKey>,
    _pad: [u8; 4],
    /// The resolved path, NUL-terminated, at the start.
    pub path: [u8; AREA],
}

/// One per CPU. LSM programs run with migration disabled, so a program keeps its CPU; on a
/// kernel with full preemption (`preempt=full`) another task's hook could still run on that CPU
/// between two steps of ours and overwrite the area. Distribution kernels default to voluntary
/// preemption, under which a BPF program is never preempted (README, known limits).
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The scratch area of this CPU.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: a per-CPU map value, used by one program at a time on this CPU (see above).
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// Fills `sc.path` with the path of `path` (a trusted `struct path *` the hook was given, or
/// `&file->f_path`) using the kernel's d_path. Returns the length including the NUL.
#[inline(always)]
pub fn d_path(sc: &mut Scratch, path: u64) -> Option<usize> {
    // SAFETY: the verifier checks that `path` is a `struct path` pointer it trusts; the
    // buffer is a map value of at least PATH_MAX bytes.
    let n = unsafe {
        bpf_d_path(
            path as *mut _,
            sc.path.as_mut_ptr() as *mut _,
            PATH_MAX as u32,
        )
    };
    (n > 0).then_some(n as usize)
}

/// Marks the path in `sc` as a directory (a trailing `/`, so `dir/` rules match the directory
/// itself). Returns the new length.
#[inline(always)]
pub fn mark_dir(sc: &mut Scratch, len: usize) -> usize {
    // `len` counts the NUL; "/" (len 2) already ends in a slash.
    // Two plain compares: the verifier tracks their bounds (a range check compiles to a
    // subtraction it cannot follow).
    #[allow(clippy::manual_range_contains)]
    if len < 3 || len >= PATH_MAX {
        return len;
    }
    sc.path[(len - 1) & MASK] = b'/';
    sc.path[len & MASK] = 0;
    len + 1
}

/// Whether the inode behind `dentry` is a directory.
#[inline(always)]
pub fn is_dir(o: &KernelOffsets, dentry: u64) -> bool {
    let Some(inode) = read::<u64>(dentry, o.dentry_inode) else {
        return false;
    };
    matches!(read::<u16>(inode, o.inode_mode), Some(m) if m & S_IFMT == S_IFDIR)
}

/// The access in force for the path in `sc` and the rule that set it.
pub struct Verdict {
    pub allow: u32,
    pub rule_id: u32,
}

/// Looks the path in `sc` (of `len` bytes with its NUL) up in the task's rules. A path longer
/// than a key is matched by its first bytes, which is exact for directory rules (every rule is
/// shorter than a key).
#[inline(always)]
pub fn lookup(sc: &mut Scratch, slot: u32, len: usize) -> Verdict {
    let n = if len > KEY_PATH_BYTES {
        KEY_PATH_BYTES
    } else {
        len
    };
    sc.key.prefix_len = PATH_KEY_FIXED_BITS + 8 * n as u32;
    // SAFETY: `key` is a packed struct inside the map value; plain byte copies.
    unsafe {
        let key = core::ptr::addr_of_mut!(sc.key.data);
        (*key).slot = slot.to_be_bytes();
        let dst = core::slice::from_raw_parts_mut((*key).path.as_mut_ptr(), KEY_PATH_BYTES);
        let _ = bpf_probe_read_kernel_buf(sc.path.as_ptr(), dst);
    }
    match FILE_RULES.get(&sc.key) {
        Some(rule) => Verdict {
            allow: rule.allow,
            rule_id: rule.rule_id,
        },
        None => Verdict {
            allow: 0,
            rule_id: RULE_DEFAULT_DENY,
        },
    }
}

/// Copies the checked path into an event.
#[inline(always)]
pub fn copy_to_event(sc: &Scratch, out: &mut [u8; PATH_BYTES]) {
    // SAFETY: both are at least PATH_BYTES long.
    let _ = unsafe { bpf_probe_read_kernel_buf(sc.path.as_ptr(), out) };
    out[PATH_BYTES - 1] = 0;
}

/// A `u64` field of a BTF-typed kernel pointer, loaded directly so the verifier keeps track of
/// its type (needed for a pointer later passed to `bpf_d_path`).
#[inline(always)]
pub fn load_btf_ptr(base: u64, offset: u32) -> u64 {
    // SAFETY: the verifier checks the access against the kernel's BTF; the load is guarded.
    unsafe { core::ptr::read_volatile((base + u64::from(offset)) as *const u64) }
}
