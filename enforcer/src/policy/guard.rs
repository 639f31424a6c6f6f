//! What no rule may grant, whatever the policy says: pure checks over parsed rules.
//!
//! - A `${var}` that expands to `/` or to a system tree (`--var workspace=/`, or an empty value
//!   from a wrapper script's unset variable) would turn a rule meant for one workspace into a
//!   grant of the whole system.
//! - A write rule over the cgroup, bpf or enforcer trees would let a task move itself out of
//!   its cgroup (out of the envelope), touch the pinned programs and maps, or rewrite the
//!   enforcer's own state and events.
use super::values::PathPattern;

/// Trees a `${var}` must never expand to (the directory itself, not what is below it).
pub const SYSTEM_TREES: &[&str] = &[
    "/", "/bin/", "/boot/", "/dev/", "/etc/", "/home/", "/lib/", "/lib32/", "/lib64/", "/media/",
    "/mnt/", "/opt/", "/proc/", "/root/", "/run/", "/sbin/", "/srv/", "/sys/", "/tmp/", "/usr/",
    "/var/",
];

/// Trees no write rule of an enforcing policy may cover or reach into.
pub const PROTECTED_TREES: &[&str] = &[
    "/sys/fs/cgroup/",
    "/sys/fs/bpf/",
    "/run/enforcer/",
    "/etc/enforcer/",
    "/var/lib/enforcer/",
    "/var/log/enforcer/",
];

/// The system tree `pattern` is, if it is one (`/usr` and `/usr/` alike).
pub fn system_tree(pattern: &PathPattern) -> Option<&'static str> {
    let path = pattern.path.trim_end_matches('/');
    SYSTEM_TREES
        .iter()
        .copied()
        .find(|tree| tree.trim_end_matches('/') == path)
}

/// The protected tree a write rule overlaps: one that covers it, or one it reaches into.
pub fn protected_overlap(pattern: &PathPattern) -> Option<&'static str> {
    PROTECTED_TREES.iter().copied().find(|tree| {
        let tree_path = tree.trim_end_matches('/');
        pattern.covers(tree_path) || pattern.path.starts_with(tree) || pattern.path == tree_path
    })
}

/// Whether an exec rule names an ELF interpreter (the dynamic loader) itself: allowing it
/// would let the task run any readable file as `ld.so FILE`, which in fallback mode equals
/// allowing every program. The loader is allowed implicitly as the loader of allowed programs.
pub fn is_elf_interpreter(pattern: &PathPattern) -> bool {
    if pattern.dir {
        return false;
    }
    let name = pattern.path.rsplit('/').next().unwrap_or("");
    name == "ld.so"
        || name.starts_with("ld-linux")
        || name.starts_with("ld-musl-")
        || (name.starts_with("ld-") && name.contains(".so"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::values::parse_path;

    fn p(s: &str) -> PathPattern {
        parse_path(s).unwrap()
    }

    #[test]
    fn elf_interpreters_are_recognised() {
        for s in [
            "/lib64/ld-linux-x86-64.so.2",
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            "/lib/ld-linux-aarch64.so.1",
            "/lib/ld-musl-x86_64.so.1",
            "/usr/lib/ld-2.36.so",
        ] {
            assert!(is_elf_interpreter(&p(s)), "{s}");
        }
        for s in [
            "/usr/bin/ld",
            "/usr/bin/ldd",
            "/lib64/",
            "/usr/lib/libld.so",
            "/usr/bin/git",
        ] {
            assert!(!is_elf_interpreter(&p(s)), "{s}");
        }
    }

    #[test]
    fn system_trees_are_found_with_or_without_the_slash() {
        for s in ["/", "/usr/", "/usr", "/home/", "/etc", "/tmp/"] {
            assert!(system_tree(&p(s)).is_some(), "{s}");
        }
        for s in [
            "/srv/repo/",
            "/home/alice/",
            "/usr/lib/",
            "/tmp/work/",
            "/etc/ssl/",
        ] {
            assert_eq!(system_tree(&p(s)), None, "{s}");
        }
    }

    #[test]
    fn writes_over_protected_trees_are_found_from_above_and_below() {
        for s in [
            "/",
            "/sys/",
            "/sys/fs/",
            "/sys/fs/cgroup/",
            "/sys/fs/cgroup/cgroup.procs",
            "/sys/fs/cgroup/enforcer/",
            "/sys/fs/bpf/enforcer/",
            "/run/",
            "/run/enforcer/enforcer.sock",
            "/etc/",
            "/var/log/enforcer/events.jsonl",
            "/var/log/",
            "/var/lib/",
        ] {
            assert!(protected_overlap(&p(s)).is_some(), "{s}");
        }
        for s in [
            "/srv/repo/",
            "/tmp/",
            "/dev/null",
            "/sys/kernel/",
            "/run/user/1000/",
            "/var/log/apt/",
            "/etc/enforcerx/",
        ] {
            assert_eq!(protected_overlap(&p(s)), None, "{s}");
        }
    }
}
