//! kafka parser throughput on recorded traffic (`testdata/kafka/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench kafka`

use criterion::{Criterion, criterion_group, criterion_main};

fn kafka(_c: &mut Criterion) {}

criterion_group!(benches, kafka);
criterion_main!(benches);
