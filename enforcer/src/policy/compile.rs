//! [`Policy`] -> the exact entries of the kernel maps for one task slot, the Landlock grants
//! of the fallback mode, and the deny rules that need an identity check. Pure.
use std::{collections::BTreeMap, net::IpAddr};

use enforcer_common::{
    NET_KEY_FIXED_BITS, NET_SLOT_LISTEN, NetKey, NetRule, PATH_KEY_FIXED_BITS, PathKey, PathRule,
    access,
};

use super::{
    Host, Policy, Section, Target,
    decide::effective_for_pattern,
    values::{PathPattern, mapped, mapped_prefix},
};

/// One `FILE_RULES` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub pattern: PathPattern,
    pub prefix_bits: u32,
    pub value: PathRule,
}

impl FileEntry {
    pub fn key(&self, slot: u32) -> PathKey {
        PathKey::new(slot, &self.pattern.key_bytes())
    }
}

/// One `NET_RULES` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEntry {
    pub addr: [u8; 16],
    /// Prefix of the IPv6(-mapped) address, 0..=128.
    pub addr_prefix: u8,
    /// 0 = any port.
    pub port: u16,
    pub rule_id: u32,
    /// A `network.listen` entry (a local address), keyed under the slot's listen bit.
    pub listen: bool,
}

impl NetEntry {
    pub fn prefix_bits(&self) -> u32 {
        NET_KEY_FIXED_BITS + u32::from(self.addr_prefix)
    }

    pub fn key(&self, slot: u32) -> NetKey {
        let slot = if self.listen {
            slot | NET_SLOT_LISTEN
        } else {
            slot
        };
        NetKey {
            slot: slot.to_be_bytes(),
            port: self.port.to_be_bytes(),
            addr: self.addr,
        }
    }

    pub fn value(&self) -> NetRule {
        NetRule {
            rule_id: self.rule_id,
            ..NetRule::default()
        }
    }
}

/// Every `FILE_RULES` entry: one per distinct path pattern, carrying the access in force there
/// (merged with its ancestors), so the longest match alone decides.
pub fn file_entries(policy: &Policy) -> Vec<FileEntry> {
    let mut patterns: BTreeMap<Vec<u8>, PathPattern> = BTreeMap::new();
    for rule in &policy.rules {
        if let Target::Path(p) = &rule.target {
            patterns.entry(p.key_bytes()).or_insert_with(|| p.clone());
        }
    }
    patterns
        .into_values()
        .map(|pattern| {
            let eff = effective_for_pattern(policy, &pattern);
            let rule_id = most_specific_rule(policy, &pattern);
            FileEntry {
                prefix_bits: PATH_KEY_FIXED_BITS + 8 * pattern.key_bytes().len() as u32,
                value: PathRule {
                    allow: eff.allow_bits(),
                    rule_id,
                    ..PathRule::default()
                },
                pattern,
            }
        })
        .collect()
}

/// The rule that names exactly `pattern` (a deny if there is one).
fn most_specific_rule(policy: &Policy, pattern: &PathPattern) -> u32 {
    let mut best = None;
    for (id, rule) in policy.rules.iter().enumerate() {
        if rule.path() == Some(pattern) && (best.is_none() || rule.section == Section::FilesDeny) {
            best = Some(id as u32);
        }
    }
    best.unwrap_or(enforcer_common::RULE_DEFAULT_DENY)
}

/// Addresses a host name resolved to when the envelope started.
pub type Resolved = BTreeMap<String, Vec<IpAddr>>;

/// Every `NET_RULES` entry: connect rules, then listen rules. Names missing from `resolved`
/// get no entry (connects to them are denied; the caller reports that).
pub fn net_entries(policy: &Policy, resolved: &Resolved) -> Vec<NetEntry> {
    let mut entries = Vec::new();
    let rules = policy
        .rules_in(Section::NetworkConnect)
        .chain(policy.rules_in(Section::NetworkListen));
    for (id, rule) in rules {
        let listen = rule.section == Section::NetworkListen;
        let Target::Endpoint(endpoint) = &rule.target else {
            continue;
        };
        let port = endpoint.port.unwrap_or(0);
        let blocks: Vec<(IpAddr, u8)> = match &endpoint.host {
            Host::Cidr { addr, prefix } => vec![(*addr, *prefix)],
            Host::Name(name) => resolved
                .get(name)
                .map(|addrs| {
                    addrs
                        .iter()
                        .map(|a| (*a, if a.is_ipv4() { 32 } else { 128 }))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (addr, prefix) in blocks {
            entries.push(NetEntry {
                addr: mapped(addr),
                addr_prefix: mapped_prefix(addr, prefix),
                port,
                rule_id: id,
                listen,
            });
        }
    }
    entries
}

/// A path the fallback mode grants through Landlock, with the access bits and the rules behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub pattern: PathPattern,
    /// [`access`] bits: READ, WRITE, EXEC.
    pub access: u32,
    pub rules: Vec<u32>,
}

/// The allow rules as Landlock grants, one per distinct path.
pub fn landlock_grants(policy: &Policy) -> Vec<Grant> {
    let mut grants: BTreeMap<Vec<u8>, Grant> = BTreeMap::new();
    for (id, rule) in policy.rules.iter().enumerate() {
        let (Target::Path(p), bits) = (&rule.target, rule.section.access()) else {
            continue;
        };
        // Landlock has no right for mapping or unix connects; those are lsm-mode rules.
        let bits = bits & (access::READ | access::WRITE | access::EXEC);
        if bits == 0 {
            continue;
        }
        let grant = grants.entry(p.key_bytes()).or_insert_with(|| Grant {
            pattern: p.clone(),
            access: 0,
            rules: Vec::new(),
        });
        grant.access |= bits;
        grant.rules.push(id as u32);
    }
    grants.into_values().collect()
}

/// How a deny rule is enforced in fallback mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyPlan {
    pub rule_id: u32,
    /// A `files.protect` rule: only writes to it (or creating names in it) are refused.
    pub write_only: bool,
    pub pattern: PathPattern,
    /// The allow rules whose trees contain it: Landlock would let those through, so the file's
    /// identity is checked at open and the task killed on a match.
    pub inside: Vec<u32>,
}

pub fn deny_plans(policy: &Policy) -> Vec<DenyPlan> {
    policy
        .rules_in(Section::FilesDeny)
        .chain(policy.rules_in(Section::FilesProtect))
        .filter_map(|(id, rule)| {
            let pattern = rule.path()?.clone();
            let inside = policy
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    matches!(
                        r.section,
                        Section::ExecAllow | Section::FilesRead | Section::FilesWrite
                    )
                })
                .filter(|(_, r)| {
                    r.path()
                        .is_some_and(|p| p.dir && pattern.path.starts_with(&p.path))
                })
                .map(|(i, _)| i as u32)
                .collect();
            Some(DenyPlan {
                rule_id: id,
                write_only: rule.section == Section::FilesProtect,
                pattern,
                inside,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{Vars, parse};

    fn policy(body: &str) -> Policy {
        let text = format!("[policy]\nname = \"t\"\nversion = 1\n{body}");
        parse(Path::new("t.toml"), &text, &Vars::new()).unwrap()
    }

    #[test]
    fn file_entries_carry_merged_access_and_exact_key_lengths() {
        let p = policy(
            "[files]\nread = [\"/srv/\"]\nwrite = [\"/srv/repo/\"]\ndeny = [\"/srv/repo/.env\"]\n",
        );
        let entries = file_entries(&p);
        let find = |path: &str| entries.iter().find(|e| e.pattern.path == path).unwrap();
        let srv = find("/srv/");
        assert_eq!(
            srv.value,
            PathRule {
                allow: access::READ,
                rule_id: 0,
                ..PathRule::default()
            }
        );
        assert_eq!(srv.prefix_bits, 32 + 8 * 5);
        let repo = find("/srv/repo/");
        assert_eq!(repo.value.allow, access::READ | access::WRITE);
        let env = find("/srv/repo/.env");
        assert_eq!(
            env.value,
            PathRule {
                allow: 0,
                rule_id: 2,
                ..PathRule::default()
            }
        );
        // File rules include the NUL terminator in the key.
        assert_eq!(env.prefix_bits, 32 + 8 * 15);
        assert_eq!(&env.key(7).slot, &7u32.to_be_bytes());
        assert_eq!(&env.key(7).path[..15], b"/srv/repo/.env\0");
    }

    #[test]
    fn net_entries_map_ipv4_and_expand_names() {
        let p = policy(
            "[network]\nconnect = [\"127.0.0.1:8080\", \"10.0.0.0/8:*\", \"[::1]:443\", \"db.internal:5432\", \"gone.example:1\"]\n",
        );
        let resolved: Resolved = [(
            "db.internal".to_owned(),
            vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        )]
        .into();
        let e = net_entries(&p, &resolved);
        assert_eq!(e.len(), 5);
        assert_eq!(e[0].addr_prefix, 128);
        assert_eq!(e[0].port, 8080);
        assert_eq!(e[0].addr[10..], [0xff, 0xff, 127, 0, 0, 1]);
        assert_eq!((e[1].addr_prefix, e[1].port), (104, 0));
        assert_eq!(e[1].prefix_bits(), 48 + 104);
        assert_eq!((e[2].addr_prefix, e[2].rule_id), (128, 2));
        assert_eq!((e[3].rule_id, e[4].rule_id), (3, 3));
        assert_eq!(e[4].addr_prefix, 128);
    }

    #[test]
    fn grants_merge_by_path_and_denies_know_what_contains_them() {
        let p = policy(
            "[exec]\nallow = [\"/usr/bin/git\"]\n[files]\nread = [\"/w/\", \"/usr/\"]\nwrite = [\"/w/\"]\ndeny = [\"/w/.env\", \"/root/.ssh/\"]\n",
        );
        let grants = landlock_grants(&p);
        let w = grants.iter().find(|g| g.pattern.path == "/w/").unwrap();
        assert_eq!(w.access, access::READ | access::WRITE);
        assert_eq!(w.rules, vec![1, 3]);
        let plans = deny_plans(&p);
        assert_eq!(plans[0].inside, vec![1, 3]);
        assert!(plans[1].inside.is_empty());
    }
}
