//! MySQL tests: byte-literal tables for framing and response edge cases, and golden replays of
//! traffic recorded from MariaDB (`testdata/mysql/`, see its README) in both roles, split every
//! way, with gaps, and joined mid-stream.
//!
//! Baselines are `testdata/mysql/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers`.

use std::fmt::Write as _;

use super::{MySqlParser, infer};
use crate::testkit::{
    Capture, Chunkings, Op, Outcome, Side, XorShift, assert_any_chunks, assert_split_in_two,
    bytewise, check_baseline, direction, outcome, play,
};

/// Fixture folder under `testdata/`.
const DIR: &str = "mysql";
use crate::{DbRecord, Detail, Direction, Loss, Output, Parser, Protocol, Record, Role};

fn db(r: &Record) -> &DbRecord {
    match &r.detail {
        Detail::Db(db) => db,
        other => panic!("not a database record: {other:?}"),
    }
}

/// Runs `ops` with the traced process as `traced`; checks every record's role and protocol.
fn run(ops: &[Op<'_>], traced: Role, times: bool) -> Outcome {
    let render = |r: &Record| line(r, times);
    outcome(MySqlParser::new(), ops, traced, Protocol::MySql, render).0
}

/// One record as a line; times in ns (left out when the feeding pattern changes them).
fn line(r: &Record, times: bool) -> String {
    let d = db(r);
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let mut s = format!(
        "{} {} coll={} ns={} rows={} status={} err={}",
        d.system.as_str(),
        d.operation.as_deref().unwrap_or("-"),
        opt(&d.collection),
        opt(&d.namespace),
        d.rows.map_or("-".to_owned(), |n| n.to_string()),
        opt(&d.status_code),
        opt(&d.error_message),
    );
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let query = d.query_text.as_deref().map_or("-".to_owned(), |q| {
        let short: String = q.chars().take(80).collect();
        format!("{short:?}")
    });
    let _ = write!(
        s,
        " req={} resp={} ver={} q={query}",
        r.request_bytes,
        r.response_bytes,
        opt(&d.server_version)
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Byte-literal tables.

/// A packet: header (length, sequence id) and payload.
fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut v = vec![len[0], len[1], len[2], seq];
    v.extend_from_slice(payload);
    v
}

/// A column definition packet (catalog `def`, then enough to look real).
fn coldef(seq: u8) -> Vec<u8> {
    pkt(
        seq,
        b"\x03def\x04shop\x05items\x05items\x02id\x02id\x0c\x3f\x00\x0b\x00\x00\x00\x03\x03\x42\x00\x00\x00",
    )
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

const OK: &[u8] = b"\x00\x00\x00\x02\x00\x00\x00";
const EOF: &[u8] = b"\xfe\x00\x00\x02\x00";

/// Mid-stream (no handshake) scripts: client bytes, server bytes, expected lines (untimed,
/// without versions) and losses.
#[test]
fn response_table() {
    let select = pkt(0, b"\x03SELECT id FROM items");
    /// Name, client bytes, server bytes, record lines, losses.
    type Row<'a> = (&'a str, Vec<u8>, Vec<u8>, &'a [&'a str], &'a str);
    let cases: Vec<Row<'_>> = vec![
        (
            "result set with EOF after definitions",
            select.clone(),
            cat(&[
                pkt(1, b"\x01"),
                coldef(2),
                pkt(3, EOF),
                pkt(4, b"\x011"),
                pkt(5, b"\x012"),
                pkt(6, EOF),
            ]),
            &[
                "mysql SELECT coll=\"items\" ns=- rows=2 status=- err=- req=25 resp=79 ver=- q=\"SELECT id FROM items\"",
            ],
            "none",
        ),
        (
            "result set with DEPRECATE_EOF",
            select.clone(),
            cat(&[
                pkt(1, b"\x01"),
                coldef(2),
                pkt(3, b"\x011"),
                pkt(4, b"\xfe\x00\x00\x02\x00\x00\x00"),
            ]),
            &[
                "mysql SELECT coll=\"items\" ns=- rows=1 status=- err=- req=25 resp=66 ver=- q=\"SELECT id FROM items\"",
            ],
            "none",
        ),
        (
            "empty result set, EOF or terminator unknown: settled by the next command",
            cat(&[select.clone(), pkt(0, b"\x0e")]),
            cat(&[
                pkt(1, b"\x01"),
                coldef(2),
                pkt(3, b"\xfe\x00\x00\x02\x00\x00\x00"),
                pkt(1, OK),
            ]),
            &[
                "mysql SELECT coll=\"items\" ns=- rows=0 status=- err=- req=25 resp=60 ver=- q=\"SELECT id FROM items\"",
                "mysql PING coll=- ns=- rows=- status=- err=- req=5 resp=11 ver=- q=-",
            ],
            "none",
        ),
        (
            "error with SQLSTATE",
            select.clone(),
            pkt(1, b"\xff\x7a\x04#42S02Table 'shop.items' doesn't exist"),
            &[
                "mysql SELECT coll=\"items\" ns=- rows=- status=\"1146\" err=\"[42S02] Table 'shop.items' doesn't exist\" req=25 resp=45 ver=- q=\"SELECT id FROM items\"",
            ],
            "none",
        ),
        (
            "OK with affected rows, and two result sets",
            cat(&[pkt(0, b"\x03UPDATE t SET a = 1"), pkt(0, b"\x03CALL p()")]),
            cat(&[
                pkt(1, b"\x00\x03\x00\x02\x00\x00\x00"),
                pkt(1, b"\x01"),
                coldef(2),
                pkt(3, b"\x011"),
                pkt(4, b"\xfe\x00\x00\x0a\x00\x00\x00"),
                pkt(5, b"\x01"),
                coldef(6),
                pkt(7, b"\x011"),
                pkt(8, b"\x012"),
                pkt(9, b"\xfe\x00\x00\x0a\x00\x00\x00"),
                pkt(10, OK),
            ]),
            &[
                "mysql UPDATE coll=\"t\" ns=- rows=3 status=- err=- req=23 resp=11 ver=- q=\"UPDATE t SET a = 1\"",
                "mysql CALL coll=- ns=- rows=3 status=- err=- req=13 resp=149 ver=- q=\"CALL p()\"",
            ],
            "none",
        ),
        (
            "prepare, execute (binary rows), close, execute of an unknown id",
            cat(&[
                pkt(0, b"\x16SELECT id FROM items WHERE id > ?"),
                pkt(
                    0,
                    b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x00\x01\x00\x00\x00",
                ),
                pkt(0, b"\x19\x07\x00\x00\x00"),
                pkt(0, b"\x17\x07\x00\x00\x00\x00\x01\x00\x00\x00"),
            ]),
            cat(&[
                pkt(1, b"\x00\x07\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"),
                coldef(2),
                pkt(3, EOF),
                coldef(4),
                pkt(5, EOF),
                pkt(1, b"\x01"),
                coldef(2),
                pkt(3, EOF),
                pkt(4, b"\x00\x00\x02\x00\x00\x00"),
                pkt(5, EOF),
                pkt(1, b"\xff\x13\x05#HY000Unknown prepared statement handler"),
            ]),
            &[
                "mysql PREPARE coll=\"items\" ns=- rows=- status=- err=- req=38 resp=122 ver=- q=\"SELECT id FROM items WHERE id > ?\"",
                "mysql SELECT coll=\"items\" ns=- rows=1 status=- err=- req=22 resp=77 ver=- q=\"SELECT id FROM items WHERE id > ?\"",
                "mysql EXECUTE coll=- ns=- rows=- status=\"1299\" err=\"[HY000] Unknown prepared statement handler\" req=14 resp=47 ver=- q=-",
            ],
            "none",
        ),
        (
            "COM_INIT_DB and USE change the namespace; query attributes prefix removed",
            cat(&[
                pkt(0, b"\x02shop"),
                pkt(0, b"\x03\x00\x01SELECT 1"),
                pkt(0, b"\x03USE `other`;"),
                pkt(0, b"\x0e"),
            ]),
            cat(&[pkt(1, OK), pkt(1, OK), pkt(1, OK), pkt(1, OK)]),
            &[
                "mysql USE coll=- ns=\"shop\" rows=- status=- err=- req=9 resp=11 ver=- q=-",
                "mysql SELECT coll=- ns=\"shop\" rows=0 status=- err=- req=15 resp=11 ver=- q=\"SELECT 1\"",
                "mysql USE coll=- ns=\"other\" rows=0 status=- err=- req=17 resp=11 ver=- q=\"USE `other`;\"",
                "mysql PING coll=- ns=\"other\" rows=- status=- err=- req=5 resp=11 ver=- q=-",
            ],
            "none",
        ),
        (
            "unknown command byte: malformed, resync on the next command",
            cat(&[
                pkt(0, b"\x03SELECT 1"),
                pkt(0, b"\x99junk"),
                pkt(0, b"\x0e"),
            ]),
            cat(&[pkt(1, OK), pkt(1, OK), pkt(1, OK)]),
            &[
                "mysql SELECT coll=- ns=- rows=0 status=- err=- req=13 resp=11 ver=- q=\"SELECT 1\"",
                "mysql PING coll=- ns=- rows=- status=- err=- req=5 resp=11 ver=- q=-",
            ],
            "malformed=1 unmatched_response=1",
        ),
        (
            "a response with no command",
            pkt(0, b"\x0e"),
            cat(&[pkt(1, OK), pkt(1, OK)]),
            &["mysql PING coll=- ns=- rows=- status=- err=- req=5 resp=11 ver=- q=-"],
            "unmatched_response=1",
        ),
        (
            "a command with no response",
            pkt(0, b"\x03SELECT 1"),
            Vec::new(),
            &[],
            "unmatched_request=1",
        ),
    ];
    for (name, client, server, want, losses) in cases {
        // Client first, then the server, each in one feed and byte by byte.
        for traced in [Role::Client, Role::Server] {
            let ops = vec![
                Op::Feed(Side::Client, &client, 1000),
                Op::Feed(Side::Server, &server, 2000),
                Op::Close(3000),
            ];
            let want = Outcome {
                lines: want.iter().map(|s| s.to_string()).collect(),
                losses: losses.to_string(),
            };
            // Interleave per packet for scripts with several commands: feed each command, then
            // the server bytes up to its response's end, in order.
            let got = run(&interleave(&client, &server), traced, false);
            if std::env::var_os("MYSQL_TABLE").is_some() {
                eprintln!("{name}\n{}", got.text());
                continue;
            }
            assert_eq!(got, want, "{name} as {traced:?}\n{}", got.text());
            let _ = ops;
            assert_eq!(
                run(&bytewise(&interleave(&client, &server)), traced, false),
                want,
                "{name} bytewise"
            );
        }
    }
}

/// Splits both streams into packets and feeds each client packet with seq 0 followed by the
/// server packets up to (not including) the next response's first packet (seq 1).
fn interleave<'a>(client: &'a [u8], server: &'a [u8]) -> Vec<Op<'a>> {
    let packets = |b: &'a [u8]| -> Vec<(u8, &'a [u8])> {
        let mut v = Vec::new();
        let mut at = 0;
        while at + 4 <= b.len() {
            let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0]) as usize;
            let end = (at + 4 + len).min(b.len());
            v.push((b[at + 3], &b[at..end]));
            at = end;
        }
        v
    };
    let (c, s) = (packets(client), packets(server));
    let mut ops = Vec::new();
    let mut si = 0;
    let mut ts = 1000;
    for (_, bytes) in c {
        ops.push(Op::Feed(Side::Client, bytes, ts));
        ts += 1000;
        // COM_QUIT, COM_STMT_SEND_LONG_DATA and COM_STMT_CLOSE have no response.
        if matches!(bytes.get(4), Some(0x01 | 0x18 | 0x19)) {
            continue;
        }
        let mut first = true;
        while si < s.len() && (first || s[si].0 != 1) {
            ops.push(Op::Feed(Side::Server, s[si].1, ts));
            ts += 1000;
            si += 1;
            first = false;
        }
    }
    while si < s.len() {
        ops.push(Op::Feed(Side::Server, s[si].1, ts));
        si += 1;
    }
    ops.push(Op::Close(ts + 1000));
    ops
}

/// A payload of 16 MiB and more arrives as several physical packets: one command.
#[test]
fn continued_query_is_one_command() {
    let mut query = vec![0x03];
    query.extend_from_slice(b"SELECT '");
    query.resize(0x00ff_ffff, b'a');
    let mut client = vec![0xff, 0xff, 0xff, 0x00];
    client.extend_from_slice(&query);
    client.extend_from_slice(&pkt(1, b"'"));
    let server = pkt(1, OK);
    let ops = vec![
        Op::Feed(Side::Client, &client, 1000),
        Op::Feed(Side::Server, &server, 2000),
        Op::Close(3000),
    ];
    let got = run(&ops, Role::Client, true);
    assert_eq!(got.lines.len(), 1, "{}", got.text());
    assert!(got.lines[0].contains("req=16777224"), "{}", got.text());
    assert_eq!(got.losses, "oversized=1");
}

/// Statements with no verb to name (empty, comments only), as the fuzz target once found:
/// the record is named by its command, never left without an operation. (A `SELECT 1` first:
/// joined mid-stream, the parser takes only a command it can read as one.)
#[test]
fn verbless_statement_is_named_by_its_command() {
    for text in [&b""[..], b"   ", b"/* nothing */", b"-- only a comment"] {
        let mut query = vec![0x03];
        query.extend_from_slice(text);
        let (first, answer) = (pkt(0, b"\x03SELECT 1"), pkt(1, OK));
        let (client, server) = (pkt(0, &query), pkt(1, OK));
        let ops = vec![
            Op::Feed(Side::Client, &first, 1000),
            Op::Feed(Side::Server, &answer, 2000),
            Op::Feed(Side::Client, &client, 3000),
            Op::Feed(Side::Server, &server, 4000),
            Op::Close(5000),
        ];
        let mut parser = MySqlParser::new();
        let mut out = Output::default();
        play(&mut parser, &ops, Role::Client, &mut out);
        assert_eq!(out.records.len(), 2, "{text:?}: {:?}", out.records);
        assert_eq!(
            db(&out.records[1]).operation.as_deref(),
            Some("QUERY"),
            "{text:?}"
        );
    }
}

/// SSLRequest: everything after it is TLS, not parsed.
#[test]
fn ssl_request_stops_parsing() {
    let cap = Capture::load(DIR, "cli_session");
    let greeting_len =
        4 + u32::from_le_bytes([cap.server[0], cap.server[1], cap.server[2], 0]) as usize;
    let mut ssl = vec![0u8; 32];
    ssl[..4].copy_from_slice(&(0x0000_8a0du32 | super::types::CLIENT_SSL).to_le_bytes());
    let ssl = pkt(1, &ssl);
    let ops = vec![
        Op::Feed(Side::Server, &cap.server[..greeting_len], 1000),
        Op::Feed(Side::Client, &ssl, 2000),
        Op::Feed(
            Side::Client,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            3000,
        ),
        Op::Feed(
            Side::Server,
            b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76\x03\x03",
            4000,
        ),
        Op::Close(5000),
    ];
    for traced in [Role::Client, Role::Server] {
        let got = run(&ops, traced, true);
        assert_eq!(
            (got.lines.len(), got.losses.as_str()),
            (0, "none"),
            "{}",
            got.text()
        );
    }
}

#[test]
fn role_is_unknown_until_a_greeting_or_command() {
    let mut parser = MySqlParser::new();
    let mut out = Output::default();
    assert_eq!((parser.protocol(), parser.role()), (Protocol::MySql, None));
    parser.feed(Direction::Ingress, &pkt(1, OK), 1, &mut out);
    assert_eq!(parser.role(), None);
    parser.feed(Direction::Ingress, &pkt(0, b"\x03SELECT 1"), 2, &mut out);
    assert_eq!(parser.role(), Some(Role::Server));
    let cap = Capture::load(DIR, "ping");
    let mut parser = MySqlParser::new();
    parser.feed(Direction::Ingress, &cap.server[..20], 1, &mut out);
    assert_eq!(parser.role(), None);
    parser.feed(Direction::Ingress, &cap.server[20..], 2, &mut out);
    assert_eq!(parser.role(), Some(Role::Client));
}

/// Arbitrary bytes in any direction, any split: no panic.
#[test]
fn garbage_does_not_panic() {
    let mut rng = XorShift(0x5eed);
    for _ in 0..2000 {
        let mut parser = MySqlParser::new();
        let mut out = Output::default();
        for step in 0..20 {
            let dir = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            match rng.below(10) {
                0 => parser.skip(dir, Some(rng.below(100)), step, &mut out),
                1 => parser.skip(dir, None, step, &mut out),
                _ => {
                    let n = rng.below(64) as usize;
                    let mut bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 && bytes.len() > 4 {
                        bytes[3] = rng.below(3) as u8;
                        bytes[2] = 0;
                        bytes[1] = 0;
                        bytes[0] %= 40;
                    }
                    parser.feed(dir, &bytes, step, &mut out);
                }
            }
        }
        parser.close(99, &mut out);
        for r in &out.records {
            assert!(r.start_ns <= r.end_ns);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

/// The recorded cases (see testdata/mysql/README.md).
const CASES: &[&str] = &[
    "cli_session",
    "large_row",
    "ping",
    "pymysql_queries",
    "connector_prepared",
];

/// Each capture, as recorded and in both roles, against its baseline.
#[test]
fn captures_match_baselines() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        let got = run(&cap.ops(), Role::Client, true);
        check_baseline(DIR, &format!("{name}.expected"), &got.text());
        assert_eq!(run(&cap.ops(), Role::Server, true), got, "{name} as server");
    }
}

/// The first bytes each side sent are recognised, with the right role.
#[test]
fn captures_are_inferred() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        let got = infer(Direction::Ingress, &cap.server).map(|i| (i.confidence, i.sender_role));
        assert_eq!(got, Some((100, Some(Role::Server))), "{name}");
        assert_eq!(
            crate::infer(Direction::Ingress, &cap.server).map(|i| i.protocol),
            Some(Protocol::MySql)
        );
    }
}

/// Each capture with one feed cut in two, everywhere (every 97th place of feeds over 2 KiB).
#[test]
fn captures_split_everywhere() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        assert_split_in_two(name, &cap.ops(), run, |len| if len > 2048 { 97 } else { 1 });
    }
}

/// Each capture fed in small random chunks and byte by byte.
#[test]
fn captures_in_any_chunks() {
    let ways = Chunkings {
        whole: false,
        ..Chunkings::FINE
    };
    for &name in CASES {
        assert_any_chunks(name, &Capture::load(DIR, name), run, &ways);
    }
}

/// Where the packet carrying `needle` starts in `stream`, and its payload length.
fn packet_with(stream: &[u8], needle: &[u8]) -> (usize, usize) {
    let mut at = 0;
    while at + 4 <= stream.len() {
        let len = u32::from_le_bytes([stream[at], stream[at + 1], stream[at + 2], 0]) as usize;
        let end = (at + 4 + len).min(stream.len());
        if stream[at + 4..end]
            .windows(needle.len())
            .any(|w| w == needle)
        {
            return (at, len);
        }
        at = end;
    }
    panic!("no packet with {needle:?}")
}

/// Bytes moved but not captured (the 16 KiB cut) inside the 100 KB row change nothing.
#[test]
fn capture_with_uncaptured_row_bytes() {
    let cap = Capture::load(DIR, "large_row");
    let (at, len) = packet_with(&cap.server, b"xxxxxxxx");
    assert!(len > 100_000);
    for traced in [Role::Client, Role::Server] {
        let want = run(&cap.ops(), traced, true);
        for range in [
            at + 4..at + 4 + len,
            at + 16_384..at + 4 + len - 1,
            at + 5..at + 6,
        ] {
            let got = run(
                &cap.ops_with_gap(Side::Server, range.clone(), true),
                traced,
                true,
            );
            assert_eq!(got, want, "gap {range:?} as {traced:?}");
        }
    }
}

/// A gap of unknown length in a response loses that exchange only; the framer resyncs on the
/// next response and the next command pairs with it.
#[test]
fn capture_with_gap_in_a_response_resyncs() {
    let cap = Capture::load(DIR, "cli_session");
    let all = run(&cap.ops(), Role::Client, true);
    let (at, _) = packet_with(&cap.server, b"kettle");
    for traced in [Role::Client, Role::Server] {
        let got = run(
            &cap.ops_with_gap(Side::Server, at + 2..at + 6, false),
            traced,
            true,
        );
        let select = all
            .lines
            .iter()
            .position(|l| l.contains("ORDER BY id"))
            .expect("the select");
        let mut want = all.lines.clone();
        want.remove(select);
        assert_eq!(got.lines, want, "as {traced:?}\n{}", got.text());
        assert!(
            got.losses.starts_with("unmatched_request=1 resync_bytes="),
            "{}",
            got.losses
        );
    }
}

/// A gap of unknown length in a command: the command is lost, its response unmatched, the
/// next command found again.
#[test]
fn capture_with_gap_in_a_command_resyncs() {
    let cap = Capture::load(DIR, "cli_session");
    let all = run(&cap.ops(), Role::Client, true);
    let (at, _) = packet_with(&cap.client, b"SELECT * FROM nope");
    let got = run(
        &cap.ops_with_gap(Side::Client, at + 6..at + 8, false),
        Role::Client,
        true,
    );
    let mut want = all.lines.clone();
    want.retain(|l| !l.contains("nope"));
    assert_eq!(got.lines, want, "{}", got.text());
    assert!(
        got.losses.contains("unmatched_response=1"),
        "{}",
        got.losses
    );
}

/// Joined after the handshake: the same exchanges, without what only the handshake tells.
#[test]
fn captures_joined_mid_stream() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        let all = run(&cap.ops(), Role::Client, false);
        // The first client segment with a seq-0 packet is the first command.
        let first = cap
            .timeline
            .iter()
            .position(|(side, _, r)| {
                *side == Side::Client
                    && r.as_ref()
                        .is_some_and(|r| cap.client.get(r.start + 3) == Some(&0))
            })
            .expect("a command");
        for traced in [Role::Client, Role::Server] {
            let got = run(&cap.ops_from(first), traced, false);
            let strip = |l: &str| -> String {
                let l = l.replacen("mariadb ", "mysql ", 1);
                let l = match l.find(" ver=") {
                    Some(v) => {
                        let q = l.find(" q=").unwrap_or(l.len());
                        format!("{}{}", &l[..v], &l[q..])
                    }
                    None => l,
                };
                // The namespace from the handshake is not known mid-stream.
                match (l.find(" ns="), l.find(" rows=")) {
                    (Some(a), Some(b)) => format!("{}{}", &l[..a], &l[b..]),
                    _ => l,
                }
            };
            let want: Vec<String> = all.lines.iter().map(|l| strip(l)).collect();
            let got_lines: Vec<String> = got.lines.iter().map(|l| strip(l)).collect();
            assert_eq!(got_lines, want, "{name} as {traced:?}\n{}", got.text());
            assert_eq!(got.losses, all.losses, "{name} as {traced:?}");
        }
    }
}

/// Recorded traffic with random bytes changed, random splits and random gaps: no panic, and
/// records stay consistent (the fuzz target's checks, on inputs close to real ones).
#[test]
fn mutated_captures_do_not_panic() {
    let mut rng = XorShift(0xbad5eed);
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        for _ in 0..100 {
            let mut client = cap.client.clone();
            let mut server = cap.server.clone();
            for _ in 0..rng.below(4) {
                let stream = if rng.below(2) == 0 {
                    &mut client
                } else {
                    &mut server
                };
                let at = rng.below(stream.len() as u64) as usize;
                stream[at] = rng.next() as u8;
            }
            let mut parser = MySqlParser::new();
            let mut out = Output::default();
            let mut offsets = [0usize; 2];
            for (step, (side, _, range)) in cap.timeline.iter().enumerate() {
                let ts = step as u64;
                let (i, stream) = match side {
                    Side::Client => (0, &client),
                    Side::Server => (1, &server),
                };
                let dir = direction(*side, Role::Client);
                let Some(range) = range else {
                    parser.end(dir, ts, &mut out);
                    continue;
                };
                while offsets[i] < range.end {
                    let n = (rng.below(300) as usize + 1).min(range.end - offsets[i]);
                    if rng.below(20) == 0 {
                        let len = (rng.below(3) != 0).then_some(n as u64);
                        parser.skip(dir, len, ts, &mut out);
                    } else {
                        parser.feed(dir, &stream[offsets[i]..offsets[i] + n], ts, &mut out);
                    }
                    offsets[i] += n;
                }
            }
            parser.close(cap.timeline.len() as u64, &mut out);
            for r in &out.records {
                assert!(r.start_ns <= r.end_ns, "{name}: {r:?}");
                assert_eq!(Some(r.role), parser.role(), "{name}: {r:?}");
            }
            let _ = out.losses(Loss::Malformed);
        }
    }
}

/// Joined in the middle of a result set: the rest of it is passed over, and the exchanges that
/// follow are parsed.
#[test]
fn capture_joined_inside_a_response() {
    let cap = Capture::load(DIR, "cli_session");
    let all = run(&cap.ops(), Role::Client, false);
    let (row, _) = packet_with(&cap.server, b"kettle");
    let nope = cap
        .timeline
        .iter()
        .position(|(side, _, r)| {
            *side == Side::Client
                && r.as_ref()
                    .is_some_and(|r| cap.client[r.clone()].windows(4).any(|w| w == b"nope"))
        })
        .expect("the failing select");
    let select_end = cap.timeline[..nope]
        .iter()
        .rev()
        .find_map(|(side, _, r)| (*side == Side::Server).then(|| r.clone()).flatten())
        .expect("the select's response")
        .end;
    let mut ops = vec![Op::Feed(Side::Server, &cap.server[row + 5..select_end], 1)];
    ops.extend(cap.ops_from(nope));
    let strip = |l: &str| -> String {
        let l = l.replacen("mariadb ", "mysql ", 1);
        let cut = |l: &str, from: &str, to: &str| match (l.find(from), l.find(to)) {
            (Some(a), Some(b)) => format!("{}{}", &l[..a], &l[b..]),
            _ => l.to_owned(),
        };
        cut(&cut(&l, " ver=", " q="), " ns=", " rows=")
    };
    let after = all
        .lines
        .iter()
        .position(|l| l.contains("nope"))
        .expect("nope");
    let want: Vec<String> = all.lines[after..].iter().map(|l| strip(l)).collect();
    for traced in [Role::Client, Role::Server] {
        let got = run(&ops, traced, false);
        let lines: Vec<String> = got.lines.iter().map(|l| strip(l)).collect();
        assert_eq!(lines, want, "as {traced:?}\n{}", got.text());
        assert!(got.losses.starts_with("resync_bytes="), "{}", got.losses);
        assert!(!got.losses.contains(' '), "{}", got.losses);
    }
}
