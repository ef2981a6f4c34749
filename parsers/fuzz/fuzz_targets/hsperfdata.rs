//! hsperfdata parser on arbitrary bytes: no panic, and the counters it returns are bounded by
//! the input (every entry is at least a header, names are not empty).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wirelens_parsers::hsperfdata::{self, ENTRY_HEADER_LEN, MAX_ENTRIES, PROLOGUE_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = hsperfdata::parse(data) else {
        return;
    };
    let entries = parsed.counters.len() + parsed.malformed as usize;
    assert!(entries <= MAX_ENTRIES);
    // Entries do not overlap and each is at least a header.
    assert!(entries * ENTRY_HEADER_LEN <= data.len());
    assert!(data.len() >= PROLOGUE_LEN);
    assert!(parsed.counters.iter().all(|c| !c.name.is_empty()));
    for counter in &parsed.counters {
        assert!(parsed.get(&counter.name).is_some());
    }
});
