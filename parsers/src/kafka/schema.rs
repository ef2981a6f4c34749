//! Message bodies: the fields records need, walked by version from field tables transcribed
//! from the `kafka-protocol` crate's generated decoders (which follow Kafka's message JSON
//! specs). Only what a record uses is kept; everything else is stepped over, and every count
//! read from the wire is checked against the bytes left before it is used.

use kafka_protocol::messages::ApiKey;

/// What a field is for, to the collector. `Topics`/`Partitions` mark array counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    No,
    Topics,
    TopicName,
    TopicId,
    Partitions,
    Partition,
    Group,
    Groups,
    Error,
    ErrorMsg,
    Records,
    Acks,
    MetaName,
    MetaId,
}

/// Wire types. `Str`, `Bytes` and `Arr*` are compact in flexible versions.
#[derive(Clone, Copy, Debug)]
enum Ty {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Str,
    Bytes,
    ArrI32,
    ArrStr,
    Arr(&'static [F]),
}

/// One field: its type, the versions it is present in, and its mark.
#[derive(Clone, Copy, Debug)]
struct F(Ty, i16, i16, Mark);

const ALL: i16 = i16::MAX;

use Mark::*;
use Ty::*;

// Produce (3–13).
const PRODUCE_PARTITION: &[F] = &[F(I32, 0, ALL, Partition), F(Bytes, 0, ALL, Records)];
const PRODUCE_TOPIC: &[F] = &[
    F(Str, 0, 12, TopicName),
    F(Uuid, 13, ALL, TopicId),
    F(Arr(PRODUCE_PARTITION), 0, ALL, Partitions),
];
const PRODUCE_REQ: &[F] = &[
    F(Str, 3, ALL, No),
    F(I16, 0, ALL, Acks),
    F(I32, 0, ALL, No),
    F(Arr(PRODUCE_TOPIC), 0, ALL, Topics),
];
const RECORD_ERROR: &[F] = &[F(I32, 8, ALL, No), F(Str, 8, ALL, ErrorMsg)];
const PRODUCE_PARTITION_RESP: &[F] = &[
    F(I32, 0, ALL, No),
    F(I16, 0, ALL, Error),
    F(I64, 0, ALL, No),
    F(I64, 2, ALL, No),
    F(I64, 5, ALL, No),
    F(Arr(RECORD_ERROR), 8, ALL, No),
    F(Str, 8, ALL, ErrorMsg),
];
const PRODUCE_TOPIC_RESP: &[F] = &[
    F(Str, 0, 12, No),
    F(Uuid, 13, ALL, No),
    F(Arr(PRODUCE_PARTITION_RESP), 0, ALL, No),
];
const PRODUCE_RESP: &[F] = &[F(Arr(PRODUCE_TOPIC_RESP), 0, ALL, No), F(I32, 1, ALL, No)];

// Fetch (4–18).
const FETCH_PARTITION: &[F] = &[
    F(I32, 0, ALL, Partition),
    F(I32, 9, ALL, No),
    F(I64, 0, ALL, No),
    F(I32, 12, ALL, No),
    F(I64, 5, ALL, No),
    F(I32, 0, ALL, No),
];
const FETCH_TOPIC: &[F] = &[
    F(Str, 0, 12, TopicName),
    F(Uuid, 13, ALL, TopicId),
    F(Arr(FETCH_PARTITION), 0, ALL, Partitions),
];
const FORGOTTEN_TOPIC: &[F] = &[
    F(Str, 7, 12, No),
    F(Uuid, 13, ALL, No),
    F(ArrI32, 7, ALL, No),
];
const FETCH_REQ: &[F] = &[
    F(I32, 0, 14, No),
    F(I32, 0, ALL, No),
    F(I32, 0, ALL, No),
    F(I32, 3, ALL, No),
    F(I8, 4, ALL, No),
    F(I32, 7, ALL, No),
    F(I32, 7, ALL, No),
    F(Arr(FETCH_TOPIC), 0, ALL, Topics),
    F(Arr(FORGOTTEN_TOPIC), 7, ALL, No),
    F(Str, 11, ALL, No),
];
const ABORTED_TXN: &[F] = &[F(I64, 0, ALL, No), F(I64, 0, ALL, No)];
const FETCH_PARTITION_RESP: &[F] = &[
    F(I32, 0, ALL, No),
    F(I16, 0, ALL, Error),
    F(I64, 0, ALL, No),
    F(I64, 4, ALL, No),
    F(I64, 5, ALL, No),
    F(Arr(ABORTED_TXN), 4, ALL, No),
    F(I32, 11, ALL, No),
    F(Bytes, 0, ALL, Records),
];
const FETCH_TOPIC_RESP: &[F] = &[
    F(Str, 0, 12, No),
    F(Uuid, 13, ALL, No),
    F(Arr(FETCH_PARTITION_RESP), 0, ALL, No),
];
const FETCH_RESP: &[F] = &[
    F(I32, 1, ALL, No),
    F(I16, 7, ALL, Error),
    F(I32, 7, ALL, No),
    F(Arr(FETCH_TOPIC_RESP), 0, ALL, No),
];

// ListOffsets (1–10).
const LIST_OFFSETS_PARTITION: &[F] = &[
    F(I32, 0, ALL, Partition),
    F(I32, 4, ALL, No),
    F(I64, 0, ALL, No),
    F(I32, 0, 0, No),
];
const LIST_OFFSETS_TOPIC: &[F] = &[
    F(Str, 0, ALL, TopicName),
    F(Arr(LIST_OFFSETS_PARTITION), 0, ALL, Partitions),
];
const LIST_OFFSETS_REQ: &[F] = &[
    F(I32, 0, ALL, No),
    F(I8, 2, ALL, No),
    F(Arr(LIST_OFFSETS_TOPIC), 0, ALL, Topics),
    F(I32, 10, ALL, No),
];
const LIST_OFFSETS_PARTITION_RESP: &[F] = &[
    F(I32, 0, ALL, No),
    F(I16, 0, ALL, Error),
    F(ArrI32, 0, 0, No),
    F(I64, 1, ALL, No),
    F(I64, 1, ALL, No),
    F(I32, 4, ALL, No),
];
const LIST_OFFSETS_TOPIC_RESP: &[F] = &[
    F(Str, 0, ALL, No),
    F(Arr(LIST_OFFSETS_PARTITION_RESP), 0, ALL, No),
];
const LIST_OFFSETS_RESP: &[F] = &[
    F(I32, 2, ALL, No),
    F(Arr(LIST_OFFSETS_TOPIC_RESP), 0, ALL, No),
];

// Metadata (0–13).
const METADATA_TOPIC: &[F] = &[F(Uuid, 10, ALL, No), F(Str, 0, ALL, TopicName)];
const METADATA_REQ: &[F] = &[
    F(Arr(METADATA_TOPIC), 0, ALL, Topics),
    F(I8, 4, ALL, No),
    F(I8, 8, 10, No),
    F(I8, 8, ALL, No),
];
const METADATA_BROKER: &[F] = &[
    F(I32, 0, ALL, No),
    F(Str, 0, ALL, No),
    F(I32, 0, ALL, No),
    F(Str, 1, ALL, No),
];
const METADATA_PARTITION: &[F] = &[
    F(I16, 0, ALL, Error),
    F(I32, 0, ALL, No),
    F(I32, 0, ALL, No),
    F(I32, 7, ALL, No),
    F(ArrI32, 0, ALL, No),
    F(ArrI32, 0, ALL, No),
    F(ArrI32, 5, ALL, No),
];
const METADATA_TOPIC_RESP: &[F] = &[
    F(I16, 0, ALL, Error),
    F(Str, 0, ALL, MetaName),
    F(Uuid, 10, ALL, MetaId),
    F(I8, 1, ALL, No),
    F(Arr(METADATA_PARTITION), 0, ALL, No),
    F(I32, 8, ALL, No),
];
const METADATA_RESP: &[F] = &[
    F(I32, 3, ALL, No),
    F(Arr(METADATA_BROKER), 0, ALL, No),
    F(Str, 2, ALL, No),
    F(I32, 1, ALL, No),
    F(Arr(METADATA_TOPIC_RESP), 0, ALL, No),
    F(I32, 8, 10, No),
    F(I16, 13, ALL, Error),
];

// OffsetCommit (2–10).
const COMMIT_PARTITION: &[F] = &[
    F(I32, 0, ALL, Partition),
    F(I64, 0, ALL, No),
    F(I32, 6, ALL, No),
    F(I64, 1, 1, No),
    F(Str, 0, ALL, No),
];
const COMMIT_TOPIC: &[F] = &[
    F(Str, 0, 9, TopicName),
    F(Uuid, 10, ALL, TopicId),
    F(Arr(COMMIT_PARTITION), 0, ALL, Partitions),
];
const COMMIT_REQ: &[F] = &[
    F(Str, 0, ALL, Group),
    F(I32, 1, ALL, No),
    F(Str, 1, ALL, No),
    F(Str, 7, ALL, No),
    F(I64, 2, 4, No),
    F(Arr(COMMIT_TOPIC), 0, ALL, Topics),
];
const COMMIT_PARTITION_RESP: &[F] = &[F(I32, 0, ALL, No), F(I16, 0, ALL, Error)];
const COMMIT_TOPIC_RESP: &[F] = &[
    F(Str, 0, 9, No),
    F(Uuid, 10, ALL, No),
    F(Arr(COMMIT_PARTITION_RESP), 0, ALL, No),
];
const COMMIT_RESP: &[F] = &[F(I32, 3, ALL, No), F(Arr(COMMIT_TOPIC_RESP), 0, ALL, No)];

// OffsetFetch (1–10).
const OFFSET_FETCH_TOPIC: &[F] = &[F(Str, 0, 7, TopicName), F(ArrI32, 0, 7, Partitions)];
const OFFSET_FETCH_GROUP_TOPIC: &[F] = &[
    F(Str, 8, 9, TopicName),
    F(Uuid, 10, ALL, TopicId),
    F(ArrI32, 8, ALL, Partitions),
];
const OFFSET_FETCH_GROUP: &[F] = &[
    F(Str, 8, ALL, Group),
    F(Str, 9, ALL, No),
    F(I32, 9, ALL, No),
    F(Arr(OFFSET_FETCH_GROUP_TOPIC), 8, ALL, Topics),
];
const OFFSET_FETCH_REQ: &[F] = &[
    F(Str, 0, 7, Group),
    F(Arr(OFFSET_FETCH_TOPIC), 0, 7, Topics),
    F(Arr(OFFSET_FETCH_GROUP), 8, ALL, Groups),
    F(I8, 7, ALL, No),
];
const OFFSET_FETCH_PARTITION_RESP: &[F] = &[
    F(I32, 0, ALL, No),
    F(I64, 0, ALL, No),
    F(I32, 5, ALL, No),
    F(Str, 0, ALL, No),
    F(I16, 0, ALL, Error),
];
const OFFSET_FETCH_TOPIC_RESP: &[F] = &[
    F(Str, 0, 9, No),
    F(Uuid, 10, ALL, No),
    F(Arr(OFFSET_FETCH_PARTITION_RESP), 0, ALL, No),
];
const OFFSET_FETCH_GROUP_RESP: &[F] = &[
    F(Str, 8, ALL, No),
    F(Arr(OFFSET_FETCH_TOPIC_RESP), 8, ALL, No),
    F(I16, 8, ALL, Error),
];
const OFFSET_FETCH_RESP: &[F] = &[
    F(I32, 3, ALL, No),
    F(Arr(OFFSET_FETCH_TOPIC_RESP), 0, 7, No),
    F(I16, 2, 7, Error),
    F(Arr(OFFSET_FETCH_GROUP_RESP), 8, ALL, No),
];

// FindCoordinator (0–6).
const FIND_COORDINATOR_REQ: &[F] = &[F(Str, 0, 3, No), F(I8, 1, ALL, No), F(ArrStr, 4, ALL, No)];
const COORDINATOR: &[F] = &[
    F(Str, 4, ALL, No),
    F(I32, 4, ALL, No),
    F(Str, 4, ALL, No),
    F(I32, 4, ALL, No),
    F(I16, 4, ALL, Error),
    F(Str, 4, ALL, ErrorMsg),
];
const FIND_COORDINATOR_RESP: &[F] = &[
    F(I32, 1, ALL, No),
    F(I16, 0, 3, Error),
    F(Str, 1, 3, ErrorMsg),
    F(I32, 0, 3, No),
    F(Str, 0, 3, No),
    F(I32, 0, 3, No),
    F(Arr(COORDINATOR), 4, ALL, No),
];

// JoinGroup (0–9), SyncGroup (0–5), Heartbeat (0–4).
const JOIN_PROTOCOL: &[F] = &[F(Str, 0, ALL, No), F(Bytes, 0, ALL, No)];
const JOIN_REQ: &[F] = &[
    F(Str, 0, ALL, Group),
    F(I32, 0, ALL, No),
    F(I32, 1, ALL, No),
    F(Str, 0, ALL, No),
    F(Str, 5, ALL, No),
    F(Str, 0, ALL, No),
    F(Arr(JOIN_PROTOCOL), 0, ALL, No),
    F(Str, 8, ALL, No),
];
const JOIN_MEMBER: &[F] = &[F(Str, 0, ALL, No), F(Str, 5, ALL, No), F(Bytes, 0, ALL, No)];
const JOIN_RESP: &[F] = &[
    F(I32, 2, ALL, No),
    F(I16, 0, ALL, Error),
    F(I32, 0, ALL, No),
    F(Str, 7, ALL, No),
    F(Str, 0, ALL, No),
    F(Str, 0, ALL, No),
    F(I8, 9, ALL, No),
    F(Str, 0, ALL, No),
    F(Arr(JOIN_MEMBER), 0, ALL, No),
];
const SYNC_ASSIGNMENT: &[F] = &[F(Str, 0, ALL, No), F(Bytes, 0, ALL, No)];
const SYNC_REQ: &[F] = &[
    F(Str, 0, ALL, Group),
    F(I32, 0, ALL, No),
    F(Str, 0, ALL, No),
    F(Str, 3, ALL, No),
    F(Str, 5, ALL, No),
    F(Str, 5, ALL, No),
    F(Arr(SYNC_ASSIGNMENT), 0, ALL, No),
];
const SYNC_RESP: &[F] = &[
    F(I32, 1, ALL, No),
    F(I16, 0, ALL, Error),
    F(Str, 5, ALL, No),
    F(Str, 5, ALL, No),
    F(Bytes, 0, ALL, No),
];
const HEARTBEAT_REQ: &[F] = &[
    F(Str, 0, ALL, Group),
    F(I32, 0, ALL, No),
    F(Str, 0, ALL, No),
    F(Str, 3, ALL, No),
];
const HEARTBEAT_RESP: &[F] = &[F(I32, 1, ALL, No), F(I16, 0, ALL, Error)];

// ApiVersions (0–4).
const API_VERSIONS_REQ: &[F] = &[F(Str, 3, ALL, No), F(Str, 3, ALL, No)];
const API_VERSION: &[F] = &[F(I16, 0, ALL, No), F(I16, 0, ALL, No), F(I16, 0, ALL, No)];
const API_VERSIONS_RESP: &[F] = &[
    F(I16, 0, ALL, Error),
    F(Arr(API_VERSION), 0, ALL, No),
    F(I32, 1, ALL, No),
];

/// The request and response field tables of an api key, when this module reads its bodies.
fn tables(key: ApiKey) -> Option<(&'static [F], &'static [F])> {
    Some(match key {
        ApiKey::Produce => (PRODUCE_REQ, PRODUCE_RESP),
        ApiKey::Fetch => (FETCH_REQ, FETCH_RESP),
        ApiKey::ListOffsets => (LIST_OFFSETS_REQ, LIST_OFFSETS_RESP),
        ApiKey::Metadata => (METADATA_REQ, METADATA_RESP),
        ApiKey::OffsetCommit => (COMMIT_REQ, COMMIT_RESP),
        ApiKey::OffsetFetch => (OFFSET_FETCH_REQ, OFFSET_FETCH_RESP),
        ApiKey::FindCoordinator => (FIND_COORDINATOR_REQ, FIND_COORDINATOR_RESP),
        ApiKey::JoinGroup => (JOIN_REQ, JOIN_RESP),
        ApiKey::SyncGroup => (SYNC_REQ, SYNC_RESP),
        ApiKey::Heartbeat => (HEARTBEAT_REQ, HEARTBEAT_RESP),
        ApiKey::ApiVersions => (API_VERSIONS_REQ, API_VERSIONS_RESP),
        _ => return None,
    })
}

/// Whether bodies of `key` at `version` are read here (the crate's supported versions).
pub(crate) fn readable(key: ApiKey, version: i16) -> bool {
    let range = key.valid_versions();
    tables(key).is_some() && (range.min..=range.max).contains(&version)
}

/// Topic names and ids kept per body (enough to tell "exactly one").
const KEEP: usize = 2;
/// Longest string kept (topic, group, error message); longer ones are cut at a char boundary.
pub(crate) const MAX_TEXT: usize = 256;
/// Metadata topic ids remembered from one response.
const MAX_META: usize = 1024;

/// What a body told, as far as it was read.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Body {
    /// Elements the topics array declared (all such arrays summed).
    pub topics_declared: u64,
    pub topic_names: Vec<String>,
    pub topic_ids: Vec<[u8; 16]>,
    pub partitions_declared: u64,
    pub partitions: Vec<i32>,
    pub groups_declared: u64,
    pub group: Option<String>,
    /// Records in the record batches, while every records field read was whole.
    pub records: Option<u64>,
    /// First non-zero error code.
    pub error: Option<i16>,
    pub error_message: Option<String>,
    pub acks: Option<i16>,
    /// Metadata response topics: (id, name).
    pub meta: Vec<([u8; 16], String)>,
    /// The last metadata topic name, waiting for its id.
    meta_name: Option<String>,
    /// A records field was cut or unreadable: no count.
    records_unknown: bool,
}

impl Body {
    /// The one topic name, when the message names exactly one.
    pub(crate) fn single_topic(&self) -> Option<&str> {
        (self.topics_declared == 1 && self.topic_names.len() == 1)
            .then(|| self.topic_names[0].as_str())
            .filter(|t| !t.is_empty())
    }

    /// The one topic id, when the message names exactly one by id.
    pub(crate) fn single_topic_id(&self) -> Option<[u8; 16]> {
        (self.topics_declared == 1 && self.topic_ids.len() == 1).then(|| self.topic_ids[0])
    }

    /// The one partition, when the message names exactly one (in one topic).
    pub(crate) fn single_partition(&self) -> Option<i32> {
        (self.topics_declared == 1 && self.partitions_declared == 1 && self.partitions.len() == 1)
            .then(|| self.partitions[0])
    }

    /// The record count, when every records field was read whole.
    pub(crate) fn record_count(&self) -> Option<u64> {
        self.records.filter(|_| !self.records_unknown)
    }
}

/// Why a walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The bytes ran out (fine when the body was cut, malformed when it was whole).
    Short,
    /// Bytes that cannot be this message.
    Bad,
}

/// Reads a request (`response == false`) or response body of `key`/`version`. `Ok` only when
/// the whole body was read and nothing was left over.
pub(crate) fn read_body(
    key: ApiKey,
    version: i16,
    response: bool,
    bytes: &[u8],
    body: &mut Body,
) -> Result<(), Stop> {
    let Some((req, resp)) = tables(key) else {
        return Ok(());
    };
    let mut w = Walker {
        bytes,
        pos: 0,
        version,
        flexible: key.request_header_version(version) >= 2,
    };
    w.walk(if response { resp } else { req }, body)?;
    // librdkafka's ApiVersions v0 request carries 4 bytes past its (empty) body; brokers
    // ignore them, and the request has nothing a record uses.
    let lenient = !response && key == ApiKey::ApiVersions;
    if w.pos == bytes.len() || lenient {
        Ok(())
    } else {
        Err(Stop::Bad)
    }
}

/// A cursor over a body, for one message version.
struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl<'a> Walker<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Short)?;
        let got = self.bytes.get(self.pos..end).ok_or(Stop::Short)?;
        self.pos = end;
        Ok(got)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let got = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(got);
        Ok(a)
    }

    fn i16(&mut self) -> Result<i16, Stop> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, Stop> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn varint(&mut self) -> Result<u64, Stop> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Stop::Bad)
    }

    /// A length: `None` for null; compact lengths are stored plus one.
    fn length(&mut self, short: bool) -> Result<Option<usize>, Stop> {
        let n: i64 = if self.flexible {
            self.varint()? as i64 - 1
        } else if short {
            i64::from(self.i16()?)
        } else {
            i64::from(self.i32()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(Stop::Bad),
            n => Ok(Some(n as usize)),
        }
    }

    fn string(&mut self) -> Result<Option<&'a [u8]>, Stop> {
        match self.length(true)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, Stop> {
        match self.length(false)? {
            None => Ok(None),
            Some(n) => self.take(n).map(Some),
        }
    }

    /// An array count, checked against the bytes left (every element takes at least one).
    fn count(&mut self) -> Result<usize, Stop> {
        let n = self.length(false)?.unwrap_or(0);
        if n > self.bytes.len() - self.pos {
            return Err(Stop::Short);
        }
        Ok(n)
    }

    fn skip_tagged(&mut self) -> Result<(), Stop> {
        let n = self.varint()?;
        for _ in 0..n {
            self.varint()?;
            let size = self.varint()?;
            self.take(usize::try_from(size).map_err(|_| Stop::Short)?)?;
        }
        Ok(())
    }

    fn walk(&mut self, fields: &[F], body: &mut Body) -> Result<(), Stop> {
        for &F(ty, min, max, mark) in fields {
            if (min..=max).contains(&self.version) {
                self.field(ty, mark, body)?;
            }
        }
        if self.flexible {
            self.skip_tagged()?;
        }
        Ok(())
    }

    fn field(&mut self, ty: Ty, mark: Mark, body: &mut Body) -> Result<(), Stop> {
        match ty {
            I8 => drop(self.take(1)?),
            I16 => {
                let v = self.i16()?;
                match mark {
                    Error if v != 0 && body.error.is_none() => body.error = Some(v),
                    Acks => body.acks = Some(v),
                    _ => {}
                }
            }
            I32 => {
                let v = self.i32()?;
                if mark == Partition {
                    keep(&mut body.partitions, v);
                }
            }
            I64 => drop(self.take(8)?),
            Uuid => {
                let id: [u8; 16] = self.array()?;
                match mark {
                    TopicId => keep(&mut body.topic_ids, id),
                    MetaId => {
                        if let Some(name) = body.meta_name.take()
                            && body.meta.len() < MAX_META
                        {
                            body.meta.push((id, name));
                        }
                    }
                    _ => {}
                }
            }
            Str => {
                let s = self.string()?;
                let text = || s.map(text);
                match mark {
                    TopicName => {
                        if let Some(t) = text() {
                            keep(&mut body.topic_names, t);
                        }
                    }
                    Group if body.group.is_none() => body.group = text(),
                    ErrorMsg if body.error_message.is_none() => {
                        body.error_message = text().filter(|m| !m.is_empty())
                    }
                    MetaName => body.meta_name = text(),
                    _ => {}
                }
            }
            Bytes => {
                let start = self.pos;
                match self.bytes() {
                    Ok(records) => {
                        if mark == Records {
                            count_records(records.unwrap_or_default(), body)
                        }
                    }
                    Err(stop) => {
                        self.pos = start;
                        if mark == Records {
                            body.records_unknown = true;
                        }
                        return Err(stop);
                    }
                }
            }
            ArrI32 => {
                let n = self.count()?;
                self.declare(mark, n, body);
                for _ in 0..n {
                    let v = self.i32()?;
                    if mark == Partitions {
                        keep(&mut body.partitions, v);
                    }
                }
            }
            ArrStr => {
                let n = self.count()?;
                for _ in 0..n {
                    self.string()?;
                }
            }
            Arr(fields) => {
                let n = self.count()?;
                self.declare(mark, n, body);
                for _ in 0..n {
                    let before = self.pos;
                    self.walk(fields, body)?;
                    if self.pos == before {
                        return Err(Stop::Bad);
                    }
                }
            }
        }
        Ok(())
    }

    fn declare(&self, mark: Mark, n: usize, body: &mut Body) {
        let n = n as u64;
        match mark {
            Topics => body.topics_declared += n,
            Partitions => body.partitions_declared += n,
            Groups => body.groups_declared += n,
            _ => {}
        }
    }
}

/// Keeps the first [`KEEP`] distinct values.
fn keep<T: PartialEq>(list: &mut Vec<T>, value: T) {
    if list.len() < KEEP {
        list.push(value);
    }
}

/// A wire string as text, cut to [`MAX_TEXT`] bytes.
pub(crate) fn text(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]);
    s.into_owned()
}

/// Adds the records of a records field: v2 record batches (the count at offset 57 of each
/// batch header) or v0/v1 message sets (one message each). A batch cut at the end (brokers
/// may send a partial last batch) is not counted.
fn count_records(mut records: &[u8], body: &mut Body) {
    let mut n = 0u64;
    while records.len() >= 17 {
        let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let Ok(len) = usize::try_from(len) else {
            body.records_unknown = true;
            return;
        };
        let total = 12 + len;
        if total > records.len() {
            break;
        }
        match records[16] {
            2 if total >= 61 => {
                let count =
                    i32::from_be_bytes([records[57], records[58], records[59], records[60]]);
                n += u64::try_from(count).unwrap_or(0);
            }
            0 | 1 => n += 1,
            _ => {
                body.records_unknown = true;
                return;
            }
        }
        records = &records[total..];
    }
    body.records = Some(body.records.unwrap_or(0) + n);
}
