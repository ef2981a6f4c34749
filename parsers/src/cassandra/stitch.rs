//! Envelopes of both directions → [`Record`]s. Requests and responses pair by stream id, any
//! number in flight, answered in any order; prepared ids map EXECUTEs back to their CQL; a
//! successful `USE` sets the keyspace.

use std::collections::HashMap;
use std::sync::Arc;

use super::types::{
    FLAG_COMPRESSION, FLAG_CUSTOM_PAYLOAD, FLAG_TRACING, FLAG_WARNING, Frame, opcode, result_kind,
};
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{DbRecord, DbSystem, Detail, Record, Role};
use crate::sql;

/// Most requests waiting for a response (stream ids in flight).
pub const MAX_PENDING: usize = 4096;

/// Most prepared statements remembered per connection.
pub const MAX_STATEMENTS: usize = 4096;

/// Most bytes of CQL text remembered for prepared statements per connection.
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// Body compression chosen by the STARTUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// lz4 (v3/v4: a 4-byte length then an lz4 block; v5: lz4 segments).
    Lz4,
    /// snappy (v3/v4 only).
    Snappy,
    /// Something else: bodies flagged compressed are not decoded.
    Other,
}

/// A statement's text and what [`sql`] makes of it.
#[derive(Debug)]
struct Statement {
    text: Box<str>,
    operation: Option<String>,
    collection: Option<String>,
}

impl Statement {
    fn new(text: String) -> Arc<Self> {
        let (operation, collection) = sql::summarize(&text);
        Arc::new(Self {
            text: text.into_boxed_str(),
            operation,
            collection,
        })
    }
}

/// What a request was.
#[derive(Debug)]
enum Kind {
    /// STARTUP, OPTIONS, REGISTER, AUTH_RESPONSE: no record.
    Control,
    Query(Option<Arc<Statement>>),
    Prepare(Option<Arc<Statement>>),
    /// The statement, when its PREPARE was seen.
    Execute(Option<Arc<Statement>>),
    Batch {
        statements: Vec<Option<Arc<Statement>>>,
        count: u64,
    },
    /// Compressed and not decodable: the opcode only.
    Opaque(&'static str),
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    /// Keyspace named by the request itself (v5 `keyspace` parameter).
    keyspace: Option<String>,
    start_ns: u64,
    request_bytes: u64,
}

/// Pairs requests with responses for one connection.
#[derive(Debug, Default)]
pub struct Stitcher {
    keyspace: Option<String>,
    compression: Option<Compression>,
    statements: HashMap<Box<[u8]>, Arc<Statement>>,
    statement_bytes: usize,
    pending: HashMap<i16, Pending>,
}

/// Reads the protocol's notations from a body.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn short(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    fn int(&mut self) -> Option<i32> {
        let s = self.take(4)?;
        Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    /// `[string]`: short length.
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.short()?;
        self.take(usize::from(n))
    }
    /// `[long string]`: int length.
    fn long_string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.int()?).ok()?;
        self.take(n)
    }
    /// `[short bytes]`.
    fn short_bytes(&mut self) -> Option<&'a [u8]> {
        self.string()
    }
    /// `[bytes]`: int length, negative for null.
    fn bytes(&mut self) -> Option<()> {
        let n = self.int()?;
        if n > 0 {
            self.take(n as usize)?;
        }
        Some(())
    }
    /// `[string list]`.
    fn string_list(&mut self) -> Option<()> {
        for _ in 0..self.short()? {
            self.string()?;
        }
        Some(())
    }
    /// `[bytes map]`.
    fn bytes_map(&mut self) -> Option<()> {
        for _ in 0..self.short()? {
            self.string()?;
            self.bytes()?;
        }
        Some(())
    }
    /// A column type `[option]`, nested types included.
    fn option(&mut self, depth: u32) -> Option<()> {
        if depth > 32 {
            return None;
        }
        match self.short()? {
            0x0000 => {
                self.string()?;
            }
            0x0020 | 0x0022 => self.option(depth + 1)?,
            0x0021 => {
                self.option(depth + 1)?;
                self.option(depth + 1)?;
            }
            0x0030 => {
                self.string()?;
                self.string()?;
                for _ in 0..self.short()? {
                    self.string()?;
                    self.option(depth + 1)?;
                }
            }
            0x0031 => {
                for _ in 0..self.short()? {
                    self.option(depth + 1)?;
                }
            }
            _ => {}
        }
        Some(())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Skips the prefixes the header flags announce (tracing id, warnings, custom payload) and
/// returns the reader at the message itself.
fn message<'a>(f: &Frame<'_>, body: &'a [u8]) -> Option<Reader<'a>> {
    let mut r = Reader::new(body);
    let flags = f.header.flags;
    if f.header.response && flags & FLAG_TRACING != 0 {
        r.take(16)?;
    }
    if flags & FLAG_WARNING != 0 && f.header.response {
        r.string_list()?;
    }
    if flags & FLAG_CUSTOM_PAYLOAD != 0 {
        r.bytes_map()?;
    }
    Some(r)
}

/// Query parameters after the consistency: the v5 `keyspace`, if any.
fn params_keyspace(r: &mut Reader<'_>, version: u8) -> Option<String> {
    r.short()?; // consistency
    let flags = if version >= 5 {
        r.int()? as u32
    } else {
        u32::from(r.byte()?)
    };
    if flags & 0x01 != 0 {
        for _ in 0..r.short()? {
            if flags & 0x40 != 0 {
                r.string()?;
            }
            r.bytes()?;
        }
    }
    if flags & 0x04 != 0 {
        r.int()?;
    }
    if flags & 0x08 != 0 {
        r.bytes()?;
    }
    if flags & 0x10 != 0 {
        r.short()?;
    }
    if flags & 0x20 != 0 {
        r.take(8)?;
    }
    if version >= 5 && flags & 0x80 != 0 {
        return Some(text(r.string()?));
    }
    None
}

/// The keyspace of a qualified `ks.table` collection.
fn qualified(collection: Option<&str>) -> Option<String> {
    let (ks, _) = collection?.split_once('.')?;
    Some(ks.trim_matches('"').to_owned())
}

/// The keyspace `USE ks` names.
fn use_target(cql: &str) -> Option<String> {
    let t = cql.trim_start();
    t.get(..3).filter(|v| v.eq_ignore_ascii_case("use"))?;
    let rest = &t[3..];
    if !rest.starts_with(|c: char| c.is_whitespace() || c == '"') {
        return None;
    }
    let name = rest.trim().trim_end_matches(';').trim();
    (!name.is_empty()).then(|| name.trim_matches('"').to_owned())
}

impl Stitcher {
    /// Nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compression the STARTUP chose, if any.
    pub fn compression(&self) -> Option<Compression> {
        self.compression
    }

    /// The body of `f`, decompressed when flagged so; `None` when it cannot be read.
    fn body<'a>(&self, f: &'a Frame<'_>) -> Option<std::borrow::Cow<'a, [u8]>> {
        if f.header.flags & FLAG_COMPRESSION == 0 || f.header.version >= 5 {
            return Some(std::borrow::Cow::Borrowed(f.body));
        }
        if !f.complete {
            return None;
        }
        let plain = match self.compression? {
            Compression::Lz4 => {
                let (len, block) = f.body.split_first_chunk::<4>()?;
                let len = u32::from_be_bytes(*len) as usize;
                if len > super::MAX_BODY * 16 {
                    return None;
                }
                lz4_flex::block::decompress(block, len).ok()?
            }
            Compression::Snappy => {
                let len = snap::raw::decompress_len(f.body).ok()?;
                if len > super::MAX_BODY * 16 {
                    return None;
                }
                snap::raw::Decoder::new().decompress_vec(f.body).ok()?
            }
            Compression::Other => return None,
        };
        Some(std::borrow::Cow::Owned(plain))
    }

    /// A request envelope.
    pub fn request(&mut self, f: &Frame<'_>, out: &mut Output) {
        let op = f.header.opcode;
        let body = self.body(f);
        let mut keyspace = None;
        let kind = match (op, body.as_deref()) {
            (opcode::STARTUP, Some(b)) => {
                self.startup(f, b);
                Kind::Control
            }
            (opcode::QUERY | opcode::PREPARE | opcode::EXECUTE | opcode::BATCH, None) => {
                Kind::Opaque(match op {
                    opcode::QUERY => "QUERY",
                    opcode::PREPARE => "PREPARE",
                    opcode::EXECUTE => "EXECUTE",
                    _ => "BATCH",
                })
            }
            (opcode::QUERY, Some(b)) => {
                let mut r = message(f, b);
                let stmt = r
                    .as_mut()
                    .and_then(|r| r.long_string())
                    .map(|q| Statement::new(text(q)));
                keyspace = r.and_then(|mut r| params_keyspace(&mut r, f.header.version));
                Kind::Query(stmt)
            }
            (opcode::PREPARE, Some(b)) => {
                let mut r = message(f, b);
                let stmt = r
                    .as_mut()
                    .and_then(|r| r.long_string())
                    .map(|q| Statement::new(text(q)));
                if f.header.version >= 5
                    && let Some(r) = r.as_mut()
                    && r.int().is_some_and(|fl| fl & 0x01 != 0)
                {
                    keyspace = r.string().map(text);
                }
                Kind::Prepare(stmt)
            }
            (opcode::EXECUTE, Some(b)) => {
                let mut r = message(f, b);
                let stmt = r
                    .as_mut()
                    .and_then(|r| r.short_bytes())
                    .and_then(|id| self.statements.get(id).cloned());
                if let Some(r) = r.as_mut()
                    && (f.header.version < 5 || r.short_bytes().is_some())
                {
                    keyspace = params_keyspace(r, f.header.version);
                }
                Kind::Execute(stmt)
            }
            (opcode::BATCH, Some(b)) => self.batch(f, b),
            _ => Kind::Control,
        };
        let p = Pending {
            kind,
            keyspace,
            start_ns: f.start_ns,
            request_bytes: f.wire_len,
        };
        if let Some(old) = self.pending.insert(f.header.stream, p)
            && !matches!(old.kind, Kind::Control)
        {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        if self.pending.len() > MAX_PENDING {
            // More in flight than the protocol allows a client (32768 ids, of which drivers
            // use a few thousand): the answers were missed. Start again.
            self.lost(out);
        }
    }

    fn startup(&mut self, f: &Frame<'_>, b: &[u8]) {
        let Some(mut r) = message(f, b) else { return };
        let Some(n) = r.short() else { return };
        self.compression = None;
        for _ in 0..n {
            let (Some(k), Some(v)) = (r.string(), r.string()) else {
                return;
            };
            if k.eq_ignore_ascii_case(b"COMPRESSION") {
                self.compression = Some(if v.eq_ignore_ascii_case(b"lz4") {
                    Compression::Lz4
                } else if v.eq_ignore_ascii_case(b"snappy") {
                    Compression::Snappy
                } else {
                    Compression::Other
                });
            }
        }
    }

    fn batch(&self, f: &Frame<'_>, b: &[u8]) -> Kind {
        let mut statements = Vec::new();
        let mut count = 0;
        let mut r = message(f, b);
        if let Some(r) = r.as_mut()
            && r.byte().is_some()
            && let Some(n) = r.short()
        {
            count = u64::from(n);
            for _ in 0..n {
                let stmt = match r.byte() {
                    Some(0) => r.long_string().map(|q| Statement::new(text(q))),
                    Some(1) => r
                        .short_bytes()
                        .and_then(|id| self.statements.get(id).cloned()),
                    _ => break,
                };
                statements.push(stmt);
                let Some(values) = r.short() else { break };
                let mut ok = true;
                for _ in 0..values {
                    if r.bytes().is_none() {
                        ok = false;
                        break;
                    }
                }
                if !ok {
                    break;
                }
            }
        }
        Kind::Batch { statements, count }
    }

    /// A response envelope; `role` is the traced process's.
    pub fn response(&mut self, f: &Frame<'_>, role: Role, out: &mut Output) {
        if f.header.opcode == opcode::EVENT {
            return; // Server push: never a reply.
        }
        let Some(p) = self.pending.remove(&f.header.stream) else {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        let mut db = DbRecord::new(DbSystem::Cassandra);
        let body = self.body(f);
        let mut rows = None;
        let mut new_keyspace = None;
        let mut prepared_id: Option<Box<[u8]>> = None;
        let mut rows_table: Option<(String, String)> = None;
        let mut r = body.as_deref().and_then(|b| message(f, b));
        match (f.header.opcode, r.as_mut()) {
            (opcode::ERROR, Some(r)) => {
                if let Some(code) = r.int() {
                    db.status_code = Some(format!("0x{code:04X}"));
                    db.error_message = Some(r.string().map(text).unwrap_or_default());
                }
            }
            (opcode::ERROR, None) => {
                db.status_code = Some("ERROR".into());
                db.error_message = Some("compressed error body not decoded".into());
            }
            (opcode::RESULT, Some(r)) => match r.int() {
                Some(result_kind::ROWS) => {
                    (rows, rows_table) = rows_result(r);
                }
                Some(result_kind::SET_KEYSPACE) => new_keyspace = r.string().map(text),
                Some(result_kind::PREPARED) => prepared_id = r.short_bytes().map(Box::from),
                // VOID, SCHEMA_CHANGE and unknown kinds: nothing to take.
                _ => {}
            },
            _ => {}
        }
        let ok = db.status_code.is_none();
        let mut statement_ks = None;
        match p.kind {
            Kind::Control => return,
            Kind::Opaque(op) => db.operation = Some(op.into()),
            Kind::Query(stmt) => {
                if let Some(s) = stmt {
                    db.operation.clone_from(&s.operation);
                    db.collection.clone_from(&s.collection);
                    db.query_text = Some(s.text.to_string());
                    if ok && new_keyspace.is_none() {
                        new_keyspace =
                            use_target(&s.text).filter(|_| f.header.opcode == opcode::RESULT);
                    }
                } else {
                    db.operation = Some("QUERY".into());
                }
            }
            Kind::Prepare(stmt) => {
                db.operation = Some("PREPARE".into());
                if let Some(s) = stmt {
                    db.collection.clone_from(&s.collection);
                    db.query_text = Some(s.text.to_string());
                    if let Some(id) = prepared_id {
                        self.remember(id, s);
                    }
                }
            }
            Kind::Execute(stmt) => match stmt {
                Some(s) => {
                    db.operation.clone_from(&s.operation);
                    db.collection.clone_from(&s.collection);
                    db.query_text = Some(s.text.to_string());
                }
                None => {
                    db.operation = Some("EXECUTE".into());
                    if let Some((ks, table)) = rows_table {
                        statement_ks = Some(ks);
                        db.collection = Some(table);
                    }
                }
            },
            Kind::Batch { statements, count } => {
                db.operation = Some("BATCH".into());
                db.batch_size = Some(count);
                let known: Vec<&Statement> = statements.iter().flatten().map(|s| &**s).collect();
                if !known.is_empty() {
                    db.query_text = Some(
                        known
                            .iter()
                            .map(|s| &*s.text)
                            .collect::<Vec<_>>()
                            .join("; "),
                    );
                }
                if known.len() as u64 == count
                    && let Some(first) = known.first()
                    && known.iter().all(|s| s.collection == first.collection)
                {
                    db.collection.clone_from(&first.collection);
                }
            }
        }
        if ok && let Some(ks) = new_keyspace {
            self.keyspace = Some(ks);
        }
        db.namespace = qualified(db.collection.as_deref())
            .or(p.keyspace)
            .or(statement_ks)
            .or_else(|| self.keyspace.clone());
        if ok {
            db.rows = rows;
        }
        out.push(Record {
            protocol: Protocol::Cassandra,
            role,
            start_ns: p.start_ns,
            end_ns: f.end_ns.max(p.start_ns),
            request_bytes: p.request_bytes,
            response_bytes: f.wire_len,
            detail: Detail::Db(db),
        });
    }

    fn remember(&mut self, id: Box<[u8]>, s: Arc<Statement>) {
        if self.statements.len() >= MAX_STATEMENTS
            || self.statement_bytes + s.text.len() > MAX_STATEMENT_BYTES
        {
            self.statements.clear();
            self.statement_bytes = 0;
        }
        self.statement_bytes += s.text.len();
        self.statements.insert(id, s);
    }

    /// Sync was lost: the requests waiting may never be answered.
    pub fn lost(&mut self, out: &mut Output) {
        let n = self
            .pending
            .drain()
            .filter(|(_, p)| !matches!(p.kind, Kind::Control))
            .count();
        out.lose(Loss::UnmatchedRequest, n as u64);
    }
}

/// Rows count of a Rows result, and the keyspace and table its metadata names (global spec).
fn rows_result(r: &mut Reader<'_>) -> (Option<u64>, Option<(String, String)>) {
    let mut table = None;
    let mut go = || -> Option<u64> {
        let flags = r.int()?;
        let columns = r.int()?;
        if flags & 0x0002 != 0 {
            r.bytes()?;
        }
        if flags & 0x0008 != 0 {
            r.short_bytes()?;
        }
        if flags & 0x0004 == 0 {
            let global = flags & 0x0001 != 0;
            if global {
                let ks = text(r.string()?);
                let t = text(r.string()?);
                table = Some((ks, t));
            }
            for _ in 0..columns.max(0) {
                if !global {
                    r.string()?;
                    r.string()?;
                }
                r.string()?;
                r.option(0)?;
            }
        }
        u64::try_from(r.int()?).ok()
    };
    let rows = go();
    (rows, table)
}
