//! The script every parser fuzz target runs: the fuzzer's bytes become a sequence of parser
//! calls (feeds split anywhere, in both directions; skips of known and unknown length; ends;
//! a close), and the checks that hold for every protocol. Each target adds its own.

use wirelens_parsers::{Direction, Output, Protocol, Record, new_parser};

/// Run `data` as a call script against a fresh parser for `protocol`; check the records'
/// common invariants; return them for the target's own checks.
pub fn run(protocol: Protocol, data: &[u8]) -> Vec<Record> {
    let mut parser = new_parser(protocol);
    let mut out = Output::default();
    let mut rest = data;
    let mut ts = 0u64;
    // Each op: a control byte, then its operands. Bit 0: direction; bits 1-3: the op.
    while let Some((&control, tail)) = rest.split_first() {
        rest = tail;
        ts += 1;
        let dir = if control & 1 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        match (control >> 1) & 7 {
            // Feed the next n bytes (n from the following byte), the usual case.
            0..=3 => {
                let n = rest.first().map_or(0, |&n| usize::from(n) + 1);
                let (bytes, tail) = rest.split_at(n.min(rest.len()));
                parser.feed(dir, bytes, ts, &mut out);
                rest = tail;
            }
            // The next n bytes as one datagram (UDP), from an unknown peer; the control byte's
            // high bits say how much longer it was on the wire (a cut datagram).
            4 => {
                let n = rest.first().map_or(0, |&n| usize::from(n) + 1);
                let (bytes, tail) = rest.split_at(n.min(rest.len()));
                let wire_len = bytes.len() as u64 + u64::from(control >> 4);
                parser.feed_datagram(dir, bytes, wire_len, None, ts, &mut out);
                rest = tail;
            }
            // Bytes moved but not captured, length from the next two bytes.
            5 => {
                let len = match rest {
                    [a, b, tail @ ..] => {
                        rest = tail;
                        u64::from(u16::from_le_bytes([*a, *b]))
                    }
                    _ => 1,
                };
                parser.skip(dir, Some(len), ts, &mut out);
            }
            6 => parser.skip(dir, None, ts, &mut out),
            _ => parser.end(dir, ts, &mut out),
        }
    }
    parser.close(ts + 1, &mut out);

    let role = parser.role();
    for record in &out.records {
        // An HTTP/1 connection may upgrade to h2c: its later records are HTTP/2's.
        let upgraded = protocol == Protocol::Http1 && record.protocol == Protocol::Http2;
        assert!(
            record.protocol == protocol || upgraded,
            "records carry the parser's protocol"
        );
        assert_eq!(
            Some(record.role),
            role,
            "records carry the role the parser settled on"
        );
        assert!(
            record.start_ns <= record.end_ns,
            "a response ends after its request starts"
        );
    }
    out.records
}
