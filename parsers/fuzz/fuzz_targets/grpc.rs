//! gRPC on HTTP/2: a recorded unary call's opening (the client preface, SETTINGS and its
//! request HEADERS, from `testdata/grpc/unary.client.bin`), the server's recorded SETTINGS
//! and response HEADERS, then DATA and trailer frames on that stream built from the fuzzer's
//! bytes (any lengths, flags and payloads, both ways) and gaps. No panic; records are HTTP/2 or
//! gRPC, never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Direction, Output, Parser, http2::Http2Parser};

const CLIENT: &[u8] = include_bytes!("../../testdata/grpc/unary.client.bin");
const SERVER: &[u8] = include_bytes!("../../testdata/grpc/unary.server.bin");

/// The bytes of `stream` up to its first DATA frame (after `skip` bytes of preface).
fn opening(stream: &[u8], skip: usize) -> &[u8] {
    let mut at = skip;
    while let Some(h) = stream.get(at..at + 9) {
        if h[3] == 0 {
            break;
        }
        at += 9 + u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    }
    &stream[..at.min(stream.len())]
}

fuzz_target!(|data: &[u8]| {
    let mut p = Http2Parser::new();
    let mut out = Output::default();
    p.feed(Direction::Egress, opening(CLIENT, 24), 1, &mut out);
    p.feed(Direction::Ingress, opening(SERVER, 0), 2, &mut out);
    let mut rest = data;
    let mut ts = 3;
    while let [control, len, tail @ ..] = rest {
        ts += 1;
        let dir = if control & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let n = usize::from(*len).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        let kind = if control & 0x10 != 0 { 1 } else { 0 }; // HEADERS (trailers) or DATA
        let flags = (control >> 1) & 0x0f & if kind == 1 { 0x0d } else { 0x09 };
        let mut frame = (n as u32).to_be_bytes()[1..].to_vec();
        frame.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        frame.extend_from_slice(payload);
        if control & 0x80 != 0 && frame.len() > 12 {
            // Lose a piece in the middle: a gap of known length.
            let cut = frame.len() / 2;
            p.feed(dir, &frame[..cut], ts, &mut out);
            p.skip(dir, Some(3), ts, &mut out);
            p.feed(dir, &frame[cut + 3..], ts, &mut out);
        } else {
            p.feed(dir, &frame, ts, &mut out);
        }
    }
    p.close(ts + 1, &mut out);
    // After a gap the framing may resume inside fuzzed payloads, which can hold well-formed
    // frames of any stream: records then tell what those say; none is empty.
    for r in &out.records {
        assert!(r.start_ns <= r.end_ns);
        match &r.detail {
            Detail::Rpc(g) => {
                assert_eq!(g.service.is_some(), g.method.is_some(), "{g:?}");
                if r.request_bytes > 0 && g.service.as_deref() == Some("wirelens.Echo") {
                    assert!(g.request_messages.is_none_or(|n| n <= r.request_bytes));
                }
            }
            Detail::Http(h) => assert!(!h.method.is_empty() || !h.target.is_empty(), "{r:?}"),
            other => panic!("the call became {other:?}"),
        }
    }
});
