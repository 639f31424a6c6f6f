//! Identities (device, inode) the kernel compares opened and executed files against, resolved
//! when the envelope starts: the files and directories of deny rules, hard links found inside
//! denied directories, and ELF interpreters run directly.
use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use enforcer_common::{InodeKey, kernel_dev};

use crate::{
    events::record::EXEC_ONLY,
    policy::{Policy, Section, compile::deny_plans, decide::decide_file},
};

/// Most files examined below one denied directory when looking for hard links.
const MAX_SCAN: usize = 20_000;

#[derive(Debug, Default)]
pub struct Identities {
    pub entries: Vec<(InodeKey, u32)>,
    /// Some deny rule names a directory: ancestors are checked too.
    pub has_dirs: bool,
    /// Deny rules that name nothing existing: reported as not enforced by identity.
    pub missing: Vec<String>,
}

fn key(slot: u32, meta: &fs::Metadata) -> InodeKey {
    let dev = meta.dev();
    InodeKey {
        slot,
        _reserved: 0,
        dev: kernel_dev(libc::major(dev), libc::minor(dev)),
        ino: meta.ino(),
    }
}

/// Every identity of the policy's deny rules.
pub fn deny_identities(policy: &Policy, slot: u32) -> Identities {
    let mut out = Identities::default();
    for plan in deny_plans(policy) {
        let path = Path::new(&plan.pattern.path);
        let rule = &policy.rules[plan.rule_id as usize];
        let value = if plan.write_only {
            plan.rule_id | enforcer_common::RULE_WRITE_ONLY
        } else {
            plan.rule_id
        };
        match fs::metadata(path) {
            Ok(meta) => {
                out.entries.push((key(slot, &meta), value));
                if meta.is_dir() {
                    out.has_dirs = true;
                    scan_hard_links(path, slot, value, &mut out.entries);
                }
            }
            // A protected path that does not exist is refused by path in lsm mode; the
            // fallback mode declares it (mode_gaps).
            Err(_) if plan.write_only => {}
            Err(e) => out.missing.push(format!(
                "{} \"{}\": {} when the envelope starts ({e}); a file created there later is \
                 refused only where no allow rule covers it",
                rule.label(),
                rule.text,
                if e.kind() == std::io::ErrorKind::NotFound {
                    "does not exist"
                } else {
                    "cannot be examined"
                },
            )),
        }
    }
    out
}

/// Files below a denied directory with more than one link can be reached from outside it; their
/// identity is added so the link's other names are denied too.
fn scan_hard_links(dir: &Path, slot: u32, rule: u32, entries: &mut Vec<(InodeKey, u32)>) {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for entry in read.flatten() {
            seen += 1;
            if seen > MAX_SCAN {
                return;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && meta.nlink() > 1 {
                entries.push((key(slot, &meta), rule));
            }
        }
    }
}

/// The ELF interpreter (`PT_INTERP`) of a 64-bit little-endian ELF file, if it has one. Reads
/// the header, the program headers and the interpreter's name, not the file.
pub fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt as _;
    let file = fs::File::open(path).ok()?;
    let mut head = [0u8; 64];
    file.read_exact_at(&mut head, 0).ok()?;
    if &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let (phoff, phentsize, phnum) = (
        u64_at(&head, 0x20),
        u16_at(&head, 0x36),
        u16_at(&head, 0x38).min(64),
    );
    if phentsize < 56 {
        return None;
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.read_exact_at(&mut table, phoff).ok()?;
    for ph in table.chunks_exact(phentsize) {
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let (off, size) = (u64_at(ph, 8), u64_at(ph, 32).min(4096) as usize);
            let mut raw = vec![0u8; size];
            file.read_exact_at(&mut raw, off).ok()?;
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            return Some(PathBuf::from(
                String::from_utf8_lossy(&raw[..end]).into_owned(),
            ));
        }
    }
    None
}

/// The interpreter of the enforcer's own binary (the launcher execs the command from it), read
/// once per process.
fn own_interpreter() -> Option<PathBuf> {
    static OWN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| elf_interpreter(Path::new("/proc/self/exe")))
        .clone()
}

/// Interpreters the allowed binaries need: granted Landlock execute (exec needs it), and
/// recorded as exec-only identities so running one directly (`ld.so /forbidden`) kills.
pub fn interpreters(policy: &Policy, command: &Path) -> Vec<String> {
    let mut binaries = vec![command.to_path_buf()];
    binaries.extend(
        policy
            .rules_in(Section::ExecAllow)
            .filter_map(|(_, r)| r.path())
            .filter(|p| !p.dir)
            .map(|p| PathBuf::from(&p.path)),
    );
    let mut out: Vec<String> = binaries
        .iter()
        .filter_map(|b| elf_interpreter(b))
        .chain(own_interpreter())
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Exec-only identities of interpreters that the policy does not allow to be run directly.
pub fn interpreter_identities(
    policy: &Policy,
    interps: &[String],
    slot: u32,
) -> Vec<(InodeKey, u32)> {
    interps
        .iter()
        .filter(|p| !decide_file(policy, p, enforcer_common::access::EXEC).allowed)
        .filter_map(|p| fs::metadata(p).ok())
        .map(|meta| (key(slot, &meta), EXEC_ONLY))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_interpreter_of_this_test_binary() {
        let me = std::env::current_exe().unwrap();
        let interp = elf_interpreter(&me).expect("a dynamically linked test binary");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert_eq!(elf_interpreter(Path::new("/etc/hostname")), None);
    }
}
