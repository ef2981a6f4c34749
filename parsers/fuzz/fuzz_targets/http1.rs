//! HTTP/1.x parser on arbitrary calls: the input is a script of feeds (split anywhere, in both
//! directions), skips of known and unknown length, ends and a close. The parser must not
//! panic, and what it emits must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Http1, data) {
        let Detail::Http(http) = &record.detail else {
            panic!("the HTTP/1 parser made a non-HTTP record")
        };
        assert!(
            http.status.is_some(),
            "only answered exchanges become records"
        );
        assert!(record.response_bytes >= http.response_body_len);
    }
});
