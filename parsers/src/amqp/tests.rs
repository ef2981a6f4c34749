//! AMQP tests: frame-built tables for framing, matching and errors; golden replays of traffic
//! recorded from RabbitMQ (`testdata/amqp/`, see its README) in both roles, split every way,
//! with gaps; garbage and mutations; inference; and nDPI's public `amqp.pcap` (read at test
//! time from `../shared/captures/ndpi/`, never copied in).
//!
//! Baselines are `testdata/amqp/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers amqp`.

use std::fmt::Write as _;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame, WriteContext, gen_frame};
use amq_protocol::protocol::{AMQPClass, BasicProperties, basic, channel, confirm, queue};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::{AmqpParser, PROTOCOL_HEADER, infer};
use crate::testkit::{
    Capture, Op, Side, XorShift, bytewise, check_baseline, losses_text, play, rechunk,
};
use crate::{Detail, Direction, MessagingSystem, Output, Parser, Protocol, Record, Role};

/// Fixture folder under `testdata/`.
const DIR: &str = "amqp";
/// The recorded cases (see `testdata/amqp/README.md`).
const CASES: &[&str] = &[
    "basic",
    "large_publish",
    "consume",
    "confirms",
    "errors",
    "tools_publish",
    "tools_get",
    "tools_consume",
];

/// Runs `ops` with the traced process as `traced`: record lines (times when `times`), losses.
fn run(ops: &[Op<'_>], traced: Role, times: bool) -> (Vec<String>, String) {
    let mut parser = AmqpParser::new();
    let mut out = Output::default();
    play(&mut parser, ops, traced, &mut out);
    for r in &out.records {
        assert_eq!((r.role, r.protocol), (traced, Protocol::Amqp), "{r:?}");
        assert_eq!(parser.role(), Some(traced));
    }
    let losses = losses_text(&mut out);
    (out.records.iter().map(|r| line(r, times)).collect(), losses)
}

/// One record as a line.
fn line(r: &Record, times: bool) -> String {
    let Detail::Messaging(m) = &r.detail else {
        panic!("not a messaging record: {r:?}")
    };
    assert_eq!(m.system, MessagingSystem::RabbitMq);
    let mut s = format!(
        "{} {:?}",
        m.operation.as_str().unwrap_or("other"),
        m.operation_name
    );
    let mut field = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            let _ = write!(s, " {name}={v:?}");
        }
    };
    field("dest", &m.destination);
    field("key", &m.routing_key);
    field("client", &m.client_id);
    field("error", &m.error_type);
    field("message", &m.error_message);
    field("traceparent", &m.traceparent);
    if let Some(n) = m.message_count {
        let _ = write!(s, " count={n}");
    }
    if let Some(n) = m.body_size {
        let _ = write!(s, " body={n}");
    }
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(s, " req={} resp={}", r.request_bytes, r.response_bytes);
    s
}

fn text(lines: &[String], losses: &str) -> String {
    let mut s = String::new();
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "losses: {losses}");
    s
}

// ---------------------------------------------------------------------------------------------
// Frames built with amq-protocol's encoder.

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    let (ctx, _) = gen_frame(frame)(WriteContext::from(Vec::new()))
        .map(|ctx| (ctx, ()))
        .expect("encodable frame");
    ctx.write
}

fn method(channel: u16, class: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, class))
}

fn header(channel: u16, body_size: u64, traceparent: Option<&str>) -> Vec<u8> {
    let mut props = BasicProperties::default();
    if let Some(tp) = traceparent {
        let mut table = FieldTable::default();
        table.insert(
            ShortString::from("traceparent"),
            AMQPValue::LongString(LongString::from(tp)),
        );
        props = props.with_headers(table);
    }
    encode(&AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size,
            properties: props,
        },
    ))
}

fn body(channel: u16, payload: &[u8]) -> Vec<u8> {
    encode(&AMQPFrame::Body(channel, payload.to_vec()))
}

fn publish(channel: u16, exchange: &str, key: &str) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory: false,
            immediate: false,
        })),
    )
}

fn declare(channel: u16, name: &str, passive: bool) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
}

fn declare_ok(channel: u16, name: &str, messages: u32) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: name.into(),
            message_count: messages,
            consumer_count: 0,
        })),
    )
}

fn channel_close(channel: u16, code: u16, text: &str, ids: (u16, u16)) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: code,
            reply_text: text.into(),
            class_id: ids.0,
            method_id: ids.1,
        })),
    )
}

fn ack(channel: u16, tag: u64, multiple: bool) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: tag,
            multiple,
        })),
    )
}

fn nack(channel: u16, tag: u64) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: tag,
            multiple: false,
            requeue: false,
        })),
    )
}

fn deliver(channel: u16, tag: &str, exchange: &str, key: &str) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: tag.into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: exchange.into(),
            routing_key: key.into(),
        })),
    )
}

fn confirm_select(channel: u16) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
}

fn confirm_select_ok(channel: u16) -> Vec<u8> {
    method(
        channel,
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
    )
}

/// A scripted exchange: ops with timestamps 1000, 2000... in order.
struct Script(Vec<(Side, Vec<u8>)>);

impl Script {
    fn new() -> Self {
        Self(Vec::new())
    }
    fn c(mut self, bytes: Vec<u8>) -> Self {
        self.0.push((Side::Client, bytes));
        self
    }
    fn s(mut self, bytes: Vec<u8>) -> Self {
        self.0.push((Side::Server, bytes));
        self
    }
    fn ops(&self) -> Vec<Op<'_>> {
        let mut ops: Vec<Op<'_>> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (side, b))| Op::Feed(*side, b, (i as u64 + 1) * 1000))
            .collect();
        ops.push(Op::Close((self.0.len() as u64 + 1) * 1000));
        ops
    }
}

/// Runs a script every way (both roles, as scripted, byte by byte, rechunked) and checks it.
fn check_script(name: &str, script: &Script, want: &[&str], losses: &str) {
    let ops = script.ops();
    for traced in [Role::Client, Role::Server] {
        let mut ways = vec![("as scripted".to_owned(), ops.clone())];
        ways.push(("byte by byte".to_owned(), bytewise(&ops)));
        ways.extend((1..=6).map(|seed| (format!("seed {seed}"), rechunk(&ops, seed, 9))));
        for (way, ops) in ways {
            let (lines, got_losses) = run(&ops, traced, true);
            assert_eq!(
                (
                    lines.iter().map(String::as_str).collect::<Vec<_>>(),
                    got_losses.as_str()
                ),
                (want.to_vec(), losses),
                "case {name:?} as {traced:?}, {way}"
            );
        }
    }
}

#[test]
fn framing_table() {
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    // Publish to the default exchange, the body in two frames, a traceparent header.
    let script = Script::new()
        .c(PROTOCOL_HEADER.to_vec())
        .c([publish(1, "", "jobs"), header(1, 5, Some(traceparent))].concat())
        .c(body(1, b"ab"))
        .c(body(1, b"cde"));
    check_script(
        "publish in body frames",
        &script,
        &[&format!(
            r#"send "publish" dest="" key="jobs" traceparent="{traceparent}" body=5 t=2000..4000 req=140 resp=0"#
        )],
        "unmatched_request=1",
    );
    // An empty body: the record ends at the content header.
    let script = Script::new().c([publish(1, "ex", "k"), header(1, 0, None)].concat());
    check_script(
        "empty body",
        &script,
        &[r#"send "publish" dest="ex" key="k" body=0 t=1000..1000 req=42 resp=0"#],
        "none",
    );
    // Declare matched with its -Ok; pushed delivery; heartbeats between.
    let script = Script::new()
        .c(declare(1, "q", false))
        .s(b"\x08\x00\x00\x00\x00\x00\x00\xce".to_vec())
        .s(declare_ok(1, "q", 3))
        .s([
            deliver(1, "ctag", "ex", "rk"),
            header(1, 2, None),
            body(1, b"hi"),
        ]
        .concat());
    check_script(
        "declare and deliver",
        &script,
        &[
            r#"create "queue.declare" dest="q" count=3 t=1000..3000 req=21 resp=22"#,
            r#"process "process" dest="ex" key="rk" client="ctag" body=2 t=4000..4000 req=64 resp=0"#,
        ],
        "none",
    );
    // A passive declare of a missing queue: the broker's Channel.Close is its error; then an
    // unsolicited close (publish to a missing exchange) on channel 2.
    let script = Script::new()
        .c(declare(1, "nope", true))
        .s(channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'nope'",
            (50, 10),
        ))
        .c([publish(2, "missing", "k"), header(2, 0, None)].concat())
        .s(channel_close(
            2,
            404,
            "NOT_FOUND - no exchange 'missing'",
            (60, 40),
        ));
    check_script(
        "errors",
        &script,
        &[
            r#"create "queue.declare" dest="nope" error="404" message="NOT_FOUND - no queue 'nope'" t=1000..2000 req=24 resp=46"#,
            r#"send "publish" dest="missing" key="k" body=0 t=3000..3000 req=47 resp=0"#,
            r#"other "channel.close" error="404" message="NOT_FOUND - no exchange 'missing'" t=4000..4000 req=52 resp=0"#,
        ],
        "none",
    );
    // Publisher confirms: acked one by one, a multiple ack, a nack; one never confirmed.
    let msg = |ch| [publish(ch, "", "q"), header(ch, 1, None), body(ch, b"x")].concat();
    let script = Script::new()
        .c(confirm_select(1))
        .s(confirm_select_ok(1))
        .c(msg(1))
        .c(msg(1))
        .c(msg(1))
        .s(ack(1, 2, true))
        .c(msg(1))
        .s(nack(1, 4))
        .c(msg(1));
    check_script(
        "confirms",
        &script,
        &[
            r#"other "confirm.select" t=1000..2000 req=13 resp=12"#,
            r#"send "publish" dest="" key="q" body=1 t=3000..6000 req=49 resp=21"#,
            r#"send "publish" dest="" key="q" body=1 t=4000..6000 req=49 resp=21"#,
            r#"send "publish" dest="" key="q" error="nack" message="the broker nacked the message" body=1 t=7000..8000 req=49 resp=21"#,
            r#"send "publish" dest="" key="q" body=1 t=5000..5000 req=49 resp=0"#,
            r#"send "publish" dest="" key="q" body=1 t=9000..9000 req=49 resp=0"#,
        ],
        "unmatched_request=2",
    );
}

/// Bytes moved but not captured: inside a body frame they are counted; elsewhere sync is
/// lost and found again at the next whole method frame.
#[test]
fn skips() {
    let payload = [b'x'; 100];
    let start = [publish(1, "", "q"), header(1, 100, None)].concat();
    let frame = body(1, &payload);
    let (head, tail) = (&frame[..17], &frame[97..]);
    let ops = vec![
        Op::Feed(Side::Client, &start, 1000),
        Op::Feed(Side::Client, head, 2000),
        Op::Skip(Side::Client, Some(80), 3000),
        Op::Feed(Side::Client, tail, 4000),
        Op::Close(5000),
    ];
    let want =
        vec![r#"send "publish" dest="" key="q" body=100 t=1000..4000 req=148 resp=0"#.to_owned()];
    for traced in [Role::Client, Role::Server] {
        for ops in [ops.clone(), bytewise(&ops), rechunk(&ops, 3, 5)] {
            let (lines, losses) = run(&ops, traced, true);
            assert_eq!((lines, losses.as_str()), (want.clone(), "none"));
        }
    }
    // A gap of unknown length inside a declare: it is given up; junk, then a whole declare
    // and its -Ok pair up again.
    let first = declare(1, "lost", false);
    let again = [b"junk\x01\x00".to_vec(), declare(1, "found", false)].concat();
    let ops = vec![
        Op::Feed(Side::Client, &first[..10], 1000),
        Op::Skip(Side::Client, None, 2000),
        Op::Feed(Side::Client, &again, 3000),
        Op::Feed(Side::Server, &[0; 0], 3500),
    ];
    let ok = declare_ok(1, "found", 0);
    let mut ops = ops;
    ops.push(Op::Feed(Side::Server, &ok, 4000));
    ops.push(Op::Close(5000));
    let want = vec![
        r#"create "queue.declare" dest="found" count=0 t=3000..4000 req=25 resp=26"#.to_owned(),
    ];
    for traced in [Role::Client, Role::Server] {
        for ops in [ops.clone(), bytewise(&ops), rechunk(&ops, 5, 4)] {
            let (lines, losses) = run(&ops, traced, true);
            assert_eq!((lines, losses.as_str()), (want.clone(), "resync_bytes=6"));
        }
    }
}

/// Garbage, truncations and mutations of the recordings never panic; no record ever has a
/// wrong protocol or role.
#[test]
fn garbage_and_mutations() {
    let mut rng = XorShift(0x5eed);
    for _ in 0..300 {
        let len = rng.below(600) as usize;
        let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut p = AmqpParser::new();
        let mut out = Output::default();
        p.feed(Direction::Egress, &junk, 1, &mut out);
        p.feed(Direction::Ingress, &junk, 2, &mut out);
        p.skip(Direction::Ingress, None, 3, &mut out);
        p.feed(Direction::Ingress, &junk, 4, &mut out);
        p.close(5, &mut out);
    }
    for case in CASES {
        let cap = Capture::load(DIR, case);
        for round in 0..40 {
            let mut client = cap.client.clone();
            let mut server = cap.server.clone();
            for _ in 0..=(round % 5) {
                for stream in [&mut client, &mut server] {
                    if !stream.is_empty() {
                        let at = rng.below(stream.len() as u64) as usize;
                        stream[at] = rng.next() as u8;
                    }
                }
            }
            let cut = rng.below(client.len() as u64 + 1) as usize;
            let ops = vec![
                Op::Feed(Side::Client, &client[..cut], 1000),
                Op::Feed(Side::Server, &server, 2000),
                Op::Feed(Side::Client, &client[cut..], 3000),
                Op::Close(4000),
            ];
            for traced in [Role::Client, Role::Server] {
                let _ = run(&rechunk(&ops, round + 1, 300), traced, false);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

#[test]
fn recorded_baselines() {
    for case in CASES {
        let cap = Capture::load(DIR, case);
        let ops = cap.ops();
        let (lines, losses) = run(&ops, Role::Client, true);
        let got = text(&lines, &losses);
        check_baseline(DIR, &format!("{case}.expected"), &got);
        // The broker's view gives the same records; so does any split of the segments.
        assert_eq!(
            run(&ops, Role::Server, true),
            (lines.clone(), losses.clone()),
            "{case}"
        );
        let split = rechunk(&ops, 7, 61);
        assert_eq!(
            run(&split, Role::Client, true),
            (lines.clone(), losses.clone()),
            "{case}"
        );
        if cap.client.len() + cap.server.len() < 20_000 {
            assert_eq!(
                run(&bytewise(&ops), Role::Server, true),
                (lines, losses),
                "{case}"
            );
        }
    }
}

/// Each side in one feed (client first): same records without times, nothing lost beyond the
/// baseline (confirms and replies are matched by content, not by timing).
#[test]
fn recorded_whole_streams() {
    // In `errors` the broker's closes race with what the client sends meanwhile: not here.
    for case in CASES.iter().filter(|c| **c != "errors") {
        let cap = Capture::load(DIR, case);
        let (timed, losses) = run(&cap.ops(), Role::Client, false);
        let (whole, whole_losses) = run(&cap.ops_whole(), Role::Client, false);
        let mut a = timed.clone();
        let mut b = whole.clone();
        a.sort();
        b.sort();
        assert_eq!((a, losses), (b, whole_losses), "{case}");
    }
}

/// Gaps: a known-length skip inside a body frame changes nothing; any other gap never gives a
/// record the full run does not give.
#[test]
fn recorded_gaps() {
    let cap = Capture::load(DIR, "large_publish");
    let (lines, losses) = run(&cap.ops(), Role::Client, true);
    // Inside the first 128 KiB body frame of the 300 KiB publish (the Get, delete and closes
    // after it are small).
    let at = cap.client.len() - 300_000;
    let ops = cap.ops_with_gap(Side::Client, at..at + 50_000, true);
    assert_eq!(run(&ops, Role::Client, true), (lines, losses));
    for case in CASES {
        let cap = Capture::load(DIR, case);
        let (full, _) = run(&cap.ops(), Role::Client, false);
        let mut rng = XorShift(case.len() as u64);
        for known in [true, false] {
            for side in [Side::Client, Side::Server] {
                for _ in 0..12 {
                    let stream = cap.stream(side);
                    let start = rng.below(stream.len() as u64) as usize;
                    let end = (start + 1 + rng.below(3000) as usize).min(stream.len());
                    let ops = cap.ops_with_gap(side, start..end, known);
                    let (got, _) = run(&ops, Role::Client, false);
                    let full: Vec<String> = full.iter().map(|l| without_confirm(l)).collect();
                    for line in &got {
                        // A broker's close whose cause was in the gap stands on its own.
                        let unattributed = line.starts_with(r#"other "channel.close" error="#)
                            && full.iter().any(|l| l.contains(error_of(line)));
                        assert!(
                            full.contains(&without_confirm(line)) || unattributed,
                            "{case}: gap {start}..{end} ({side:?}, known {known}) gave {line}"
                        );
                    }
                }
            }
        }
    }
}

/// A publish line without what the broker's confirm adds (a gap that hides Confirm.Select
/// leaves publishes unconfirmed, not wrong).
fn without_confirm(line: &str) -> String {
    if !line.starts_with(r#"send "publish""#) {
        return line.to_owned();
    }
    let line = line.replace(
        r#" error="nack" message="the broker nacked the message""#,
        "",
    );
    line.split(" resp=").next().unwrap_or_default().to_owned()
}

/// The ` error=... message=...` part of a line.
fn error_of(line: &str) -> &str {
    let from = line.find(" error=").unwrap_or(line.len());
    let to = line.find(" req=").unwrap_or(line.len()).max(from);
    &line[from..to]
}

/// Joining a recorded connection after its handshake: the method frames are recognised.
#[test]
fn recorded_joined_mid_stream() {
    let cap = Capture::load(DIR, "basic");
    let (full, _) = run(&cap.ops(), Role::Client, true);
    for first in 1..cap.timeline.len() {
        let (got, _) = run(&cap.ops_from(first), Role::Client, true);
        // Joined after the protocol header, the handshake record starts at Connection.Start.
        for line in got.iter().filter(|l| !l.starts_with(r#"other "connect""#)) {
            assert!(full.contains(line), "joined at {first}: {line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inference.

#[test]
fn inference_table() {
    let hb = b"\x08\x00\x00\x00\x00\x00\x00\xce";
    type Want = Option<(u8, Option<Role>)>;
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        (
            "protocol header",
            PROTOCOL_HEADER.to_vec(),
            Some((100, Some(Role::Client))),
        ),
        ("AMQP 1.0 header", b"AMQP\x00\x01\x00\x00".to_vec(), None),
        ("heartbeat", hb.to_vec(), Some((30, None))),
        (
            "declare",
            declare(1, "q", false),
            Some((60, Some(Role::Client))),
        ),
        (
            "declare-ok",
            declare_ok(1, "q", 0),
            Some((60, Some(Role::Server))),
        ),
        ("declare, cut", declare(1, "q", false)[..12].to_vec(), None),
        ("ack", ack(1, 1, false), Some((60, None))),
        (
            "bad frame end",
            [&declare(1, "q", false)[..20], b"\x00"].concat(),
            None,
        ),
        ("body frame", body(1, b"xyz"), None),
        ("http", b"GET / HTTP/1.1\r\n\r\n".to_vec(), None),
        ("redis", b"*1\r\n$4\r\nPING\r\n".to_vec(), None),
    ];
    for (name, bytes, want) in cases {
        let got = infer(Direction::Egress, &bytes).map(|i| (i.confidence, i.sender_role));
        assert_eq!(got, want, "{name}");
    }
    // The recorded broker's Connection.Start.
    let cap = Capture::load(DIR, "basic");
    let got = infer(Direction::Ingress, &cap.server).map(|i| (i.confidence, i.sender_role));
    assert_eq!(got, Some((95, Some(Role::Server))));
    let start = &cap.server[..20];
    let got = infer(Direction::Ingress, start).map(|i| (i.confidence, i.sender_role));
    assert_eq!(got, Some((90, Some(Role::Server))));
}

/// The other protocols' recordings are never taken for AMQP, and AMQP's never for theirs.
#[test]
fn other_protocols_not_inferred() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).expect("testdata").flatten() {
        let proto = entry.file_name().to_string_lossy().into_owned();
        let Ok(dir) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for file in dir.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("readable fixture");
            for dir in [Direction::Egress, Direction::Ingress] {
                let got = crate::infer(dir, &bytes).map(|i| i.protocol);
                if proto == DIR {
                    assert_eq!(got, Some(Protocol::Amqp), "{}", path.display());
                } else {
                    seen += 1;
                    assert_ne!(
                        got,
                        Some(Protocol::Amqp),
                        "{} taken for AMQP",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(seen > 0, "no other fixtures under {}", root.display());
}

// ---------------------------------------------------------------------------------------------
// The public capture: nDPI's `amqp.pcap`.

mod capture {
    use crate::testkit::{TcpConn as Conn, capture_connections, replay_conn};
    use crate::{Direction, Output, Role};

    use super::{AmqpParser, line};

    /// Records of one connection fed as captured, with the traced process as `traced`.
    pub(super) fn replay(conn: &Conn, traced: Role, chunk: usize) -> (Vec<String>, Output) {
        let mut p = AmqpParser::new();
        let mut out = Output::default();
        replay_conn(&mut p, conn, traced, chunk, &mut out);
        let lines = out.records.iter().map(|r| line(r, false)).collect();
        (lines, out)
    }

    /// Three connections of a Celery worker to RabbitMQ, joined after their handshakes (no
    /// SYN, no protocol header): publishes of Celery events, deliveries of tasks and events,
    /// acks. Nothing is lost; the broker's and the worker's views agree, however split.
    #[test]
    fn ndpi_capture() {
        // Joined after the handshakes: no SYN, the higher port is the client's.
        let conns = capture_connections("ndpi/amqp.pcap", true);
        let amqp: Vec<(&(u16, u16), &Conn)> = conns
            .iter()
            .filter(|((_, server), _)| *server == 5672)
            .collect();
        assert_eq!(amqp.len(), 3, "three AMQP connections");
        let mut all = Vec::new();
        for (ports, conn) in &amqp {
            let (lines, mut out) = replay(conn, Role::Client, usize::MAX);
            let (bytewise, _) = replay(conn, Role::Client, 1);
            assert_eq!(lines, bytewise, "{ports:?}");
            let (as_server, _) = replay(conn, Role::Server, 7);
            assert_eq!(lines, as_server, "{ports:?}");
            for (loss, n) in out.take_losses() {
                assert_eq!(n, 0, "{ports:?} {loss:?}");
            }
            // Joined mid-stream: the first segment is a method frame, inferred at 60.
            let first = &conn[0];
            let dir = if first.0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            assert_eq!(super::infer(dir, &first.1).map(|i| i.confidence), Some(60));
            all.extend(lines);
        }
        let count = |prefix: &str| all.iter().filter(|l| l.starts_with(prefix)).count();
        let events = r#"send "publish" dest="celeryev" key="#;
        let tasks = r#"send "publish" dest="default" key="tasks.#" body=238"#;
        assert_eq!((count(events), count(tasks)), (18, 5), "{all:#?}");
        let heartbeats = r#"process "process" dest="celeryev" key="worker.heartbeat" client="3""#;
        let delivered = r#"process "process" dest="default" key="tasks.#" client="4" body=238"#;
        assert_eq!((count(heartbeats), count(delivered)), (3, 5), "{all:#?}");
        assert_eq!(count(r#"settle "ack" req=21"#), 5, "{all:#?}");
        assert_eq!(all.len(), 18 + 5 + 3 + 5 + 5, "{all:#?}");
    }
}
