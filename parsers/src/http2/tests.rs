//! HTTP/2 and gRPC tests: golden replays of traffic recorded from nghttpd (curl, nghttp,
//! h2load) and Python grpcio (`testdata/http2/`, `testdata/grpc/`, see their READMEs) in both
//! roles, split every way; joined mid-stream and with gaps, where no header may be wrong;
//! mutations; a hand-built `Upgrade: h2c` exchange.
//!
//! Baselines are `testdata/<dir>/<case>.expected`; regenerate them deliberately with
//! `WIRELENS_BLESS=1 cargo test -p wirelens-parsers http2`.

use std::fmt::Write as _;

use super::{H2cUpgrade, Http2Parser, PREFACE, infer};
use crate::testkit::{
    Capture, Chunkings, Op, Outcome, Side, XorShift, assert_any_chunks, check_baseline, direction,
    outcome, play,
};
use crate::{Detail, Direction, Loss, Output, Parser, Protocol, Record, Role};

const HTTP2: &str = "http2";
const GRPC: &str = "grpc";

/// Every recorded HTTP/2 case (see `testdata/http2/README.md`).
const HTTP2_CASES: &[&str] = &[
    "curl_get",
    "nghttp_many",
    "nghttp_big_post",
    "h2load_streams",
];
/// Every recorded gRPC case (see `testdata/grpc/README.md`).
const GRPC_CASES: &[&str] = &[
    "unary",
    "server_stream",
    "bidi",
    "client_stream",
    "not_found",
];

fn all_cases() -> impl Iterator<Item = (&'static str, &'static str)> {
    HTTP2_CASES
        .iter()
        .map(|c| (HTTP2, *c))
        .chain(GRPC_CASES.iter().map(|c| (GRPC, *c)))
}

fn run(ops: &[Op<'_>], traced: Role, times: bool) -> Outcome {
    let render = |r: &Record| {
        assert!(r.start_ns <= r.end_ns, "{r:?}");
        line(r, times)
    };
    outcome(Http2Parser::new(), ops, traced, Protocol::Http2, render).0
}

/// One record as a line; times in ns (left out when the feeding pattern changes them).
fn line(r: &Record, times: bool) -> String {
    let opt = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), |s| format!("{s:?}"));
    let num = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
    let mut s = match &r.detail {
        Detail::Http(h) => {
            let status = h.status.map_or("-".to_owned(), |s| s.to_string());
            format!(
                "{} {:?} {} -> {status} host={} ua={} tp={} ctype={}/{} body={}/{}",
                if h.method.is_empty() { "?" } else { &h.method },
                h.target,
                h.version.map_or("-", |v| v.as_str()),
                opt(&h.host),
                opt(&h.user_agent),
                opt(&h.traceparent),
                opt(&h.request_content_type),
                opt(&h.response_content_type),
                h.request_body_len,
                h.response_body_len,
            )
        }
        Detail::Rpc(g) => format!(
            "{} {}/{} -> {} {} msg={} msgs={}/{} http={} reset={} tp={} ctype={}",
            g.system.as_str(),
            opt(&g.service),
            opt(&g.method),
            g.status_code.map_or("-".to_owned(), |c| c.to_string()),
            g.status_name().unwrap_or("-"),
            opt(&g.status_message),
            num(g.request_messages),
            num(g.response_messages),
            g.http_status.map_or("-".to_owned(), |s| s.to_string()),
            g.reset,
            opt(&g.traceparent),
            opt(&g.content_type),
        ),
        other => panic!("not an HTTP/2 record: {other:?}"),
    };
    if times {
        let _ = write!(s, " t={}..{}", r.start_ns, r.end_ns);
    }
    let _ = write!(s, " req={} resp={}", r.request_bytes, r.response_bytes);
    s
}

#[test]
fn captures_match_baselines() {
    for (dir, case) in all_cases() {
        let capture = Capture::load(dir, case);
        let got = run(&capture.ops(), Role::Client, true);
        check_baseline(dir, &format!("{case}.expected"), &got.text());
        let as_server = run(&capture.ops(), Role::Server, true);
        assert_eq!(
            as_server, got,
            "{case}: the server role gives the same records"
        );
        assert!(!got.lines.is_empty(), "{case}: no records");
        assert_eq!(got.losses, "none", "{case}");
    }
}

/// Each capture in random chunks, byte by byte (the small ones), and in two whole feeds.
#[test]
fn captures_split_everywhere() {
    let ways = Chunkings::COARSE;
    for (dir, case) in all_cases() {
        assert_any_chunks(case, &Capture::load(dir, case), run, &ways);
    }
}

/// The records of a run as (method, target, status) for HTTP and (service, method, status)
/// for gRPC, with `None` for what was not decoded.
type Key = (Option<String>, Option<String>, Option<String>);

fn key(r: &Record) -> Key {
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match &r.detail {
        Detail::Http(h) => (
            nonempty(&h.method),
            nonempty(&h.target),
            h.status.map(|s| s.to_string()),
        ),
        Detail::Rpc(g) => (
            g.service.clone(),
            g.method.clone(),
            g.status_code.map(|c| c.to_string()),
        ),
        _ => (None, None, None),
    }
}

/// Whether every decoded part of `joined` agrees with some record of the full run.
fn agrees(joined: &Key, full: &[Key]) -> bool {
    let fits = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
    full.iter()
        .any(|f| fits(&joined.0, &f.0) && fits(&joined.1, &f.1) && fits(&joined.2, &f.2))
}

fn records(ops: &[Op<'_>], traced: Role) -> (Vec<Record>, Output) {
    let mut p = Http2Parser::new();
    let mut out = Output::default();
    play(&mut p, ops, traced, &mut out);
    (std::mem::take(&mut out.records), out)
}

#[test]
fn joined_mid_stream_never_yields_wrong_headers() {
    let mut undecoded = 0;
    for (dir, case) in all_cases() {
        let capture = Capture::load(dir, case);
        let (full, _) = records(&capture.ops(), Role::Client);
        let full: Vec<Key> = full.iter().map(key).collect();
        for first in 1..capture.timeline.len() {
            for traced in [Role::Client, Role::Server] {
                let (joined, mut out) = records(&capture.ops_from(first), traced);
                undecoded += out.losses(Loss::UndecodedHeaders);
                for r in &joined {
                    let k = key(r);
                    assert!(
                        agrees(&k, &full),
                        "{case} from {first}: {k:?} not in {full:?}"
                    );
                }
                let _ = out.take_losses();
            }
        }
    }
    assert!(
        undecoded > 0,
        "joining mid-stream never met the dynamic table"
    );
}

#[test]
fn joined_mid_stream_baseline() {
    // h2load from its second request burst: the client's table is unknown, the server's too.
    let capture = Capture::load(HTTP2, "h2load_streams");
    let got = run(&capture.ops_from(3), Role::Client, true);
    check_baseline(HTTP2, "h2load_streams.joined.expected", &got.text());
    assert!(got.losses.contains("undecoded_headers"), "{}", got.losses);
}

#[test]
fn gaps_never_yield_wrong_headers() {
    for (dir, case) in all_cases() {
        let capture = Capture::load(dir, case);
        let (full, _) = records(&capture.ops(), Role::Client);
        let full: Vec<Key> = full.iter().map(key).collect();
        let mut rng = XorShift(0x9e37_79b9);
        for side in [Side::Client, Side::Server] {
            let len = capture.stream(side).len();
            for _ in 0..40 {
                let at = rng.below(len as u64) as usize;
                let n = 1 + rng.below(64) as usize;
                let range = at..(at + n).min(len);
                for known in [true, false] {
                    let (got, _) = records(
                        &capture.ops_with_gap(side, range.clone(), known),
                        Role::Client,
                    );
                    for r in &got {
                        let k = key(r);
                        assert!(
                            agrees(&k, &full),
                            "{case} gap {range:?}: {k:?} not in {full:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn data_gaps_keep_the_records() {
    // A gap inside the 50 KB body keeps the framing and the record, and counts the bytes.
    let capture = Capture::load(HTTP2, "nghttp_big_post");
    let want = run(&capture.ops(), Role::Client, false);
    let got = run(
        &capture.ops_with_gap(Side::Server, 20_000..20_100, true),
        Role::Client,
        false,
    );
    assert_eq!(got, want);
}

#[test]
fn mutated_captures_do_not_panic() {
    let mut rng = XorShift(7);
    for (dir, case) in all_cases() {
        let capture = Capture::load(dir, case);
        for _ in 0..30 {
            let mut client = capture.client.clone();
            let mut server = capture.server.clone();
            for b in [&mut client, &mut server] {
                for _ in 0..4 {
                    let i = rng.below(b.len() as u64) as usize;
                    if let Some(x) = b.get_mut(i) {
                        *x = rng.next() as u8;
                    }
                }
            }
            let mut p = Http2Parser::new();
            let mut out = Output::default();
            let mut at = [0usize; 2];
            for (side, us, range) in &capture.timeline {
                let Some(range) = range else { continue };
                let (b, i) = match side {
                    Side::Client => (&client, 0),
                    Side::Server => (&server, 1),
                };
                let _ = at[i];
                at[i] = range.end;
                p.feed(
                    direction(*side, Role::Client),
                    &b[range.clone()],
                    us * 1000,
                    &mut out,
                );
            }
            p.close(u64::MAX, &mut out);
        }
    }
}

#[test]
fn garbage_does_not_panic() {
    let mut rng = XorShift(99);
    for _ in 0..500 {
        let mut p = Http2Parser::new();
        let mut out = Output::default();
        let mut bytes: Vec<u8> = PREFACE.to_vec();
        for _ in 0..rng.below(400) {
            bytes.push(match rng.below(4) {
                0 => 0,
                1 => rng.below(10) as u8,
                _ => rng.next() as u8,
            });
        }
        for chunk in bytes.chunks(1 + rng.below(50) as usize) {
            let dir = if rng.below(2) == 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            p.feed(dir, chunk, 1, &mut out);
            if rng.below(10) == 0 {
                p.skip(dir, Some(rng.below(100)), 1, &mut out);
            }
        }
        p.close(2, &mut out);
    }
}

#[test]
fn inference_on_the_recordings() {
    for (dir, case) in all_cases() {
        let capture = Capture::load(dir, case);
        let c = infer(Direction::Egress, &capture.client).expect("client preface");
        assert_eq!(
            (c.confidence, c.sender_role),
            (100, Some(Role::Client)),
            "{case}"
        );
        let s = crate::infer(Direction::Ingress, &capture.server).expect("server SETTINGS");
        assert_eq!(s.protocol, Protocol::Http2, "{case}");
        assert_eq!(s.sender_role, Some(Role::Server), "{case}");
    }
}

#[test]
fn h2c_upgrade() {
    // RFC 7540 §3.2: the request goes as HTTP/1.1, the response comes as HTTP/2 on stream 1.
    let mut enc = loona_hpack::Encoder::new();
    let mut server =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    server.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"); // SETTINGS
    let block = enc.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"text/html"),
    ]);
    server.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
    server.extend_from_slice(&[1, 0x4, 0, 0, 0, 1]);
    server.extend_from_slice(&block);
    server.extend_from_slice(b"\x00\x00\x02\x00\x01\x00\x00\x00\x01hi");
    let mut client = PREFACE.to_vec();
    client.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    let request = b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    for split in [1, 7, usize::MAX] {
        let mut p = H2cUpgrade::new();
        let mut out = Output::default();
        p.feed(Direction::Egress, request, 1000, &mut out);
        for c in server.chunks(split.min(server.len())) {
            p.feed(Direction::Ingress, c, 2000, &mut out);
        }
        p.feed(Direction::Egress, &client, 3000, &mut out);
        p.close(4000, &mut out);
        assert!(p.is_http2());
        assert_eq!(out.records.len(), 1, "split {split}: {:?}", out.records);
        let r = &out.records[0];
        assert_eq!(
            line(r, true),
            r#"GET "/up" 2 -> 200 host="h" ua=- tp=- ctype=-/"text/html" body=0/2 t=1000..2000 req=114 resp=33"#,
            "split {split}"
        );
        assert_eq!(
            (r.protocol, p.role()),
            (Protocol::Http2, Some(Role::Client))
        );
    }
}

#[test]
fn recorded_grpc_fields() {
    let capture = Capture::load(GRPC, "not_found");
    let (got, _) = records(&capture.ops(), Role::Server);
    let [r] = &got[..] else { panic!("{got:?}") };
    let Detail::Rpc(g) = &r.detail else {
        panic!("{r:?}")
    };
    assert_eq!(g.status_code, Some(5));
    assert_eq!(
        g.status_message.as_deref(),
        Some("no such thing: widget 42")
    );
    assert_eq!(
        (g.request_messages, g.response_messages),
        (Some(1), Some(0))
    );
    assert!(g.is_error());
    assert_eq!(r.role, Role::Server);
}

#[test]
fn call_cut_by_the_capture_keeps_what_was_captured() {
    // grpcio writes its preface, SETTINGS and the request (HEADERS, WINDOW_UPDATE, DATA with
    // END_STREAM) in one sendmsg of 27 iovecs; a capture of the first 12 keeps 178 bytes,
    // the HEADERS block cut after `content-type`.
    // Here the same bytes came in two writes: the request (HEADERS at 91) is the second.
    let capture = Capture::load(GRPC, "unary");
    for traced in [Role::Client, Role::Server] {
        let (got, mut out) = records(&capture.ops_with_gap(Side::Client, 178..423, true), traced);
        let [r] = &got[..] else { panic!("{got:?}") };
        let Detail::Rpc(g) = &r.detail else {
            panic!("{r:?}")
        };
        assert_eq!(g.service.as_deref(), Some("wirelens.Echo"));
        assert_eq!(g.method.as_deref(), Some("Unary"));
        assert_eq!(g.authority.as_deref(), Some("127.0.0.1:18491"));
        assert_eq!(g.status_code, Some(0));
        assert_eq!((g.request_messages, g.response_messages), (None, Some(1)));
        assert_eq!(g.traceparent, None, "cut off: not guessed");
        assert_eq!(out.losses(Loss::UndecodedHeaders), 1);
        let _ = out.take_losses();
    }
}

#[test]
fn frames_on_stream_zero_make_no_stream() {
    // HEADERS and DATA on stream 0 are protocol errors (RFC 9113 §6.1, §6.2); the fuzzer
    // found a DATA payload counted as a body on a "stream 0" that had no wire bytes.
    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = len.to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    }
    let mut client = PREFACE.to_vec();
    client.extend(frame(0x4, 0, &[]));
    client.extend(frame(0x1, 0x4, &[0x82, 0x84, 0x86])); // GET / http, END_HEADERS
    client.extend(frame(0x0, 0x1, b"hello")); // END_STREAM
    let mut server = frame(0x4, 0, &[]);
    server.extend(frame(0x1, 0x5, &[0x88])); // :status 200, END_HEADERS | END_STREAM
    let mut p = Http2Parser::new();
    let mut out = Output::default();
    p.feed(Direction::Egress, &client, 1, &mut out);
    p.feed(Direction::Ingress, &server, 2, &mut out);
    p.close(3, &mut out);
    assert!(out.records.is_empty(), "{:?}", out.records);
    assert_eq!(out.losses(Loss::Malformed), 2, "one per header block");
}
