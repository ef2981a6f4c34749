//! Parser throughput on recorded traffic (`testdata/<proto>/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench parse`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Direction, Output, Protocol, new_parser};

/// One recorded connection replayed as the traced client: a feed per TCP segment.
struct Replay {
    feeds: Vec<(Direction, Vec<u8>, u64)>,
}

impl Replay {
    /// Loads `testdata/http1/<name>.{client,server}.bin` and its timeline.
    fn load(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/http1");
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
            let (i, dir) = match side {
                "c" => (0, Direction::Egress),
                _ => (1, Direction::Ingress),
            };
            let bytes = streams[i][offsets[i]..offsets[i] + len].to_vec();
            offsets[i] += len;
            feeds.push((dir, bytes, us.parse::<u64>().expect("time") * 1000));
        }
        Self { feeds }
    }

    fn bytes(&self) -> u64 {
        self.feeds.iter().map(|(_, b, _)| b.len() as u64).sum()
    }
}

/// A long keep-alive connection: the header-heavy, small-body recordings, one after another,
/// `rounds` times, as the agent would feed them (one call per segment).
fn keepalive_stream(rounds: usize) -> Replay {
    let parts: Vec<Replay> = ["keepalive_mixed", "conditional_304", "pipelined_10"]
        .into_iter()
        .map(Replay::load)
        .collect();
    let mut feeds = Vec::new();
    for round in 0..rounds {
        for part in &parts {
            for (dir, bytes, ts) in &part.feeds {
                feeds.push((*dir, bytes.clone(), ts + round as u64 * 10_000_000));
            }
        }
    }
    Replay { feeds }
}

fn run(replay: &Replay) -> usize {
    let mut parser = new_parser(Protocol::Http1);
    let mut out = Output::default();
    for (dir, bytes, ts) in &replay.feeds {
        parser.feed(*dir, bytes, *ts, &mut out);
    }
    parser.close(u64::MAX, &mut out);
    out.records.len()
}

fn http1(c: &mut Criterion) {
    let mut group = c.benchmark_group("http1");

    let keepalive = keepalive_stream(20);
    assert_eq!(run(&keepalive), 20 * 17, "every exchange becomes a record");
    group.throughput(Throughput::Bytes(keepalive.bytes()));
    group.bench_function("keepalive_recorded", |b| {
        b.iter(|| black_box(run(black_box(&keepalive))))
    });

    let gzip = Replay::load("chunked_gzip");
    group.throughput(Throughput::Bytes(gzip.bytes()));
    group.bench_function("chunked_body_recorded", |b| {
        b.iter(|| black_box(run(black_box(&gzip))))
    });

    group.finish();
}

criterion_group!(benches, http1);
criterion_main!(benches);
