//! What the enforcer's resolver does with one query of a task, as pure functions: which names
//! its policy lets it look up (connect rules naming hosts, and `resolve` entries), what is
//! refused and why, and, from the upstream's answer, which addresses the task may then connect
//! to (pinned in the kernel with the answer's TTL) and what answer it gets.
use std::net::IpAddr;

use super::{
    name::{Name, Pattern},
    wire::{self, Chain, Data, Query, Rcode, Record, Response},
};

/// A connect rule naming a host: its pattern, its port (`None`: any) and the rule's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectName {
    pub pattern: Pattern,
    pub port: Option<u16>,
    pub rule: u32,
}

/// The names a task's policy lets it look up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Names it may look up and connect to.
    pub connect: Vec<ConnectName>,
    /// Names it may only look up (`network.resolve`).
    pub resolve: Vec<Pattern>,
}

impl Allowed {
    /// The connect rules matching `name` (empty: none).
    pub fn connect_rules(&self, name: &Name) -> Vec<&ConnectName> {
        self.connect
            .iter()
            .filter(|c| c.pattern.matches(name))
            .collect()
    }

    pub fn allows(&self, name: &Name) -> bool {
        !self.connect_rules(name).is_empty() || self.resolve.iter().any(|p| p.matches(name))
    }
}

/// Why a query gets no answer from upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The query could not be read (its error); answered with `rcode`.
    Malformed { rcode: Rcode, why: String },
    /// The policy does not name it.
    NotAllowed(Name),
    /// An answer went through a CNAME the policy does not name.
    ForbiddenTarget { asked: Name, target: Name },
}

/// What to do with a task's query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ask the upstream for this name and type.
    Forward(Query),
    /// Answer at once, with no record (a type other than A and AAAA of an allowed name: the
    /// task gets "no data", which stub resolvers take quickly; nothing goes upstream).
    NoData(Query),
    /// Refuse: the bytes to send back (if the query's id could be read) and why.
    Refuse {
        reply: Option<Vec<u8>>,
        why: Refusal,
    },
}

/// Decides on a task's query. `refuse` is the code for names the policy does not name
/// (REFUSED or NXDOMAIN, as configured).
pub fn on_query(bytes: &[u8], allowed: &Allowed, refuse: Rcode) -> Step {
    let q = match wire::parse_query(bytes) {
        Ok(q) => q,
        Err(e) => {
            return Step::Refuse {
                reply: wire::id_of(bytes).map(|id| wire::format_error_with(id, e.rcode())),
                why: Refusal::Malformed {
                    rcode: e.rcode(),
                    why: e.to_string(),
                },
            };
        }
    };
    if q.qclass != wire::CLASS_IN || !allowed.allows(&q.name) {
        return Step::Refuse {
            reply: Some(wire::refusal(&q, refuse)),
            why: Refusal::NotAllowed(q.name),
        };
    }
    if q.qtype == wire::TYPE_A || q.qtype == wire::TYPE_AAAA {
        Step::Forward(q)
    } else {
        Step::NoData(q)
    }
}

/// An address the task may connect to, learned from an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub addr: IpAddr,
    pub port: Option<u16>,
    pub rule: u32,
    pub ttl: u32,
}

/// What the upstream's answer gives the task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The answer to send, and the addresses to pin before it is sent.
    Answer { reply: Vec<u8>, pins: Vec<Pin> },
    /// The answer went through a name the policy does not name: refused, nothing pinned.
    Refused { reply: Vec<u8>, why: Refusal },
}

/// From the upstream's `response` to `q`: every name on the CNAME chain must be allowed; the
/// addresses at its end are pinned with the ports of the connect rules naming the name asked
/// (a `resolve`-only name pins nothing), for the chain's smallest TTL.
pub fn on_response(q: &Query, response: &Response, allowed: &Allowed, refuse: Rcode) -> Outcome {
    if response.rcode != Rcode::NoError as u8 {
        // NXDOMAIN, SERVFAIL...: passed on as they are, with nothing pinned.
        let code = match response.rcode {
            3 => Rcode::NxDomain,
            5 => Rcode::Refused,
            _ => Rcode::ServFail,
        };
        return Outcome::Answer {
            reply: wire::refusal(q, code),
            pins: Vec::new(),
        };
    }
    let Chain { names, addrs, ttl } = wire::chain(&q.name, &response.records);
    if let Some(target) = names.iter().skip(1).find(|n| !allowed.allows(n)) {
        return Outcome::Refused {
            reply: wire::refusal(q, refuse),
            why: Refusal::ForbiddenTarget {
                asked: q.name.clone(),
                target: target.clone(),
            },
        };
    }
    let wanted = |a: &IpAddr| match q.qtype {
        wire::TYPE_A => a.is_ipv4(),
        _ => a.is_ipv6(),
    };
    let addrs: Vec<IpAddr> = addrs.into_iter().filter(wanted).collect();
    let pins = allowed
        .connect_rules(&q.name)
        .iter()
        .flat_map(|c| {
            addrs.iter().map(|&addr| Pin {
                addr,
                port: c.port,
                rule: c.rule,
                ttl,
            })
        })
        .collect();
    let mut records = Vec::new();
    for pair in names.windows(2) {
        records.push(Record {
            name: pair[0].clone(),
            ttl,
            data: Data::Cname(pair[1].clone()),
        });
    }
    let last = names.last().unwrap_or(&q.name);
    records.extend(addrs.iter().map(|&a| Record {
        name: last.clone(),
        ttl,
        data: Data::Addr(a),
    }));
    Outcome::Answer {
        reply: wire::answer(q, &records),
        pins,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
