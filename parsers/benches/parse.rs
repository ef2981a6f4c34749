//! Parser throughput on recorded traffic (`testdata/<proto>/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench parse`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Direction, Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

/// One recorded connection replayed as the traced client: a feed per TCP segment.
struct Replay {
    feeds: Vec<(Direction, Vec<u8>, u64)>,
}

impl Replay {
    /// Loads `testdata/http1/<name>.{client,server}.bin` and its timeline.
    fn load(name: &str) -> Self {
        Self {
            feeds: common::feeds("http1", name),
        }
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
    let mut records = 0;
    let mut out = Output::default();
    for (dir, bytes, ts) in &replay.feeds {
        parser.feed(*dir, bytes, *ts, &mut out);
        records += common::drain(&mut out);
    }
    parser.close(u64::MAX, &mut out);
    records + common::drain(&mut out)
}

fn http1(c: &mut Criterion<CpuTime>) {
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

/// The feeds of `testdata/postgres/<name>` replayed as the traced client, one per segment.
fn postgres_feeds(name: &str) -> Feeds {
    common::feeds("postgres", name)
}

/// PostgreSQL: every recorded connection (simple, extended, pipelined, COPY), each through a
/// fresh parser, `rounds` times.
fn postgres(c: &mut Criterion<CpuTime>) {
    let names = [
        "simple_queries",
        "multi_statement",
        "ssl_refused",
        "extended",
        "pipeline",
        "copy",
    ];
    let conns: Vec<_> = names.into_iter().map(postgres_feeds).collect();
    let rounds = 20;
    let bytes: u64 = conns
        .iter()
        .flatten()
        .map(|(_, b, _)| b.len() as u64)
        .sum::<u64>()
        * rounds;
    let run = || {
        let mut records = 0;
        for _ in 0..rounds {
            for feeds in &conns {
                let mut parser = new_parser(Protocol::Postgres);
                let mut out = Output::default();
                for (dir, bytes, ts) in feeds {
                    parser.feed(*dir, bytes, *ts, &mut out);
                    records += common::drain(&mut out);
                }
                parser.close(u64::MAX, &mut out);
                records += common::drain(&mut out);
            }
        }
        records
    };
    assert_eq!(run(), 20 * 25, "every recorded operation becomes a record");
    let mut group = c.benchmark_group("postgres");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("recorded_connections", |b| b.iter(|| black_box(run())));

    // One SELECT answered by 5000 DataRows: framing and counting rows.
    let large = postgres_feeds("large_result");
    let run_large = || {
        let mut parser = new_parser(Protocol::Postgres);
        let mut records = 0;
        let mut out = Output::default();
        for (dir, bytes, ts) in &large {
            parser.feed(*dir, bytes, *ts, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records + common::drain(&mut out)
    };
    assert_eq!(run_large(), 1);
    group.throughput(Throughput::Bytes(
        large.iter().map(|(_, b, _)| b.len() as u64).sum(),
    ));
    group.bench_function("large_result_recorded", |b| {
        b.iter(|| black_box(run_large()))
    });
    group.finish();
}

/// The feeds of `testdata/mysql/<name>` replayed as the traced client, one per segment.
fn mysql_feeds(name: &str) -> Feeds {
    common::feeds("mysql", name)
}

/// MySQL/MariaDB: the recorded sessions (handshake, queries, errors, prepared statements),
/// each through a fresh parser, `rounds` times; and the 100 KB row, counted not buffered.
fn mysql(c: &mut Criterion<CpuTime>) {
    let replay = |conns: &[Vec<(Direction, Vec<u8>, u64)>], rounds: usize| {
        let mut records = 0;
        for _ in 0..rounds {
            for feeds in conns {
                let mut parser = new_parser(Protocol::MySql);
                let mut out = Output::default();
                for (dir, bytes, ts) in feeds {
                    parser.feed(*dir, bytes, *ts, &mut out);
                    records += common::drain(&mut out);
                }
                parser.close(u64::MAX, &mut out);
                records += common::drain(&mut out);
            }
        }
        records
    };
    let size = |conns: &[Vec<(Direction, Vec<u8>, u64)>]| -> u64 {
        conns.iter().flatten().map(|(_, b, _)| b.len() as u64).sum()
    };
    let mut group = c.benchmark_group("mysql");

    let sessions: Vec<_> = [
        "cli_session",
        "ping",
        "pymysql_queries",
        "connector_prepared",
    ]
    .into_iter()
    .map(mysql_feeds)
    .collect();
    assert_eq!(
        replay(&sessions, 20),
        20 * 26,
        "every recorded command becomes a record"
    );
    group.throughput(Throughput::Bytes(size(&sessions) * 20));
    group.bench_function("recorded_sessions", |b| {
        b.iter(|| black_box(replay(&sessions, 20)))
    });

    let large = vec![mysql_feeds("large_row")];
    assert_eq!(replay(&large, 1), 1);
    group.throughput(Throughput::Bytes(size(&large)));
    group.bench_function("large_row_recorded", |b| {
        b.iter(|| black_box(replay(&large, 1)))
    });

    group.finish();
}

/// The feeds of `testdata/redis/<name>` replayed as the traced client, one per segment.
fn redis_feeds(name: &str) -> Feeds {
    common::feeds("redis", name)
}

/// Redis: the recorded pipeline (100 commands in one write, and `redis-cli --pipe`'s ECHO)
/// `rounds` times over one connection; and a 100 KB GET reply, counted not kept.
fn redis(c: &mut Criterion<CpuTime>) {
    let pipelined = redis_feeds("pipelined_100");
    let rounds = 50u64;
    // Records are drained after each round, as the agent drains them.
    let run_pipelined = || {
        let mut parser = new_parser(Protocol::Redis);
        let mut out = Output::default();
        let mut records = 0;
        for round in 0..rounds {
            for (dir, bytes, ts) in &pipelined {
                parser.feed(*dir, bytes, ts + round * 1_000_000_000, &mut out);
                records += common::drain(&mut out);
            }
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records + out.records.len()
    };
    assert_eq!(run_pipelined(), 50 * 101, "every command becomes a record");
    let bytes: u64 = pipelined.iter().map(|(_, b, _)| b.len() as u64).sum();
    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Bytes(bytes * rounds));
    group.bench_function("pipelined_recorded", |b| {
        b.iter(|| black_box(run_pipelined()))
    });

    let large = redis_feeds("large_get");
    let run_large = || {
        let mut parser = new_parser(Protocol::Redis);
        let mut records = 0;
        let mut out = Output::default();
        for (dir, bytes, ts) in &large {
            parser.feed(*dir, bytes, *ts, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records + common::drain(&mut out)
    };
    assert_eq!(run_large(), 1);
    group.throughput(Throughput::Bytes(
        large.iter().map(|(_, b, _)| b.len() as u64).sum(),
    ));
    group.bench_function("large_value_recorded", |b| {
        b.iter(|| black_box(run_large()))
    });
    group.finish();
}

/// A CQL envelope: version byte (0x80 set for responses), stream id, opcode, body.
fn cql_envelope(version: u8, stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut e = vec![version, 0];
    e.extend_from_slice(&stream.to_be_bytes());
    e.push(opcode);
    e.extend_from_slice(&(body.len() as u32).to_be_bytes());
    e.extend_from_slice(body);
    e
}

/// A CQL v4 RESULT Rows body: global table spec, two int columns, `n` rows.
fn cql_rows(n: i32) -> Vec<u8> {
    let mut b = 2i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&2i32.to_be_bytes());
    for s in ["shop", "items", "id", "n"] {
        b.extend_from_slice(&(s.len() as u16).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
        if s == "id" || s == "n" {
            b.extend_from_slice(&0x0009u16.to_be_bytes());
        }
    }
    b.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        for _ in 0..2 {
            b.extend_from_slice(&4i32.to_be_bytes());
            b.extend_from_slice(&i.to_be_bytes());
        }
    }
    b
}

/// Cassandra: encoded v4 envelopes (no recording: no server here). A session of 1000
/// QUERY/RESULT pairs, 8 stream ids in flight, answered in reverse order, 10-row results, in
/// one feed per write; and one 100 000-row result, counted past the kept 1 MiB.
fn cassandra(c: &mut Criterion<CpuTime>) {
    let mut startup = 1u16.to_be_bytes().to_vec();
    for s in ["CQL_VERSION", "3.0.0"] {
        startup.extend_from_slice(&(s.len() as u16).to_be_bytes());
        startup.extend_from_slice(s.as_bytes());
    }
    let query = |stream: i16| {
        let cql = "SELECT id, n FROM shop.items WHERE id = ?";
        let mut b = (cql.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(cql.as_bytes());
        b.extend_from_slice(&[0, 1, 0]);
        cql_envelope(4, stream, 0x07, &b)
    };
    let mut feeds = vec![
        (Direction::Egress, cql_envelope(4, 0, 0x01, &startup)),
        (Direction::Ingress, cql_envelope(0x84, 0, 0x02, b"")),
    ];
    let rows = cql_rows(10);
    for _ in 0..125 {
        let reqs: Vec<u8> = (1..=8).flat_map(query).collect();
        let resps: Vec<u8> = (1..=8)
            .rev()
            .flat_map(|s| cql_envelope(0x84, s, 0x08, &rows))
            .collect();
        feeds.push((Direction::Egress, reqs));
        feeds.push((Direction::Ingress, resps));
    }
    let run = |feeds: &[(Direction, Vec<u8>)]| {
        let mut parser = new_parser(Protocol::Cassandra);
        let mut records = 0;
        let mut out = Output::default();
        for (i, (dir, bytes)) in feeds.iter().enumerate() {
            parser.feed(*dir, bytes, i as u64 * 1000, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records + common::drain(&mut out)
    };
    assert_eq!(run(&feeds), 1000, "every QUERY becomes a record");
    let size = |feeds: &[(Direction, Vec<u8>)]| feeds.iter().map(|(_, b)| b.len() as u64).sum();
    let mut group = c.benchmark_group("cassandra");
    group.throughput(Throughput::Bytes(size(&feeds)));
    group.bench_function("encoded_queries", |b| {
        b.iter(|| black_box(run(black_box(&feeds))))
    });

    let large = cql_envelope(0x84, 1, 0x08, &cql_rows(100_000));
    let large: Vec<(Direction, Vec<u8>)> = std::iter::once((Direction::Egress, query(1)))
        .chain(
            large
                .chunks(65536)
                .map(|c| (Direction::Ingress, c.to_vec())),
        )
        .collect();
    assert_eq!(run(&large), 1);
    group.throughput(Throughput::Bytes(size(&large)));
    group.bench_function("large_rows_encoded", |b| {
        b.iter(|| black_box(run(black_box(&large))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = http1, postgres, mysql, redis, cassandra
}
criterion_main!(benches);
