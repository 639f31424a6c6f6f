//! The file decision, in userspace: the same most-specific-rule-wins semantics as the kernel
//! maps, with the deciding rule named. Used to attribute events, and to evaluate what an
//! audit-mode task did.
use enforcer_common::access;

use super::{Policy, Section, values::PathPattern};

/// The outcome for one access to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileDecision {
    pub allowed: bool,
    /// The deciding rule's id; `None` when nothing matched (the envelope's default deny).
    pub rule: Option<u32>,
}

/// Access bits in force for `path`, per bit the rule that granted it, and the deny rule that
/// last cleared them. Rules are applied from least to most specific; at equal specificity a
/// deny comes last, so it wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effective {
    pub granted_by: [Option<u32>; 5],
    pub denied_by: Option<u32>,
}

const BITS: [u32; 5] = [
    access::READ,
    access::WRITE,
    access::EXEC,
    access::CONNECT,
    access::MAP_EXEC,
];

impl Effective {
    pub fn allow_bits(&self) -> u32 {
        BITS.iter()
            .zip(self.granted_by)
            .filter(|(_, by)| by.is_some())
            .fold(0, |acc, (bit, _)| acc | bit)
    }
}

/// The file rules of `policy` that cover `matches`, ordered as they apply.
fn applicable(
    policy: &Policy,
    matches: impl Fn(&PathPattern) -> bool,
) -> Vec<(u32, Section, &PathPattern)> {
    let mut rules: Vec<_> = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.section != Section::NetworkConnect)
        .filter_map(|(id, r)| r.path().map(|p| (id as u32, r.section, p)))
        .filter(|(_, _, p)| matches(p))
        .collect();
    // At equal specificity a deny or a protect applies last, so it wins.
    let narrows = |s: &Section| matches!(s, Section::FilesDeny | Section::FilesProtect);
    rules.sort_by_key(|(id, section, p)| (p.specificity(), narrows(section), *id));
    rules
}

fn fold(rules: &[(u32, Section, &PathPattern)]) -> Effective {
    let mut eff = Effective::default();
    for (id, section, _) in rules {
        if *section == Section::FilesDeny {
            eff.granted_by = [None; 5];
            eff.denied_by = Some(*id);
            continue;
        }
        if *section == Section::FilesProtect {
            // Read-only from here down: the write grant (and only it) is withdrawn.
            let write = BITS.iter().position(|b| *b == access::WRITE).unwrap_or(1);
            eff.granted_by[write] = None;
            eff.denied_by = Some(*id);
            continue;
        }
        for (slot, bit) in eff.granted_by.iter_mut().zip(BITS) {
            if section.access() & bit != 0 {
                *slot = Some(*id);
            }
        }
    }
    eff
}

/// What is in force at `path` (an absolute, normalized path).
pub fn effective_for_path(policy: &Policy, path: &str) -> Effective {
    fold(&applicable(policy, |p| p.covers(path)))
}

/// What is in force at the prefix a rule names (for the kernel's LPM entries): every rule
/// that is the same pattern or an ancestor directory of it.
pub fn effective_for_pattern(policy: &Policy, pattern: &PathPattern) -> Effective {
    fold(&applicable(policy, |p| {
        p == pattern || (p.dir && pattern.path.starts_with(&p.path))
    }))
}

/// Decides `access` (one or more [`access`] bits) on `path`.
pub fn decide_file(policy: &Policy, path: &str, wanted: u32) -> FileDecision {
    let eff = effective_for_path(policy, path);
    let mut first_grant = None;
    for (bit, by) in BITS.iter().zip(eff.granted_by) {
        if wanted & bit == 0 {
            continue;
        }
        match by {
            Some(id) => first_grant = first_grant.or(Some(id)),
            None => {
                return FileDecision {
                    allowed: false,
                    rule: eff.denied_by,
                };
            }
        }
    }
    FileDecision {
        allowed: true,
        rule: first_grant,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{Vars, parse};

    fn policy(files: &str) -> Policy {
        let text = format!("[policy]\nname = \"t\"\nversion = 1\n{files}");
        parse(Path::new("t.toml"), &text, &Vars::new()).unwrap()
    }

    #[test]
    fn most_specific_rule_wins_and_is_named() {
        let p = policy(
            r#"[exec]
allow = ["/usr/bin/git"]
[files]
read = ["/srv/repo/", "/usr/"]
write = ["/srv/repo/out/"]
deny = ["/srv/repo/.env", "/srv/repo/secrets/"]
"#,
        );
        let d = |path, a| decide_file(&p, path, a);
        assert_eq!(
            d("/srv/repo/a.rs", access::READ),
            FileDecision {
                allowed: true,
                rule: Some(1)
            }
        );
        assert_eq!(
            d("/srv/repo/a.rs", access::WRITE),
            FileDecision {
                allowed: false,
                rule: None
            }
        );
        assert_eq!(
            d("/srv/repo/out/x", access::WRITE),
            FileDecision {
                allowed: true,
                rule: Some(3)
            }
        );
        // Read is inherited from the enclosing read rule.
        assert_eq!(
            d("/srv/repo/out/x", access::READ),
            FileDecision {
                allowed: true,
                rule: Some(1)
            }
        );
        assert_eq!(
            d("/srv/repo/.env", access::READ),
            FileDecision {
                allowed: false,
                rule: Some(4)
            }
        );
        assert_eq!(
            d("/srv/repo/secrets/k", access::READ),
            FileDecision {
                allowed: false,
                rule: Some(5)
            }
        );
        assert_eq!(
            d("/srv/repo/secrets", access::READ),
            FileDecision {
                allowed: false,
                rule: Some(5)
            }
        );
        assert_eq!(
            d("/srv/repository/x", access::READ),
            FileDecision {
                allowed: false,
                rule: None
            }
        );
        assert_eq!(
            d("/usr/bin/git", access::EXEC),
            FileDecision {
                allowed: true,
                rule: Some(0)
            }
        );
        assert_eq!(
            d("/usr/bin/ls", access::EXEC),
            FileDecision {
                allowed: false,
                rule: None
            }
        );
        assert!(!d("/srv/repo/a.rs", access::READ | access::WRITE).allowed);
    }

    #[test]
    fn deny_at_the_same_path_beats_allow() {
        let p = policy("[files]\nread = [\"/a/\"]\ndeny = [\"/a/\"]\n");
        assert_eq!(
            decide_file(&p, "/a/x", access::READ),
            FileDecision {
                allowed: false,
                rule: Some(1)
            }
        );
    }

    #[test]
    fn a_more_specific_allow_reopens_a_denied_tree_for_its_bits_only() {
        let p = policy("[files]\nread = [\"/d/pub/\"]\ndeny = [\"/d/\"]\n");
        assert!(decide_file(&p, "/d/pub/x", access::READ).allowed);
        assert_eq!(
            decide_file(&p, "/d/pub/x", access::WRITE),
            FileDecision {
                allowed: false,
                rule: Some(1)
            }
        );
        assert!(!decide_file(&p, "/d/x", access::READ).allowed);
    }
}
