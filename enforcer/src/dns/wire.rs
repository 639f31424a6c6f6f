//! The DNS wire format (RFC 1035), as much as the enforcer's resolver needs: a task's query is
//! read and checked, never forwarded as it came (the upstream gets a query built here from the
//! checked name and type, so no byte the task chose beyond them leaves); answers to the task are
//! built here from the records the policy let through; upstream answers are parsed with
//! compression pointers followed only backwards and a bounded number of times.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::name::{Name, NameError};

pub const HEADER: usize = 12;
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;

const QR: u16 = 0x8000;
const TC: u16 = 0x0200;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
/// Pointers followed in one name: more is a loop or an attack.
const MAX_JUMPS: usize = 32;
/// CNAMEs followed from the name asked.
pub const MAX_CHAIN: usize = 8;

/// Response codes the resolver gives or reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// What is wrong with a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{0} bytes, shorter than its header says")]
    Short(usize),
    #[error("a response where a query was expected")]
    NotQuery,
    #[error("opcode {0}: only standard queries are answered")]
    Opcode(u16),
    #[error("{0}")]
    Form(&'static str),
    #[error("malformed name: {0}")]
    Name(#[from] NameError),
    #[error("the answer is to another query")]
    Mismatch,
}

impl WireError {
    /// The code a task gets for its malformed query.
    pub fn rcode(&self) -> Rcode {
        match self {
            Self::Opcode(_) => Rcode::NotImp,
            Self::Name(_) => Rcode::Refused,
            _ => Rcode::FormErr,
        }
    }
}

/// A task's query, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub recursion_desired: bool,
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WireError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(WireError::Short(b.len()))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WireError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(WireError::Short(b.len()))
}

/// The id of a message too broken to parse, to answer it FORMERR (`None` under 2 bytes).
pub fn id_of(b: &[u8]) -> Option<u16> {
    u16_at(b, 0).ok()
}

/// Reads a task's query: one question, no answers, no compression; an EDNS record in the
/// additional section is allowed and ignored (the upstream query is built anew).
pub fn parse_query(b: &[u8]) -> Result<Query, WireError> {
    if b.len() < HEADER {
        return Err(WireError::Short(b.len()));
    }
    let flags = u16_at(b, 2)?;
    if flags & QR != 0 {
        return Err(WireError::NotQuery);
    }
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        return Err(WireError::Opcode(opcode));
    }
    let counts = [u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return Err(WireError::Form("one question and no records expected"));
    }
    let mut at = HEADER;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*b.get(at).ok_or(WireError::Short(b.len()))?);
        at += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return Err(WireError::Form(
                "a compressed or extended label in a question",
            ));
        }
        labels.push(b.get(at..at + len).ok_or(WireError::Short(b.len()))?);
        at += len;
    }
    let name = Name::from_labels(labels)?;
    Ok(Query {
        id: u16_at(b, 0)?,
        recursion_desired: flags & RD != 0,
        name,
        qtype: u16_at(b, at)?,
        qclass: u16_at(b, at + 2)?,
    })
}

fn put_name(out: &mut Vec<u8>, name: &Name) {
    for label in name.labels() {
        // Labels of a `Name` are 1..=63 bytes.
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

fn question(out: &mut Vec<u8>, name: &Name, qtype: u16) {
    put_name(out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
}

/// The query the resolver sends upstream for a checked name and type.
pub fn upstream_query(id: u16, name: &Name, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + name.as_str().len() + 6);
    header(&mut out, id, RD, [1, 0, 0, 0]);
    question(&mut out, name, qtype);
    out
}

/// A refusal (or NXDOMAIN, SERVFAIL) of `q`, with its question.
pub fn refusal(q: &Query, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::new();
    let rd = if q.recursion_desired { RD } else { 0 };
    header(&mut out, q.id, QR | rd | RA | rcode as u16, [1, 0, 0, 0]);
    question(&mut out, &q.name, q.qtype);
    out
}

/// FORMERR for a query whose question could not be read.
pub fn format_error(id: u16) -> Vec<u8> {
    format_error_with(id, Rcode::FormErr)
}

/// A reply without a question (the query's could not be read, or was not to be echoed).
pub fn format_error_with(id: u16, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, id, QR | RA | rcode as u16, [0, 0, 0, 0]);
    out
}

/// A resource record the resolver read or gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    Addr(IpAddr),
    Cname(Name),
}

/// The answer to `q` with `records` (names written out in full).
pub fn answer(q: &Query, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    let rd = if q.recursion_desired { RD } else { 0 };
    let count = u16::try_from(records.len()).unwrap_or(u16::MAX);
    header(&mut out, q.id, QR | rd | RA, [1, count, 0, 0]);
    question(&mut out, &q.name, q.qtype);
    for r in records.iter().take(usize::from(count)) {
        put_name(&mut out, &r.name);
        let (rtype, rdata) = match &r.data {
            Data::Addr(IpAddr::V4(a)) => (TYPE_A, a.octets().to_vec()),
            Data::Addr(IpAddr::V6(a)) => (TYPE_AAAA, a.octets().to_vec()),
            Data::Cname(n) => {
                let mut v = Vec::new();
                put_name(&mut v, n);
                (TYPE_CNAME, v)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

/// An upstream answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub rcode: u8,
    pub truncated: bool,
    /// A, AAAA and CNAME records of the answer section, class IN, with valid names; the rest
    /// is skipped.
    pub records: Vec<Record>,
}

/// Reads a name at `at` (compression pointers followed backwards only, at most
/// [`MAX_JUMPS`]); returns it and where the record goes on.
fn read_name(b: &[u8], mut at: usize) -> Result<(Result<Name, NameError>, usize), WireError> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *b.get(at).ok_or(WireError::Short(b.len()))?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                at += 1;
                break;
            }
            0x00 => {
                let len = usize::from(len);
                labels.push(
                    b.get(at + 1..at + 1 + len)
                        .ok_or(WireError::Short(b.len()))?,
                );
                at += 1 + len;
            }
            0xc0 => {
                let target = usize::from(u16_at(b, at)? & 0x3fff);
                jumps += 1;
                if target >= at || jumps > MAX_JUMPS {
                    return Err(WireError::Form(
                        "a compression pointer forwards or in a loop",
                    ));
                }
                after.get_or_insert(at + 2);
                at = target;
            }
            _ => return Err(WireError::Form("an extended label type")),
        }
    }
    Ok((Name::from_labels(labels), after.unwrap_or(at)))
}

/// Reads the upstream's answer to the query `(id, name, qtype)`.
pub fn parse_response(b: &[u8], id: u16, name: &Name, qtype: u16) -> Result<Response, WireError> {
    if b.len() < HEADER {
        return Err(WireError::Short(b.len()));
    }
    let flags = u16_at(b, 2)?;
    if u16_at(b, 0)? != id || flags & QR == 0 || u16_at(b, 4)? != 1 {
        return Err(WireError::Mismatch);
    }
    let (asked, mut at) = read_name(b, HEADER)?;
    if asked.as_ref() != Ok(name) || u16_at(b, at)? != qtype || u16_at(b, at + 2)? != CLASS_IN {
        return Err(WireError::Mismatch);
    }
    at += 4;
    let mut records = Vec::new();
    for _ in 0..u16_at(b, 6)? {
        let (owner, next) = read_name(b, at)?;
        let (rtype, class, ttl) = (u16_at(b, next)?, u16_at(b, next + 2)?, u32_at(b, next + 4)?);
        let len = usize::from(u16_at(b, next + 8)?);
        let start = next + 10;
        let rdata = b.get(start..start + len).ok_or(WireError::Short(b.len()))?;
        at = start + len;
        let Ok(owner) = owner else { continue };
        if class != CLASS_IN {
            continue;
        }
        let data = match (rtype, rdata.len()) {
            (TYPE_A, 4) => Data::Addr(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(rdata);
                Data::Addr(IpAddr::V6(Ipv6Addr::from(o)))
            }
            (TYPE_CNAME, _) => match read_name(b, start)? {
                (Ok(target), end) if end == at => Data::Cname(target),
                _ => continue,
            },
            _ => continue,
        };
        records.push(Record {
            name: owner,
            ttl,
            data,
        });
    }
    Ok(Response {
        rcode: (flags & 0xf) as u8,
        truncated: flags & TC != 0,
        records,
    })
}

/// What a name leads to through the answer's CNAMEs: the names on the way (the one asked
/// first), the addresses of the last one, and the smallest TTL met.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub names: Vec<Name>,
    pub addrs: Vec<IpAddr>,
    pub ttl: u32,
}

/// Follows `name` through `records` (at most [`MAX_CHAIN`] CNAMEs).
pub fn chain(name: &Name, records: &[Record]) -> Chain {
    let mut names = vec![name.clone()];
    let mut ttl = u32::MAX;
    while names.len() <= MAX_CHAIN {
        let last = &names[names.len() - 1];
        let next = records.iter().find_map(|r| match &r.data {
            Data::Cname(t) if &r.name == last => Some((t.clone(), r.ttl)),
            _ => None,
        });
        let Some((target, t)) = next else { break };
        if names.contains(&target) {
            break;
        }
        ttl = ttl.min(t);
        names.push(target);
    }
    let last = &names[names.len() - 1];
    let mut addrs = Vec::new();
    for r in records {
        if let (Data::Addr(a), true) = (&r.data, &r.name == last) {
            ttl = ttl.min(r.ttl);
            addrs.push(*a);
        }
    }
    Chain {
        names,
        addrs,
        ttl: if ttl == u32::MAX { 0 } else { ttl },
    }
}

/// A message framed for DNS over TCP (its length first).
pub fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&(msg.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&msg[..msg.len().min(usize::from(u16::MAX))]);
    out
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
