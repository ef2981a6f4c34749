//! kafka parser throughput, in bytes fed per second: the recorded connections of
//! `testdata/kafka/` (when present), and a producer/consumer stream encoded by `kafka-protocol`
//! (Produce v9 and Fetch v13 with 10-record batches, one feed per frame).
//!
//! `cargo bench -p wirelens-parsers --bench kafka`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use wirelens_parsers::{Direction, Output, Protocol, new_parser};

mod common;
use common::{CpuTime, Feeds};

fn frame(header: impl FnOnce(&mut Vec<u8>), body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    header(&mut b);
    body(&mut b);
    let mut f = (b.len() as u32).to_be_bytes().to_vec();
    f.extend(b);
    f
}

fn request<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = corr;
    h.client_id = Some(StrBytes::from_static_str("bench-client"));
    frame(
        |b| h.encode(b, key.request_header_version(version)).unwrap(),
        |b| body.encode(b, version).unwrap(),
    )
}

fn response<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut h = ResponseHeader::default();
    h.correlation_id = corr;
    frame(
        |b| h.encode(b, key.response_header_version(version)).unwrap(),
        |b| body.encode(b, version).unwrap(),
    )
}

fn batch(n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(vec![b'x'; 100].into()),
            headers: Default::default(),
        })
        .collect();
    let mut b = Vec::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut b, &records, &options).unwrap();
    b
}

/// `rounds` × (Produce + response, Fetch + response), as the traced client.
fn encoded_stream(rounds: i32) -> Feeds {
    let topic = TopicName(StrBytes::from_static_str("bench-topic"));
    let records = batch(10);
    let mut feeds = Vec::new();
    let mut ts = 0;
    let mut push = |dir, bytes| {
        ts += 1000;
        feeds.push((dir, bytes, ts));
    };
    for i in 0..rounds {
        let mut p = PartitionProduceData::default();
        p.records = Some(records.clone().into());
        let mut t = TopicProduceData::default();
        t.name = topic.clone();
        t.partition_data = vec![p];
        let mut produce = ProduceRequest::default();
        produce.acks = -1;
        produce.topic_data = vec![t];
        push(
            Direction::Egress,
            request(ApiKey::Produce, 9, 2 * i, &produce),
        );
        let mut t = TopicProduceResponse::default();
        t.name = topic.clone();
        t.partition_responses = vec![PartitionProduceResponse::default()];
        let mut resp = ProduceResponse::default();
        resp.responses = vec![t];
        push(
            Direction::Ingress,
            response(ApiKey::Produce, 9, 2 * i, &resp),
        );

        let mut t = FetchTopic::default();
        t.topic_id = uuid::Uuid::from_bytes([7; 16]);
        t.partitions = vec![FetchPartition::default()];
        let mut fetch = FetchRequest::default();
        fetch.topics = vec![t];
        push(
            Direction::Egress,
            request(ApiKey::Fetch, 13, 2 * i + 1, &fetch),
        );
        let mut p = PartitionData::default();
        p.records = Some(records.clone().into());
        let mut t = FetchableTopicResponse::default();
        t.topic_id = uuid::Uuid::from_bytes([7; 16]);
        t.partitions = vec![p];
        let mut resp = FetchResponse::default();
        resp.responses = vec![t];
        push(
            Direction::Ingress,
            response(ApiKey::Fetch, 13, 2 * i + 1, &resp),
        );
    }
    feeds
}

/// The feeds of `testdata/kafka/<name>` as the traced client, one per segment.
fn recorded(name: &str) -> Option<Feeds> {
    common::try_feeds("kafka", name)
}

fn run(feeds: &Feeds) -> usize {
    let mut parser = new_parser(Protocol::Kafka);
    let mut records = 0;
    let mut out = Output::default();
    for (dir, bytes, ts) in feeds {
        parser.feed(*dir, bytes, *ts, &mut out);
        records += common::drain(&mut out);
    }
    parser.close(u64::MAX, &mut out);
    records + common::drain(&mut out)
}

fn bytes(feeds: &Feeds) -> u64 {
    feeds.iter().map(|(_, b, _)| b.len() as u64).sum()
}

fn kafka(c: &mut Criterion<CpuTime>) {
    let mut group = c.benchmark_group("kafka");
    let stream = encoded_stream(200);
    assert_eq!(run(&stream), 400, "every exchange becomes a record");
    group.throughput(Throughput::Bytes(bytes(&stream)));
    group.bench_function("produce_fetch_encoded", |b| {
        b.iter(|| black_box(run(black_box(&stream))))
    });
    // Every recorded connection (tansu and kafka-python), each through its own parser.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kafka");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|f| f.strip_suffix(".timeline").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let sessions: Vec<Feeds> = names.iter().filter_map(|n| recorded(n)).collect();
    assert!(
        !sessions.is_empty(),
        "no recorded sessions in {}",
        dir.display()
    );
    group.throughput(Throughput::Bytes(sessions.iter().map(bytes).sum()));
    group.bench_function("recorded_sessions", |b| {
        b.iter(|| {
            sessions
                .iter()
                .map(|s| black_box(run(black_box(s))))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = kafka
}
criterion_main!(benches);
