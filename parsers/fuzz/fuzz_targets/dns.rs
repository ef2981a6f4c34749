//! DNS parser on arbitrary calls (see `src/lib.rs`): no panic, consistent records. Then the
//! input as one DNS message: sent as a query (QR clear) and answered by itself (QR set), so
//! every input whose header and question parse reaches the answer decoding (`simple-dns`),
//! compression pointers and unknown record types included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::dns::{self, DnsParser, MAX_ANSWER_LEN, MAX_ANSWERS};
use wirelens_parsers::{Detail, Direction, DnsRecord, Output, Parser, Protocol, Record};

/// Checks every DNS record's own invariants.
fn check(record: &Record) -> &DnsRecord {
    let Detail::Dns(d) = &record.detail else {
        panic!("the DNS parser made a non-DNS record")
    };
    assert!(
        d.response_code.is_some(),
        "a record pairs a query with a response"
    );
    assert!(d.answers.len() <= MAX_ANSWERS, "answers are capped");
    assert!(
        d.answers.iter().all(|a| a.len() <= MAX_ANSWER_LEN),
        "answer strings are capped"
    );
    assert!(
        record.request_bytes >= 12 && record.response_bytes >= 12,
        "whole headers"
    );
    d
}

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Dns, data) {
        check(&record);
    }

    for dir in [Direction::Egress, Direction::Ingress] {
        if let Some(i) = dns::infer_datagram(dir, data) {
            assert_eq!(i.protocol, Protocol::Dns);
        }
        if let Some(i) = dns::infer(dir, data) {
            assert_eq!(i.protocol, Protocol::Dns);
        }
    }

    if data.len() >= 4 {
        let (mut query, mut response) = (data.to_vec(), data.to_vec());
        query[2] &= 0x7F;
        response[2] |= 0x80;
        let mut parser = DnsParser::new();
        let mut out = Output::default();
        parser.feed_datagram(Direction::Egress, &query, query.len() as u64, None, 1, &mut out);
        parser.feed_datagram(Direction::Ingress, &response, response.len() as u64, None, 2, &mut out);
        parser.close(3, &mut out);
        assert!(
            out.records.len() <= 1,
            "one query, one response, at most one record"
        );
        for record in &out.records {
            let d = check(record);
            assert_eq!(u16::from_be_bytes([data[0], data[1]]), d.id);
            assert_eq!((record.start_ns, record.end_ns), (1, 2));
        }
    }
});
