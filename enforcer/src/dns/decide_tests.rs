use super::*;

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

fn allowed() -> Allowed {
    Allowed {
        connect: vec![
            ConnectName {
                pattern: Pattern::parse("api.allowed.test").unwrap(),
                port: Some(443),
                rule: 7,
            },
            ConnectName {
                pattern: Pattern::parse("*.cdn.test").unwrap(),
                port: None,
                rule: 8,
            },
        ],
        resolve: vec![Pattern::parse("lookup.test").unwrap()],
    }
}

fn query(n: &str, qtype: u16) -> Vec<u8> {
    wire::upstream_query(42, &name(n), qtype)
}

fn rcode(reply: &[u8]) -> u8 {
    reply[3] & 0xf
}

#[test]
fn only_names_the_policy_names_go_upstream() {
    let a = allowed();
    let forward = |n: &str, t| match on_query(&query(n, t), &a, Rcode::Refused) {
        Step::Forward(q) => q.name.as_str().to_owned(),
        other => panic!("{n}: {other:?}"),
    };
    assert_eq!(
        forward("API.allowed.test", wire::TYPE_A),
        "api.allowed.test"
    );
    assert_eq!(forward("x.y.cdn.test", wire::TYPE_AAAA), "x.y.cdn.test");
    assert_eq!(forward("lookup.test", wire::TYPE_A), "lookup.test");
    // Exfiltration as a query name: refused here, never forwarded.
    match on_query(
        &query("c2VjcmV0.attacker.test", wire::TYPE_A),
        &a,
        Rcode::NxDomain,
    ) {
        Step::Refuse { reply, why } => {
            assert_eq!(rcode(&reply.unwrap()), Rcode::NxDomain as u8);
            assert_eq!(why, Refusal::NotAllowed(name("c2vjcmv0.attacker.test")));
        }
        other => panic!("{other:?}"),
    }
    // The domain of a wildcard is not under it.
    assert!(matches!(
        on_query(&query("cdn.test", wire::TYPE_A), &a, Rcode::Refused),
        Step::Refuse { .. }
    ));
    // Another type of an allowed name: no data, nothing upstream (TXT carries data both ways).
    assert!(matches!(
        on_query(&query("api.allowed.test", 16), &a, Rcode::Refused),
        Step::NoData(_)
    ));
}

#[test]
fn malformed_queries_are_refused_with_their_id_when_it_can_be_read() {
    let mut nul = query("abc.allowed.test", wire::TYPE_A);
    nul[wire::HEADER + 2] = 0;
    match on_query(&nul, &allowed(), Rcode::Refused) {
        Step::Refuse {
            reply: Some(reply),
            why: Refusal::Malformed { rcode: code, why },
        } => {
            assert_eq!(u16::from_be_bytes([reply[0], reply[1]]), 42);
            assert_eq!(rcode(&reply), code as u8);
            assert!(why.contains("malformed name"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        on_query(&[1], &allowed(), Rcode::Refused),
        Step::Refuse { reply: None, .. }
    ));
}

fn response(records: Vec<Record>) -> Response {
    Response {
        rcode: 0,
        truncated: false,
        records,
    }
}

fn cname(from: &str, to: &str) -> Record {
    Record {
        name: name(from),
        ttl: 300,
        data: Data::Cname(name(to)),
    }
}

fn addr(owner: &str, a: &str, ttl: u32) -> Record {
    Record {
        name: name(owner),
        ttl,
        data: Data::Addr(a.parse().unwrap()),
    }
}

fn q(n: &str, t: u16) -> Query {
    wire::parse_query(&query(n, t)).unwrap()
}

#[test]
fn answered_addresses_are_pinned_with_the_rules_ports_and_the_chains_ttl() {
    let a = allowed();
    let asked = q("api.allowed.test", wire::TYPE_A);
    let r = response(vec![
        cname("api.allowed.test", "edge.cdn.test"),
        addr("edge.cdn.test", "192.0.2.1", 60),
        addr("edge.cdn.test", "192.0.2.2", 30),
        // Not asked for: not given, not pinned.
        addr("edge.cdn.test", "2001:db8::1", 30),
        addr("other.test", "198.51.100.1", 30),
    ]);
    let Outcome::Answer { reply, pins } = on_response(&asked, &r, &a, Rcode::Refused) else {
        panic!("answered");
    };
    assert_eq!(
        pins,
        ["192.0.2.1", "192.0.2.2"]
            .map(|s| Pin {
                addr: s.parse().unwrap(),
                port: Some(443),
                rule: 7,
                ttl: 30,
            })
            .to_vec()
    );
    let back = wire::parse_response(&reply, 42, &asked.name, wire::TYPE_A).unwrap();
    let chain = wire::chain(&asked.name, &back.records);
    assert_eq!(chain.addrs.len(), 2);
    assert_eq!(chain.names.len(), 2);
    // A name it may only look up: answered, nothing pinned.
    let look = q("lookup.test", wire::TYPE_A);
    let r = response(vec![addr("lookup.test", "192.0.2.9", 60)]);
    let Outcome::Answer { pins, .. } = on_response(&look, &r, &a, Rcode::Refused) else {
        panic!("answered");
    };
    assert!(pins.is_empty());
}

#[test]
fn a_cname_to_a_name_the_policy_does_not_name_is_refused_and_pins_nothing() {
    let asked = q("api.allowed.test", wire::TYPE_A);
    let r = response(vec![
        cname("api.allowed.test", "exfil.attacker.test"),
        addr("exfil.attacker.test", "203.0.113.5", 60),
    ]);
    match on_response(&asked, &r, &allowed(), Rcode::Refused) {
        Outcome::Refused { reply, why } => {
            assert_eq!(rcode(&reply), Rcode::Refused as u8);
            assert_eq!(
                why,
                Refusal::ForbiddenTarget {
                    asked: name("api.allowed.test"),
                    target: name("exfil.attacker.test")
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // The upstream's own NXDOMAIN is passed on, nothing pinned.
    let nx = Response {
        rcode: 3,
        truncated: false,
        records: vec![addr("api.allowed.test", "192.0.2.1", 60)],
    };
    let Outcome::Answer { reply, pins } = on_response(&asked, &nx, &allowed(), Rcode::Refused)
    else {
        panic!("passed on");
    };
    assert_eq!(rcode(&reply), 3);
    assert!(pins.is_empty());
}
