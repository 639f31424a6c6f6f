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

/// Places inside a workspace whose contents a person or a tool runs later, with full rights
/// and outside any envelope: git hooks and config (`core.hooksPath`, `core.fsmonitor`), editor
/// tasks, direnv files, CI workflows, agents' own settings and hooks.
pub const RUN_LATER: &[&str] = &[
    ".git/hooks/",
    ".git/config",
    ".vscode/",
    ".idea/",
    ".envrc",
    ".github/workflows/",
    ".claude/",
    ".cursor/",
    ".bashrc",
    ".profile",
    ".zshrc",
];

/// `(writable tree, place)` for each place of [`RUN_LATER`] that exists (per `exists`) inside
/// a tree the policy lets the task write, with no protect or deny rule over it.
pub fn run_later_unprotected(
    policy: &super::Policy,
    exists: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    use super::{Section, decide::decide_file};
    let mut out = Vec::new();
    for (_, rule) in policy.rules_in(Section::FilesWrite) {
        let Some(tree) = rule.path().filter(|p| p.dir) else {
            continue;
        };
        for place in RUN_LATER {
            let path = format!("{}{place}", tree.path);
            let probe = path.trim_end_matches('/');
            if exists(probe) && decide_file(policy, probe, enforcer_common::access::WRITE).allowed {
                out.push((tree.path.clone(), path));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::values::parse_path;

    fn p(s: &str) -> PathPattern {
        parse_path(s).unwrap()
    }

    #[test]
    fn writable_trees_with_unprotected_run_later_places_are_found() {
        use crate::policy::{Vars, parse};
        let text = |protect: &str| {
            format!(
                "[policy]\nname = \"t\"\nversion = 1\n[files]\nread = [\"/w/\"]\n\
                 write = [\"/w/\"]\n{protect}\n"
            )
        };
        let exists = |p: &str| p == "/w/.git/hooks" || p == "/w/.git/config";
        let open = parse(std::path::Path::new("t.toml"), &text(""), &Vars::new()).unwrap();
        let found = run_later_unprotected(&open, exists);
        assert_eq!(found.len(), 2, "{found:?}");
        let closed = parse(
            std::path::Path::new("t.toml"),
            &text("protect = [\"/w/.git/hooks/\", \"/w/.git/config\"]"),
            &Vars::new(),
        )
        .unwrap();
        assert!(run_later_unprotected(&closed, exists).is_empty());
        // Protected paths stay readable and are no longer writable.
        use crate::policy::decide::decide_file;
        use enforcer_common::access;
        assert!(decide_file(&closed, "/w/.git/config", access::READ).allowed);
        assert!(!decide_file(&closed, "/w/.git/config", access::WRITE).allowed);
        assert!(!decide_file(&closed, "/w/.git/hooks/pre-commit", access::WRITE).allowed);
        assert!(decide_file(&closed, "/w/src/main.rs", access::WRITE).allowed);
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
