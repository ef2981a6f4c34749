//! MySQL/MariaDB parser on arbitrary calls: the input is a script of feeds (split anywhere,
//! in both directions), skips of known and unknown length, ends and a close. The parser must
//! not panic, and what it emits must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::{Detail, Protocol};

fuzz_target!(|data: &[u8]| {
    for record in wirelens_parsers_fuzz::run(Protocol::MySql, data) {
        let Detail::Db(db) = &record.detail else {
            panic!("the MySQL parser made a non-database record")
        };
        assert!(db.operation.is_some(), "every record names its operation");
        assert!(
            record.request_bytes >= 5,
            "a command is at least a header and a command byte"
        );
    }
});
