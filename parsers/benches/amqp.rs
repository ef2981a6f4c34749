//! amqp parser throughput on recorded traffic (`testdata/amqp/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench amqp`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Direction, Output, Protocol, new_parser};

/// One recorded connection's feeds as the traced client: one per TCP segment.
type Feeds = Vec<(Direction, Vec<u8>, u64)>;

/// Loads `testdata/amqp/<name>.{client,server}.bin` and its timeline.
fn feeds(name: &str) -> Feeds {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/amqp");
    let read = |suffix: &str| {
        std::fs::read(dir.join(format!("{name}.{suffix}")))
            .unwrap_or_else(|e| panic!("reading {name}.{suffix}: {e}"))
    };
    let streams = [read("client.bin"), read("server.bin")];
    let mut offsets = [0usize; 2];
    let mut feeds = Vec::new();
    let timeline = String::from_utf8(read("timeline")).expect("timeline is text");
    for line in timeline.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [side, us, len] = fields[..] else {
            panic!("bad timeline line {line:?}")
        };
        let Ok(len) = len.parse::<usize>() else {
            continue; // "fin"
        };
        let (i, dir) = if side == "c" {
            (0, Direction::Egress)
        } else {
            (1, Direction::Ingress)
        };
        feeds.push((
            dir,
            streams[i][offsets[i]..offsets[i] + len].to_vec(),
            us.parse::<u64>().expect("time") * 1000,
        ));
        offsets[i] += len;
    }
    feeds
}

/// Each connection through a fresh parser; the number of records.
fn run(conns: &[Feeds]) -> usize {
    let mut records = 0;
    for feeds in conns {
        let mut parser = new_parser(Protocol::Amqp);
        let mut out = Output::default();
        for (dir, bytes, ts) in feeds {
            parser.feed(*dir, bytes, *ts, &mut out);
        }
        parser.close(u64::MAX, &mut out);
        records += out.records.len();
    }
    records
}

fn bytes(conns: &[Feeds]) -> u64 {
    conns.iter().flatten().map(|(_, b, _)| b.len() as u64).sum()
}

fn amqp(c: &mut Criterion) {
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

criterion_group!(benches, amqp);
criterion_main!(benches);
