//! Kafka tests: a session of requests and responses encoded by `kafka-protocol` (the versions
//! current clients send), played in both roles and split every way; gaps, garbage and
//! mutations; inference; and the public capture `../shared/captures/ndpi/kafka.pcapng` (read at
//! test time, never copied in).

use std::fmt::Write as _;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::schema::{self, Body};
use super::{KafkaParser, infer};
use crate::testkit::{XorShift, check_baseline, fixture_streams};
use crate::{Detail, Direction, Loss, Output, Parser, Protocol, Role};

const TOPIC_ID: [u8; 16] = *b"0123456789abcdef";

fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

fn topic(x: &'static str) -> TopicName {
    TopicName(s(x))
}

fn uuid() -> uuid::Uuid {
    uuid::Uuid::from_bytes(TOPIC_ID)
}

/// A request frame: size, header (version by api key), body.
fn request<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = corr;
    header.client_id = Some(s("console-producer"));
    let mut b = Vec::new();
    header
        .encode(&mut b, key.request_header_version(version))
        .unwrap();
    let at = b.len();
    body.encode(&mut b, version).unwrap();
    let mut body_check = Body::default();
    assert_eq!(
        schema::read_body(key, version, false, &b[at..], &mut body_check),
        Ok(()),
        "{key:?} v{version} request walks"
    );
    framed(b)
}

/// A response frame: size, header (version by api key), body.
fn response<T: Encodable>(key: ApiKey, version: i16, corr: i32, body: &T) -> Vec<u8> {
    let mut header = ResponseHeader::default();
    header.correlation_id = corr;
    let mut b = Vec::new();
    header
        .encode(&mut b, key.response_header_version(version))
        .unwrap();
    let at = b.len();
    body.encode(&mut b, version).unwrap();
    let mut body_check = Body::default();
    assert_eq!(
        schema::read_body(key, version, true, &b[at..], &mut body_check),
        Ok(()),
        "{key:?} v{version} response walks"
    );
    framed(b)
}

fn framed(b: Vec<u8>) -> Vec<u8> {
    let mut f = (b.len() as u32).to_be_bytes().to_vec();
    f.extend(b);
    f
}

/// One v2 record batch of `n` records.
fn batch(n: usize, value_len: usize) -> Vec<u8> {
    let records: Vec<KRecord> = (0..n)
        .map(|i| KRecord {
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
            value: Some(vec![b'v'; value_len].into()),
            headers: Default::default(),
        })
        .collect();
    let mut b = Vec::new();
    RecordBatchEncoder::encode(
        &mut b,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    b
}

fn produce(corr: i32, name: &'static str, partition: i32, acks: i16, records: Vec<u8>) -> Vec<u8> {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records.into());
    let mut t = TopicProduceData::default();
    t.name = topic(name);
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 30_000;
    r.topic_data = vec![t];
    request(ApiKey::Produce, 9, corr, &r)
}

fn produce_response(
    corr: i32,
    name: &'static str,
    error: i16,
    msg: Option<&'static str>,
) -> Vec<u8> {
    let mut p = PartitionProduceResponse::default();
    p.error_code = error;
    p.error_message = msg.map(s);
    let mut t = TopicProduceResponse::default();
    t.name = topic(name);
    t.partition_responses = vec![p];
    let mut r = ProduceResponse::default();
    r.responses = vec![t];
    response(ApiKey::Produce, 9, corr, &r)
}

fn fetch(corr: i32, version: i16, by_id: bool, partition: i32) -> Vec<u8> {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    if by_id {
        t.topic_id = uuid();
    } else {
        t.topic = topic("orders");
    }
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.max_wait_ms = 500;
    r.max_bytes = 52_428_800;
    r.session_id = 0x7abc_def0;
    r.topics = vec![t];
    request(ApiKey::Fetch, version, corr, &r)
}

fn fetch_response(corr: i32, version: i16, error: i16, records: Option<Vec<u8>>) -> Vec<u8> {
    let mut p = PartitionData::default();
    p.error_code = error;
    p.records = records.map(Into::into);
    let mut t = FetchableTopicResponse::default();
    if version >= 13 {
        t.topic_id = uuid();
    } else {
        t.topic = topic("orders");
    }
    t.partitions = vec![p];
    let mut r = FetchResponse::default();
    r.responses = vec![t];
    response(ApiKey::Fetch, version, corr, &r)
}

/// A consumer and producer session, as (from the client?, frame) steps.
fn session() -> Vec<(bool, Vec<u8>)> {
    let mut steps = Vec::new();
    let mut av = ApiVersionsRequest::default();
    av.client_software_name = s("wirelens-test");
    av.client_software_version = s("1.0");
    steps.push((true, request(ApiKey::ApiVersions, 3, 1, &av)));
    let mut avr = ApiVersionsResponse::default();
    let mut one = ApiVersion::default();
    one.max_version = 13;
    avr.api_keys = vec![one];
    steps.push((false, response(ApiKey::ApiVersions, 3, 1, &avr)));

    let mut md = MetadataRequest::default();
    let mut mt = MetadataRequestTopic::default();
    mt.name = Some(topic("orders"));
    md.topics = Some(vec![mt]);
    steps.push((true, request(ApiKey::Metadata, 12, 2, &md)));
    let mut mdr = MetadataResponse::default();
    let mut mrt = MetadataResponseTopic::default();
    mrt.name = Some(topic("orders"));
    mrt.topic_id = uuid();
    mrt.partitions = vec![MetadataResponsePartition::default(); 2];
    mdr.topics = vec![mrt];
    steps.push((false, response(ApiKey::Metadata, 12, 2, &mdr)));

    let mut two = batch(3, 20);
    two.extend(batch(2, 5));
    steps.push((true, produce(3, "orders", 0, -1, two)));
    steps.push((false, produce_response(3, "orders", 0, None)));
    steps.push((true, produce(4, "missing", 0, 1, batch(1, 4))));
    steps.push((
        false,
        produce_response(
            4,
            "missing",
            3,
            Some("This server does not host this topic-partition."),
        ),
    ));
    steps.push((true, produce(5, "orders", 1, 0, batch(4, 4))));

    let mut fc = FindCoordinatorRequest::default();
    fc.coordinator_keys = vec![s("group-a")];
    steps.push((true, request(ApiKey::FindCoordinator, 4, 6, &fc)));
    let mut fcr = FindCoordinatorResponse::default();
    let mut co = Coordinator::default();
    co.key = s("group-a");
    co.host = s("127.0.0.1");
    co.port = 9092;
    fcr.coordinators = vec![co];
    steps.push((false, response(ApiKey::FindCoordinator, 4, 6, &fcr)));

    let mut jg = JoinGroupRequest::default();
    jg.group_id = GroupId(s("group-a"));
    jg.protocol_type = s("consumer");
    let mut jp = JoinGroupRequestProtocol::default();
    jp.name = s("range");
    jg.protocols = vec![jp];
    // Pipelined with a SyncGroup, answered out of order.
    let mut sg = SyncGroupRequest::default();
    sg.group_id = GroupId(s("group-a"));
    sg.protocol_type = Some(s("consumer"));
    sg.protocol_name = Some(s("range"));
    let mut both = request(ApiKey::JoinGroup, 9, 7, &jg);
    both.extend(request(ApiKey::SyncGroup, 5, 8, &sg));
    steps.push((true, both));
    let mut sgr = SyncGroupResponse::default();
    sgr.protocol_type = Some(s("consumer"));
    sgr.protocol_name = Some(s("range"));
    steps.push((false, response(ApiKey::SyncGroup, 5, 8, &sgr)));
    let mut jgr = JoinGroupResponse::default();
    jgr.protocol_name = Some(s("range"));
    steps.push((false, response(ApiKey::JoinGroup, 9, 7, &jgr)));

    let mut of = OffsetFetchRequest::default();
    let mut ofg = OffsetFetchRequestGroup::default();
    ofg.group_id = GroupId(s("group-a"));
    let mut oft = OffsetFetchRequestTopics::default();
    oft.name = topic("orders");
    oft.partition_indexes = vec![0];
    ofg.topics = Some(vec![oft]);
    of.groups = vec![ofg];
    steps.push((true, request(ApiKey::OffsetFetch, 9, 9, &of)));
    let mut ofr = OffsetFetchResponse::default();
    let mut ofrg = OffsetFetchResponseGroup::default();
    ofrg.group_id = GroupId(s("group-a"));
    ofr.groups = vec![ofrg];
    steps.push((false, response(ApiKey::OffsetFetch, 9, 9, &ofr)));

    let mut lo = ListOffsetsRequest::default();
    let mut lot = ListOffsetsTopic::default();
    lot.name = topic("orders");
    lot.partitions = vec![ListOffsetsPartition::default()];
    lo.topics = vec![lot];
    steps.push((true, request(ApiKey::ListOffsets, 8, 10, &lo)));
    steps.push((
        false,
        response(ApiKey::ListOffsets, 8, 10, &ListOffsetsResponse::default()),
    ));

    steps.push((true, fetch(11, 13, true, 0)));
    let mut fetched = batch(3, 20);
    fetched.extend(batch(2, 5));
    fetched.extend_from_slice(&batch(7, 5)[..30]); // a partial last batch: not counted
    steps.push((false, fetch_response(11, 13, 0, Some(fetched))));
    steps.push((true, fetch(12, 12, false, 5)));
    steps.push((false, fetch_response(12, 12, 3, None)));

    let mut oc = OffsetCommitRequest::default();
    oc.group_id = GroupId(s("group-a"));
    let mut oct = OffsetCommitRequestTopic::default();
    oct.name = topic("orders");
    oct.partitions = vec![OffsetCommitRequestPartition::default()];
    oc.topics = vec![oct];
    steps.push((true, request(ApiKey::OffsetCommit, 9, 13, &oc)));
    steps.push((
        false,
        response(
            ApiKey::OffsetCommit,
            9,
            13,
            &OffsetCommitResponse::default(),
        ),
    ));

    let mut hb = HeartbeatRequest::default();
    hb.group_id = GroupId(s("group-a"));
    steps.push((true, request(ApiKey::Heartbeat, 4, 14, &hb)));
    let mut hbr = HeartbeatResponse::default();
    hbr.error_code = 27;
    steps.push((false, response(ApiKey::Heartbeat, 4, 14, &hbr)));
    steps
}

fn dir_of(from_client: bool, traced: Role) -> Direction {
    if from_client == (traced == Role::Client) {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

fn render(out: &mut Output, traced: Role) -> String {
    let mut s = String::new();
    for r in &out.records {
        assert_eq!((r.role, r.protocol), (traced, Protocol::Kafka));
        let Detail::Messaging(m) = &r.detail else {
            panic!("not a messaging record")
        };
        assert_eq!(m.system.as_str(), "kafka");
        let _ = writeln!(
            s,
            "{} {:?} dest={:?} part={:?} count={:?} client={:?} group={:?} err={:?} msg={:?} t={}..{} req={} resp={}",
            m.operation_name,
            m.operation,
            m.destination,
            m.partition,
            m.message_count,
            m.client_id,
            m.consumer_group,
            m.error_type,
            m.error_message,
            r.start_ns,
            r.end_ns,
            r.request_bytes,
            r.response_bytes,
        );
    }
    for (loss, n) in out.take_losses() {
        if n > 0 {
            let _ = writeln!(s, "{}={n}", loss.name());
        }
    }
    s
}

fn run(steps: &[(bool, Vec<u8>)], traced: Role, chunk: usize) -> String {
    let mut p = KafkaParser::new();
    let mut out = Output::default();
    for (i, (from_client, bytes)) in steps.iter().enumerate() {
        for c in bytes.chunks(chunk.max(1)) {
            p.feed(
                dir_of(*from_client, traced),
                c,
                (i as u64 + 1) * 1000,
                &mut out,
            );
        }
    }
    p.close(u64::MAX, &mut out);
    assert_eq!(p.role(), Some(traced));
    render(&mut out, traced)
}

#[test]
fn encoded_session_both_roles_any_split() {
    let steps = session();
    let want = run(&steps, Role::Client, usize::MAX);
    check_baseline("kafka", "encoded_session.expected", &want);
    for traced in [Role::Client, Role::Server] {
        for chunk in [1, 2, 3, 7, 64, usize::MAX] {
            assert_eq!(run(&steps, traced, chunk), want, "{traced:?} chunk {chunk}");
        }
    }
}

/// (name, what the client sends, records, losses)
type FramingCase = (&'static str, Vec<u8>, usize, Vec<(Loss, u64)>);

#[test]
fn framing_table() {
    // (what the client sends, records, losses)
    let cases: Vec<FramingCase> = vec![
        ("empty", vec![], 0, vec![]),
        (
            "negative size",
            vec![0xff, 0xff, 0xff, 0xff, 1, 2],
            0,
            vec![(Loss::ResyncBytes, 6)],
        ),
        (
            "size 2",
            vec![0, 0, 0, 2, 1, 2],
            0,
            vec![(Loss::ResyncBytes, 6)],
        ),
        (
            "garbage then a request",
            [b"\x00\x00junk".to_vec(), produce(1, "t", 0, 0, batch(1, 1))].concat(),
            1,
            vec![(Loss::ResyncBytes, 6)],
        ),
        (
            "acks=0 produce",
            produce(1, "t", 0, 0, batch(2, 1)),
            1,
            vec![],
        ),
        (
            "unknown api key after a known request",
            [
                produce(1, "t", 0, 1, batch(1, 1)),
                framed(vec![0x7f, 0x00, 0, 0, 0, 0, 0, 9, 0, 0]),
            ]
            .concat(),
            0,
            vec![(Loss::UnmatchedRequest, 2)],
        ),
        (
            "not a request header where requests flow",
            [produce(1, "t", 0, 1, batch(1, 1)), framed(vec![0xff; 10])].concat(),
            0,
            vec![(Loss::UnmatchedRequest, 1), (Loss::Malformed, 1)],
        ),
        (
            "request without response",
            produce(1, "t", 0, 1, batch(2, 1)),
            0,
            vec![(Loss::UnmatchedRequest, 1)],
        ),
    ];
    for (name, bytes, records, losses) in cases {
        for chunk in [1, 5, usize::MAX] {
            let mut p = KafkaParser::new();
            let mut out = Output::default();
            for c in bytes.chunks(chunk) {
                p.feed(Direction::Egress, c, 1, &mut out);
            }
            p.close(2, &mut out);
            assert_eq!(out.records.len(), records, "{name}");
            for loss in Loss::ALL {
                let want = losses
                    .iter()
                    .find(|(l, _)| *l == loss)
                    .map_or(0, |(_, n)| *n);
                assert_eq!(out.losses(loss), want, "{name}: {loss:?}");
            }
        }
    }
}

#[test]
fn unknown_api_key_and_version_are_named() {
    let mut p = KafkaParser::new();
    let mut out = Output::default();
    let (e, i) = (Direction::Egress, Direction::Ingress);
    p.feed(e, &produce(1, "t", 0, 1, batch(1, 1)), 1, &mut out);
    p.feed(i, &produce_response(1, "t", 0, None), 2, &mut out);
    // Api key 127 (unknown), then Metadata v99 (beyond the crate's versions).
    p.feed(
        e,
        &framed(vec![0, 127, 0, 0, 0, 0, 0, 2, 0, 1, b'c', 1, 2]),
        3,
        &mut out,
    );
    p.feed(
        e,
        &framed(vec![0, 3, 0, 99, 0, 0, 0, 3, 0, 1, b'c', 0, 9, 9]),
        3,
        &mut out,
    );
    p.feed(i, &framed(vec![0, 0, 0, 2, 0xff, 0xff]), 4, &mut out);
    p.feed(i, &framed(vec![0, 0, 0, 3, 0, 5]), 5, &mut out);
    p.close(6, &mut out);
    let got = render(&mut out, Role::Client);
    assert!(got.contains("api_127 Other"), "{got}");
    assert!(
        got.contains("metadata Other dest=None part=None count=None client=Some(\"c\")"),
        "{got}"
    );
    assert!(!got.contains("malformed"), "{got}");
}

#[test]
fn whole_body_that_does_not_read_is_malformed_not_wrong() {
    // A Produce whose topic array claims two topics but holds one.
    let mut req = produce(1, "orders", 0, 1, batch(2, 1));
    let at = 4 + 10 + "console-producer".len() + 1 + 1 + 2 + 4; // size, header, txn id, acks, timeout
    assert_eq!(req[at], 2, "compact topic count 1");
    req[at] = 3;
    let mut p = KafkaParser::new();
    let mut out = Output::default();
    p.feed(Direction::Egress, &req, 1, &mut out);
    p.feed(
        Direction::Ingress,
        &produce_response(1, "orders", 0, None),
        2,
        &mut out,
    );
    assert_eq!(out.losses(Loss::Malformed), 1);
    let Detail::Messaging(m) = &out.records[0].detail else {
        panic!()
    };
    assert_eq!((m.destination.as_deref(), m.message_count), (None, None));
    assert_eq!(m.client_id.as_deref(), Some("console-producer"));
}

#[test]
fn request_larger_than_capture_limit() {
    let req = produce(1, "orders", 3, 1, batch(50, 1000));
    let resp = produce_response(1, "orders", 0, None);
    for traced in [Role::Client, Role::Server] {
        let mut p = KafkaParser::new();
        let mut out = Output::default();
        let d = dir_of(true, traced);
        p.feed(d, &req[..200], 1, &mut out);
        p.skip(d, Some((req.len() - 200) as u64), 2, &mut out);
        p.feed(d.flip(), &resp, 3, &mut out);
        p.close(4, &mut out);
        assert_eq!(out.records.len(), 1);
        let Detail::Messaging(m) = &out.records[0].detail else {
            panic!()
        };
        assert_eq!(m.destination.as_deref(), Some("orders"));
        assert_eq!(m.partition, Some(3));
        assert_eq!(m.message_count, None);
        assert_eq!(out.records[0].request_bytes, req.len() as u64);
        for loss in Loss::ALL {
            assert_eq!(out.losses(loss), 0, "{loss:?}");
        }
    }
}

#[test]
fn unknown_gap_resyncs_on_next_request_and_awaited_response() {
    let steps = session();
    let mut p = KafkaParser::new();
    let mut out = Output::default();
    let (e, i) = (Direction::Egress, Direction::Ingress);
    // Metadata request cut by an unknown gap, then the rest of the session from Produce.
    p.feed(e, &steps[0].1, 1, &mut out);
    p.feed(i, &steps[1].1, 2, &mut out);
    p.feed(e, &steps[2].1[..9], 3, &mut out);
    p.skip(e, None, 4, &mut out);
    let mut junk = b"\x00\x01garbage".to_vec();
    junk.extend(&steps[4].1);
    p.feed(e, &junk, 5, &mut out);
    // The response direction loses its place too: half the Metadata response, then a gap.
    p.feed(i, &steps[3].1[..20], 6, &mut out);
    p.skip(i, None, 7, &mut out);
    let mut rjunk = vec![0u8; 5];
    rjunk.extend(&steps[5].1);
    p.feed(i, &rjunk, 8, &mut out);
    p.close(9, &mut out);
    let names: Vec<String> = out
        .records
        .iter()
        .map(|r| match &r.detail {
            Detail::Messaging(m) => m.operation_name.clone(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(names, ["api_versions", "send"]);
    assert_eq!(out.losses(Loss::ResyncBytes), 9 + 5);
    assert_eq!(out.losses(Loss::Malformed), 0);
}

/// Joined mid-frame: the first bytes are not taken for a size; framing starts at the next
/// whole request, and what follows pairs as usual.
#[test]
fn joined_mid_stream() {
    let steps = session();
    for traced in [Role::Client, Role::Server] {
        for chunk in [1, 9, usize::MAX] {
            let mut p = KafkaParser::new();
            let mut out = Output::default();
            for (k, (from_client, bytes)) in steps.iter().enumerate().skip(4) {
                let bytes = if k == 4 { &bytes[37..] } else { &bytes[..] };
                for c in bytes.chunks(chunk) {
                    p.feed(dir_of(*from_client, traced), c, k as u64, &mut out);
                }
            }
            p.close(100, &mut out);
            let got = render(&mut out, traced);
            let want = run(&steps, traced, usize::MAX);
            let tail: Vec<&str> = want.lines().filter(|l| l.contains(" t=")).skip(3).collect();
            let got_records: Vec<&str> = got.lines().filter(|l| l.contains(" t=")).collect();
            assert_eq!(got_records.len(), tail.len(), "{traced:?} {chunk}: {got}");
            assert!(got.contains("resync_bytes="), "{got}");
            assert!(!got.contains("malformed"), "{got}");
        }
    }
}

#[test]
fn garbage_and_mutations_never_panic() {
    let steps = session();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let mut p = KafkaParser::new();
        let mut out = Output::default();
        for (k, (from_client, bytes)) in steps.iter().enumerate() {
            let mut bytes = bytes.clone();
            for _ in 0..rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next() as u8;
            }
            let d = dir_of(*from_client, Role::Client);
            if round % 7 == 0 && k % 5 == 3 {
                p.skip(
                    d,
                    if round % 2 == 0 {
                        None
                    } else {
                        Some(rng.below(100))
                    },
                    1,
                    &mut out,
                );
            }
            for c in bytes.chunks(1 + rng.below(50) as usize) {
                p.feed(d, c, k as u64, &mut out);
            }
        }
        let junk: Vec<u8> = (0..500).map(|_| rng.next() as u8).collect();
        p.feed(Direction::Ingress, &junk, 99, &mut out);
        p.feed(Direction::Egress, &junk, 99, &mut out);
        p.close(100, &mut out);
        for r in &out.records {
            assert!(matches!(r.detail, Detail::Messaging(_)));
        }
    }
}

#[test]
fn inference_table() {
    let steps = session();
    for (from_client, bytes) in &steps {
        let got = infer(Direction::Egress, bytes);
        if *from_client {
            let i = got.expect("a request");
            assert_eq!(
                (i.protocol, i.confidence, i.sender_role),
                (Protocol::Kafka, 95, Some(Role::Client))
            );
            assert_eq!(
                infer(Direction::Egress, &bytes[..40]).map(|i| i.confidence),
                Some(85)
            );
            assert_eq!(
                infer(Direction::Egress, &bytes[..14]).map(|i| i.confidence),
                Some(80)
            );
        } else {
            assert_eq!(got, None, "responses are not claimed");
        }
    }
    // Joined mid-stream: the tail of a record batch, then a whole request.
    let mut mid = steps[4].1[40..].to_vec();
    mid.extend(&steps[2].1);
    assert_eq!(
        infer(Direction::Egress, &mid).map(|i| i.confidence),
        Some(70)
    );
    let others: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x00\x00\x08\x04\xd2\x16\x2f",                    // PG SSLRequest
        b"\x00\x00\x00\x54\x00\x03\x00\x00user\x00postgres\x00database\x00db\x00\x00", // PG startup
        b"\x4a\x00\x00\x00\x0a8.0.36\x00",                         // MySQL greeting
        b"*1\r\n$4\r\nPING\r\n",
        b"\x04\x00\x00\x01\x05\x00\x00\x00\x00",                   // CQL OPTIONS
        b"INFO {\"server_id\":\"x\"}\r\n",
        b"CONNECT {\"verbose\":false}\r\n",
        b"AMQP\x00\x00\x09\x01",
        b"\x00\x1d\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01", // DNS/TCP
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",           // TLS
    ];
    for o in others {
        for d in [Direction::Egress, Direction::Ingress] {
            assert_eq!(infer(d, o), None, "{o:?}");
        }
    }
}

/// The other protocols' recordings are never taken for Kafka.
#[test]
fn other_protocols_not_inferred() {
    let streams = fixture_streams(&[
        "http1",
        "mysql",
        "postgres",
        "redis",
        "cassandra",
        "nats",
        "amqp",
        "dns",
    ]);
    for (path, bytes) in &streams {
        for d in [Direction::Egress, Direction::Ingress] {
            assert_eq!(infer(d, bytes), None, "{} taken for Kafka", path.display());
        }
    }
    let seen = streams.len();
    assert!(seen > 0);
}

#[test]
fn error_names_and_operations() {
    assert_eq!(super::stitch::error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(super::stitch::error_name(6), "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(super::stitch::error_name(27), "REBALANCE_IN_PROGRESS");
    assert_eq!(super::stitch::error_name(-1), "UNKNOWN_SERVER_ERROR");
    assert_eq!(super::stitch::error_name(9999), "9999");
    assert_eq!(super::stitch::operation(19).1, "create_topics");
    assert_eq!(super::stitch::operation(999).1, "api_999");
}

// ---------------------------------------------------------------------------------------------
// The public capture: nDPI's `kafka.pcapng` (fragments of old-client connections, ApiVersions
// v0, Metadata v2, Produce v3 with a retransmission; and one whole connection of a recent
// client: ApiVersions v3, InitProducerId v4, Metadata v12, Produce v9).

mod capture {
    use std::collections::{BTreeMap, HashSet};

    use etherparse::TransportSlice;

    use super::{KafkaParser, render};
    use crate::testkit::{TcpConn, capture_frames, check_baseline, replay_conn, slice_frame};
    use crate::{Output, Parser, Role};

    /// (client port) → segments in capture order: (from the client?, bytes, ts).
    type Conns = BTreeMap<u16, TcpConn>;

    fn connections() -> Conns {
        let mut conns = Conns::new();
        let mut seen = HashSet::new();
        for (linktype, frame, ts) in capture_frames("ndpi/kafka.pcapng") {
            // The baseline's times are the capture's, as they stand in the file.
            let Some(packet) = slice_frame(linktype, &frame) else {
                continue;
            };
            let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
                continue;
            };
            let payload = tcp.payload();
            let (src, dst) = (tcp.source_port(), tcp.destination_port());
            // Retransmissions carry a sequence number already seen.
            if payload.is_empty() || !seen.insert((src, dst, tcp.sequence_number())) {
                continue;
            }
            let from_client = dst == 9092;
            let client = if from_client { src } else { dst };
            conns
                .entry(client)
                .or_default()
                .push((from_client, payload.to_vec(), ts));
        }
        conns
    }

    #[test]
    fn ndpi_capture() {
        let conns = connections();
        let mut got = String::new();
        for (port, segs) in &conns {
            got.push_str(&format!("# client port {port}\n"));
            let mut want = None;
            for traced in [Role::Client, Role::Server] {
                for chunk in [usize::MAX, 1] {
                    let mut p = KafkaParser::new();
                    let mut out = Output::default();
                    replay_conn(&mut p, segs, traced, chunk, &mut out);
                    let rendered = if out.records.is_empty() && p.role() != Some(traced) {
                        // Only responses seen: nothing tells the role.
                        format!("no requests{}\n", render(&mut out, traced))
                    } else {
                        render(&mut out, traced)
                    };
                    match &want {
                        None => want = Some(rendered),
                        Some(w) => assert_eq!(&rendered, w, "port {port} {traced:?} {chunk}"),
                    }
                }
            }
            got.push_str(want.as_deref().unwrap_or_default());
        }
        check_baseline("kafka", "ndpi_capture.expected", &got);
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded fixtures (`testdata/kafka/`, written by `record.sh`): every connection found there.

mod recorded {
    use crate::testkit::{Capture, Op, Side, bytewise, check_baseline, play, rechunk};
    use crate::{Output, Parser, Role};

    use super::{KafkaParser, render};

    const DIR: &str = "kafka";

    /// The recorded connections: every `<name>.timeline` in the folder.
    fn names() -> Vec<String> {
        let dir = crate::testkit::testdata(DIR, "");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        name.strip_suffix(".timeline").map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn run(ops: &[Op<'_>], traced: Role) -> String {
        let mut p = KafkaParser::new();
        let mut out = Output::default();
        play(&mut p, ops, traced, &mut out);
        if p.role().is_some_and(|r| r != traced) {
            return format!("role {:?} instead of {traced:?}\n", p.role());
        }
        render(&mut out, traced)
    }

    #[test]
    fn baselines_both_roles_any_split() {
        for name in names() {
            let cap = Capture::load(DIR, &name);
            let ops = cap.ops();
            let want = run(&ops, Role::Client);
            check_baseline(DIR, &format!("{name}.expected"), &want);
            assert_eq!(run(&ops, Role::Server), want, "{name} as server");
            assert_eq!(run(&bytewise(&ops), Role::Client), want, "{name} bytewise");
            for seed in 1..=4 {
                assert_eq!(
                    run(&rechunk(&ops, seed, 17), Role::Server),
                    want,
                    "{name} {seed}"
                );
            }
            // All the client's bytes, then all the server's: the same pairs (by correlation id).
            let count = |s: &str| s.lines().filter(|l| l.contains(" t=")).count();
            assert_eq!(
                count(&run(&cap.ops_whole(), Role::Client)),
                count(&want),
                "{name}"
            );
        }
    }

    /// A gap of known length anywhere in a recorded stream never panics, never makes a
    /// record of another protocol, and costs at most the exchanges it touches.
    #[test]
    fn known_gaps_anywhere() {
        for name in names() {
            let cap = Capture::load(DIR, &name);
            let all = run(&cap.ops(), Role::Client);
            let records = all.lines().filter(|l| l.contains(" t=")).count();
            for side in [Side::Client, Side::Server] {
                let len = cap.stream(side).len();
                for start in (0..len).step_by(len / 23 + 1) {
                    let gap = start..(start + 10).min(len);
                    let got = run(&cap.ops_with_gap(side, gap, true), Role::Client);
                    let got_records = got.lines().filter(|l| l.contains(" t=")).count();
                    assert!(got_records <= records, "{name} gap at {start}: {got}");
                }
            }
        }
    }
}
