//! Redis tests: byte-literal tables for framing and matching edge cases, and golden replays of
//! traffic recorded from redis-server (`testdata/redis/`, see its README) in both roles, split
//! every way, with gaps, and checked against the `redis-protocol` crate's decoder.
//!
//! Baselines are `testdata/redis/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers`.

use std::fmt::Write as _;
use std::ops::Range;

use super::infer::{CONTAINERS, KEY_FIRST};
use super::{KNOWN_COMMANDS, MAX_LINE, RedisParser, infer};
use crate::testkit::{
    Capture, Case, Chunkings, Op, Outcome, Script, Side, XorShift, assert_any_chunks,
    assert_split_in_two, case_failures, check_baseline, direction, outcome,
};

/// Fixture folder under `testdata/`.
const DIR: &str = "redis";
use crate::{DbSystem, Detail, Direction, Output, Parser, Protocol, Record, Role};

/// Runs `ops` with the traced process as `traced`; checks every record's role and protocol.
fn run(ops: &[Op<'_>], traced: Role, times: bool) -> Outcome {
    let render = |r: &Record| line(r, times);
    let (mut got, parser) = outcome(RedisParser::new(), ops, traced, Protocol::Redis, render);
    if parser.pushes() > 0 {
        let _ = write!(got.losses, " (pushes={})", parser.pushes());
    }
    got
}

/// One record as a line; times in ns (left out when the feeding pattern changes them).
fn line(r: &Record, times: bool) -> String {
    let Detail::Db(d) = &r.detail else {
        panic!("not a database record: {r:?}")
    };
    assert_eq!(d.system, DbSystem::Redis);
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let mut s = format!(
        "{} {} ns={}",
        d.operation.as_deref().unwrap_or("-"),
        opt(&d.query_text),
        opt(&d.namespace)
    );
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(s, " req={} resp={}", r.request_bytes, r.response_bytes);
    if d.status_code.is_some() || d.error_message.is_some() {
        let _ = write!(
            s,
            " status={} error={}",
            opt(&d.status_code),
            opt(&d.error_message)
        );
    }
    if let Some(n) = d.batch_size {
        let _ = write!(s, " batch={n}");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Byte-literal tables.

const GET_K: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
const SET_K_V: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";

#[test]
fn framing_table() {
    let long_line = format!("+{}\r\n", "x".repeat(MAX_LINE + 1));
    let cases = [
        Case {
            name: "set and get, value never in the query text",
            ops: Script::new().c(SET_K_V).s(b"+OK\r\n").c(GET_K).s(b"$5\r\nvalue\r\n").0,
            want: &[
                r#"SET "SET k" ns="0" t=1000..2000 req=31 resp=5"#,
                r#"GET "GET k" ns="0" t=3000..4000 req=20 resp=11"#,
            ],
            losses: "none",
        },
        Case {
            name: "errors: status is the prefix, message the text",
            ops: Script::new()
                .c(GET_K)
                .s(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
                .c(b"*1\r\n$6\r\nFOOBAR\r\n")
                .s(b"-ERR unknown command 'FOOBAR'\r\n")
                .0,
            want: &[
                r#"GET "GET k" ns="0" t=1000..2000 req=20 resp=68 status="WRONGTYPE" error="WRONGTYPE Operation against a key holding the wrong kind of value""#,
                r#"FOOBAR "FOOBAR" ns="0" t=3000..4000 req=16 resp=31 status="ERR" error="ERR unknown command 'FOOBAR'""#,
            ],
            losses: "none",
        },
        Case {
            name: "pipelined: three commands in one feed, replies in one feed",
            ops: Script::new()
                .c(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n*3\r\n$4\r\nHGET\r\n$1\r\nh\r\n$1\r\nf\r\n*1\r\n$4\r\nPING\r\n")
                .s(b":1\r\n$-1\r\n+PONG\r\n")
                .0,
            want: &[
                r#"INCR "INCR c" ns="0" t=1000..2000 req=21 resp=4"#,
                r#"HGET "HGET h" ns="0" t=1000..2000 req=28 resp=5"#,
                r#"PING "PING" ns="0" t=1000..2000 req=14 resp=7"#,
            ],
            losses: "none",
        },
        Case {
            name: "inline commands; AUTH's argument never shown",
            ops: Script::new()
                .c(b"PING\r\n")
                .s(b"+PONG\r\n")
                .c(b"auth hunter2\r\n\r\nget  k\n")
                .s(b"+OK\r\n$1\r\nv\r\n")
                .0,
            want: &[
                r#"PING "PING" ns="0" t=1000..2000 req=6 resp=7"#,
                r#"AUTH "AUTH" ns="0" t=3000..4000 req=14 resp=5"#,
                r#"GET "GET k" ns="0" t=3000..4000 req=7 resp=7"#,
            ],
            losses: "none",
        },
        Case {
            name: "container commands name their subcommand",
            ops: Script::new()
                .c(b"*3\r\n$6\r\nclient\r\n$7\r\nsetname\r\n$6\r\nsecret\r\n")
                .s(b"+OK\r\n")
                .0,
            want: &[r#"CLIENT SETNAME "CLIENT SETNAME" ns="0" t=1000..2000 req=41 resp=5"#],
            losses: "none",
        },
        Case {
            name: "SELECT sets the namespace after its +OK; a failed one does not",
            ops: Script::new()
                .c(b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n")
                .c(GET_K)
                .s(b"+OK\r\n$-1\r\n")
                .c(b"*2\r\n$6\r\nSELECT\r\n$2\r\n99\r\n")
                .s(b"-ERR DB index is out of range\r\n")
                .0,
            want: &[
                r#"SELECT "SELECT" ns="2" t=1000..3000 req=23 resp=5"#,
                r#"GET "GET k" ns="2" t=2000..3000 req=20 resp=5"#,
                r#"SELECT "SELECT" ns="2" t=4000..5000 req=24 resp=31 status="ERR" error="ERR DB index is out of range""#,
            ],
            losses: "none",
        },
        Case {
            name: "MULTI/EXEC: one record per command, EXEC counts the batch",
            ops: Script::new()
                .c(b"*1\r\n$5\r\nMULTI\r\n")
                .s(b"+OK\r\n")
                .c(SET_K_V)
                .s(b"+QUEUED\r\n")
                .c(GET_K)
                .s(b"+QUEUED\r\n")
                .c(b"*1\r\n$4\r\nEXEC\r\n")
                .s(b"*2\r\n+OK\r\n$5\r\nvalue\r\n")
                .0,
            want: &[
                r#"MULTI "MULTI" ns="0" t=1000..2000 req=15 resp=5"#,
                r#"SET "SET k" ns="0" t=3000..4000 req=31 resp=9"#,
                r#"GET "GET k" ns="0" t=5000..6000 req=20 resp=9"#,
                r#"EXEC "EXEC" ns="0" t=7000..8000 req=14 resp=20 batch=2"#,
            ],
            losses: "none",
        },
        Case {
            name: "RESP2 pub/sub: one confirmation per channel, messages set aside",
            ops: Script::new()
                .c(b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n")
                .s(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
                .s(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n")
                .c(b"*1\r\n$4\r\nPING\r\n")
                .s(b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nyo\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n")
                .c(b"*1\r\n$11\r\nUNSUBSCRIBE\r\n")
                .s(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n")
                .c(b"*3\r\n$6\r\nLRANGE\r\n$1\r\nl\r\n$1\r\n0\r\n")
                .s(b"*1\r\n$7\r\nmessage\r\n")
                .0,
            want: &[
                r#"SUBSCRIBE "SUBSCRIBE a" ns="0" t=1000..3000 req=33 resp=60"#,
                r#"PING "PING" ns="0" t=4000..5000 req=14 resp=20"#,
                r#"UNSUBSCRIBE "UNSUBSCRIBE" ns="0" t=6000..7000 req=22 resp=33"#,
                r#"LRANGE "LRANGE l" ns="0" t=8000..9000 req=30 resp=17"#,
            ],
            losses: "none (pushes=3)",
        },
        Case {
            name: "RESP3: HELLO 3 map, pushes are never replies, attributes prefix a reply",
            ops: Script::new()
                .c(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
                .s(b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n")
                .c(GET_K)
                .s(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nx\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n")
                .c(b"*2\r\n$6\r\nZSCORE\r\n$1\r\nz\r\n")
                .s(b",1.5\r\n")
                .c(b"*2\r\n$4\r\nHGET\r\n$1\r\nh\r\n")
                .s(b"!21\r\nSYNTAX invalid syntax\r\n")
                .0,
            want: &[
                r#"HELLO "HELLO" ns="0" t=1000..2000 req=22 resp=42"#,
                r#"GET "GET k" ns="0" t=3000..4000 req=20 resp=21"#,
                r#"ZSCORE "ZSCORE z" ns="0" t=5000..6000 req=23 resp=6"#,
                r#"HGET "HGET h" ns="0" t=7000..8000 req=21 resp=28 status="SYNTAX" error="SYNTAX invalid syntax""#,
            ],
            losses: "none (pushes=1)",
        },
        Case {
            name: "RESP3 streamed string and aggregate, nested maps and sets",
            ops: Script::new()
                .c(GET_K)
                .s(b"$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n")
                .c(GET_K)
                .s(b"*?\r\n:1\r\n%1\r\n~2\r\n#t\r\n_\r\n=7\r\ntxt:abc\r\n.\r\n")
                .0,
            want: &[
                r#"GET "GET k" ns="0" t=1000..2000 req=20 resp=23"#,
                r#"GET "GET k" ns="0" t=3000..4000 req=20 resp=39"#,
            ],
            losses: "none",
        },
        Case {
            name: "blocking pop: latency from command to reply",
            ops: Script::new()
                .c(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n5\r\n")
                .s(b"*2\r\n$1\r\nq\r\n$3\r\njob\r\n")
                .0,
            want: &[r#"BLPOP "BLPOP q" ns="0" t=1000..2000 req=29 resp=20"#],
            losses: "none",
        },
        Case {
            name: "uncaptured bulk payload is counted, in both directions",
            ops: Script::new()
                .c(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\nvvvv")
                .skip(Side::Client, Some(99_990))
                .c(b"vvvvvv\r\n")
                .s(b"+OK\r\n")
                .c(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n")
                .s(b"$100000\r\nvv")
                .skip(Side::Server, Some(99_998))
                .s(b"\r\n")
                .0,
            want: &[
                r#"SET "SET big" ns="0" t=1000..4000 req=100033 resp=5"#,
                r#"GET "GET big" ns="0" t=5000..8000 req=22 resp=100011"#,
            ],
            losses: "none",
        },
        Case {
            name: "a gap in a command: waiting commands dropped, resync on the next array",
            ops: Script::new()
                .c(GET_K)
                .c(b"*3\r\n$3\r\nSE")
                .skip(Side::Client, None)
                .c(b"lue\r\n")
                .s(b"$1\r\nv\r\n+OK\r\n")
                .c(b"junk*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
                .s(b"$1\r\nw\r\n")
                .0,
            want: &[r#"GET "GET k" ns="0" t=6000..7000 req=20 resp=7"#],
            losses: "unmatched_request=1 unmatched_response=2 resync_bytes=9",
        },
        Case {
            name: "a gap in a reply: replies set aside until both sides realign",
            ops: Script::new()
                .c(GET_K)
                .s(b"$10\r\n01")
                .skip(Side::Server, None)
                .s(b"6789\r\n")
                .c(GET_K)
                .s(b"$1\r\nv\r\n")
                .0,
            want: &[r#"GET "GET k" ns="0" t=5000..6000 req=20 resp=7"#],
            losses: "unmatched_request=1 resync_bytes=6",
        },
        Case {
            name: "a line past the limit is oversized",
            ops: Script::new()
                .c(GET_K)
                .s(long_line.as_bytes())
                .c(GET_K)
                .s(b"+v\r\n")
                .c(GET_K)
                .s(b"+w\r\n")
                .0,
            want: &[r#"GET "GET k" ns="0" t=5000..6000 req=20 resp=4"#],
            losses: "unmatched_request=2 oversized=1 resync_bytes=65543",
        },
        Case {
            name: "replies with no command are unmatched; close drops waiting commands",
            ops: Script::new().s(b"+OK\r\n").c(GET_K).close().0,
            want: &[],
            losses: "unmatched_request=1 unmatched_response=1",
        },
    ];
    let failures = case_failures(&cases, |ops, traced| run(ops, traced, true));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tables_are_sorted_uppercase() {
    for table in [KNOWN_COMMANDS, KEY_FIRST, CONTAINERS] {
        assert!(table.windows(2).all(|w| w[0] < w[1]), "{table:?}");
        assert!(table.iter().all(|c| c.to_ascii_uppercase() == *c));
    }
    for c in KEY_FIRST.iter().chain(CONTAINERS) {
        assert!(KNOWN_COMMANDS.contains(c), "{c} is not in KNOWN_COMMANDS");
    }
}

#[test]
fn infer_table() {
    /// First bytes, and the confidence and sender role expected.
    type Row = (&'static [u8], Option<(u8, Role)>);
    let cases: &[Row] = &[
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", Some((90, Role::Client))),
        (b"*1\r\n$4\r\nping\r\n", Some((90, Role::Client))),
        (
            b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
            Some((90, Role::Client)),
        ),
        (b"*2\r\n$3\r\nGET\r\n", Some((90, Role::Client))),
        (b"*2\r\n$3\r\nGE", None),
        (b"*2\r\n$3\r\nXYZ\r\n", None),
        (b"*0\r\n", None),
        (b"PING\r\n", Some((60, Role::Client))),
        (b"ping\n", Some((60, Role::Client))),
        (b"GET k\r\n", Some((40, Role::Client))),
        (b"PING", None),
        (b"HELLO", None),
        (b"+OK\r\n", Some((40, Role::Server))),
        (b"+PONG\r\n", Some((40, Role::Server))),
        (b"+OK", None),
        (b"-ERR unknown command\r\n", Some((35, Role::Server))),
        (b"-WRONGTYPE Operation\r\n", Some((35, Role::Server))),
        (b"-ERR", None),
        (b":42\r\n", Some((30, Role::Server))),
        (b":-1\r\n", Some((30, Role::Server))),
        (b"$5\r\nhello\r\n", Some((30, Role::Server))),
        (b"$-1\r\n", Some((30, Role::Server))),
        (
            b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
            Some((80, Role::Server)),
        ),
        (b"GET / HTTP/1.1\r\n", Some((40, Role::Client))),
        (b"\x16\x03\x01\x02\x00", None),
        (b"", None),
    ];
    for (bytes, want) in cases {
        for dir in [Direction::Egress, Direction::Ingress] {
            let got = infer(dir, bytes).map(|i| {
                assert_eq!(i.protocol, Protocol::Redis);
                (i.confidence, i.sender_role.unwrap_or(Role::Server))
            });
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
    // HTTP wins its own request lines; Redis wins its command arrays.
    assert_eq!(
        crate::infer(Direction::Egress, b"GET / HTTP/1.1\r\n").map(|i| i.protocol),
        Some(Protocol::Http1)
    );
    assert_eq!(
        crate::infer(Direction::Egress, b"*1\r\n$4\r\nPING\r\n").map(|i| i.protocol),
        Some(Protocol::Redis)
    );
}

/// Random bytes, random splits, random gaps: no panic, nothing unbounded.
#[test]
fn garbage_does_not_panic() {
    let pieces: [&[u8]; 14] = [
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n",
        b"+OK\r\n",
        b"-ERR x\r\n",
        b"$5\r\nhello\r\n",
        b"$99999999999\r\n",
        b"*-1\r\n",
        b"*?\r\n:1\r\n.\r\n",
        b"$?\r\n;1\r\na\r\n;0\r\n",
        b"|1\r\n+a\r\n+b\r\n",
        b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n",
        b"PING\r\n",
        b"\x00\xff\x80garbage",
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
    ];
    let mut rng = XorShift(0x5eed);
    for _ in 0..3000 {
        let mut parser = RedisParser::new();
        let mut out = Output::default();
        let mut bytes = Vec::new();
        for step in 0..rng.below(40) {
            let dir = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            match rng.below(10) {
                0 => parser.skip(
                    dir,
                    if rng.below(3) == 0 {
                        None
                    } else {
                        Some(rng.below(100))
                    },
                    step,
                    &mut out,
                ),
                1 => parser.end(dir, step, &mut out),
                2 => {
                    bytes.clear();
                    bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8));
                    parser.feed(dir, &bytes, step, &mut out);
                }
                _ => {
                    bytes.clear();
                    for _ in 0..rng.below(6) {
                        bytes.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]);
                    }
                    let cut = rng.below(bytes.len() as u64 + 1) as usize;
                    parser.feed(dir, &bytes[..cut], step, &mut out);
                    parser.feed(dir, &bytes[cut..], step, &mut out);
                }
            }
        }
        parser.close(99, &mut out);
        for r in &out.records {
            assert!(r.start_ns <= r.end_ns && r.end_ns <= 99, "{r:?}");
        }
    }
}

/// Deep nesting is refused at the limit, not followed into unbounded state.
#[test]
fn deep_nesting_is_bounded() {
    let mut parser = RedisParser::new();
    let mut out = Output::default();
    parser.feed(Direction::Egress, GET_K, 1, &mut out);
    parser.feed(Direction::Egress, GET_K, 1, &mut out);
    parser.feed(Direction::Ingress, b"+OK\r\n", 2, &mut out);
    let deep = "*1\r\n".repeat(super::MAX_DEPTH + 10);
    parser.feed(Direction::Ingress, deep.as_bytes(), 2, &mut out);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.losses(crate::Loss::Malformed), 1);
}

#[test]
fn role_is_unknown_until_a_command_or_reply() {
    let mut parser = RedisParser::new();
    let mut out = Output::default();
    assert_eq!((parser.protocol(), parser.role()), (Protocol::Redis, None));
    parser.feed(Direction::Ingress, b"*1\r\n$4\r\nPI", 1, &mut out);
    assert_eq!(parser.role(), None);
    parser.feed(Direction::Ingress, b"NG\r\n", 2, &mut out);
    assert_eq!(parser.role(), Some(Role::Server));
    let mut parser = RedisParser::new();
    parser.feed(Direction::Ingress, b"+OK\r\n", 1, &mut out);
    assert_eq!(parser.role(), Some(Role::Client));
    let mut parser = RedisParser::new();
    parser.feed(Direction::Egress, b"*1\r\n$8\r\nJSON.GET\r\n", 1, &mut out);
    assert_eq!(parser.role(), Some(Role::Client));
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

/// Fixtures in `testdata/redis/`, as recorded by `record.sh`.
const CASES: &[&str] = &[
    "basic",
    "pipelined_100",
    "multi_exec",
    "select_db",
    "pubsub",
    "blpop",
    "large_set",
    "large_get",
    "resp3",
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

/// Each capture with one feed cut in two, everywhere (64 places in large feeds: 170 KB replies).
#[test]
fn captures_split_everywhere() {
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        assert_split_in_two(name, &cap.ops(), run, |len| len / 64);
    }
}

/// Each capture fed in small random chunks, byte by byte, and in two whole feeds.
#[test]
fn captures_in_any_chunks() {
    let ways = Chunkings::FINE;
    for &name in CASES {
        assert_any_chunks(name, &Capture::load(DIR, name), run, &ways);
    }
}
/// Where the first bulk payload of at least `min` bytes starts in `stream`, and its length.
fn first_bulk(stream: &[u8], min: usize) -> Option<(usize, usize)> {
    let mut at = 0;
    while let Some(i) = stream[at..].iter().position(|&b| b == b'$') {
        let start = at + i;
        at = start + 1;
        let eol = start + stream[start..].windows(2).position(|w| w == b"\r\n")?;
        let Ok(len) = std::str::from_utf8(&stream[start + 1..eol])
            .unwrap_or("")
            .parse::<usize>()
        else {
            continue;
        };
        if len >= min && eol + 2 + len <= stream.len() {
            return Some((eol + 2, len));
        }
    }
    None
}

/// Bytes moved but not captured inside a bulk payload change nothing but what is kept of it.
#[test]
fn captures_with_uncaptured_bulk_bytes() {
    for (name, side, min) in [
        ("large_set", Side::Client, 1000),
        ("large_get", Side::Server, 1000),
        ("basic", Side::Server, 100),
        ("pipelined_100", Side::Server, 1),
        ("resp3", Side::Server, 100),
    ] {
        let cap = Capture::load(DIR, name);
        let (start, len) =
            first_bulk(cap.stream(side), min).unwrap_or_else(|| panic!("{name}: no bulk string"));
        for traced in [Role::Client, Role::Server] {
            let want = run(&cap.ops(), traced, true);
            for range in [start..start + len, start + 1..start + len, start..start + 1] {
                let got = run(&cap.ops_with_gap(side, range.clone(), true), traced, true);
                assert_eq!(got, want, "{name}: gap {range:?} in {side:?} as {traced:?}");
            }
        }
    }
}

/// A gap over framing in the pipelined commands loses the waiting commands and the replies
/// that came before the stream realigns, never pairs a reply with the wrong command, and
/// frames the rest.
#[test]
fn capture_with_gap_in_pipelined_commands() {
    let cap = Capture::load(DIR, "pipelined_100");
    let all = run(&cap.ops(), Role::Client, true);
    for gap in [100..140, 0..1, 3000..3330] {
        let got = run(
            &cap.ops_with_gap(Side::Client, gap.clone(), true),
            Role::Client,
            true,
        );
        // Every record still there is one of the recorded ones, unchanged.
        for line in &got.lines {
            assert!(all.lines.contains(line), "gap {gap:?}: {line}");
        }
        assert!(got.losses.contains("unmatched_request="), "{}", got.text());
    }
}

/// A gap at the start of a reply in the basic capture: that exchange and the next are dropped
/// (the rule for realigning is strict), the ones after are paired as recorded.
#[test]
fn capture_with_gap_in_a_reply_realigns() {
    let cap = Capture::load(DIR, "basic");
    let all = run(&cap.ops(), Role::Client, true);
    // The server's last five segments are the replies to GET greeting, LPUSH, GET queue,
    // GET missing and DEL, one each.
    let replies: Vec<Range<usize>> = cap
        .timeline
        .iter()
        .filter(|(side, _, r)| *side == Side::Server && r.is_some())
        .filter_map(|(_, _, r)| r.clone())
        .collect();
    let get_greeting = &replies[replies.len() - 5];
    let gap = get_greeting.start..get_greeting.start + 1;
    for traced in [Role::Client, Role::Server] {
        let got = run(
            &cap.ops_with_gap(Side::Server, gap.clone(), true),
            traced,
            true,
        );
        let mut want = all.lines.clone();
        want.drain(2..4);
        assert_eq!(got.lines, want, "as {traced:?}");
        assert_eq!(
            got.losses,
            // The rest of the damaged reply, and the next one, set aside.
            format!(
                "unmatched_request=2 resync_bytes={}",
                get_greeting.len() - 1 + replies[replies.len() - 4].len()
            ),
            "as {traced:?}"
        );
    }
}

/// The framing agrees with the `redis-protocol` crate's decoders on every recorded stream: as
/// many top-level frames, and a record per command. Except the RESP3 replies: the crate refuses
/// the `COMMAND DOCS` reply Redis 7 sends to `redis-cli -3` (a set of maps: "Invalid hash
/// key"), which is valid RESP3; there only the commands are compared.
#[test]
fn captures_agree_with_redis_protocol() {
    use redis_protocol::{resp2, resp3};
    for &name in CASES {
        let cap = Capture::load(DIR, name);
        let mut frames = [0usize; 2];
        for (i, stream) in [&cap.client, &cap.server].into_iter().enumerate() {
            if name == "resp3" && i == 1 {
                frames[1] = usize::MAX;
                continue;
            }
            let mut at = 0;
            while at < stream.len() {
                if i == 0 && stream[at..].starts_with(b"\r\n") {
                    at += 2; // A blank line between commands (redis-cli --pipe), ignored.
                    continue;
                }
                let decoded = if name == "resp3" {
                    resp3::decode::complete::decode_range(&stream[at..]).map(|f| f.map(|(_, n)| n))
                } else {
                    resp2::decode::decode(&stream[at..]).map(|f| f.map(|(_, n)| n))
                };
                match decoded {
                    Ok(Some(used)) => {
                        frames[i] += 1;
                        at += used;
                    }
                    other => panic!("{name}: redis-protocol at {at}: {other:?}"),
                }
            }
        }
        let got = run(&cap.ops(), Role::Client, true);
        let pushes = got
            .losses
            .split("(pushes=")
            .nth(1)
            .and_then(|p| p.trim_end_matches(')').parse::<usize>().ok())
            .unwrap_or(0);
        assert_eq!(got.lines.len(), frames[0], "{name}: a record per command");
        assert!(got.losses.starts_with("none"), "{name}: {}", got.losses);
        // Replies: one per command, except the extra pub/sub confirmations and messages.
        if frames[1] != usize::MAX {
            assert!(frames[1] >= got.lines.len(), "{name}");
            let extra = frames[1] - got.lines.len();
            assert!(extra <= pushes + 2, "{name}: {frames:?} {}", got.text());
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
        let rounds = if cap.server.len() + cap.client.len() > 50_000 {
            10
        } else {
            200
        };
        for _ in 0..rounds {
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
            let mut parser = RedisParser::new();
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
                assert_eq!(r.role, Role::Client);
                assert!(matches!(&r.detail, Detail::Db(d) if d.operation.is_some()));
            }
        }
    }
}
