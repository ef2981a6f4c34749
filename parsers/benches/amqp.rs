//! amqp parser throughput on recorded traffic (`testdata/amqp/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench amqp`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

/// Loads `testdata/amqp/<name>.{client,server}.bin` and its timeline.
fn feeds(name: &str) -> Feeds {
    common::feeds("amqp", name)
}

/// Each connection through a fresh parser; the number of records.
fn run(conns: &[Feeds]) -> usize {
    let mut records = 0;
    for feeds in conns {
        let mut parser = new_parser(Protocol::Amqp);
        let mut out = Output::default();
        for (dir, bytes, ts) in feeds {
            parser.feed(*dir, bytes, *ts, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records += common::drain(&mut out);
    }
    records
}

fn bytes(conns: &[Feeds]) -> u64 {
    conns.iter().flatten().map(|(_, b, _)| b.len() as u64).sum()
}

fn amqp(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("amqp");

    // Method-heavy connections: handshakes, declares, small messages, confirms, errors.
    let small: Vec<Feeds> = [
        "basic",
        "confirms",
        "errors",
        "tools_publish",
        "tools_get",
        "tools_consume",
    ]
    .into_iter()
    .map(feeds)
    .collect();
    assert_eq!(
        run(&small),
        19 + 10 + 9 + 5 + 5 + 8,
        "every operation is a record"
    );
    group.throughput(Throughput::Bytes(bytes(&small)));
    group.bench_function("small_messages_recorded", |b| {
        b.iter(|| black_box(run(black_box(&small))))
    });

    // Large bodies: a 300 KiB publish and get, pushed deliveries with a 250 KiB one.
    let large: Vec<Feeds> = ["large_publish", "consume"]
        .into_iter()
        .map(feeds)
        .collect();
    assert_eq!(run(&large), 8 + 20, "every operation is a record");
    group.throughput(Throughput::Bytes(bytes(&large)));
    group.bench_function("large_messages_recorded", |b| {
        b.iter(|| black_box(run(black_box(&large))))
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = amqp
}
criterion_main!(benches);
