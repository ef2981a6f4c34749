//! dns parser throughput on recorded traffic (`testdata/dns/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench dns`

use criterion::{Criterion, criterion_group, criterion_main};

fn dns(_c: &mut Criterion) {}

criterion_group!(benches, dns);
criterion_main!(benches);
