//! PostgreSQL parser on arbitrary calls: the input is a script of feeds (split anywhere, in
//! both directions), skips of known and unknown length, ends and a close. The parser must not
//! panic, and what it emits must be consistent. Seed with `testdata/postgres/*.bin`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::Postgres, data) {
        let Detail::Db(db) = &record.detail else {
            panic!("a PostgreSQL record is a database record");
        };
        assert_eq!(db.system, wirelens_parsers::DbSystem::PostgreSql);
        assert!(
            record.request_bytes >= 5,
            "a request is at least one message"
        );
    }
});
