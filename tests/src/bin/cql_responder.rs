//! `cql_responder --port N`: a scripted Cassandra stand-in on 127.0.0.1 for the integration
//! test `tests/tests/cassandra.rs`, where no Cassandra server can be installed.
//!
//! It speaks CQL native protocol v4 (legacy envelopes, no compression) to the real Python
//! `cassandra-driver`: OPTIONS → SUPPORTED, STARTUP and REGISTER → READY, the driver's
//! control-connection queries of `system.local` and `system.peers_v2`, `USE` → SetKeyspace,
//! CREATE → SCHEMA_CHANGE, INSERT/UPDATE/DELETE → Void, SELECT of table `items` → Rows, PREPARE
//! → Prepared, EXECUTE and BATCH → Void, and any other table → ERROR 0x2200 (Invalid,
//! `unconfigured table ...`). A v3 or v5 envelope gets a protocol error naming v4 as the one
//! supported; a version the crate cannot decode (the Python driver, left to negotiate, starts at
//! DSE_V2, version byte 0x42) closes the connection, so the test's client pins v4.
//!
//! Every envelope, both ways, is decoded and encoded by the `cassandra-protocol` crate
//! (`Envelope::from_buffer`, `Envelope::encode_with`, `ResResultBody`, `ErrorBody`,
//! `BodyResSupported`): nothing of the byte layout is written by hand. Each connection runs on
//! its own thread; each request is logged on stderr (`conn=N stream=S OPCODE text`).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use cassandra_protocol::compression::Compression;
use cassandra_protocol::frame::events::{
    SchemaChange, SchemaChangeOptions, SchemaChangeTarget, SchemaChangeType,
};
use cassandra_protocol::frame::message_batch::BatchQuerySubj;
use cassandra_protocol::frame::message_error::{ErrorBody, ErrorType, UnpreparedError};
use cassandra_protocol::frame::message_request::RequestBody;
use cassandra_protocol::frame::message_result::{
    BodyResResultPrepared, BodyResResultRows, BodyResResultSetKeyspace, ColSpec, ColType,
    ColTypeOption, PreparedMetadata, ResResultBody, RowsMetadata, RowsMetadataFlags, TableSpec,
};
use cassandra_protocol::frame::message_supported::BodyResSupported;
use cassandra_protocol::frame::{
    Direction, Envelope, Flags, Opcode, ParseEnvelopeError, Serialize, Version,
};
use cassandra_protocol::types::{CBytes, CBytesShort};

/// The table the scripted workload reads: `items (id int PRIMARY KEY, name text)`.
const TABLE: &str = "items";
/// Rows a SELECT of [`TABLE`] returns.
const ITEMS: [(i32, &str); 3] = [(1, "alpha"), (2, "beta"), (3, "gamma")];
/// Most bytes buffered for one request before the connection is dropped.
const MAX_REQUEST: usize = 1 << 20;

fn main() {
    let port = port_arg().unwrap_or_else(|| {
        eprintln!("usage: cql_responder --port N");
        std::process::exit(2);
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("bind 127.0.0.1:{port}: {e}");
        std::process::exit(1);
    });
    eprintln!("listening on 127.0.0.1:{port}");
    let next_id = AtomicUsize::new(1);
    for stream in listener.incoming().flatten() {
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        std::thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            eprintln!("conn={id} open from {peer}");
            let end = Connection::new(id).serve(stream);
            eprintln!("conn={id} closed: {end}");
        });
    }
}

fn port_arg() -> Option<u16> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--port")?;
    args.get(at + 1)?.parse().ok()
}

/// One client connection's state.
struct Connection {
    id: usize,
    keyspace: Option<String>,
    /// Prepared ids → their CQL.
    prepared: HashMap<CBytesShort, String>,
}

impl Connection {
    fn new(id: usize) -> Self {
        Self {
            id,
            keyspace: None,
            prepared: HashMap::new(),
        }
    }

    /// Answers envelopes until the peer closes; returns why it ended.
    fn serve(mut self, mut stream: TcpStream) -> String {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match Envelope::from_buffer(&buf, Compression::None) {
                Ok(parsed) => {
                    buf.drain(..parsed.envelope_len);
                    let reply = self.answer(&parsed.envelope);
                    let bytes = match reply.encode_with(Compression::None) {
                        Ok(b) => b,
                        Err(e) => return format!("encode: {e}"),
                    };
                    if let Err(e) = stream.write_all(&bytes) {
                        return format!("write: {e}");
                    }
                    continue;
                }
                Err(ParseEnvelopeError::NotEnoughBytes) => {}
                Err(e) => return format!("bad envelope: {e}"),
            }
            if buf.len() > MAX_REQUEST {
                return "request too large".into();
            }
            match stream.read(&mut chunk) {
                Ok(0) => return "eof".into(),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return format!("read: {e}"),
            }
        }
    }

    /// The response envelope to `request`.
    fn answer(&mut self, request: &Envelope) -> Envelope {
        let stream = request.stream_id;
        if request.version != Version::V4 {
            self.log(
                stream,
                "unsupported version",
                &format!("{:?}", request.version),
            );
            let message = format!(
                "Invalid or unsupported protocol version ({}); supported versions are (4/v4)",
                u8::from(request.version)
            );
            return error(stream, ErrorType::Protocol, message);
        }
        let body = match request.request_body() {
            Ok(b) => b,
            Err(e) => {
                self.log(stream, "undecodable", &e.to_string());
                return error(stream, ErrorType::Protocol, format!("cannot decode: {e}"));
            }
        };
        match body {
            RequestBody::Options(_) => {
                self.log(stream, "OPTIONS", "");
                response(stream, Opcode::Supported, supported())
            }
            RequestBody::Startup(s) => {
                self.log(stream, "STARTUP", &format!("{:?}", s.map));
                response(stream, Opcode::Ready, Vec::new())
            }
            RequestBody::Register(r) => {
                self.log(stream, "REGISTER", &format!("{:?}", r.events));
                response(stream, Opcode::Ready, Vec::new())
            }
            RequestBody::Query(q) => {
                self.log(stream, "QUERY", &q.query);
                self.query(stream, &q.query)
            }
            RequestBody::Prepare(p) => {
                self.log(stream, "PREPARE", &p.query);
                self.prepare(stream, p.query)
            }
            RequestBody::Execute(e) => {
                let cql = self.prepared.get(&e.id).cloned();
                self.log(stream, "EXECUTE", cql.as_deref().unwrap_or("<unknown id>"));
                match cql {
                    Some(_) => result(stream, &ResResultBody::Void),
                    None => error(
                        stream,
                        ErrorType::Unprepared(UnpreparedError { id: e.id }),
                        "unknown prepared statement".into(),
                    ),
                }
            }
            RequestBody::Batch(b) => {
                let texts: Vec<String> = b
                    .queries
                    .iter()
                    .map(|q| match &q.subject {
                        BatchQuerySubj::QueryString(s) => s.clone(),
                        BatchQuerySubj::PreparedId(id) => self
                            .prepared
                            .get(id)
                            .cloned()
                            .unwrap_or_else(|| "<unknown id>".into()),
                    })
                    .collect();
                self.log(stream, "BATCH", &texts.join("; "));
                result(stream, &ResResultBody::Void)
            }
            other => {
                self.log(stream, "unexpected", &format!("{other:?}"));
                error(stream, ErrorType::Protocol, "unexpected request".into())
            }
        }
    }

    fn log(&self, stream: i16, what: &str, text: &str) {
        eprintln!("conn={} stream={stream} {what} {text}", self.id);
    }

    /// A QUERY, by what its CQL asks.
    fn query(&mut self, stream: i16, cql: &str) -> Envelope {
        let words: Vec<String> = cql
            .split_whitespace()
            .map(|w| w.to_ascii_uppercase())
            .collect();
        match words.first().map(String::as_str) {
            Some("USE") => {
                let ks = cql
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .trim_end_matches(';')
                    .trim_matches('"')
                    .to_string();
                self.keyspace = Some(ks.clone());
                result(
                    stream,
                    &ResResultBody::SetKeyspace(BodyResResultSetKeyspace { body: ks }),
                )
            }
            Some("CREATE") => {
                let (ks, table) = self.qualify(&table_after(cql, "TABLE"));
                result(
                    stream,
                    &ResResultBody::SchemaChange(SchemaChange {
                        change_type: SchemaChangeType::Created,
                        target: SchemaChangeTarget::Table,
                        options: SchemaChangeOptions::TableType(ks, table),
                    }),
                )
            }
            Some("INSERT" | "UPDATE" | "DELETE") => result(stream, &ResResultBody::Void),
            Some("SELECT") => self.select(stream, &table_after(cql, "FROM"), id_filter(cql)),
            _ => error(stream, ErrorType::Syntax, format!("no viable input: {cql}")),
        }
    }

    /// `(keyspace, table)` of a possibly qualified name, the session's keyspace by default.
    fn qualify(&self, name: &str) -> (String, String) {
        match name.split_once('.') {
            Some((ks, t)) => (ks.to_string(), t.to_string()),
            None => (self.keyspace.clone().unwrap_or_default(), name.to_string()),
        }
    }

    /// A SELECT of `name`, its rows limited to `id` when the CQL names one.
    fn select(&self, stream: i16, name: &str, id: Option<i32>) -> Envelope {
        let (ks, table) = self.qualify(name);
        match (ks.as_str(), table.as_str()) {
            ("system", "local") => rows(stream, "system", "local", &LOCAL_COLUMNS, local_rows()),
            ("system", "peers_v2") => rows(stream, "system", "peers_v2", &PEERS_COLUMNS, vec![]),
            (_, TABLE) => rows(stream, &ks, TABLE, &ITEM_COLUMNS, item_rows(id)),
            _ => error(
                stream,
                ErrorType::Invalid,
                format!("unconfigured table {table}"),
            ),
        }
    }

    /// A PREPARE: its id is a hash of the CQL; its bind markers are `items`' columns, in the
    /// order an `INSERT INTO items (id, name)` names them.
    fn prepare(&mut self, stream: i16, cql: String) -> Envelope {
        let id = CBytesShort::new(statement_id(&cql).to_vec());
        let (ks, table) = self.qualify(&table_after(&cql, "INTO"));
        let markers = cql.matches('?').count();
        let col_specs = ITEM_COLUMNS
            .iter()
            .take(markers)
            .map(|(name, ty)| col_spec(name, *ty))
            .collect();
        self.prepared.insert(id.clone(), cql);
        let prepared = BodyResResultPrepared {
            id,
            result_metadata_id: None,
            metadata: PreparedMetadata {
                pk_indexes: vec![0],
                global_table_spec: Some(TableSpec {
                    ks_name: ks,
                    table_name: table,
                }),
                col_specs,
            },
            result_metadata: RowsMetadata {
                flags: RowsMetadataFlags::NO_METADATA,
                columns_count: 0,
                paging_state: None,
                new_metadata_id: None,
                global_table_spec: None,
                col_specs: vec![],
            },
        };
        result(stream, &ResResultBody::Prepared(prepared))
    }
}

/// The table name after `keyword` (`FROM`, `INTO`, `TABLE`, skipping `IF NOT EXISTS`),
/// up to a `(`, `;` or space.
fn table_after(cql: &str, keyword: &str) -> String {
    let mut words = cql
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case(keyword));
    words.next();
    let mut name = words.next().unwrap_or_default();
    if name.eq_ignore_ascii_case("IF") {
        name = words.nth(2).unwrap_or_default();
    }
    name.split(['(', ';'])
        .next()
        .unwrap_or_default()
        .replace('"', "")
}

/// 16 bytes derived from the CQL (FNV-1a, twice with different seeds).
fn statement_id(cql: &str) -> [u8; 16] {
    let fnv = |seed: u64| {
        cql.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    id[8..].copy_from_slice(&fnv(0x8422_2325_cbf2_9ce4).to_be_bytes());
    id
}

const ITEM_COLUMNS: [(&str, ColType); 2] = [("id", ColType::Int), ("name", ColType::Varchar)];

const LOCAL_COLUMNS: [(&str, ColType); 8] = [
    ("host_id", ColType::Uuid),
    ("cluster_name", ColType::Varchar),
    ("data_center", ColType::Varchar),
    ("rack", ColType::Varchar),
    ("partitioner", ColType::Varchar),
    ("release_version", ColType::Varchar),
    ("schema_version", ColType::Uuid),
    ("rpc_address", ColType::Inet),
];

const PEERS_COLUMNS: [(&str, ColType); 9] = [
    ("host_id", ColType::Uuid),
    ("peer", ColType::Inet),
    ("peer_port", ColType::Int),
    ("data_center", ColType::Varchar),
    ("rack", ColType::Varchar),
    ("native_address", ColType::Inet),
    ("native_port", ColType::Int),
    ("release_version", ColType::Varchar),
    ("schema_version", ColType::Uuid),
];

fn text(s: &str) -> CBytes {
    CBytes::new(s.as_bytes().to_vec())
}

/// The one row of `system.local`, in [`LOCAL_COLUMNS`] order.
fn local_rows() -> Vec<Vec<CBytes>> {
    vec![vec![
        CBytes::new((1..=16).collect()),
        text("wirelens-test"),
        text("datacenter1"),
        text("rack1"),
        text("org.apache.cassandra.dht.Murmur3Partitioner"),
        text("4.0.11"),
        CBytes::new((17..=32).collect()),
        CBytes::new(vec![127, 0, 0, 1]),
    ]]
}

/// The `WHERE id = N` of a SELECT, if any.
fn id_filter(cql: &str) -> Option<i32> {
    let (_, after) = cql.split_once(" WHERE id = ")?;
    after
        .split_whitespace()
        .next()?
        .trim_end_matches(';')
        .parse()
        .ok()
}

/// [`ITEMS`] (those with `id` when given), in [`ITEM_COLUMNS`] order.
fn item_rows(id: Option<i32>) -> Vec<Vec<CBytes>> {
    ITEMS
        .iter()
        .filter(|(i, _)| id.is_none_or(|want| want == *i))
        .map(|(id, name)| vec![CBytes::new(id.to_be_bytes().to_vec()), text(name)])
        .collect()
}

fn col_spec(name: &str, id: ColType) -> ColSpec {
    ColSpec {
        table_spec: None,
        name: name.to_string(),
        col_type: ColTypeOption { id, value: None },
    }
}

/// A Rows result with global table spec `ks.table`.
fn rows(
    stream: i16,
    ks: &str,
    table: &str,
    columns: &[(&str, ColType)],
    content: Vec<Vec<CBytes>>,
) -> Envelope {
    let body = ResResultBody::Rows(BodyResResultRows {
        metadata: RowsMetadata {
            flags: RowsMetadataFlags::GLOBAL_TABLE_SPACE,
            columns_count: columns.len() as i32,
            paging_state: None,
            new_metadata_id: None,
            global_table_spec: Some(TableSpec {
                ks_name: ks.to_string(),
                table_name: table.to_string(),
            }),
            col_specs: columns.iter().map(|(n, t)| col_spec(n, *t)).collect(),
        },
        rows_count: content.len() as i32,
        rows_content: content,
        protocol_version: Version::V4,
    });
    result(stream, &body)
}

fn supported() -> Vec<u8> {
    let data = HashMap::from([
        ("CQL_VERSION".to_string(), vec!["3.4.5".to_string()]),
        ("COMPRESSION".to_string(), vec![]),
        ("PROTOCOL_VERSIONS".to_string(), vec!["4/v4".to_string()]),
    ]);
    BodyResSupported { data }.serialize_to_vec(Version::V4)
}

fn result(stream: i16, body: &ResResultBody) -> Envelope {
    response(stream, Opcode::Result, body.serialize_to_vec(Version::V4))
}

fn error(stream: i16, ty: ErrorType, message: String) -> Envelope {
    let body = ErrorBody { message, ty };
    response(stream, Opcode::Error, body.serialize_to_vec(Version::V4))
}

fn response(stream: i16, opcode: Opcode, body: Vec<u8>) -> Envelope {
    Envelope::new(
        Version::V4,
        Direction::Response,
        Flags::empty(),
        opcode,
        stream,
        body,
        None,
        vec![],
    )
}
