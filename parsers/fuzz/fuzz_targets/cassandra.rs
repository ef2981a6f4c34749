//! Cassandra CQL parser on arbitrary calls: the input is a script of feeds (split anywhere, in
//! both directions), skips of known and unknown length, ends and a close. The parser must not
//! panic, and what it emits must be consistent. Seed with envelopes like those the tests in
//! `src/cassandra/tests.rs` build.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Cassandra, data) {
        let Detail::Db(db) = &record.detail else {
            panic!("a Cassandra record is a database record");
        };
        assert_eq!(db.system, wirelens_parsers::DbSystem::Cassandra);
        assert!(
            record.request_bytes >= 9,
            "a request is at least one envelope header"
        );
    }
});
