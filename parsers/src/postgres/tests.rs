//! PostgreSQL tests: byte-literal tables for framing and pairing edge cases, and golden replays
//! of traffic recorded from PostgreSQL 15 (`testdata/postgres/`, see its README) in both
//! roles, split every way and with gaps.
//!
//! Baselines are `testdata/postgres/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers`.

use std::fmt::Write as _;
use std::ops::Range;

use super::{MAX_BODY, PostgresParser, infer};
use crate::testkit::{Op, Side, XorShift, direction, losses_text, play, rechunk};
use crate::{Detail, Direction, Loss, Output, Parser, Protocol, Record, Role};

/// Runs `ops` with the traced process as `traced`: one line per record, then the losses.
fn run(ops: &[Op<'_>], traced: Role) -> String {
    let mut parser = PostgresParser::new();
    let mut out = Output::default();
    play(&mut parser, ops, traced, &mut out);
    let mut s = String::new();
    for r in &out.records {
        assert_eq!((r.role, r.protocol), (traced, Protocol::Postgres), "{r:?}");
        assert_eq!(parser.role(), Some(traced));
        let _ = writeln!(s, "{}", line(r));
    }
    let losses = losses_text(&mut out);
    let _ = writeln!(s, "losses: {losses}");
    s
}

/// One record as a line.
fn line(r: &Record) -> String {
    let Detail::Db(d) = &r.detail else {
        panic!("not a database record: {r:?}")
    };
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let num = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
    format!(
        "{} {} ns={} -> {} rows={} batch={} t={}..{} req={} resp={} err={} ver={} q={}",
        d.operation.as_deref().unwrap_or("-"),
        d.collection.as_deref().unwrap_or("-"),
        opt(&d.namespace),
        d.status_code.as_deref().unwrap_or("ok"),
        num(d.rows),
        num(d.batch_size),
        r.start_ns,
        r.end_ns,
        r.request_bytes,
        r.response_bytes,
        opt(&d.error_message),
        opt(&d.server_version),
        opt(&d.query_text),
    )
}

// ---------------------------------------------------------------------------------------------
// Byte-literal tables.

/// A typed message: tag, length, body.
fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = (body.len() as u32 + 4).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

fn cstrs(parts: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    for p in parts {
        b.extend_from_slice(p);
        b.push(0);
    }
    b
}

fn error(code: &str, message: &str) -> Vec<u8> {
    let mut b = Vec::new();
    for (f, v) in [(b'S', "ERROR"), (b'C', code), (b'M', message)] {
        b.push(f);
        b.extend_from_slice(v.as_bytes());
        b.push(0);
    }
    b.push(0);
    msg(b'E', &b)
}

fn ready() -> Vec<u8> {
    msg(b'Z', b"I")
}

/// A script of (side, bytes) steps at 1000, 2000, ... ns.
fn script(steps: &[(Side, Vec<u8>)]) -> Vec<Op<'_>> {
    let mut ops: Vec<Op<'_>> = steps
        .iter()
        .enumerate()
        .map(|(i, (side, b))| Op::Feed(*side, b.as_slice(), (i as u64 + 1) * 1000))
        .collect();
    ops.push(Op::Close((steps.len() as u64 + 1) * 1000));
    ops
}

/// Checks a script gives `want` in both roles and however it is split.
fn check(name: &str, steps: &[(Side, Vec<u8>)], want: &str) {
    let ops = script(steps);
    for traced in [Role::Client, Role::Server] {
        assert_eq!(run(&ops, traced), want, "{name} as {traced:?}");
        for seed in 1..20 {
            let split = rechunk(&ops, seed, 7);
            assert_eq!(
                run(&split, traced),
                want,
                "{name} as {traced:?}, seed {seed}"
            );
        }
    }
}

use Side::{Client as C, Server as S};

#[test]
fn simple_query_with_startup() {
    check(
        "simple",
        &[
            (C, startup(&[("user", "u"), ("database", "shop")])),
            (
                S,
                [
                    msg(b'R', &[0, 0, 0, 0]),
                    msg(b'S', &cstrs(&[b"server_version", b"15.1"])),
                    msg(b'K', &[0; 8]),
                    ready(),
                ]
                .concat(),
            ),
            (C, msg(b'Q', b"SELECT * FROM items WHERE id = 1\0")),
            (
                S,
                [
                    msg(b'T', b"\0\0"),
                    msg(b'D', b"\0\0"),
                    msg(b'D', b"\0\0"),
                    msg(b'C', b"SELECT 2\0"),
                    ready(),
                ]
                .concat(),
            ),
        ],
        "SELECT items ns=\"shop\" -> ok rows=2 batch=- t=3000..4000 req=38 resp=41 err=- ver=\"15.1\" q=\"SELECT * FROM items WHERE id = 1\"\nlosses: none\n",
    );
}

#[test]
fn simple_query_error_and_batch() {
    check(
        "error",
        &[
            (C, msg(b'Q', b"SELEC 1\0")),
            (
                S,
                [error("42601", "syntax error at or near \"SELEC\""), ready()].concat(),
            ),
            (C, msg(b'Q', b"BEGIN; INSERT INTO t VALUES (1); COMMIT\0")),
            (
                S,
                [
                    msg(b'C', b"BEGIN\0"),
                    msg(b'C', b"INSERT 0 1\0"),
                    msg(b'C', b"COMMIT\0"),
                    ready(),
                ]
                .concat(),
            ),
        ],
        "SELEC - ns=- -> 42601 rows=- batch=- t=1000..2000 req=13 resp=59 err=\"syntax error at or near \\\"SELEC\\\"\" ver=- q=\"SELEC 1\"\n\
         BATCH - ns=- -> ok rows=1 batch=3 t=3000..4000 req=45 resp=45 err=- ver=- q=\"BEGIN; INSERT INTO t VALUES (1); COMMIT\"\n\
         losses: none\n",
    );
}

#[test]
fn pipeline_error_drops_the_rest_of_the_batch() {
    let group = |sql: &[u8]| {
        [
            msg(b'P', &[b"\0".as_slice(), sql, b"\0\0\0"].concat()),
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
        ]
        .concat()
    };
    let ok = |tag: &[u8]| [msg(b'1', b""), msg(b'2', b""), msg(b'C', tag)].concat();
    check(
        "pipeline",
        &[
            (
                C,
                [
                    group(b"INSERT INTO t VALUES ($1)"),
                    group(b"INSERT INTO t VALUES ($1)"),
                    group(b"DELETE FROM t"),
                    msg(b'S', b""),
                ]
                .concat(),
            ),
            (
                S,
                [
                    ok(b"INSERT 0 1\0"),
                    msg(b'1', b""),
                    msg(b'2', b""),
                    error("23505", "duplicate key"),
                    ready(),
                ]
                .concat(),
            ),
            (C, [group(b"SELECT 1"), msg(b'S', b"")].concat()),
            (
                S,
                [
                    msg(b'1', b""),
                    msg(b'2', b""),
                    msg(b'T', b"\0\0"),
                    msg(b'D', b"\0\0"),
                    msg(b'C', b"SELECT 1\0"),
                    ready(),
                ]
                .concat(),
            ),
        ],
        "INSERT t ns=- -> ok rows=1 batch=- t=1000..2000 req=57 resp=26 err=- ver=- q=\"INSERT INTO t VALUES ($1)\"\n\
         INSERT t ns=- -> 23505 rows=- batch=- t=1000..2000 req=57 resp=45 err=\"duplicate key\" ver=- q=\"INSERT INTO t VALUES ($1)\"\n\
         SELECT - ns=- -> ok rows=1 batch=- t=3000..4000 req=40 resp=38 err=- ver=- q=\"SELECT 1\"\n\
         losses: unmatched_request=1\n",
    );
}

#[test]
fn named_statements_and_close() {
    let parse = msg(b'P', b"s1\0SELECT name FROM users WHERE id = $1\0\0\0");
    let bind = msg(b'B', b"\0s1\0\0\0\0\0\0\0");
    let exec = msg(b'E', b"\0\0\0\0\0");
    check(
        "named",
        &[
            (C, [parse, msg(b'S', b"")].concat()),
            (S, [msg(b'1', b""), ready()].concat()),
            (C, [bind.clone(), exec.clone(), msg(b'S', b"")].concat()),
            (
                S,
                [msg(b'2', b""), msg(b'C', b"SELECT 0\0"), ready()].concat(),
            ),
            (
                C,
                [msg(b'C', b"Ss1\0"), bind, exec, msg(b'S', b"")].concat(),
            ),
            (
                S,
                [
                    msg(b'3', b""),
                    msg(b'2', b""),
                    msg(b'C', b"SELECT 0\0"),
                    ready(),
                ]
                .concat(),
            ),
        ],
        "SELECT users ns=- -> ok rows=0 batch=- t=3000..4000 req=25 resp=19 err=- ver=- q=\"SELECT name FROM users WHERE id = $1\"\n\
         SELECT - ns=- -> ok rows=0 batch=- t=5000..6000 req=25 resp=24 err=- ver=- q=-\n\
         losses: none\n",
    );
}

#[test]
fn ssl_accepted_stops_parsing() {
    let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f].to_vec();
    check(
        "ssl",
        &[
            (C, ssl),
            (S, b"S".to_vec()),
            (C, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
            (S, b"\x16\x03\x03\x00\x7a\x02".to_vec()),
            (C, msg(b'Q', b"SELECT 1\0")),
            (S, [msg(b'C', b"SELECT 1\0"), ready()].concat()),
        ],
        "losses: none\n",
    );
}

#[test]
fn mid_stream_join_and_copy() {
    check(
        "copy",
        &[
            // Joined mid-response: the tail of a DataRow, a CommandComplete (dropped: which side
            // sent it is not known yet), then a ReadyForQuery, which only a server sends.
            (S, b"\0\0\0\x05ab".to_vec()),
            (S, [msg(b'C', b"SELECT 1\0"), ready()].concat()),
            (C, msg(b'Q', b"COPY t FROM STDIN\0")),
            (S, msg(b'G', b"\0\0\0")),
            (
                C,
                [msg(b'd', b"1\ta\n"), msg(b'd', b"2\tb\n"), msg(b'c', b"")].concat(),
            ),
            (S, [msg(b'C', b"COPY 2\0"), ready()].concat()),
        ],
        "COPY t ns=- -> ok rows=2 batch=- t=3000..6000 req=46 resp=26 err=- ver=- q=\"COPY t FROM STDIN\"\n\
         losses: resync_bytes=6\n",
    );
}

#[test]
fn oversized_query_is_kept_in_part() {
    let mut sql = b"SELECT '".to_vec();
    sql.extend(std::iter::repeat_n(b'x', MAX_BODY + 10));
    sql.extend_from_slice(b"'\0");
    let q = msg(b'Q', &sql);
    let steps = [(C, q), (S, [msg(b'C', b"SELECT 1\0"), ready()].concat())];
    let ops = script(&steps);
    let mut parser = PostgresParser::new();
    let mut out = Output::default();
    play(
        &mut parser,
        &rechunk(&ops, 3, 70_000),
        Role::Client,
        &mut out,
    );
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.losses(Loss::Oversized), 1);
    let Detail::Db(d) = &out.records[0].detail else {
        panic!()
    };
    assert_eq!(d.operation.as_deref(), Some("SELECT"));
    assert_eq!(d.query_text.as_ref().map(String::len), Some(MAX_BODY));
}

#[test]
fn infer_table() {
    /// Confidence and sender role.
    type Want = Option<(u8, Role)>;
    let cases: &[(&[u8], Want)] = &[
        (&startup(&[("user", "postgres")]), Some((100, Role::Client))),
        (
            &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
            Some((100, Role::Client)),
        ),
        (
            &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30],
            Some((100, Role::Client)),
        ),
        (&msg(b'Q', b"SELECT 1\0"), Some((80, Role::Client))),
        (&msg(b'Q', b"  select now()\0"), Some((80, Role::Client))),
        (&msg(b'P', b"s1\0SELECT $1\0\0\0"), Some((70, Role::Client))),
        (
            &msg(b'P', b"\0INSERT INTO t VALUES ($1)\0\0\0"),
            Some((70, Role::Client)),
        ),
        (&msg(b'R', &[0, 0, 0, 0]), Some((60, Role::Server))),
        (
            &msg(b'R', &[0, 0, 0, 5, 1, 2, 3, 4]),
            Some((60, Role::Server)),
        ),
        (&ready(), Some((60, Role::Server))),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None),
        (b"POST /q HTTP/1.1\r\n", None),
        // MySQL server greeting and client login.
        (b"J\0\0\0\x0a8.0.36\0\x08\0\0\0", None),
        (b"Q\0\0\0\x0a5.5.5-10.11.6-MariaDB\0", None),
        (b"\x55\0\0\x01\x8d\xa6\x0f\0\0\0\0\x01", None),
        // A MySQL COM_QUERY: 3-byte length, sequence 0, 0x03.
        (b"\x12\0\0\0\x03SELECT 1", None),
        (&msg(b'Q', b"\x01\x02binary\0"), None),
        (b"*1\r\n$4\r\nPING\r\n", None),
        (b"", None),
        (b"Q", None),
    ];
    for (bytes, want) in cases {
        for dir in [Direction::Egress, Direction::Ingress] {
            let got = infer(dir, bytes).map(|i| {
                assert_eq!(i.protocol, Protocol::Postgres);
                (i.confidence, i.sender_role.expect("role"))
            });
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

const CASES: &[&str] = &[
    "simple_queries",
    "multi_statement",
    "ssl_refused",
    "extended",
    "pipeline",
    "copy",
    "large_result",
];

/// A recorded connection: both streams and the timeline of segments.
struct Capture {
    client: Vec<u8>,
    server: Vec<u8>,
    /// Side, µs since the SYN, byte range in that side's stream (`None`: that side closed).
    timeline: Vec<(Side, u64, Option<Range<usize>>)>,
}

fn testdata(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/postgres")
        .join(file)
}

impl Capture {
    fn load(name: &str) -> Self {
        let read = |suffix: &str| {
            std::fs::read(testdata(&format!("{name}.{suffix}")))
                .unwrap_or_else(|e| panic!("reading {name}.{suffix}: {e}"))
        };
        let mut offsets = [0usize; 2];
        let mut timeline = Vec::new();
        for line in String::from_utf8(read("timeline")).expect("text").lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let [side, us, len] = fields[..] else {
                panic!("bad timeline line {line:?}")
            };
            let side = if side == "c" {
                Side::Client
            } else {
                Side::Server
            };
            let us: u64 = us.parse().expect("timeline time");
            let i = side as usize;
            let range = len.parse::<usize>().ok().map(|len| {
                offsets[i] += len;
                offsets[i] - len..offsets[i]
            });
            timeline.push((side, us, range));
        }
        let (client, server) = (read("client.bin"), read("server.bin"));
        assert_eq!(
            offsets,
            [client.len(), server.len()],
            "{name}: timeline covers the streams"
        );
        Self {
            client,
            server,
            timeline,
        }
    }

    fn stream(&self, side: Side) -> &[u8] {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// One feed per segment, times in ns, then a close.
    fn ops(&self) -> Vec<Op<'_>> {
        let mut ops: Vec<Op<'_>> = self
            .timeline
            .iter()
            .filter_map(|(side, us, range)| {
                let r = range.clone()?;
                Some(Op::Feed(*side, &self.stream(*side)[r], us * 1000))
            })
            .collect();
        let last = self.timeline.last().map_or(0, |t| t.1 * 1000);
        ops.push(Op::Close(last + 1000));
        ops
    }

    /// Like [`Capture::ops`], with the bytes of `side` in `gap` replaced by a skip.
    fn ops_with_gap(&self, side: Side, gap: Range<usize>) -> Vec<Op<'_>> {
        let mut ops = Vec::new();
        for op in self.ops() {
            let Op::Feed(s, bytes, ts) = op else {
                ops.push(op);
                continue;
            };
            if s != side {
                ops.push(op);
                continue;
            }
            let base = bytes.as_ptr() as usize - self.stream(side).as_ptr() as usize;
            let seg = base..base + bytes.len();
            let lo = gap.start.clamp(seg.start, seg.end);
            let hi = gap.end.clamp(seg.start, seg.end);
            if lo == hi {
                ops.push(op);
                continue;
            }
            let stream = self.stream(side);
            if seg.start < lo {
                ops.push(Op::Feed(s, &stream[seg.start..lo], ts));
            }
            ops.push(Op::Skip(s, Some((hi - lo) as u64), ts));
            if hi < seg.end {
                ops.push(Op::Feed(s, &stream[hi..seg.end], ts));
            }
        }
        ops
    }
}

/// Message boundaries of a typed stream (after `skip` untyped/one-byte prefix bytes).
fn messages(stream: &[u8], mut at: usize) -> Vec<(u8, Range<usize>)> {
    let mut found = Vec::new();
    while at + 5 <= stream.len() {
        let len = u32::from_be_bytes([
            stream[at + 1],
            stream[at + 2],
            stream[at + 3],
            stream[at + 4],
        ]);
        let end = at + 1 + len as usize;
        found.push((stream[at], at..end));
        at = end;
    }
    found
}

/// Compares `got` with the baseline file, or rewrites it under `WIRELENS_BLESS`.
fn check_baseline(file: &str, got: &str) {
    let path = testdata(file);
    if std::env::var_os("WIRELENS_BLESS").is_some() {
        std::fs::write(&path, got).expect("writing the baseline");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "{file} differs from the baseline (WIRELENS_BLESS=1 to accept)\n--- want\n{want}--- got\n{got}"
    );
}

#[test]
fn captures_match_baselines() {
    for name in CASES {
        let cap = Capture::load(name);
        let got = run(&cap.ops(), Role::Client);
        check_baseline(&format!("{name}.expected"), &got);
        assert_eq!(run(&cap.ops(), Role::Server), got, "{name} as the server");
    }
}

#[test]
fn captures_in_any_chunks() {
    for name in CASES {
        let cap = Capture::load(name);
        let ops = cap.ops();
        let want = run(&ops, Role::Client);
        for (seed, max) in [(1, 1), (2, 3), (3, 16), (4, 100), (5, 1000), (6, 70_000)] {
            let split = rechunk(&ops, seed, max);
            for traced in [Role::Client, Role::Server] {
                assert_eq!(
                    run(&split, traced),
                    want,
                    "{name} seed {seed} as {traced:?}"
                );
            }
        }
    }
}

#[test]
fn captures_with_uncaptured_row_bytes() {
    // Bytes of DataRow/CopyData bodies (and Query text) moved but not captured change nothing
    // the records carry but the text of a Query cut short.
    for name in CASES {
        let cap = Capture::load(name);
        let want = run(&cap.ops(), Role::Client);
        let start = if name == &"ssl_refused" { 1 } else { 0 };
        let mut gaps = 0;
        let rows = messages(&cap.server, start)
            .into_iter()
            .filter(|(tag, range)| matches!(tag, b'D' | b'd') && range.len() > 7);
        for (_, range) in rows.take(40) {
            {
                let got = run(
                    &cap.ops_with_gap(Side::Server, range.start + 6..range.end - 1),
                    Role::Client,
                );
                assert_eq!(got, want, "{name}: gap in {range:?}");
                gaps += 1;
            }
        }
        if ["simple_queries", "extended", "copy", "large_result"].contains(name) {
            assert!(gaps > 0, "{name} has rows to skip over");
        }
    }
}

#[test]
fn captures_with_a_gap_over_headers_resync() {
    for name in CASES {
        let cap = Capture::load(name);
        let n = cap.server.len();
        for (lo, hi) in [(n / 3, n / 3 + 20), (n / 2, n / 2 + 1), (10, n / 2)] {
            for side in [Side::Server, Side::Client] {
                let ops = cap.ops_with_gap(side, lo..hi.min(cap.stream(side).len()));
                let got = run(&ops, Role::Client);
                assert!(got.ends_with('\n'), "{name}");
            }
        }
    }
    // A gap of unknown length inside the simple queries' server stream: requests waiting are
    // given up, and the queries after it are still recorded.
    let cap = Capture::load("simple_queries");
    let mut ops = cap.ops();
    let at = ops.len() / 2;
    ops.insert(at, Op::Skip(Side::Server, None, 0));
    let got = run(&ops, Role::Client);
    assert!(got.contains("DELETE users"), "{got}");
}

#[test]
fn mutated_captures_do_not_panic() {
    let mut rng = XorShift(0x5eed);
    for name in CASES {
        let cap = Capture::load(name);
        for _ in 0..if *name == "large_result" { 10 } else { 200 } {
            let mut client = cap.client.clone();
            let mut server = cap.server.clone();
            for _ in 0..4 {
                let s = if rng.below(2) == 0 {
                    &mut client
                } else {
                    &mut server
                };
                if !s.is_empty() {
                    let i = rng.below(s.len() as u64) as usize;
                    s[i] = rng.next() as u8;
                }
            }
            let mut parser = PostgresParser::new();
            let mut out = Output::default();
            let mut offsets = [0usize; 2];
            for (step, (side, _, range)) in cap.timeline.iter().enumerate() {
                let Some(range) = range else { continue };
                let stream = if *side == Side::Client {
                    &client
                } else {
                    &server
                };
                let dir = direction(*side, Role::Client);
                if rng.below(20) == 0 {
                    parser.skip(dir, Some(rng.below(100)), step as u64, &mut out);
                }
                parser.feed(dir, &stream[range.clone()], step as u64, &mut out);
                offsets[*side as usize] = range.end;
            }
            parser.close(u64::MAX, &mut out);
            for r in &out.records {
                assert!(r.start_ns <= r.end_ns);
            }
        }
    }
}
