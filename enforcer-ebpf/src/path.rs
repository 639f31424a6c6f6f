//! The path an LSM hook checks, and its rule.
//!
//! - `bpf_d_path` on a `struct path` the hook was given (file_open, mmap_file, bprm_check): the
//!   kernel's own d_path, after symlinks, `..`, relative names and directory fds are resolved.
//! - [`walk`], for the hooks where the kernel does not allow `bpf_d_path` (the path_* hooks on
//!   6.1, file_mprotect everywhere): up the dentry tree to the root of the mount namespace,
//!   crossing mount points through `struct mount`, one component per `bpf_loop` step (the
//!   verifier checks the step once instead of an unrolled loop).
//!
//! The path ends up NUL-terminated at the start of [`Scratch::path`]; [`lookup`] matches it
//! against the task's `FILE_RULES`, most specific prefix first.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_d_path, bpf_loop, bpf_probe_read_kernel_buf},
    macros::map,
    maps::{PerCpuArray, lpm_trie::Key},
};
use enforcer_common::{
    KEY_PATH_BYTES, KernelOffsets, PATH_BYTES, PATH_KEY_FIXED_BITS, PathKey, RULE_DEFAULT_DENY,
};

use crate::{
    kernel::{self, read},
    maps::FILE_RULES,
};

/// Bytes of a path the programs can resolve (the kernel's PATH_MAX).
pub const PATH_MAX: usize = 4096;
const MASK: usize = PATH_MAX - 1;
/// Room after `PATH_MAX` so that writes at a masked offset plus a bounded length stay inside.
const AREA: usize = PATH_MAX + 512;
/// Components walked up from a dentry before giving up (the path is then refused): PATH_MAX
/// holds at most 2,048 of them ("/a" each).
const MAX_COMPONENTS: u32 = (PATH_MAX / 2) as u32;
/// Longest name of one component (the kernel's NAME_MAX).
const NAME_MAX: u32 = 255;

const S_IFMT: u16 = 0o170000;
const S_IFDIR: u16 = 0o040000;

#[repr(C)]
pub struct Scratch {
    pub key: Key<PathKey>,
    _pad: [u8; 4],
    /// The resolved path, NUL-terminated, at the start.
    pub path: [u8; AREA],
    /// Where [`walk`] builds a path backwards, ending at `PATH_MAX - 1`. Twice PATH_MAX, so
    /// that any masked offset plus any masked length stays inside.
    walk: [u8; 2 * PATH_MAX],
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

/// A walk in progress: the caller's stack, handed to each [`walk_step`].
#[repr(C)]
struct Walk {
    dentry: u64,
    /// The `struct vfsmount` the dentry is on, and the `struct mount` around it.
    vfsmount: u64,
    mount: u64,
    /// Start of the path built so far in `Scratch::walk`.
    pos: u64,
    state: u64,
}

const WALKING: u64 = 0;
const DONE: u64 = 1;
const FAILED: u64 = 2;

/// Fills `sc.path` with the path of `dentry` on mount `vfsmount`, walking up to the root of the
/// mount namespace. Returns the length including the NUL, or `None` when the path cannot be
/// resolved (too deep, too long, a dentry cut off from its mount): the caller refuses it.
#[inline(always)]
pub fn walk(sc: &mut Scratch, o: &KernelOffsets, dentry: u64, vfsmount: u64) -> Option<usize> {
    let mount = vfsmount.checked_sub(u64::from(o.mount_mnt))?;
    let end = PATH_MAX - 1;
    sc.walk[end] = 0;
    let mut w = Walk {
        dentry,
        vfsmount,
        mount,
        pos: end as u64,
        state: WALKING,
    };
    // SAFETY: `walk_step` is a BPF subprogram taking (index, ctx); `w` outlives the call.
    unsafe {
        bpf_loop(
            MAX_COMPONENTS,
            walk_step as *mut c_void,
            core::ptr::addr_of_mut!(w) as *mut c_void,
            0,
        )
    };
    if w.state != DONE {
        return None;
    }
    let mut pos = w.pos as usize & MASK;
    if pos == end {
        // The root itself.
        pos -= 1;
        sc.walk[pos] = b'/';
    }
    let len = (PATH_MAX - pos) & MASK;
    if len == 0 {
        return None;
    }
    // SAFETY: `pos + len` <= 2 * PATH_MAX and `len` <= AREA (both masked).
    let src = unsafe { sc.walk.as_ptr().add(pos) };
    let dst = unsafe { core::slice::from_raw_parts_mut(sc.path.as_mut_ptr(), len) };
    unsafe { bpf_probe_read_kernel_buf(src, dst) }.ok()?;
    Some(len)
}

/// One step of [`walk`]: prepends the current component, or crosses to the parent mount.
/// Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn walk_step(_index: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` that `walk` handed to bpf_loop.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    match step(w) {
        Some(false) => 0,
        Some(true) => {
            w.state = DONE;
            1
        }
        None => {
            w.state = FAILED;
            1
        }
    }
}

/// `Some(true)` at the root, `Some(false)` to go on, `None` on failure.
#[inline(always)]
fn step(w: &mut Walk) -> Option<bool> {
    let o = kernel::resolved()?;
    let sc = scratch()?;
    let root: u64 = read(w.vfsmount, o.vfsmount_root)?;
    if w.dentry == root {
        let parent: u64 = read(w.mount, o.mount_parent)?;
        if parent == w.mount || parent == 0 {
            return Some(true);
        }
        w.dentry = read(w.mount, o.mount_mountpoint)?;
        w.mount = parent;
        w.vfsmount = parent + u64::from(o.mount_mnt);
        return Some(false);
    }
    let parent: u64 = read(w.dentry, o.dentry_parent)?;
    if parent == w.dentry || parent == 0 {
        // The top of a file system that is not its mount's root: a dentry cut off from the
        // tree (a lazily unmounted or deleted directory). Refused.
        return None;
    }
    // struct qstr: { u32 hash; u32 len; } then `const unsigned char *name`.
    let len: u32 = read(w.dentry, o.dentry_name + 4)?;
    let name: u64 = read(w.dentry, o.dentry_name + 8)?;
    if len == 0 || len > NAME_MAX {
        return None;
    }
    let len = len as usize;
    let pos = w.pos as usize;
    if pos < len + 2 {
        return None;
    }
    let at = (pos - len) & MASK;
    // The verifier loses the bounds of `len` in the subtraction above; an opaque masked copy
    // (LLVM would drop a plain mask, knowing `len <= NAME_MAX`) gives the helper a bounded size.
    let n = core::hint::black_box(len) & NAME_MAX as usize;
    // SAFETY: `at + n` <= PATH_MAX + NAME_MAX < 2 * PATH_MAX; the helper checks `name`.
    let dst = unsafe { core::slice::from_raw_parts_mut(sc.walk.as_mut_ptr().add(at), n) };
    unsafe { bpf_probe_read_kernel_buf(name as *const u8, dst) }.ok()?;
    let slash = (pos - len - 1) & MASK;
    sc.walk[slash] = b'/';
    w.pos = slash as u64;
    w.dentry = parent;
    Some(false)
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
    // An opaque copy: LLVM would otherwise drop the masks (it knows `len < PATH_MAX`), and
    // the 6.1 verifier does not carry the bound of a spilled `len` over to its reload.
    let at = core::hint::black_box(len);
    sc.path[(at - 1) & MASK] = b'/';
    sc.path[at & MASK] = 0;
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
