//! HTTP/2 and gRPC parser throughput on recorded traffic (`testdata/http2/`,
//! `testdata/grpc/`), in bytes fed per second.
//!
//! `cargo bench -p wirelens-parsers --bench http2`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

fn size(feeds: &[Feeds]) -> u64 {
    feeds.iter().flatten().map(|(_, b, _)| b.len() as u64).sum()
}

/// Feeds each connection to its own fresh parser; the number of records.
fn run(conns: &[Feeds]) -> usize {
    let mut records = 0;
    for feeds in conns {
        let mut parser = new_parser(Protocol::Http2);
        let mut out = Output::default();
        for (dir, bytes, ts) in feeds {
            parser.feed(*dir, black_box(bytes), *ts, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records += common::drain(&mut out);
    }
    records
}

fn http2(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("http2");
    // Many small streams: h2load's 40 GETs (HPACK with a warm dynamic table) and nghttp's 5.
    let headers: Vec<Feeds> = ["h2load_streams", "nghttp_many", "curl_get"]
        .iter()
        .map(|n| common::feeds("http2", n))
        .collect();
    group.throughput(Throughput::Bytes(size(&headers)));
    group.bench_function("small_streams", |b| b.iter(|| run(&headers)));
    // A 50 KB body in DATA frames: framing only.
    let body = vec![common::feeds("http2", "nghttp_big_post")];
    group.throughput(Throughput::Bytes(size(&body)));
    group.bench_function("large_body", |b| b.iter(|| run(&body)));
    // gRPC calls, one connection each (preface, SETTINGS, headers, messages, trailers).
    let grpc: Vec<Feeds> = [
        "unary",
        "server_stream",
        "client_stream",
        "bidi",
        "not_found",
    ]
    .iter()
    .map(|n| common::feeds("grpc", n))
    .collect();
    group.throughput(Throughput::Bytes(size(&grpc)));
    group.bench_function("grpc_calls", |b| b.iter(|| run(&grpc)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = http2
}
criterion_main!(benches);
