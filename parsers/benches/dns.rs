//! dns parser throughput on recorded traffic (`testdata/dns/`), in bytes fed per second:
//! the server socket of every recorded UDP case (datagrams with their peers, as the agent
//! feeds them) and the recorded TCP connections (one feed per segment).
//!
//! `cargo bench -p wirelens-parsers --bench dns`

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wirelens_parsers::{Direction, Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

/// One datagram as the server socket sees it: direction, bytes, peer, ns.
type Datagrams = Vec<(Direction, Vec<u8>, Option<SocketAddr>, u64)>;

fn read(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/dns")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `<name>.datagrams` (see `testdata/dns/extract.py`), as seen by the server socket.
fn datagrams(name: &str) -> Datagrams {
    let text = String::from_utf8(read(&format!("{name}.datagrams"))).expect("text");
    let mut server = None;
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let (src, dst): (SocketAddr, SocketAddr) =
                (f[1].parse().unwrap(), f[2].parse().unwrap());
            let server = *server.get_or_insert(dst);
            let bytes = (0..f[3].len() / 2)
                .map(|i| u8::from_str_radix(&f[3][2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let ts = f[0].parse::<u64>().unwrap() * 1000;
            if src == server {
                (Direction::Egress, bytes, Some(dst), ts)
            } else {
                (Direction::Ingress, bytes, Some(src), ts)
            }
        })
        .collect()
}

/// `<name>.{client,server}.bin` and `<name>.timeline`, as seen by the client.
fn feeds(name: &str) -> Feeds {
    common::feeds("dns", name)
}

fn run_datagrams(all: &[Datagrams]) -> usize {
    let mut records = 0;
    for socket in all {
        let mut parser = new_parser(Protocol::Dns);
        let mut out = Output::default();
        for (dir, bytes, peer, ts) in socket {
            parser.feed_datagram(
                *dir,
                black_box(bytes),
                bytes.len() as u64,
                *peer,
                *ts,
                &mut out,
            );
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records += common::drain(&mut out);
    }
    records
}

fn run_feeds(all: &[Feeds]) -> usize {
    let mut records = 0;
    for conn in all {
        let mut parser = new_parser(Protocol::Dns);
        let mut out = Output::default();
        for (dir, bytes, ts) in conn {
            parser.feed(*dir, black_box(bytes), *ts, &mut out);
            records += common::drain(&mut out);
        }
        parser.close(u64::MAX, &mut out);
        records += common::drain(&mut out);
    }
    records
}

fn dns(c: &mut Criterion<CpuTime>) {
    let udp: Vec<Datagrams> = ["udp_dig", "udp_truncated", "udp_glibc", "udp_python"]
        .into_iter()
        .map(datagrams)
        .collect();
    let tcp: Vec<Feeds> = ["tcp_retry", "tcp_keepopen", "tcp_pipelined"]
        .into_iter()
        .map(feeds)
        .collect();
    let udp_bytes: u64 = udp.iter().flatten().map(|d| d.1.len() as u64).sum();
    let tcp_bytes: u64 = tcp.iter().flatten().map(|f| f.1.len() as u64).sum();

    let mut group = c.benchmark_group("dns");
    group.throughput(Throughput::Bytes(udp_bytes));
    group.bench_function("udp_recorded", |b| b.iter(|| run_datagrams(&udp)));
    group.throughput(Throughput::Bytes(tcp_bytes));
    group.bench_function("tcp_recorded", |b| b.iter(|| run_feeds(&tcp)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = dns
}
criterion_main!(benches);
