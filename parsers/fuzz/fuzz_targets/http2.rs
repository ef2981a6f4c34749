//! HTTP/2 frame and HPACK layers on arbitrary call scripts (see `src/lib.rs`): once as a
//! connection seen from its start (the client preface and an empty SETTINGS frame each way
//! come first, so header blocks go through the synced `loona-hpack` decoder), once joined
//! mid-stream (the unsynced decoding). No panic; every record is HTTP/2 or gRPC, with sizes
//! that hold the frames they count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, HttpVersion, Protocol, Record};

const START: &[u8] = b"\x00\x18PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x01\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn check(records: &[Record]) {
    for r in records {
        match &r.detail {
            Detail::Http(h) => {
                assert_eq!(h.version, Some(HttpVersion::Http2));
                assert!(
                    r.response_bytes >= h.response_body_len,
                    "wire holds the body"
                );
                assert!(r.request_bytes >= h.request_body_len, "wire holds the body");
            }
            Detail::Rpc(_) => {}
            other => panic!("the HTTP/2 parser made {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut started = START.to_vec();
    started.extend_from_slice(data);
    check(&wirelens_parsers_fuzz::run(Protocol::Http2, &started));
    check(&wirelens_parsers_fuzz::run(Protocol::Http2, data));
});
