//! nats parser throughput on recorded traffic (`testdata/nats/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench nats`

use criterion::{Criterion, criterion_group, criterion_main};

fn nats(_c: &mut Criterion) {}

criterion_group!(benches, nats);
criterion_main!(benches);
