//! kafka parser on arbitrary call scripts (see `src/lib.rs`): no panic, consistent records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::Protocol;

fuzz_target!(|data: &[u8]| {
    let _ = wirelens_parsers_fuzz::run(Protocol::Kafka, data);
});
