//! Redis parser on arbitrary calls: the input is a script of feeds (split anywhere, in both
//! directions), skips of known and unknown length, ends and a close. The parser must not
//! panic, and what it emits must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Direction, Output, Protocol, new_parser};

fuzz_target!(|data: &[u8]| {
    let mut parser = new_parser(Protocol::Redis);
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
            0..=4 => {
                let n = rest.first().map_or(0, |&n| usize::from(n) + 1);
                let (bytes, tail) = rest.split_at(n.min(rest.len()));
                parser.feed(dir, bytes, ts, &mut out);
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
        assert_eq!(
            Some(record.role),
            role,
            "records carry the role the parser settled on"
        );
        assert!(
            record.start_ns <= record.end_ns,
            "a response ends after its request starts"
        );
        let Detail::Db(db) = &record.detail else {
            panic!("the Redis parser made a non-database record")
        };
        assert!(db.operation.is_some(), "every record names its command");
        assert!(db.namespace.is_some(), "every record has a database index");
    }
});
