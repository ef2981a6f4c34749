//! DNS tests: byte-literal tables (decoding, matching, framing, inference), replays of traffic
//! recorded from dnsmasq with dig, glibc and Python (`testdata/dns/`, see its README) in both
//! roles, mutation and garbage runs, and the public captures in `../shared/captures` (read at
//! run time, never copied in).
//!
//! Baselines are `testdata/dns/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers dns`.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::message::{parse_head, read_name, type_name};
use super::{
    DnsParser, MAX_ANSWERS, MAX_PENDING, PENDING_TIMEOUT_NS, answers, infer, infer_datagram,
};
use crate::testkit::{
    Capture, Op, Side, XorShift, bytewise, check_baseline, losses_text, play, rechunk, testdata,
};
use crate::{Detail, Direction, DnsTransport, Loss, Output, Parser, Protocol, Record, Role};

/// Fixture folder under `testdata/`.
const DIR: &str = "dns";

// ---------------------------------------------------------------------------------------------
// Helpers: messages built byte by byte, records and losses as text.

/// A name in wire form.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A standard query with one question, class IN, recursion desired.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    for field in [id, 0x0100, 1, 0, 0, 0] {
        m.extend_from_slice(&field.to_be_bytes());
    }
    m.extend(wire_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// The response to `query(id, name, qtype)` with `rcode` and answers (type, rdata) owned by
/// the question's name (a compression pointer to offset 12).
fn response(id: u16, name: &str, qtype: u16, rcode: u16, answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut m = query(id, name, qtype);
    m[2..4].copy_from_slice(&(0x8180 | rcode).to_be_bytes());
    m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    for (rtype, rdata) in answers {
        m.extend_from_slice(&[0xC0, 12]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&300u32.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One record as a line; times left out when the feeding pattern changes them.
fn line(r: &Record, times: bool) -> String {
    let Detail::Dns(d) = &r.detail else {
        panic!("not a DNS record: {r:?}")
    };
    assert_eq!(r.protocol, Protocol::Dns);
    let transport = match d.transport {
        DnsTransport::Udp => "udp",
        DnsTransport::Tcp => "tcp",
    };
    let mut s = format!(
        "{:?} {transport} id={:#06x} {} {} -> {} [{}]",
        r.role,
        d.id,
        d.question_name,
        d.question_type,
        d.response_code.as_deref().unwrap_or("-"),
        d.answers.join(", ")
    );
    if let Some(peer) = d.peer {
        let _ = write!(s, " peer={peer}");
    }
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(s, " req={} resp={}", r.request_bytes, r.response_bytes);
    s
}

/// A datagram script: (direction, bytes, peer, ns).
type Script<'a> = Vec<(Direction, &'a [u8], Option<SocketAddr>, u64)>;

/// Feeds datagrams to one parser; returns the lines and the losses, and checks the role.
fn run_datagrams(script: &Script<'_>) -> (Vec<String>, String, Option<Role>) {
    let mut p = DnsParser::new();
    let mut out = Output::default();
    for &(dir, bytes, peer, ts) in script {
        p.feed_datagram(dir, bytes, bytes.len() as u64, peer, ts, &mut out);
    }
    p.close(script.last().map_or(0, |s| s.3) + 1, &mut out);
    for r in &out.records {
        assert_eq!(Some(r.role), p.role());
    }
    let lines = out.records.iter().map(|r| line(r, true)).collect();
    (lines, losses_text(&mut out), p.role())
}

// ---------------------------------------------------------------------------------------------
// Decoding: header, question, names, answers.

#[test]
fn question_names_and_types() {
    let m = query(0xabcd, "WwW.Example.COM", 1);
    let head = parse_head(&m).unwrap();
    assert_eq!(
        (head.id, head.is_response(), head.opcode()),
        (0xabcd, false, 0)
    );
    let q = head.question.unwrap();
    assert_eq!(
        (q.name.as_str(), q.qtype, q.qclass, q.end),
        ("WwW.Example.COM", 1, 1, m.len())
    );

    // Root, escapes, and bytes outside printable ASCII.
    assert_eq!(read_name(b"\0", 0), Some((".".to_owned(), 1)));
    assert_eq!(
        read_name(b"\x03a.b\x02\\\xff\0", 0).unwrap().0,
        r"a\.b.\\\255"
    );
    // A label over 63 bytes, a name over 255, a truncated label, obsolete label types.
    let mut long_label = vec![64u8];
    long_label.extend([b'a'; 64]);
    long_label.push(0);
    assert_eq!(read_name(&long_label, 0), None);
    let long_name: Vec<u8> = (0..5).flat_map(|_| wire_name(&"a".repeat(60))).collect();
    let long_name: Vec<u8> = long_name
        .chunks(62)
        .flat_map(|c| c.iter().copied().filter(|&b| b != 0))
        .chain([0])
        .collect();
    assert_eq!(read_name(&long_name, 0), None);
    assert_eq!(read_name(b"\x05ab", 0), None);
    assert_eq!(read_name(b"\x41a\0", 0), None);

    // Compression: pointers must point before the name; loops and forward pointers refused.
    let msg = b"\x03foo\x00\x03bar\xc0\x00";
    assert_eq!(read_name(msg, 5), Some(("bar.foo".to_owned(), 11)));
    assert_eq!(read_name(b"\xc0\x00", 0), None, "a pointer to itself");
    assert_eq!(
        read_name(b"\x01a\xc0\x04\xc0\x00", 0),
        None,
        "a forward pointer"
    );
    assert_eq!(
        read_name(b"\x01a\xc0\x00", 2),
        None,
        "a loop through a label"
    );

    // Type mnemonics.
    for (code, name) in [
        (1, "A"),
        (28, "AAAA"),
        (65, "HTTPS"),
        (255, "ANY"),
        (65400, "TYPE65400"),
    ] {
        assert_eq!(type_name(code), name);
    }
    // Header without a question; short header.
    assert!(parse_head(&[0; 12]).is_some_and(|h| h.question.is_none()));
    assert_eq!(parse_head(&[0; 11]), None);
    assert_eq!(parse_head(&query(1, "a", 1)[..15]), None);
}

#[test]
fn answers_presentation() {
    let mx = [&10u16.to_be_bytes()[..], &wire_name("mail.test")].concat();
    let srv = [&[0, 1, 0, 100, 1, 133][..], &wire_name("ldap.test")].concat();
    let soa = [
        wire_name("ns.test"),
        wire_name("admin.test"),
        [0, 0, 0, 7].repeat(5),
    ]
    .concat();
    let cases: Vec<(u16, Vec<u8>, &str)> = vec![
        (1, vec![192, 0, 2, 1], "192.0.2.1"),
        (
            28,
            [vec![0x20, 0x01, 0x0d, 0xb8], vec![0; 11], vec![1]].concat(),
            "2001:db8::1",
        ),
        (5, wire_name("target.test"), "CNAME target.test"),
        (2, wire_name("ns.test"), "NS ns.test"),
        (12, wire_name("host.test"), "PTR host.test"),
        (15, mx, "MX 10 mail.test"),
        (33, srv, "SRV 1 100 389 ldap.test"),
        (6, soa, "SOA ns.test admin.test 7"),
        (
            16,
            b"\x0bv=spf1 -all\x04a\"b\x01".to_vec(),
            r#"TXT "v=spf1 -all" "a\"b\001""#,
        ),
        (65, vec![0, 1, 0], "HTTPS"),
        (65400, vec![1, 2, 3], "TYPE65400"),
    ];
    for (rtype, rdata, want) in cases {
        let m = response(7, "q.test", rtype, 0, &[(rtype, rdata)]);
        let head = parse_head(&m).unwrap();
        let got = answers::decode(&m, &head, &mut Vec::new());
        assert_eq!(
            (got.rcode.as_str(), got.answers.as_slice()),
            ("NOERROR", &[want.to_owned()][..])
        );
    }
    // Response codes, extended by OPT: BADVERS is 16 (OPT TTL high byte 1, header 0).
    for (rcode, want) in [
        (2, "SERVFAIL"),
        (3, "NXDOMAIN"),
        (5, "REFUSED"),
        (12, "RCODE12"),
    ] {
        let m = response(7, "q.test", 1, rcode, &[]);
        assert_eq!(
            answers::decode(&m, &parse_head(&m).unwrap(), &mut Vec::new()).rcode,
            want
        );
    }
    let mut m = response(7, "q.test", 1, 0, &[]);
    m[10..12].copy_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&[0, 0, 41, 0x10, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        answers::decode(&m, &parse_head(&m).unwrap(), &mut Vec::new()).rcode,
        "BADVERS"
    );

    // Capped count; a record simple-dns refuses (class 9) leaves the answers empty.
    let many: Vec<(u16, Vec<u8>)> = (0..40).map(|i| (1, vec![10, 0, 0, i])).collect();
    let m = response(7, "q.test", 1, 0, &many);
    assert_eq!(
        answers::decode(&m, &parse_head(&m).unwrap(), &mut Vec::new())
            .answers
            .len(),
        MAX_ANSWERS
    );
    let mut m = response(7, "q.test", 1, 3, &[(1, vec![1, 2, 3, 4])]);
    let class_at = m.len() - 4 - 2 - 4 - 2;
    m[class_at..class_at + 2].copy_from_slice(&9u16.to_be_bytes());
    let got = answers::decode(&m, &parse_head(&m).unwrap(), &mut Vec::new());
    assert_eq!((got.rcode.as_str(), got.answers.len()), ("NXDOMAIN", 0));
    // Counts no message could hold are refused before simple-dns reserves room for them.
    let mut m = response(7, "q.test", 1, 0, &[]);
    m[6..12].copy_from_slice(&[0xff; 6]);
    assert!(
        answers::decode(&m, &parse_head(&m).unwrap(), &mut Vec::new())
            .answers
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Matching datagrams.

#[test]
fn matching_cases() {
    use Direction::{Egress as E, Ingress as I};
    let server = Some(addr("192.0.2.53:53"));
    let (qa, qaaaa) = (query(0x10, "host.test", 1), query(0x11, "host.test", 28));
    let ra = response(0x10, "host.test", 1, 0, &[(1, vec![192, 0, 2, 10])]);
    let raaaa = response(0x11, "host.test", 28, 0, &[]);
    let nx = response(0x12, "gone.test", 1, 3, &[]);
    let qnx = query(0x12, "gone.test", 1);

    // glibc: A and AAAA back to back, answers in the other order.
    let (lines, losses, role) = run_datagrams(&vec![
        (E, &qa[..], server, 1000),
        (E, &qaaaa[..], server, 1100),
        (I, &raaaa[..], server, 3000),
        (I, &ra[..], server, 4000),
    ]);
    assert_eq!(role, Some(Role::Client));
    assert_eq!(losses, "none");
    assert_eq!(
        lines,
        [
            "Client udp id=0x0011 host.test AAAA -> NOERROR [] peer=192.0.2.53:53 t=1100..3000 req=27 resp=27",
            "Client udp id=0x0010 host.test A -> NOERROR [192.0.2.10] peer=192.0.2.53:53 t=1000..4000 req=27 resp=43",
        ]
    );

    // A retransmission before the answer: one record from the first send; the second answer
    // (to the retransmission) has no query left.
    let (lines, losses, _) = run_datagrams(&vec![
        (E, &qa[..], server, 1000),
        (E, &qa[..], server, 5000),
        (I, &ra[..], server, 6000),
        (I, &ra[..], server, 6100),
    ]);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("t=1000..6000"), "{lines:?}");
    assert_eq!(losses, "unmatched_response=1");

    // A server: the same id from two clients; each answer goes to its own client.
    let (c1, c2) = (Some(addr("10.0.0.1:4000")), Some(addr("10.0.0.2:4000")));
    let (lines, losses, role) = run_datagrams(&vec![
        (I, &qa[..], c1, 1000),
        (I, &qa[..], c2, 1500),
        (E, &ra[..], c2, 2000),
        (E, &ra[..], c1, 2500),
    ]);
    assert_eq!((role, losses.as_str()), (Some(Role::Server), "none"));
    assert!(
        lines[0].contains("peer=10.0.0.2:4000 t=1500..2000"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("peer=10.0.0.1:4000 t=1000..2500"),
        "{lines:?}"
    );

    // Same id, other question: not an answer. Unanswered queries count at close.
    let (lines, losses, _) = run_datagrams(&vec![
        (E, &qnx[..], server, 1000),
        (E, &qa[..], server, 1000),
        (I, &raaaa[..], server, 2000),
        (I, &nx[..], server, 3000),
    ]);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("gone.test A -> NXDOMAIN []"), "{lines:?}");
    assert_eq!(losses, "unmatched_request=1 unmatched_response=1");

    // Unknown peers pair with known ones (a connected socket's send() has no address).
    let (lines, _, _) = run_datagrams(&vec![(E, &qa[..], None, 1000), (I, &ra[..], server, 2000)]);
    assert!(lines[0].contains("peer=192.0.2.53:53"), "{lines:?}");

    // A response first (joined late), garbage, and a query against the settled role.
    let (lines, losses, role) = run_datagrams(&vec![
        (I, &ra[..], server, 1000),
        (I, b"\x12\x34\x01", server, 2000),
        (I, &qa[..], server, 3000),
    ]);
    assert_eq!((lines.len(), role), (0, Some(Role::Client)));
    assert_eq!(losses, "malformed=2 unmatched_response=1");
}

#[test]
fn pending_is_bounded_and_expires() {
    let mut p = DnsParser::new();
    let mut out = Output::default();
    let peer = Some(addr("192.0.2.53:53"));
    for i in 0..MAX_PENDING + 10 {
        let q = query(i as u16, "host.test", 1);
        p.feed_datagram(
            Direction::Egress,
            &q,
            q.len() as u64,
            peer,
            1000 + i as u64,
            &mut out,
        );
    }
    assert_eq!(p.matcher.pending.len(), MAX_PENDING);
    assert_eq!(out.losses(Loss::UnmatchedRequest), 10);
    // A later datagram past the timeout expires them all; its own answer still pairs.
    let late = 1_000_000 + PENDING_TIMEOUT_NS;
    let q = query(0xffff, "x.test", 1);
    p.feed_datagram(Direction::Egress, &q, q.len() as u64, peer, late, &mut out);
    assert_eq!(p.matcher.pending.len(), 1);
    assert_eq!(out.losses(Loss::UnmatchedRequest), MAX_PENDING as u64 + 10);
    let r = response(0xffff, "x.test", 1, 0, &[]);
    p.feed_datagram(
        Direction::Ingress,
        &r,
        r.len() as u64,
        peer,
        late + 5,
        &mut out,
    );
    assert_eq!(out.records.len(), 1);
}

/// A datagram the receiver read only the start of (`MSG_TRUNC` into a smaller buffer), or the
/// capture limit cut: the question is read from what was captured, the sizes are the wire's.
#[test]
fn a_cut_datagram_keeps_its_wire_length() {
    let mut p = DnsParser::new();
    let mut out = Output::default();
    let peer = Some(addr("192.0.2.53:53"));
    let q = query(7, "web.test", 1);
    // A padded query (EDNS padding) of 128 bytes, of which the server read 64.
    p.feed_datagram(Direction::Ingress, &q, 128, peer, 1, &mut out);
    let r = response(7, "web.test", 1, 0, &[(1, vec![10, 9, 8, 7])]);
    p.feed_datagram(Direction::Egress, &r, r.len() as u64, peer, 2, &mut out);
    assert_eq!(out.records.len(), 1);
    let rec = &out.records[0];
    assert_eq!(rec.request_bytes, 128);
    assert_eq!(rec.response_bytes, r.len() as u64);
    match &rec.detail {
        Detail::Dns(d) => assert_eq!(d.question_name, "web.test"),
        other => panic!("not DNS: {other:?}"),
    }
    // A wire length below the captured bytes (never from the kernel) counts the bytes.
    p.feed_datagram(Direction::Ingress, &q, 3, peer, 3, &mut out);
    p.feed_datagram(Direction::Egress, &r, 0, peer, 4, &mut out);
    assert_eq!(out.records[1].request_bytes, q.len() as u64);
    assert_eq!(out.records[1].response_bytes, r.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// TCP framing.

/// A TCP exchange: length-prefixed queries, then the responses in the other order.
fn tcp_streams() -> (Vec<u8>, Vec<u8>) {
    let prefixed = |m: Vec<u8>| [(m.len() as u16).to_be_bytes().to_vec(), m].concat();
    let client = [
        prefixed(query(1, "a.test", 1)),
        prefixed(query(2, "b.test", 16)),
        prefixed(query(3, "c.test", 28)),
    ]
    .concat();
    let server = [
        prefixed(response(2, "b.test", 16, 0, &[(16, b"\x02hi".to_vec())])),
        prefixed(response(1, "a.test", 1, 0, &[(1, vec![1, 2, 3, 4])])),
        prefixed(response(3, "c.test", 28, 3, &[])),
    ]
    .concat();
    (client, server)
}

fn run_tcp(ops: &[Op<'_>], traced: Role) -> (Vec<String>, String) {
    let mut p = DnsParser::new();
    let mut out = Output::default();
    play(&mut p, ops, traced, &mut out);
    for r in &out.records {
        assert_eq!(r.role, traced);
    }
    let lines = out.records.iter().map(|r| line(r, false)).collect();
    (lines, losses_text(&mut out))
}

#[test]
fn tcp_split_anywhere() {
    let (client, server) = tcp_streams();
    let whole = [
        Op::Feed(Side::Client, &client[..], 1000),
        Op::Feed(Side::Server, &server[..], 2000),
        Op::Close(3000),
    ];
    let (want, losses) = run_tcp(&whole, Role::Client);
    assert_eq!(losses, "none");
    assert_eq!(
        want,
        [
            "Client tcp id=0x0002 b.test TXT -> NOERROR [TXT \"hi\"] req=26 resp=41",
            "Client tcp id=0x0001 a.test A -> NOERROR [1.2.3.4] req=26 resp=42",
            "Client tcp id=0x0003 c.test AAAA -> NXDOMAIN [] req=26 resp=26",
        ]
    );
    assert_eq!(run_tcp(&whole, Role::Server).0.len(), 3);
    // Every split point of each stream.
    for at in 0..=client.len().max(server.len()) {
        let (c, s) = (at.min(client.len()), at.min(server.len()));
        let ops = [
            Op::Feed(Side::Client, &client[..c], 1000),
            Op::Feed(Side::Client, &client[c..], 1000),
            Op::Feed(Side::Server, &server[..s], 2000),
            Op::Feed(Side::Server, &server[s..], 2000),
            Op::Close(3000),
        ];
        assert_eq!(
            run_tcp(&ops, Role::Client),
            (want.clone(), "none".to_owned()),
            "split at {at}"
        );
    }
    assert_eq!(run_tcp(&bytewise(&whole), Role::Client).0, want);
}

#[test]
fn tcp_gaps() {
    let (client, server) = tcp_streams();
    // A known gap inside the second response's body: that exchange is lost, framing holds.
    let first_resp = 2 + usize::from(u16::from_be_bytes([server[0], server[1]]));
    let ops = [
        Op::Feed(Side::Client, &client[..], 1000),
        Op::Feed(Side::Server, &server[..first_resp + 20], 2000),
        Op::Skip(Side::Server, Some(10), 2000),
        Op::Feed(Side::Server, &server[first_resp + 30..], 2000),
        Op::Close(3000),
    ];
    let (lines, losses) = run_tcp(&ops, Role::Client);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("c.test"), "{lines:?}");
    assert_eq!(losses, "unmatched_request=1 resync_bytes=42");

    // An unknown gap: the next feed that starts with a message resynchronises.
    let second = first_resp
        + 2
        + usize::from(u16::from_be_bytes([
            server[first_resp],
            server[first_resp + 1],
        ]));
    let ops = [
        Op::Feed(Side::Client, &client[..], 1000),
        Op::Feed(Side::Server, &server[..5], 2000),
        Op::Skip(Side::Server, None, 2000),
        Op::Feed(Side::Server, &server[first_resp + 3..second], 2000),
        Op::Feed(Side::Server, &server[second..], 2000),
        Op::Close(3000),
    ];
    let (lines, losses) = run_tcp(&ops, Role::Client);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("c.test"));
    assert!(losses.contains("unmatched_request=2"), "{losses}");

    // A message cut by the end of the stream.
    let ops = [
        Op::Feed(Side::Client, &client[..10], 1000),
        Op::End(Side::Client, 1000),
        Op::Close(3000),
    ];
    assert_eq!(run_tcp(&ops, Role::Client).1, "malformed=1");
}

// ---------------------------------------------------------------------------------------------
// Inference.

#[test]
fn inference_table() {
    let q = query(0x1234, "host.test", 1);
    let r = response(0x1234, "host.test", 1, 0, &[(1, vec![1, 2, 3, 4])]);
    let i = infer_datagram(Direction::Egress, &q).unwrap();
    assert_eq!(
        (i.protocol, i.confidence, i.sender_role),
        (Protocol::Dns, 80, Some(Role::Client))
    );
    let i = infer_datagram(Direction::Ingress, &r).unwrap();
    assert_eq!((i.confidence, i.sender_role), (80, Some(Role::Server)));
    let tcp = [(q.len() as u16).to_be_bytes().to_vec(), q.clone()].concat();
    let i = infer(Direction::Egress, &tcp).unwrap();
    assert_eq!((i.confidence, i.sender_role), (70, Some(Role::Client)));
    assert_eq!(
        infer(Direction::Egress, &tcp[..12]),
        None,
        "header cut short"
    );

    // Not plausible: other opcodes, two questions, a query with answers, trailing bytes.
    let mut notify = q.clone();
    notify[2] |= 0x20;
    let mut two = q.clone();
    two[5] = 2;
    let mut with_answer = q.clone();
    with_answer[7] = 1;
    let trailing = [q.clone(), vec![0; 8]].concat();
    for bad in [&notify, &two, &with_answer, &trailing, &q[..20].to_vec()] {
        assert_eq!(infer_datagram(Direction::Egress, bad), None, "{bad:?}");
    }

    // Other protocols' openings.
    let openings: [&[u8]; 10] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f", // PostgreSQL SSLRequest
        b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00", // PostgreSQL startup
        b"\x4a\x00\x00\x00\x0a\x35\x2e\x35\x2e\x35\x2d\x31\x30\x2e\x31\x31\x00\x00\x00\x00",
        b"*1\r\n$4\r\nPING\r\n",
        b"\x04\x00\x00\x01\x05\x00\x00\x00\x00", // CQL OPTIONS
        b"\x00\x00\x00\x21\x00\x12\x00\x03\x00\x00\x00\x01\x00\x07rdkafka\x00\x00\x00\x00",
        b"INFO {\"server_id\":\"x\"}\r\n",
        b"AMQP\x00\x00\x09\x01",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", // TLS ClientHello
    ];
    for bytes in openings {
        for dir in [Direction::Egress, Direction::Ingress] {
            assert_eq!(infer(dir, bytes), None, "{bytes:?}");
            assert_eq!(infer_datagram(dir, bytes), None, "{bytes:?}");
        }
    }
    // And the other protocols' recorded openings, both sides.
    for dir in [
        "http1",
        "mysql",
        "postgres",
        "redis",
        "cassandra",
        "kafka",
        "nats",
        "amqp",
    ] {
        let Ok(entries) = std::fs::read_dir(testdata(dir, "")) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "bin") {
                let bytes = std::fs::read(&path).unwrap();
                let head = &bytes[..bytes.len().min(4096)];
                assert_eq!(infer(Direction::Egress, head), None, "{}", path.display());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic: UDP datagrams.

/// One recorded datagram.
struct Datagram {
    us: u64,
    src: SocketAddr,
    dst: SocketAddr,
    bytes: Vec<u8>,
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// `<name>.datagrams`, as `extract.py` writes it.
fn load_datagrams(name: &str) -> Vec<Datagram> {
    let text = std::fs::read_to_string(testdata(DIR, &format!("{name}.datagrams"))).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Datagram {
                us: f[0].parse().unwrap(),
                src: addr(f[1]),
                dst: addr(f[2]),
                bytes: hex(f[3]),
            }
        })
        .collect()
}

/// The server's address: the destination of the first datagram.
fn server_of(dgrams: &[Datagram]) -> SocketAddr {
    dgrams[0].dst
}

/// Replays `dgrams` as seen by the socket `traced` (the server, or one client socket).
fn replay_socket(dgrams: &[&Datagram], traced: SocketAddr) -> (Vec<String>, String) {
    let script: Script<'_> = dgrams
        .iter()
        .map(|d| {
            let (dir, peer) = if d.src == traced {
                (Direction::Egress, d.dst)
            } else {
                (Direction::Ingress, d.src)
            };
            (dir, &d.bytes[..], Some(peer), d.us * 1000)
        })
        .collect();
    let (lines, losses, _) = run_datagrams(&script);
    (lines, losses)
}

/// The baseline text of a UDP case: the server's socket, then each client socket.
fn udp_outcome(dgrams: &[Datagram]) -> String {
    let server = server_of(dgrams);
    let mut text = String::new();
    let all: Vec<&Datagram> = dgrams.iter().collect();
    let (lines, losses) = replay_socket(&all, server);
    let _ = writeln!(text, "# traced: the server {server}");
    for l in lines {
        let _ = writeln!(text, "{l}");
    }
    let _ = writeln!(text, "losses: {losses}");
    let mut clients: Vec<SocketAddr> = Vec::new();
    for d in dgrams {
        let client = if d.src == server { d.dst } else { d.src };
        if !clients.contains(&client) {
            clients.push(client);
        }
    }
    for client in clients {
        let mine: Vec<&Datagram> = dgrams
            .iter()
            .filter(|d| d.src == client || d.dst == client)
            .collect();
        let (lines, losses) = replay_socket(&mine, client);
        let _ = writeln!(text, "# traced: the client {client}");
        for l in lines {
            let _ = writeln!(text, "{l}");
        }
        let _ = writeln!(text, "losses: {losses}");
    }
    text
}

#[test]
fn recorded_udp() {
    for case in ["udp_dig", "udp_truncated", "udp_glibc", "udp_python"] {
        let dgrams = load_datagrams(case);
        for (i, d) in dgrams.iter().enumerate() {
            // Every datagram dnsmasq and the clients sent is a DNS message but the garbage.
            if d.bytes.len() > 3 {
                let inferred = infer_datagram(Direction::Egress, &d.bytes);
                assert!(inferred.is_some(), "{case} datagram {i} not inferred");
            }
        }
        check_baseline(DIR, &format!("{case}.expected"), &udp_outcome(&dgrams));
    }
}

#[test]
fn recorded_glibc_pairs_interleaved_queries() {
    // glibc sends A and AAAA back to back on one socket: reversing the answers changes nothing
    // but the end times.
    let dgrams = load_datagrams("udp_glibc");
    let client = dgrams[0].src;
    let mine: Vec<&Datagram> = dgrams
        .iter()
        .filter(|d| d.src == client || d.dst == client)
        .collect();
    let (want, losses) = replay_socket(&mine, client);
    assert_eq!((want.len(), losses.as_str()), (2, "none"));
    // Both queries first, then the answers last first.
    let (queries, answers): (Vec<&Datagram>, Vec<&Datagram>) =
        mine.iter().partition(|d| d.src == client);
    let mine: Vec<&Datagram> = queries
        .into_iter()
        .chain(answers.into_iter().rev())
        .collect();
    let (got, losses) = replay_socket(&mine, client);
    assert_eq!(losses, "none");
    let strip = |l: &String| l.split(" t=").next().unwrap().to_owned();
    let mut want: Vec<String> = want.iter().map(strip).collect();
    let mut got: Vec<String> = got.iter().map(strip).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn recorded_python_retransmission() {
    // The first answer lost: the retransmission (same id, question, peer) joins the first
    // query, the answer to it completes one record timed from the first send.
    let dgrams = load_datagrams("udp_python");
    let client = dgrams[0].src;
    let first_answer = dgrams.iter().position(|d| d.dst == client).unwrap();
    let mine: Vec<&Datagram> = dgrams
        .iter()
        .enumerate()
        .filter(|(i, d)| *i != first_answer && (d.src == client || d.dst == client))
        .map(|(_, d)| d)
        .collect();
    let (lines, losses) = replay_socket(&mine, client);
    let first = lines.iter().find(|l| l.contains("id=0x1111")).unwrap();
    assert!(
        first.contains(&format!("t={}..", dgrams[0].us * 1000)),
        "{first}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("id=0x1111")).count(),
        1,
        "{lines:?}"
    );
    assert_eq!(losses, "malformed=1");
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic: TCP connections.

#[test]
fn recorded_tcp() {
    for case in ["tcp_retry", "tcp_keepopen", "tcp_pipelined"] {
        let cap = Capture::load(DIR, case);
        let first = infer(Direction::Egress, &cap.client).unwrap();
        assert_eq!(
            (first.confidence, first.sender_role),
            (70, Some(Role::Client))
        );
        let run = |ops: &[Op<'_>], traced: Role, times: bool| {
            let mut p = DnsParser::new();
            let mut out = Output::default();
            play(&mut p, ops, traced, &mut out);
            let mut text: String = out.records.iter().map(|r| line(r, times) + "\n").collect();
            let _ = writeln!(text, "losses: {}", losses_text(&mut out));
            text
        };
        let got = run(&cap.ops(), Role::Client, true);
        check_baseline(DIR, &format!("{case}.expected"), &got);
        let untimed = run(&cap.ops(), Role::Client, false);
        let server = run(&cap.ops(), Role::Server, false);
        assert_eq!(
            server.replace("Server ", "Client "),
            untimed,
            "{case}: server role"
        );
        assert_eq!(
            run(&bytewise(&cap.ops()), Role::Client, false),
            untimed,
            "{case}: bytewise"
        );
        for seed in 1..20 {
            let ops = rechunk(&cap.ops(), seed, 7);
            assert_eq!(
                run(&ops, Role::Client, false),
                untimed,
                "{case}: seed {seed}"
            );
        }
        assert_eq!(
            run(&cap.ops_whole(), Role::Client, false),
            untimed,
            "{case}: whole"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage and mutations: never a panic, never a hang, records only from whole exchanges.

#[test]
fn mutations_never_panic() {
    let mut rng = XorShift(0x5eed);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for case in ["udp_dig", "udp_truncated", "udp_glibc", "udp_python"] {
        messages.extend(load_datagrams(case).into_iter().map(|d| d.bytes));
    }
    for _ in 0..20_000 {
        let base = &messages[rng.below(messages.len() as u64) as usize];
        let mut m = base.clone();
        for _ in 0..=rng.below(4) {
            match rng.below(4) {
                0 if !m.is_empty() => {
                    let at = rng.below(m.len() as u64) as usize;
                    m[at] = rng.next() as u8;
                }
                1 if !m.is_empty() => m.truncate(rng.below(m.len() as u64) as usize),
                2 => m.push(rng.next() as u8),
                _ => {
                    // Compression pointers to anywhere, loops included.
                    if m.len() > 2 {
                        let at = rng.below(m.len() as u64 - 1) as usize;
                        m[at] = 0xC0 | (rng.next() as u8 & 0x3F);
                        m[at + 1] = rng.next() as u8;
                    }
                }
            }
        }
        let _ = simple_dns::Packet::parse(&m);
        let _ = infer_datagram(Direction::Egress, &m);
        let _ = infer(Direction::Ingress, &m);
        let mut p = DnsParser::new();
        let mut out = Output::default();
        p.feed_datagram(
            Direction::Egress,
            base,
            base.len() as u64,
            None,
            1,
            &mut out,
        );
        p.feed_datagram(Direction::Ingress, &m, m.len() as u64, None, 2, &mut out);
        p.feed(Direction::Ingress, &m, 3, &mut out);
        p.close(4, &mut out);
    }
    for _ in 0..2_000 {
        let garbage: Vec<u8> = (0..rng.below(600)).map(|_| rng.next() as u8).collect();
        let _ = simple_dns::Packet::parse(&garbage);
        let mut p = DnsParser::new();
        let mut out = Output::default();
        p.feed_datagram(
            Direction::Ingress,
            &garbage,
            rng.below(700),
            None,
            1,
            &mut out,
        );
        p.feed(Direction::Egress, &garbage, 1, &mut out);
        p.skip(Direction::Egress, Some(rng.below(100)), 2, &mut out);
        p.feed(Direction::Egress, &garbage, 3, &mut out);
        p.close(4, &mut out);
        assert!(out.records.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Public captures (nDPI, Zeek): read at run time from ../shared/captures.

mod public {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::net::{IpAddr, SocketAddr};
    use std::path::PathBuf;

    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use pcap_parser::Linktype;

    use super::{DIR, line, losses_text};
    use crate::testkit::{capture_frames, check_baseline};
    use crate::{Direction, Output, Parser};

    use super::super::DnsParser;

    /// A DNS payload: (UDP?, source, destination, bytes, ns).
    type Payload = (bool, SocketAddr, SocketAddr, Vec<u8>, u64);

    fn read(path: &str) -> Vec<Payload> {
        capture_frames(path)
            .into_iter()
            .filter_map(|(linktype, frame, ts)| payload(linktype, &frame, ts * 1000))
            .collect()
    }

    /// The UDP or TCP payload of one frame, if any.
    fn payload(linktype: Linktype, frame: &[u8], ts: u64) -> Option<Payload> {
        let packet = if linktype != Linktype::ETHERNET {
            SlicedPacket::from_ip(frame)
        } else if let Some(ip) = pppoe_ip(frame) {
            SlicedPacket::from_ip(ip)
        } else {
            SlicedPacket::from_ethernet(frame)
        };
        let packet = packet.ok()?;
        let (src, dst): (IpAddr, IpAddr) = match &packet.net {
            Some(NetSlice::Ipv4(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
            ),
            _ => return None,
        };
        let (udp, sport, dport, payload) = match &packet.transport {
            Some(TransportSlice::Udp(u)) => {
                (true, u.source_port(), u.destination_port(), u.payload())
            }
            Some(TransportSlice::Tcp(t)) => {
                (false, t.source_port(), t.destination_port(), t.payload())
            }
            _ => return None,
        };
        (!payload.is_empty()).then(|| {
            (
                udp,
                SocketAddr::new(src, sport),
                SocketAddr::new(dst, dport),
                payload.to_vec(),
                ts,
            )
        })
    }

    /// The IP packet inside a PPPoE session frame, behind any VLAN tags (as in nDPI's
    /// `dns.pcap`; etherparse does not read PPPoE).
    fn pppoe_ip(frame: &[u8]) -> Option<&[u8]> {
        let mut at = 12;
        loop {
            let ethertype = u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]);
            match ethertype {
                0x8100 | 0x88a8 => at += 4,
                // PPPoE header (6 bytes), then the PPP protocol (IPv4 0x0021, IPv6 0x0057).
                0x8864 => return frame.get(at + 2 + 6 + 2..),
                _ => return None,
            }
        }
    }

    /// The DNS server end of a flow: the lower port (53, 5353...).
    fn server_of(a: SocketAddr, b: SocketAddr) -> SocketAddr {
        if a.port() <= b.port() { a } else { b }
    }

    /// Each flow replayed as its client sees it; records and losses as text.
    fn replay(path: &str) -> String {
        let mut flows: BTreeMap<(bool, SocketAddr, SocketAddr), (DnsParser, Output)> =
            BTreeMap::new();
        for (udp, src, dst, bytes, ts) in read(path) {
            let server = server_of(src, dst);
            let client = if server == src { dst } else { src };
            let (parser, out) = flows.entry((udp, client, server)).or_default();
            let dir = if src == client {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            if udp {
                parser.feed_datagram(dir, &bytes, bytes.len() as u64, Some(server), ts, out);
            } else {
                parser.feed(dir, &bytes, ts, out);
            }
        }
        let mut text = format!("## {path}\n");
        for ((_, client, server), (mut parser, mut out)) in flows {
            parser.close(u64::MAX, &mut out);
            let _ = writeln!(text, "# {client} -> {server}");
            for r in &out.records {
                let _ = writeln!(text, "{}", line(r, false));
            }
            let _ = writeln!(text, "losses: {}", losses_text(&mut out));
        }
        text
    }

    #[test]
    fn public_captures() {
        let dns_pcap = replay("ndpi/dns.pcap");
        assert!(
            dns_pcap.contains(
                "Client udp id=0xbc1f www.example.com AAAA -> NOERROR [] peer=192.168.170.20:53"
            ),
            "{dns_pcap}"
        );
        assert!(dns_pcap.contains(
            "Client udp id=0x7843 e7.whatsapp.net A -> NOERROR [169.45.219.235, 169.47.40.142, 169.45.248.121, 108.168.176.234, 169.45.248.189, 169.45.248.180, 169.53.81.79, 169.45.219.232]"
        ), "{dns_pcap}");
        assert!(
            dns_pcap.contains("losses: unmatched_response=1"),
            "{dns_pcap}"
        );
        let mut all = dns_pcap;
        all += &replay("ndpi/malformed_dns.pcap");
        let mut zeek: Vec<String> = std::fs::read_dir(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures/zeek/dns"),
        )
        .unwrap()
        .flatten()
        .map(|e| format!("zeek/dns/{}", e.file_name().to_string_lossy()))
        .collect();
        zeek.sort();
        for path in zeek {
            all += &replay(&path);
        }
        check_baseline(DIR, "public_captures.expected", &all);
        // Large and hostile: only no panic, and its summary.
        let bad = replay("ndpi/bad-dns-traffic.pcap");
        assert!(bad.contains("losses"));
    }
}
