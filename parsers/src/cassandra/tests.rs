//! Cassandra tests: byte-literal envelopes for framing, pairing and gap edge cases (in both
//! roles and split every way), v5 segments, and the public capture
//! `../shared/captures/ndpi/cassandra.pcap` (read at test time, never copied in).

use std::fmt::Write as _;

use super::frame::crc24;
use super::{CassandraParser, infer};
use crate::testkit::fixture_streams;
use crate::{Detail, Direction, Loss, Output, Parser, Protocol, Role};

/// An envelope: version byte (0x80 set for responses), stream, opcode, body.
fn env(version: u8, stream: i16, op: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![version, 0];
    m.extend_from_slice(&stream.to_be_bytes());
    m.push(op);
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b
}

fn long_string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b
}

fn startup() -> Vec<u8> {
    let mut b = 1u16.to_be_bytes().to_vec();
    b.extend(string("CQL_VERSION"));
    b.extend(string("3.0.0"));
    env(4, 0, 0x01, &b)
}

fn query(stream: i16, cql: &str) -> Vec<u8> {
    let mut b = long_string(cql);
    b.extend_from_slice(&[0, 1, 0]); // consistency ONE, no flags
    env(4, stream, 0x07, &b)
}

fn rows(stream: i16, n: i32) -> Vec<u8> {
    let mut b = 2i32.to_be_bytes().to_vec();
    b.extend_from_slice(&1i32.to_be_bytes()); // flags: global table spec
    b.extend_from_slice(&1i32.to_be_bytes()); // one column
    b.extend(string("ks"));
    b.extend(string("users"));
    b.extend(string("id"));
    b.extend_from_slice(&0x0009u16.to_be_bytes()); // int
    b.extend_from_slice(&n.to_be_bytes());
    for i in 0..n {
        b.extend_from_slice(&4i32.to_be_bytes());
        b.extend_from_slice(&i.to_be_bytes());
    }
    env(0x84, stream, 0x08, &b)
}

fn void(stream: i16) -> Vec<u8> {
    env(0x84, stream, 0x08, &1i32.to_be_bytes())
}

fn set_keyspace(stream: i16, ks: &str) -> Vec<u8> {
    let mut b = 3i32.to_be_bytes().to_vec();
    b.extend(string(ks));
    env(0x84, stream, 0x08, &b)
}

fn prepared(stream: i16, id: &[u8]) -> Vec<u8> {
    let mut b = 4i32.to_be_bytes().to_vec();
    b.extend_from_slice(&(id.len() as u16).to_be_bytes());
    b.extend_from_slice(id);
    b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0]); // no metadata, 0 columns
    b.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0]);
    env(0x84, stream, 0x08, &b)
}

fn error(stream: i16, code: i32, msg: &str) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend(string(msg));
    env(0x84, stream, 0x00, &b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

fn run(steps: &[(Side, Vec<u8>)], traced: Role, chunk: usize) -> String {
    let mut p = CassandraParser::new();
    let mut out = Output::default();
    for (i, (side, bytes)) in steps.iter().enumerate() {
        let dir = if (*side == Side::Client) == (traced == Role::Client) {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        for c in bytes.chunks(chunk.max(1)) {
            p.feed(dir, c, (i as u64 + 1) * 1000, &mut out);
        }
    }
    p.close(u64::MAX, &mut out);
    let mut s = String::new();
    for r in &out.records {
        assert_eq!((r.role, r.protocol), (traced, Protocol::Cassandra));
        let Detail::Db(d) = &r.detail else { panic!() };
        let _ = writeln!(
            s,
            "{} {} ns={} {} rows={:?} batch={:?} t={}..{} req={} resp={} err={:?} q={:?}",
            d.operation.as_deref().unwrap_or("-"),
            d.collection.as_deref().unwrap_or("-"),
            d.namespace.as_deref().unwrap_or("-"),
            d.status_code.as_deref().unwrap_or("ok"),
            d.rows,
            d.batch_size,
            r.start_ns,
            r.end_ns,
            r.request_bytes,
            r.response_bytes,
            d.error_message,
            d.query_text,
        );
    }
    for (loss, n) in out.take_losses() {
        if n > 0 {
            let _ = writeln!(s, "{}={n}", loss.name());
        }
    }
    s
}

/// Same result in both roles and whatever the chunking.
fn check(steps: &[(Side, Vec<u8>)], want: &str) {
    for traced in [Role::Client, Role::Server] {
        for chunk in [usize::MAX, 1, 3, 7, 10] {
            assert_eq!(run(steps, traced, chunk), want, "{traced:?} chunk {chunk}");
        }
    }
}

#[test]
fn startup_use_query_rows_error() {
    use Side::*;
    let steps = vec![
        (Client, startup()),
        (Server, env(0x84, 0, 0x02, b"")),
        (Client, query(1, "USE ks")),
        (Server, set_keyspace(1, "ks")),
        (Client, query(2, "SELECT id FROM users WHERE id = 1")),
        (Server, rows(2, 3)),
        (Client, query(3, "INSERT INTO other.t (a) VALUES (1)")),
        (Server, error(3, 0x2200, "unconfigured table t")),
    ];
    check(
        &steps,
        "USE - ns=ks ok rows=None batch=None t=3000..4000 req=22 resp=17 err=None q=Some(\"USE ks\")\n\
         SELECT users ns=ks ok rows=Some(3) batch=None t=5000..6000 req=49 resp=66 err=None q=Some(\"SELECT id FROM users WHERE id = 1\")\n\
         INSERT other.t ns=other 0x2200 rows=None batch=None t=7000..8000 req=50 resp=35 err=Some(\"unconfigured table t\") q=Some(\"INSERT INTO other.t (a) VALUES (1)\")\n",
    );
}

#[test]
fn interleaved_streams_prepare_execute_batch_event() {
    use Side::*;
    let mut exec = 2u16.to_be_bytes().to_vec();
    exec.extend_from_slice(b"\x01\x02");
    exec.extend_from_slice(&[0, 1, 0]);
    let mut batch = vec![0u8];
    batch.extend_from_slice(&2u16.to_be_bytes());
    batch.push(0);
    batch.extend(long_string("INSERT INTO t (a) VALUES (1)"));
    batch.extend_from_slice(&0u16.to_be_bytes());
    batch.push(1);
    batch.extend_from_slice(&2u16.to_be_bytes());
    batch.extend_from_slice(b"\x01\x02");
    batch.extend_from_slice(&0u16.to_be_bytes());
    batch.extend_from_slice(&[0, 1, 0]);
    let steps = vec![
        (Client, {
            let mut b = env(4, 5, 0x09, &{
                let mut b = long_string("UPDATE t SET a = ? WHERE k = ?");
                b.extend_from_slice(&[0, 0]);
                b
            });
            b.extend(query(6, "SELECT * FROM ks2.t"));
            b
        }),
        // Answered out of order, with a server push between.
        (Server, rows(6, 0)),
        (Server, env(0x84, -1, 0x0C, &string("TOPOLOGY_CHANGE"))),
        (Server, prepared(5, b"\x01\x02")),
        (Client, env(4, 7, 0x0A, &exec)),
        (
            Client,
            env(4, 8, 0x0A, &{
                let mut e = 2u16.to_be_bytes().to_vec();
                e.extend_from_slice(b"\x09\x09");
                e
            }),
        ),
        (Server, void(7)),
        (Server, rows(8, 1)),
        (Client, env(4, 9, 0x0D, &batch)),
        (Server, void(9)),
        (Server, void(100)),
    ];
    check(
        &steps,
        "SELECT ks2.t ns=ks2 ok rows=Some(0) batch=None t=1000..2000 req=35 resp=42 err=None q=Some(\"SELECT * FROM ks2.t\")\n\
         PREPARE t ns=- ok rows=None batch=None t=1000..4000 req=45 resp=33 err=None q=Some(\"UPDATE t SET a = ? WHERE k = ?\")\n\
         UPDATE t ns=- ok rows=None batch=None t=5000..7000 req=16 resp=13 err=None q=Some(\"UPDATE t SET a = ? WHERE k = ?\")\n\
         EXECUTE users ns=ks ok rows=Some(1) batch=None t=6000..8000 req=13 resp=50 err=None q=None\n\
         BATCH t ns=- ok rows=None batch=Some(2) t=9000..10000 req=57 resp=13 err=None q=Some(\"INSERT INTO t (a) VALUES (1); UPDATE t SET a = ? WHERE k = ?\")\n\
         unmatched_response=1\n",
    );
}

#[test]
fn gaps_and_garbage() {
    let mut p = CassandraParser::new();
    let mut out = Output::default();
    let e = Direction::Egress;
    let i = Direction::Ingress;
    // Skip inside a body: counted over, the record still comes.
    let q = query(1, "SELECT * FROM t");
    p.feed(e, &q[..12], 1, &mut out);
    p.skip(e, Some(5), 2, &mut out);
    p.feed(e, &q[17..], 3, &mut out);
    p.feed(i, &void(1), 4, &mut out);
    assert_eq!(out.records.len(), 1);
    // A gap breaking framing: the request in flight is dropped, then sync comes back.
    p.feed(e, &query(2, "SELECT 1")[..5], 5, &mut out);
    p.skip(e, None, 6, &mut out);
    let mut junk = b"\xff\x00garbage".to_vec();
    junk.extend(query(3, "SELECT * FROM u"));
    junk.extend(query(4, "SELECT * FROM v"));
    p.feed(e, &junk, 7, &mut out);
    p.feed(i, &rows(3, 2), 8, &mut out);
    p.feed(i, &rows(4, 2), 8, &mut out);
    assert_eq!(out.records.len(), 3);
    assert_eq!(out.losses(Loss::ResyncBytes), 9);
    assert_eq!(p.role(), Some(Role::Client));
    // Garbage never panics.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let b = rng.to_le_bytes();
        p.feed(if b[0] & 1 == 0 { e } else { i }, &b, 9, &mut out);
    }
    p.close(10, &mut out);
}

#[test]
fn oversized_rows_body_still_counts() {
    use Side::*;
    let n = 150_000;
    let steps = vec![
        (Client, query(1, "SELECT id FROM users")),
        (Server, rows(1, n)),
    ];
    let got = run(&steps, Role::Client, 65536);
    assert!(got.contains("rows=Some(150000)"), "{got}");
    assert!(got.contains("oversized=1"), "{got}");
}

/// A v5 segment (uncompressed) around `payload`.
fn segment(payload: &[u8], self_contained: bool) -> Vec<u8> {
    let bits = payload.len() as u64 | (u64::from(self_contained) << 17);
    let crc = crc24(bits, 3);
    let mut s = bits.to_le_bytes()[..3].to_vec();
    s.extend_from_slice(&crc.to_le_bytes()[..3]);
    s.extend_from_slice(payload);
    s.extend_from_slice(&[0, 0, 0, 0]); // CRC32, not checked
    s
}

#[test]
fn v5_segments() {
    use Side::*;
    let v5 = |mut e: Vec<u8>| {
        e[0] = (e[0] & 0x80) | 5;
        e
    };
    let mut q1 = v5(query(1, "SELECT * FROM t"));
    q1.extend(v5(query(2, "SELECT * FROM u")));
    let big = v5(query(
        3,
        &format!("SELECT * FROM w WHERE k = '{}'", "x".repeat(200_000)),
    ));
    let mut server = segment(&v5(void(2)), true);
    server.extend(segment(&v5(void(1)), true));
    let (a, b) = big.split_at(100_000);
    let mut client2 = segment(a, false);
    client2.extend(segment(b, false));
    let steps = vec![
        (Client, v5(startup())),
        (Server, v5(env(0x84, 0, 0x02, b""))),
        (Client, segment(&q1, true)),
        (Server, server),
        (Client, client2),
        (Server, segment(&v5(void(3)), true)),
    ];
    let got = run(&steps, Role::Client, usize::MAX);
    assert_eq!(got.lines().count(), 3, "{got}");
    assert!(got.contains("SELECT u "), "{got}");
    assert!(got.contains("SELECT w "), "{got}");
    assert_eq!(run(&steps, Role::Server, 5), got);
    assert_eq!(
        infer(Direction::Egress, &steps[2].1).map(|i| i.confidence),
        Some(80)
    );
}

#[test]
fn inference() {
    let s = startup();
    let i = infer(Direction::Egress, &s).expect("startup");
    assert_eq!((i.confidence, i.sender_role), (100, Some(Role::Client)));
    let q = query(1, "SELECT 1");
    assert_eq!(infer(Direction::Egress, &q).map(|i| i.confidence), Some(80));
    let r = void(1);
    let i = infer(Direction::Ingress, &r).expect("result");
    assert_eq!((i.confidence, i.sender_role), (60, Some(Role::Server)));
    assert_eq!(infer(Direction::Egress, b"GET / HTTP/1.1\r\n"), None);
    assert_eq!(
        infer(Direction::Egress, b"\x04\x00\x00\x01\x07\xff\xff\xff\xff"),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Envelopes encoded by `cassandra-protocol`: compression, tracing and warning flags, v5
// segments as its frame encoders write them.

mod encoded {
    use cassandra_protocol::compression::Compression;
    use cassandra_protocol::consistency::Consistency;
    use cassandra_protocol::frame::frame_encoder::{
        FrameEncoder, Lz4FrameEncoder, UncompressedFrameEncoder,
    };
    use cassandra_protocol::frame::message_batch::{
        BatchQuery, BatchQuerySubj, BatchType, BodyReqBatch,
    };
    use cassandra_protocol::frame::message_error::{ErrorBody, ErrorType};
    use cassandra_protocol::frame::message_result::{
        BodyResResultPrepared, BodyResResultRows, BodyResResultSetKeyspace, ColSpec, ColType,
        ColTypeOption, PreparedMetadata, ResResultBody, RowsMetadata, RowsMetadataFlags, TableSpec,
    };
    use cassandra_protocol::frame::{
        Direction as Dir, Envelope, Flags, Opcode, Serialize, Version,
    };
    use cassandra_protocol::query::{QueryParams, QueryValues};
    use cassandra_protocol::types::{CBytes, CBytesShort};

    use super::{Side, run};
    use crate::Role;

    fn with_stream(mut e: Envelope, stream: i16) -> Envelope {
        e.stream_id = stream;
        e
    }

    fn query(v: Version, stream: i16, cql: &str, keyspace: Option<&str>) -> Envelope {
        with_stream(
            Envelope::new_req_query(
                cql.into(),
                Consistency::One,
                Some(QueryValues::SimpleValues(vec![])),
                false,
                Some(5000),
                None,
                None,
                Some(1),
                keyspace.map(Into::into),
                None,
                Flags::TRACING,
                v,
            ),
            stream,
        )
    }

    /// A response with a tracing id, and a warning from v4 on (v3 has no warnings).
    fn response(v: Version, stream: i16, op: Opcode, body: Vec<u8>) -> Envelope {
        let (flags, warnings) = if v == Version::V3 {
            (Flags::TRACING, vec![])
        } else {
            (Flags::TRACING | Flags::WARNING, vec!["a warning".into()])
        };
        Envelope::new(
            v,
            Dir::Response,
            flags,
            op,
            stream,
            body,
            Some(uuid::Uuid::nil()),
            warnings,
        )
    }

    fn rows(v: Version, stream: i16, n: usize) -> Envelope {
        let body = ResResultBody::Rows(BodyResResultRows {
            metadata: RowsMetadata {
                flags: RowsMetadataFlags::GLOBAL_TABLE_SPACE,
                columns_count: 2,
                paging_state: None,
                new_metadata_id: None,
                global_table_spec: Some(TableSpec {
                    ks_name: "shop".into(),
                    table_name: "items".into(),
                }),
                col_specs: ["id", "tags"]
                    .iter()
                    .map(|name| ColSpec {
                        table_spec: None,
                        name: (*name).into(),
                        col_type: ColTypeOption {
                            id: ColType::Int,
                            value: None,
                        },
                    })
                    .collect(),
            },
            rows_count: n as i32,
            rows_content: (0..n)
                .map(|i| {
                    vec![
                        CBytes::new((i as i32).to_be_bytes().to_vec()),
                        CBytes::new(vec![0; 4]),
                    ]
                })
                .collect(),
            protocol_version: v,
        });
        response(v, stream, Opcode::Result, body.serialize_to_vec(v))
    }

    fn encode(e: &Envelope, c: Compression) -> Vec<u8> {
        e.encode_with(c).expect("encodes")
    }

    /// A v3/v4 session with body compression `c`.
    fn session(v: Version, c: Compression, name: Option<&str>) -> Vec<(Side, Vec<u8>)> {
        use Side::*;
        let id = CBytesShort::new(vec![0xab; 16]);
        let prepared = ResResultBody::Prepared(BodyResResultPrepared {
            id: id.clone(),
            result_metadata_id: None,
            metadata: PreparedMetadata {
                pk_indexes: vec![0],
                global_table_spec: None,
                col_specs: vec![],
            },
            result_metadata: RowsMetadata {
                flags: RowsMetadataFlags::NO_METADATA,
                columns_count: 0,
                paging_state: None,
                new_metadata_id: None,
                global_table_spec: None,
                col_specs: vec![],
            },
        });
        let batch = BodyReqBatch {
            batch_type: BatchType::Logged,
            queries: vec![
                BatchQuery {
                    subject: BatchQuerySubj::QueryString(
                        "INSERT INTO items (id) VALUES (1)".into(),
                    ),
                    values: QueryValues::SimpleValues(vec![]),
                },
                BatchQuery {
                    subject: BatchQuerySubj::PreparedId(id.clone()),
                    values: QueryValues::SimpleValues(vec![]),
                },
                BatchQuery {
                    subject: BatchQuerySubj::PreparedId(id.clone()),
                    values: QueryValues::SimpleValues(vec![]),
                },
            ],
            consistency: Consistency::Quorum,
            serial_consistency: None,
            timestamp: None,
            keyspace: None,
            now_in_seconds: None,
        };
        let error = ErrorBody {
            message: "Keyspace nope does not exist".into(),
            ty: ErrorType::Invalid,
        };
        let set_ks = ResResultBody::SetKeyspace(BodyResResultSetKeyspace {
            body: "shop".into(),
        });
        let startup = Envelope::new_req_startup(name.map(Into::into), v);
        vec![
            (
                Client,
                encode(&Envelope::new_req_options(v), Compression::None),
            ),
            (Client, encode(&startup, Compression::None)),
            (
                Server,
                encode(&response(v, 0, Opcode::Ready, vec![]), Compression::None),
            ),
            (Client, {
                let mut b = encode(&query(v, 1, "USE nope", None), c);
                b.extend(encode(&query(v, 2, "USE shop", None), c));
                b
            }),
            (Server, {
                let mut b = encode(
                    &response(v, 2, Opcode::Result, set_ks.serialize_to_vec(v)),
                    c,
                );
                b.extend(encode(
                    &response(v, 1, Opcode::Error, error.serialize_to_vec(v)),
                    c,
                ));
                b
            }),
            (
                Client,
                encode(
                    &with_stream(
                        Envelope::new_req_prepare(
                            "UPDATE items SET n = ? WHERE id = ?".into(),
                            None,
                            Flags::empty(),
                            v,
                        ),
                        3,
                    ),
                    c,
                ),
            ),
            (
                Server,
                encode(
                    &response(v, 3, Opcode::Result, prepared.serialize_to_vec(v)),
                    c,
                ),
            ),
            (
                Client,
                encode(
                    &with_stream(
                        Envelope::new_req_execute(
                            &id,
                            None,
                            &QueryParams::default(),
                            Flags::empty(),
                            v,
                        ),
                        4,
                    ),
                    c,
                ),
            ),
            (Client, encode(&query(v, 5, "SELECT * FROM items", None), c)),
            (Server, encode(&rows(v, 5, 7), c)),
            (
                Server,
                encode(
                    &response(
                        v,
                        4,
                        Opcode::Result,
                        ResResultBody::Void.serialize_to_vec(v),
                    ),
                    c,
                ),
            ),
            (
                Client,
                encode(
                    &with_stream(Envelope::new_req_batch(batch, Flags::empty(), v), 6),
                    c,
                ),
            ),
            (
                Server,
                encode(
                    &response(
                        v,
                        6,
                        Opcode::Result,
                        ResResultBody::Void.serialize_to_vec(v),
                    ),
                    c,
                ),
            ),
        ]
    }

    /// The records without sizes and times (they differ with compression).
    fn fields(s: &str) -> String {
        s.lines()
            .map(|l| {
                l.split(' ')
                    .filter(|w| {
                        !w.starts_with("t=") && !w.starts_with("req=") && !w.starts_with("resp=")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    const WANT: &str = "USE - ns=shop ok rows=None batch=None err=None q=Some(\"USE shop\")\n\
        USE - ns=shop 0x2200 rows=None batch=None err=Some(\"Keyspace nope does not exist\") q=Some(\"USE nope\")\n\
        PREPARE items ns=shop ok rows=None batch=None err=None q=Some(\"UPDATE items SET n = ? WHERE id = ?\")\n\
        SELECT items ns=shop ok rows=Some(7) batch=None err=None q=Some(\"SELECT * FROM items\")\n\
        UPDATE items ns=shop ok rows=None batch=None err=None q=Some(\"UPDATE items SET n = ? WHERE id = ?\")\n\
        BATCH items ns=shop ok rows=None batch=Some(3) err=None q=Some(\"INSERT INTO items (id) VALUES (1); UPDATE items SET n = ? WHERE id = ?; UPDATE items SET n = ? WHERE id = ?\")";

    #[test]
    fn v3_v4_plain_lz4_snappy() {
        for v in [Version::V3, Version::V4] {
            for (c, name) in [
                (Compression::None, None),
                (Compression::Lz4, Some("lz4")),
                (Compression::Snappy, Some("snappy")),
            ] {
                let steps = session(v, c, name);
                for traced in [Role::Client, Role::Server] {
                    for chunk in [usize::MAX, 1, 13] {
                        let got = run(&steps, traced, chunk);
                        assert_eq!(fields(&got), WANT, "{v:?} {c:?} {traced:?} {chunk}");
                    }
                }
            }
        }
    }

    fn seg(enc: &mut dyn FrameEncoder, envs: &[Envelope]) -> Vec<u8> {
        enc.reset();
        for e in envs {
            enc.add_envelope(encode(e, Compression::None));
        }
        enc.finalize_self_contained().to_vec()
    }

    /// A v5 session: STARTUP/READY as envelopes, then segments from the crate's encoders.
    #[test]
    fn v5_segments_plain_and_lz4() {
        use Side::*;
        let v = Version::V5;
        for lz4 in [false, true] {
            let mut enc: Box<dyn FrameEncoder> = if lz4 {
                Box::new(Lz4FrameEncoder::default())
            } else {
                Box::new(UncompressedFrameEncoder::default())
            };
            let big = query(
                v,
                9,
                &format!("SELECT * FROM items WHERE k = '{}'", "y".repeat(300_000)),
                None,
            );
            let big = encode(&big, Compression::None);
            let mut large = Vec::new();
            let mut rest = &big[..];
            while !rest.is_empty() {
                enc.reset();
                let (n, bytes) = enc.finalize_non_self_contained(rest);
                large.extend_from_slice(bytes);
                rest = &rest[n..];
            }
            let startup = Envelope::new_req_startup(lz4.then(|| "lz4".into()), v);
            let steps = vec![
                (Client, encode(&startup, Compression::None)),
                (
                    Server,
                    encode(&response(v, 0, Opcode::Ready, vec![]), Compression::None),
                ),
                (
                    Client,
                    seg(
                        &mut *enc,
                        &[
                            query(v, 1, "SELECT * FROM items", Some("shop")),
                            query(v, 2, "SELECT * FROM b.t", None),
                        ],
                    ),
                ),
                (Server, seg(&mut *enc, &[rows(v, 2, 1), rows(v, 1, 3)])),
                (Client, large),
                (Server, seg(&mut *enc, &[rows(v, 9, 0)])),
            ];
            let want = "SELECT b.t ns=b ok rows=Some(1) batch=None err=None q=Some(\"SELECT * FROM b.t\")\n\
                SELECT items ns=shop ok rows=Some(3) batch=None err=None q=Some(\"SELECT * FROM items\")\n\
                SELECT items ns=- ok rows=Some(0) batch=None err=None";
            for traced in [Role::Client, Role::Server] {
                for chunk in [usize::MAX, 1, 1000] {
                    let got = run(&steps, traced, chunk);
                    let got = fields(&got);
                    let got: Vec<&str> = got
                        .lines()
                        .map(|l| {
                            l.split(" q=Some(\"SELECT * FROM items WHERE")
                                .next()
                                .unwrap_or(l)
                        })
                        .collect();
                    assert_eq!(got.join("\n"), want, "lz4 {lz4} {traced:?} {chunk}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The public capture: nDPI's `cassandra.pcap` (two CQL connections, v4 and v5: OPTIONS,
// SUPPORTED, STARTUP; and one internode connection on port 7000, which is not CQL).

mod capture {
    use crate::testkit::{TcpConn as Conn, assert_silent_replay, capture_connections};
    use crate::{Direction, Protocol, Role};

    use super::{CassandraParser, infer};

    #[test]
    fn ndpi_capture() {
        let conns = capture_connections("ndpi/cassandra.pcap", false);
        let cql: Vec<&Conn> = conns
            .iter()
            .filter(|((_, server), _)| *server == 9042)
            .map(|(_, c)| c)
            .collect();
        assert_eq!(cql.len(), 2, "two CQL connections in the capture");
        for conn in &cql {
            let first_client = &conn.iter().find(|(c, _, _)| *c).expect("client bytes").1;
            let first_server = &conn.iter().find(|(c, _, _)| !*c).expect("server bytes").1;
            let i = infer(Direction::Egress, first_client).expect("an OPTIONS header");
            assert_eq!(
                (i.protocol, i.confidence, i.sender_role),
                (Protocol::Cassandra, 80, Some(Role::Client))
            );
            let i = infer(Direction::Ingress, first_server).expect("a SUPPORTED header");
            assert_eq!((i.confidence, i.sender_role), (60, Some(Role::Server)));
            // The STARTUP, sent after the SUPPORTED, names the CQL version.
            let startup = &conn
                .iter()
                .filter(|(c, _, _)| *c)
                .nth(1)
                .expect("startup")
                .1;
            assert_eq!(
                infer(Direction::Egress, startup).map(|i| i.confidence),
                Some(100)
            );
            // OPTIONS/SUPPORTED and STARTUP give no record, and nothing is lost.
            assert_silent_replay(conn, CassandraParser::new);
        }
        // Internode messaging (port 7000) is not CQL.
        let internode = conns
            .iter()
            .find(|((_, server), _)| *server == 7000)
            .map(|(_, c)| c)
            .expect("the internode connection");
        for (from_client, bytes, _) in internode {
            let dir = if *from_client {
                Direction::Egress
            } else {
                Direction::Ingress
            };
            assert_eq!(infer(dir, bytes), None);
        }
    }
}

/// The other protocols' recordings are never taken for CQL, whichever segment they start at.
#[test]
fn other_protocols_not_inferred() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let streams = fixture_streams(&["http1", "mysql", "postgres", "redis"]);
    for (path, bytes) in &streams {
        for dir in [Direction::Egress, Direction::Ingress] {
            let got = infer(dir, bytes);
            assert_eq!(got, None, "{} taken for CQL", path.display());
        }
    }
    let seen = streams.len();
    assert!(seen > 0, "no fixtures found under {}", root.display());
}

/// Joined a v5 connection after its READY: segments are recognised from the first byte, and
/// after a gap that breaks framing.
#[test]
fn v5_joined_mid_stream() {
    let v5 = |mut e: Vec<u8>| {
        e[0] = (e[0] & 0x80) | 5;
        e
    };
    let client = |s: i16| segment(&v5(query(s, "SELECT * FROM t")), true);
    let server = |s: i16| segment(&v5(void(s)), true);
    let mut p = CassandraParser::new();
    let mut out = Output::default();
    let (e, i) = (Direction::Egress, Direction::Ingress);
    p.feed(e, &client(1), 1, &mut out);
    p.feed(i, &server(1), 2, &mut out);
    p.feed(e, &client(2)[..7], 3, &mut out);
    p.skip(e, None, 4, &mut out);
    let mut junk = b"xyz".to_vec();
    junk.extend(client(3));
    p.feed(e, &junk, 5, &mut out);
    p.feed(i, &server(3), 6, &mut out);
    p.close(7, &mut out);
    assert_eq!(out.records.len(), 2, "{:?}", out.records);
    assert_eq!(out.losses(Loss::Malformed), 0);
    assert_eq!(out.losses(Loss::ResyncBytes), 3);
    assert_eq!(p.role(), Some(Role::Client));
}
