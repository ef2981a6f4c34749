//! NATS tests: byte-literal tables for framing, pairing and inference, and golden replays of
//! traffic recorded from nats-server (`testdata/nats/`, see its README) in both roles, split
//! every way, with gaps and mutations; and the public nDPI capture
//! `../shared/captures/ndpi/nats.pcap` (read at test time, never copied in).
//!
//! Baselines are `testdata/nats/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers nats`.

use std::fmt::Write as _;

use super::{MAX_LINE, NatsParser, infer};
use crate::testkit::{
    Capture, Case, Chunkings, Op, Outcome, Script, Side, XorShift, assert_any_chunks,
    case_failures, check_baseline, direction, outcome,
};
use crate::{
    Detail, Direction, MessagingOperation, MessagingSystem, Output, Parser, Protocol, Record, Role,
};

/// Fixture folder under `testdata/`.
const DIR: &str = "nats";

/// Every recorded case (see `testdata/nats/README.md`).
const CASES: &[&str] = &[
    "publish",
    "subscribe",
    "responder",
    "requester",
    "headers_sub",
    "headers_pub",
    "large_sub",
    "large_pub",
    "denied",
    "verbose",
    "max_payload",
];

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Runs `ops` with the traced process as `traced`; checks every record's role and protocol.
fn run(ops: &[Op<'_>], traced: Role, times: bool) -> Outcome {
    let render = |r: &Record| {
        assert!(r.start_ns <= r.end_ns, "{r:?}");
        line(r, times)
    };
    outcome(NatsParser::new(), ops, traced, Protocol::Nats, render).0
}

/// One record as a line; times in ns (left out when the feeding pattern changes them).
fn line(r: &Record, times: bool) -> String {
    let Detail::Messaging(m) = &r.detail else {
        panic!("not a messaging record: {r:?}")
    };
    assert_eq!(m.system, MessagingSystem::Nats);
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let op = m.operation.as_str().unwrap_or("other");
    let mut s = format!("{op} {} dest={}", m.operation_name, opt(&m.destination));
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(s, " req={} resp={}", r.request_bytes, r.response_bytes);
    if let Some(n) = m.body_size {
        let _ = write!(s, " body={n}");
    }
    let _ = write!(s, " client={}", opt(&m.client_id));
    if m.traceparent.is_some() {
        let _ = write!(s, " tp={}", opt(&m.traceparent));
    }
    if m.error_type.is_some() || m.error_message.is_some() {
        let _ = write!(
            s,
            " error={} message={}",
            opt(&m.error_type),
            opt(&m.error_message)
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Byte-literal tables.

const INFO: &[u8] = b"INFO {\"server_id\":\"X\",\"version\":\"2.9.10\",\"headers\":true,\"max_payload\":1048576}\r\n";
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"name\":\"app-1\",\"headers\":true,\"tags\":[\"a\",{\"b\":\"}\"}]}\r\n";
const CONNECT_VERBOSE: &[u8] = b"CONNECT {\"name\":\"v\\u00e9rb\",\"verbose\":true}\r\n";

#[test]
fn framing_table() {
    let with_headers = |line: &str, headers: &str, body: &str| {
        let (h, t) = (headers.len(), headers.len() + body.len());
        format!("{line} {h} {t}\r\n{headers}{body}\r\n")
    };
    let hpub = with_headers(
        "HPUB orders.new",
        &format!("NATS/1.0\r\nTraceParent:  {TRACEPARENT} \r\nX: y\r\n\r\n"),
        "hello",
    );
    let hmsg = with_headers(
        "HMSG orders.new 7 _INBOX.r",
        &format!("NATS/1.0\r\ntraceparent: {TRACEPARENT}\r\n\r\n"),
        "hi",
    );
    let long_line = format!("PUB {} 1\r\nx\r\n", "s".repeat(MAX_LINE));
    let cases = [
        Case {
            name: "publish: one-way records at the message's last byte; client name from CONNECT",
            ops: Script::new()
                .s(INFO)
                .c(CONNECT)
                .c(b"PING\r\n")
                .s(b"PONG\r\n")
                .c(b"PUB greet.hello  5\r\nhel")
                .c(b"lo\r\nPUB greet.empty _INBOX.1 0\r\n\r\n")
                .0,
            want: &[
                r#"send publish dest="greet.hello" t=6000..6000 req=27 resp=0 body=5 client="app-1""#,
                r#"send publish dest="greet.empty" t=6000..6000 req=30 resp=0 body=0 client="app-1""#,
            ],
            losses: "none",
        },
        Case {
            name: "deliveries: MSG and HMSG with a traceparent (header name in any case)",
            ops: Script::new()
                .s(INFO)
                .c(b"SUB orders.* q 7\r\n")
                .s(b"MSG orders.new 7 2\r\nhi\r\n")
                .s(hmsg.as_bytes())
                .c(b"UNSUB 7 10\r\n")
                .0,
            want: &[
                r#"process process dest="orders.new" t=3000..3000 req=24 resp=0 body=2 client=-"#,
                &format!(
                    r#"process process dest="orders.new" t=4000..4000 req=120 resp=0 body=2 client=- tp="{TRACEPARENT}""#
                ),
            ],
            losses: "none",
        },
        Case {
            name: "HPUB: traceparent from the headers, body size without headers",
            ops: Script::new().c(hpub.as_bytes()).0,
            want: &[&format!(
                r#"send publish dest="orders.new" t=1000..1000 req=120 resp=0 body=5 client=- tp="{TRACEPARENT}""#
            )],
            losses: "none",
        },
        Case {
            name: "operations in any case, tabs and repeated spaces between arguments",
            ops: Script::new()
                .c(b"connect {\"name\":\"lc\"}\r\npub\ta.b \t 1\r\nx\r\nping\r\n")
                .s(b"pong\r\nmsg a.b 1 1\r\ny\r\n")
                .0,
            want: &[
                r#"send publish dest="a.b" t=1000..1000 req=16 resp=0 body=1 client="lc""#,
                r#"process process dest="a.b" t=2000..2000 req=16 resp=0 body=1 client="lc""#,
            ],
            losses: "none",
        },
        Case {
            name: "verbose: PUB waits for +OK or -ERR, in order; CONNECT and SUB take theirs",
            ops: Script::new()
                .c(CONNECT_VERBOSE)
                .s(b"+OK\r\n")
                .c(b"PUB a 1\r\nx\r\nSUB b 1\r\nPUB secret.x 2\r\nno\r\nPING\r\n")
                .s(b"+OK\r\n+OK\r\n")
                .s(b"-ERR 'Permissions Violation for Publish to \"secret.x\"'\r\nPONG\r\n")
                .0,
            want: &[
                r#"send publish dest="a" t=3000..4000 req=12 resp=5 body=1 client="vérb""#,
                r#"send publish dest="secret.x" t=3000..5000 req=20 resp=56 body=2 client="vérb" error="Permissions Violation for Publish" message="Permissions Violation for Publish to \"secret.x\"""#,
            ],
            losses: "none",
        },
        Case {
            name: "verbose PUB never answered; +OK with nothing waiting",
            ops: Script::new()
                .c(CONNECT_VERBOSE)
                .s(b"+OK\r\n+OK\r\n")
                .c(b"PUB a 1\r\nx\r\n")
                .close()
                .0,
            want: &[],
            losses: "unmatched_request=1 unmatched_response=1",
        },
        Case {
            name: "-ERR answering nothing: an error record; connection-wide errors never pair",
            ops: Script::new()
                .s(INFO)
                .c(CONNECT)
                .c(b"PUB x.y 1\r\n1\r\n")
                .s(b"-ERR 'Permissions Violation for Publish to \"x.y\"'\r\n")
                .c(b"PUB big 2000000\r\n")
                .s(b"-ERR 'Maximum Payload Violation'\r\n")
                .close()
                .0,
            want: &[
                r#"send publish dest="x.y" t=3000..3000 req=14 resp=0 body=1 client="app-1""#,
                r#"other error dest="x.y" t=4000..4000 req=0 resp=51 client="app-1" error="Permissions Violation for Publish" message="Permissions Violation for Publish to \"x.y\"""#,
                r#"other error dest=- t=6000..6000 req=0 resp=34 client="app-1" error="Maximum Payload Violation" message="Maximum Payload Violation""#,
            ],
            losses: "unmatched_request=1",
        },
        Case {
            name: "payload larger than the capture: known skips count through it",
            ops: Script::new()
                .c(b"PUB blob 100000\r\nBBBB")
                .skip(Side::Client, Some(99_990))
                .c(b"BBBBBB\r\nPUB after 1\r\nz\r\n")
                .0,
            want: &[
                r#"send publish dest="blob" t=3000..3000 req=100019 resp=0 body=100000 client=-"#,
                r#"send publish dest="after" t=3000..3000 req=16 resp=0 body=1 client=-"#,
            ],
            losses: "none",
        },
        Case {
            name: "a known skip that ends the payload and its trailer completes the message",
            ops: Script::new()
                .c(b"PUB blob 10\r\n")
                .skip(Side::Client, Some(12))
                .c(b"PUB after 1\r\nz\r\n")
                .0,
            want: &[
                r#"send publish dest="blob" t=2000..2000 req=25 resp=0 body=10 client=-"#,
                r#"send publish dest="after" t=3000..3000 req=16 resp=0 body=1 client=-"#,
            ],
            losses: "none",
        },
        Case {
            name: "unknown gap: resync on the next line with a known operation",
            ops: Script::new()
                .c(b"PUB a 10\r\n01234")
                .skip(Side::Client, None)
                .c(b"89\r\nPUB bogus\r\nxx\r\nPUB b 1\r\nz\r\n")
                .0,
            want: &[r#"send publish dest="b" t=3000..3000 req=12 resp=0 body=1 client=-"#],
            losses: "unmatched_request=1 resync_bytes=19",
        },
        Case {
            name: "wrong byte count: the trailer is not \\r\\n",
            ops: Script::new().c(b"PUB a 2\r\nxyz\r\nPUB b 1\r\nz\r\n").0,
            want: &[r#"send publish dest="b" t=1000..1000 req=12 resp=0 body=1 client=-"#],
            losses: "malformed=1 unmatched_request=1 resync_bytes=3",
        },
        Case {
            name: "oversized line",
            ops: Script::new()
                .c(b"SUB s 1\r\n")
                .c(long_line.as_bytes())
                .c(b"PUB ok 1\r\nz\r\n")
                .0,
            want: &[r#"send publish dest="ok" t=3000..3000 req=13 resp=0 body=1 client=-"#],
            losses: "oversized=1 resync_bytes=65547",
        },
    ];
    let failures = case_failures(&cases, |ops, traced| run(ops, traced, true));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn connect_options_and_headers() {
    use super::line::{connect_options, traceparent};
    let o = connect_options(br#"{"tls":{"a":[1,"]"]},"name":"n\"1","verbose":true}"#);
    assert_eq!((o.name.as_deref(), o.verbose), (Some("n\"1"), true));
    let o = connect_options(br#"{"name":"","verbose":false"#);
    assert_eq!((o.name, o.verbose), (None, false));
    assert_eq!(connect_options(b"{\"name\":").name, None);
    assert_eq!(
        traceparent(b"NATS/1.0\r\nTRACEPARENT: 00-x-y-01\r\n\r\n").as_deref(),
        Some("00-x-y-01")
    );
    assert_eq!(traceparent(b"HTTP/1.1\r\ntraceparent: a\r\n"), None);
    assert_eq!(traceparent(b"NATS/1.0 503\r\n\r\n"), None);
}

#[test]
fn infer_table() {
    let nats = |bytes: &[u8]| {
        infer(Direction::Egress, bytes).map(|i| {
            assert_eq!(i.protocol, Protocol::Nats);
            (i.confidence, i.sender_role)
        })
    };
    let (c, s) = (Some(Role::Client), Some(Role::Server));
    assert_eq!(nats(INFO), Some((95, s)));
    assert_eq!(nats(b"INFO {\"server_id"), Some((95, s)));
    assert_eq!(nats(CONNECT), Some((95, c)));
    assert_eq!(nats(b"PUB a.b 5\r\nhello\r\n"), Some((70, c)));
    assert_eq!(nats(b"PUB a.b 5\r\nhel"), Some((50, c)));
    assert_eq!(
        nats(b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        Some((70, c))
    );
    assert_eq!(nats(b"MSG a 1 _INBOX.x 2\r\nhi\r\nPING\r\n"), Some((70, s)));
    assert_eq!(nats(b"SUB a 1\r\n"), Some((50, c)));
    assert_eq!(
        nats(b"-ERR 'Unknown Protocol Operation'\r\n"),
        Some((45, s))
    );
    assert_eq!(nats(b"PING\r\n"), Some((20, None)));
    assert_eq!(nats(b"+OK\r\n"), Some((20, s)));
    // Inconsistent byte count, unfinished line, other protocols' openings.
    for no in [
        &b"PUB a.b 5\r\nhello!!"[..],
        b"PUB a.b 5",
        b"PUB a.b x\r\n",
        b"MSG a 5\r\nhello\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"INFO\r\n",
        b"*1\r\n$4\r\nPING\r\n",
        b"-ERR unknown command 'FOOBAR'\r\n",
        b"AMQP\x00\x00\x09\x01",
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
        b"",
    ] {
        assert_eq!(nats(no), None, "{:?}", String::from_utf8_lossy(no));
    }
    // Redis claims the ambiguous keep-alives more surely.
    for both in [&b"PING\r\n"[..], b"+OK\r\n"] {
        let winner = crate::infer(Direction::Egress, both).expect("someone claims it");
        assert_eq!(winner.protocol, Protocol::Redis);
    }
    assert_eq!(
        crate::infer(Direction::Ingress, INFO).map(|i| i.protocol),
        Some(Protocol::Nats)
    );
}

/// The other protocols' recordings are never taken for NATS, whichever segment they start at.
#[test]
fn other_protocols_not_inferred() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut seen = 0;
    for proto in [
        "http1",
        "mysql",
        "postgres",
        "redis",
        "cassandra",
        "kafka",
        "amqp",
        "dns",
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(proto)) else {
            continue;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(case) = name.strip_suffix(".timeline") else {
                continue;
            };
            let capture = Capture::load(proto, case);
            for side in [Side::Client, Side::Server] {
                let stream = capture.stream(side);
                let own = crate::infer(Direction::Egress, stream).map(|i| i.protocol);
                if let Some(i) = infer(Direction::Egress, stream) {
                    assert!(
                        own != Some(Protocol::Nats) && i.confidence <= 20,
                        "{proto}/{case} {side:?} taken for NATS ({})",
                        i.confidence
                    );
                }
                seen += 1;
            }
        }
    }
    assert!(seen > 10, "other protocols' fixtures found");
}

#[test]
fn garbage_does_not_panic() {
    let mut rng = XorShift(0x5eed);
    let alphabet: &[&[u8]] = &[
        b"PUB ",
        b"HPUB ",
        b"MSG ",
        b"HMSG ",
        b"SUB ",
        b"+OK",
        b"-ERR '",
        b"PING",
        b"CONNECT {",
        b"INFO {",
        b"\r\n",
        b"\n",
        b" ",
        b"5",
        b"12",
        b"99999999999",
        b"a.b",
        b"NATS/1.0\r\n",
        b"traceparent: x",
        b"\"verbose\":true}",
        b"\x00",
        b"\xff",
    ];
    for _ in 0..3000 {
        let mut bytes = Vec::new();
        for _ in 0..rng.below(40) {
            bytes.extend_from_slice(alphabet[rng.below(alphabet.len() as u64) as usize]);
        }
        let _ = infer(Direction::Egress, &bytes);
        let mut p = NatsParser::new();
        let mut out = Output::default();
        for (i, chunk) in bytes.chunks(rng.below(9) as usize + 1).enumerate() {
            let dir = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            match rng.below(10) {
                0 => p.skip(dir, Some(rng.below(20)), i as u64, &mut out),
                1 => p.skip(dir, None, i as u64, &mut out),
                _ => p.feed(dir, chunk, i as u64, &mut out),
            }
        }
        p.close(u64::MAX, &mut out);
        for r in &out.records {
            assert_eq!(Some(r.role), p.role());
            assert!(r.start_ns <= r.end_ns);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded traffic.

#[test]
fn captures_match_baselines() {
    for case in CASES {
        let capture = Capture::load(DIR, case);
        let got = run(&capture.ops(), Role::Client, true);
        check_baseline(DIR, &format!("{case}.expected"), &got.text());
        let as_server = run(&capture.ops(), Role::Server, true);
        assert_eq!(
            as_server, got,
            "{case}: the server role gives the same records"
        );
    }
}

/// Each capture in random chunks, byte by byte (the small ones), and in two whole feeds.
#[test]
fn captures_split_everywhere() {
    let ways = Chunkings::COARSE;
    for case in CASES {
        assert_any_chunks(case, &Capture::load(DIR, case), run, &ways);
    }
}

#[test]
fn captures_with_uncaptured_payload_bytes() {
    // The 100,000-byte payload, all but its first 1000 bytes not captured: same records.
    for (case, side) in [("large_pub", Side::Client), ("large_sub", Side::Server)] {
        let capture = Capture::load(DIR, case);
        let stream = capture.stream(side);
        let at = stream
            .windows(6)
            .position(|w| w == b"BBBBBB")
            .expect("the payload");
        let want = run(&capture.ops(), Role::Client, false);
        let got = run(
            &capture.ops_with_gap(side, at + 1000..at + 100_000, true),
            Role::Client,
            false,
        );
        assert_eq!(got, want, "{case}");
        assert!(
            want.lines.iter().any(|l| l.contains("body=100000")),
            "{case}"
        );
        // Unknown length: the message is lost, later lines are found again.
        let got = run(
            &capture.ops_with_gap(side, at + 1000..at + 100_000, false),
            Role::Client,
            false,
        );
        assert!(
            got.losses.contains("unmatched_request=1"),
            "{case}: {got:?}"
        );
    }
}

#[test]
fn ops_are_not_records() {
    // The publish recording: CONNECT, PING x2, PONG x2, INFO frame as messages, make none.
    let capture = Capture::load(DIR, "publish");
    let out = run(&capture.ops(), Role::Client, false);
    assert_eq!(out.lines.len(), 3, "{out:?}");
}

#[test]
fn mutated_captures_do_not_panic() {
    let mut rng = XorShift(7);
    for case in CASES {
        let capture = Capture::load(DIR, case);
        for _ in 0..20 {
            let mut client = capture.client.clone();
            let mut server = capture.server.clone();
            for stream in [&mut client, &mut server] {
                for _ in 0..4 {
                    if stream.is_empty() {
                        break;
                    }
                    let i = rng.below(stream.len() as u64) as usize;
                    stream[i] = rng.next() as u8;
                }
            }
            let mut p = NatsParser::new();
            let mut out = Output::default();
            for (c, s) in client.chunks(61).zip(server.chunks(53)) {
                p.feed(Direction::Egress, c, 1, &mut out);
                p.feed(Direction::Ingress, s, 2, &mut out);
            }
            p.close(3, &mut out);
        }
    }
}

#[test]
fn recorded_records_have_the_fields() {
    let records = |case: &str| {
        let capture = Capture::load(DIR, case);
        let mut p = NatsParser::new();
        let mut out = Output::default();
        for op in capture.ops() {
            match op {
                Op::Feed(side, b, ts) => p.feed(direction(side, Role::Client), b, ts, &mut out),
                Op::Close(ts) => p.close(ts, &mut out),
                _ => {}
            }
        }
        out.records
            .into_iter()
            .filter_map(|r| match r.detail {
                Detail::Messaging(m) => Some(m),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let sent = records("headers_pub");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].operation, MessagingOperation::Send);
    assert_eq!(sent[0].traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(sent[0].client_id.as_deref(), Some("headers-pub"));
    assert_eq!(sent[1].traceparent, None);
    let got = records("headers_sub");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].operation, MessagingOperation::Process);
    assert_eq!(got[0].traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(got[0].destination.as_deref(), Some("traced.order"));
    let denied = records("denied");
    let error = denied.last().expect("the -ERR record");
    assert_eq!(
        error.error_type.as_deref(),
        Some("Permissions Violation for Publish")
    );
    assert_eq!(error.destination.as_deref(), Some("secret.plans"));
    let verbose = records("verbose");
    assert!(
        verbose
            .iter()
            .all(|m| m.operation == MessagingOperation::Send)
    );
    assert_eq!(verbose.len(), 4);
    assert!(verbose[3].error_type.is_some());
}

// ---------------------------------------------------------------------------------------------
// The public capture: nDPI's `nats.pcap` (two connections to a NATS 2.1.6 server: INFO,
// CONNECT + PING, PONG; the second also a server PING answered by the client's PONG).

mod capture {
    use crate::testkit::{assert_silent_replay, capture_connections};
    use crate::{Direction, Protocol, Role};

    use super::{NatsParser, infer};

    #[test]
    fn ndpi_capture() {
        // BSD loopback frames (link type 0).
        let conns = capture_connections("ndpi/nats.pcap", false);
        assert_eq!(conns.len(), 2, "two NATS connections in the capture");
        for conn in conns.values() {
            let first_client = &conn.iter().find(|(c, _, _)| *c).expect("client bytes").1;
            let first_server = &conn.iter().find(|(c, _, _)| !*c).expect("server bytes").1;
            let i = infer(Direction::Ingress, first_server).expect("INFO");
            assert_eq!(
                (i.protocol, i.confidence, i.sender_role),
                (Protocol::Nats, 95, Some(Role::Server))
            );
            let i = crate::infer(Direction::Egress, first_client).expect("CONNECT");
            assert_eq!(
                (i.protocol, i.confidence, i.sender_role),
                (Protocol::Nats, 95, Some(Role::Client))
            );
            // INFO, CONNECT, PING and PONG make no record, and nothing is lost.
            assert_silent_replay(conn, NatsParser::new);
        }
    }
}
