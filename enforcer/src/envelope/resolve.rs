//! Host names in network rules, resolved once when the envelope starts.
use std::{collections::BTreeSet, net::ToSocketAddrs as _};

use crate::policy::{Host, Policy, Section, Target, compile::Resolved};

/// Resolves every host name; the second value lists the names that failed, as report lines.
pub fn resolve_hosts(policy: &Policy) -> (Resolved, Vec<String>) {
    let mut resolved = Resolved::new();
    let mut failed = Vec::new();
    for (_, rule) in policy.rules_in(Section::NetworkConnect) {
        let Target::Endpoint(e) = &rule.target else {
            continue;
        };
        let Host::Name(name) = &e.host else { continue };
        if resolved.contains_key(name) {
            continue;
        }
        match (name.as_str(), 0u16).to_socket_addrs() {
            Ok(addrs) => {
                let set: BTreeSet<_> = addrs.map(|a| a.ip()).collect();
                resolved.insert(name.clone(), set.into_iter().collect());
            }
            Err(err) => failed.push(format!(
                "{} \"{}\": \"{name}\" could not be resolved when the envelope started ({err}); \
                 connects to it are denied",
                rule.label(),
                rule.text
            )),
        }
    }
    (resolved, failed)
}
