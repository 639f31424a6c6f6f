use super::*;

fn name(s: &str) -> Name {
    Name::parse(s).expect("valid name")
}

/// A query as a stub resolver sends it, with `labels` written as given.
fn raw_query(id: u16, flags: u16, labels: &[&[u8]], qtype: u16) -> Vec<u8> {
    let mut b = Vec::new();
    header(&mut b, id, flags, [1, 0, 0, 0]);
    for l in labels {
        b.push(l.len() as u8);
        b.extend_from_slice(l);
    }
    b.push(0);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&CLASS_IN.to_be_bytes());
    b
}

#[test]
fn a_stub_query_is_read_and_the_upstream_one_is_built_anew() {
    let q = parse_query(&raw_query(0x1234, RD, &[b"PyPI", b"org"], TYPE_AAAA)).unwrap();
    assert_eq!(q.id, 0x1234);
    assert!(q.recursion_desired);
    assert_eq!(q.name.as_str(), "pypi.org");
    assert_eq!((q.qtype, q.qclass), (TYPE_AAAA, CLASS_IN));
    let up = upstream_query(7, &q.name, q.qtype);
    let again = parse_query(&up).unwrap();
    assert_eq!((again.id, again.name, again.qtype), (7, q.name, TYPE_AAAA));
    // An EDNS record in the additional section is allowed (and not carried upstream).
    let mut edns = raw_query(1, RD, &[b"a", b"test"], TYPE_A);
    edns[11] = 1;
    edns.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
    assert!(parse_query(&edns).is_ok());
}

#[test]
fn malformed_and_exfiltrating_queries_are_refused_with_a_code() {
    let err = |b: &[u8]| parse_query(b).expect_err("refused");
    assert_eq!(err(&[0u8; 5]), WireError::Short(5));
    assert_eq!(err(&raw_query(1, QR, &[b"a"], TYPE_A)), WireError::NotQuery);
    let notify = err(&raw_query(1, 4 << 11, &[b"a"], TYPE_A));
    assert_eq!(notify.rcode(), Rcode::NotImp);
    let mut two = raw_query(1, 0, &[b"a"], TYPE_A);
    two[5] = 2;
    assert_eq!(err(&two).rcode(), Rcode::FormErr);
    // Data smuggled in a name: a NUL, a space, an underscore are not LDH.
    let nul = err(&raw_query(
        1,
        RD,
        &[b"se\0cret", b"attacker", b"test"],
        TYPE_A,
    ));
    assert_eq!(nul, WireError::Name(NameError::NotLdh(0)));
    assert_eq!(nul.rcode(), Rcode::Refused);
    assert!(matches!(
        err(&raw_query(1, RD, &[b"a_b", b"test"], TYPE_A)),
        WireError::Name(NameError::NotLdh(b'_'))
    ));
    // A 64-byte label's length has the extended-label bits set.
    let long = vec![b'x'; 64];
    assert_eq!(
        err(&raw_query(1, RD, &[&long, b"test"], TYPE_A)).rcode(),
        Rcode::FormErr
    );
    // Over 253 bytes written out.
    let l63 = vec![b'a'; 63];
    let too_long = raw_query(1, RD, &[&l63, &l63, &l63, &l63], TYPE_A);
    assert!(matches!(
        err(&too_long),
        WireError::Name(NameError::Long(_))
    ));
    // A pointer in a question, and a question cut short.
    let mut ptr = raw_query(1, RD, &[], TYPE_A);
    ptr[HEADER] = 0xc0;
    assert_eq!(err(&ptr).rcode(), Rcode::FormErr);
    let cut = raw_query(1, RD, &[b"abc"], TYPE_A);
    assert_eq!(err(&cut[..HEADER + 2]), WireError::Short(HEADER + 2));
}

#[test]
fn refusals_and_answers_echo_the_question_and_read_back() {
    let q = parse_query(&raw_query(9, RD, &[b"a", b"test"], TYPE_A)).unwrap();
    let r = refusal(&q, Rcode::Refused);
    assert_eq!(id_of(&r), Some(9));
    let flags = u16_at(&r, 2).unwrap();
    assert_eq!(flags & QR, QR);
    assert_eq!(flags & 0xf, Rcode::Refused as u16);
    let read = parse_response(&r, 9, &q.name, TYPE_A).unwrap();
    assert_eq!(read.rcode, Rcode::Refused as u8);
    assert!(read.records.is_empty());
    assert_eq!(u16_at(&format_error(3), 2).unwrap() & 0xf, 1);

    let records = vec![
        Record {
            name: name("a.test"),
            ttl: 300,
            data: Data::Cname(name("edge.cdn.test")),
        },
        Record {
            name: name("edge.cdn.test"),
            ttl: 20,
            data: Data::Addr("192.0.2.7".parse().unwrap()),
        },
        Record {
            name: name("edge.cdn.test"),
            ttl: 60,
            data: Data::Addr("2001:db8::7".parse().unwrap()),
        },
    ];
    let a = answer(&q, &records);
    let read = parse_response(&a, 9, &q.name, TYPE_A).unwrap();
    assert_eq!(read.rcode, 0);
    assert!(!read.truncated);
    assert_eq!(read.records, records);
    // Another id, another name or type: not the answer to this query.
    assert_eq!(
        parse_response(&a, 10, &q.name, TYPE_A),
        Err(WireError::Mismatch)
    );
    assert_eq!(
        parse_response(&a, 9, &name("b.test"), TYPE_A),
        Err(WireError::Mismatch)
    );
    assert_eq!(
        parse_response(&a, 9, &q.name, TYPE_AAAA),
        Err(WireError::Mismatch)
    );
}

/// An upstream answer for `a.test` A with compressed owner names.
fn compressed(pointer: [u8; 2], flags: u16) -> Vec<u8> {
    let mut b = raw_query(5, RD, &[b"a", b"test"], TYPE_A);
    b[2..4].copy_from_slice(&(QR | RA | flags).to_be_bytes());
    b[7] = 2;
    // a.test CNAME b.a.test (the target's tail compressed), then b.a.test A 192.0.2.1.
    b.extend_from_slice(&[0xc0, 12]);
    b.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0, 30, 0, 4, 1, b'b', 0xc0, 12]);
    let cname_target = b.len() - 4;
    b.extend_from_slice(&pointer.map(|p| if p == 0xff { cname_target as u8 } else { p }));
    b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 192, 0, 2, 1]);
    b
}

#[test]
fn compression_is_followed_backwards_only_and_never_in_a_loop() {
    let asked = name("a.test");
    let ok = parse_response(&compressed([0xc0, 0xff], TC), 5, &asked, TYPE_A).unwrap();
    assert!(ok.truncated);
    let c = chain(&asked, &ok.records);
    assert_eq!(c.names, vec![name("a.test"), name("b.a.test")]);
    assert_eq!(c.addrs, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.ttl, 10);
    // A pointer past itself, and one to itself.
    let mut forward = compressed([0xc0, 0xff], 0);
    let at = forward.len() - 16;
    forward[at + 1] = 250;
    assert!(matches!(
        parse_response(&forward, 5, &asked, TYPE_A),
        Err(WireError::Form(_))
    ));
    let mut selfref = compressed([0xc0, 0xff], 0);
    let at = selfref.len() - 16;
    selfref[at + 1] = at as u8;
    assert!(matches!(
        parse_response(&selfref, 5, &asked, TYPE_A),
        Err(WireError::Form(_))
    ));
    // Cut anywhere: an error, never a panic.
    let whole = compressed([0xc0, 0xff], 0);
    for n in 0..whole.len() {
        let _ = parse_response(&whole[..n], 5, &asked, TYPE_A);
    }
}

#[test]
fn a_chain_stops_at_loops_and_its_length_and_takes_the_smallest_ttl() {
    let cname = |from: &str, to: &str, ttl| Record {
        name: name(from),
        ttl,
        data: Data::Cname(name(to)),
    };
    let looped = [cname("a.test", "b.test", 5), cname("b.test", "a.test", 5)];
    let c = chain(&name("a.test"), &looped);
    assert_eq!(c.names.len(), 2);
    assert!(c.addrs.is_empty());
    let long: Vec<Record> = (0..20)
        .map(|i| cname(&format!("n{i}.test"), &format!("n{}.test", i + 1), 100 - i))
        .collect();
    let c = chain(&name("n0.test"), &long);
    assert_eq!(c.names.len(), MAX_CHAIN + 1);
    assert_eq!(c.ttl, 100 - (MAX_CHAIN as u32 - 1));
    // Addresses of a name that is not at the end of the chain are not the answer.
    let stray = [
        cname("a.test", "b.test", 5),
        Record {
            name: name("a.test"),
            ttl: 5,
            data: Data::Addr("192.0.2.9".parse().unwrap()),
        },
    ];
    assert!(chain(&name("a.test"), &stray).addrs.is_empty());
    assert_eq!(tcp_frame(b"abc"), vec![0, 3, b'a', b'b', b'c']);
}
