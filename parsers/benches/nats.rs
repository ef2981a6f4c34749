//! nats parser throughput on recorded traffic (`testdata/nats/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench nats`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

/// Loads `testdata/nats/<name>.{client,server}.bin` and its timeline.
fn feeds(name: &str) -> Feeds {
    common::feeds("nats", name)
}

fn size(feeds: &Feeds) -> u64 {
    feeds.iter().map(|(_, b, _)| b.len() as u64).sum()
}

/// Feeds everything to a fresh parser; the number of records.
fn run(feeds: &Feeds) -> usize {
    let mut parser = new_parser(Protocol::Nats);
    let mut records = 0;
    let mut out = Output::default();
    for (dir, bytes, ts) in feeds {
        parser.feed(*dir, black_box(bytes), *ts, &mut out);
        records += common::drain(&mut out);
    }
    parser.close(u64::MAX, &mut out);
    records + common::drain(&mut out)
}

fn nats(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("nats");
    // Small messages: publishes, deliveries, request/reply and headers, one connection after
    // another, as the agent would feed them (one call per segment).
    let small: Feeds = [
        "publish",
        "subscribe",
        "requester",
        "responder",
        "headers_pub",
        "headers_sub",
        "verbose",
        "denied",
    ]
    .into_iter()
    .flat_map(feeds)
    .collect();
    group.throughput(Throughput::Bytes(size(&small)));
    group.bench_function("small_messages", |b| b.iter(|| run(&small)));
    // A busy connection: the same recordings without their handshakes (INFO, CONNECT), 20
    // times over on one parser, so the per-connection cost is paid once.
    let busy: Feeds = (0..20)
        .flat_map(|_| {
            [
                "publish",
                "subscribe",
                "requester",
                "responder",
                "headers_pub",
                "headers_sub",
            ]
            .into_iter()
            .flat_map(feeds)
        })
        .filter(|(_, bytes, _)| !bytes.starts_with(b"INFO") && !bytes.starts_with(b"CONNECT"))
        .collect();
    group.throughput(Throughput::Bytes(size(&busy)));
    group.bench_function("busy_connection", |b| b.iter(|| run(&busy)));
    // A 100,000-byte payload in many segments, both ways.
    let large: Feeds = ["large_pub", "large_sub"]
        .into_iter()
        .flat_map(feeds)
        .collect();
    group.throughput(Throughput::Bytes(size(&large)));
    group.bench_function("large_payload", |b| b.iter(|| run(&large)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = nats
}
criterion_main!(benches);
