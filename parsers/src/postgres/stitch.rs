//! Messages of both directions → [`Record`]s. The backend answers in the order the frontend
//! asked (simple queries, and extended-protocol Executes up to each Sync), so pairing is
//! first in, first out; statement and portal names map Executes back to their SQL.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::types::{Message, PROTOCOL_3, UNTYPED};
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{DbRecord, DbSystem, Detail, Record, Role};
use crate::sql;

/// Most requests waiting for a response; beyond it the oldest is dropped as unmatched.
pub const MAX_PENDING: usize = 1024;

/// Most prepared statements (and portals) remembered per connection.
pub const MAX_STATEMENTS: usize = 4096;

/// Most bytes of SQL text remembered for prepared statements per connection.
pub const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// A statement's text and what [`sql`] makes of it, worked out once per Query or Parse.
#[derive(Debug)]
struct Statement {
    text: Box<str>,
    operation: Option<String>,
    collection: Option<String>,
    /// Statements in the text (a simple Query may hold several).
    count: usize,
}

impl Statement {
    fn new(text: Box<str>) -> Arc<Self> {
        let count = if text.contains(';') {
            sql::statement_count(&text)
        } else {
            1
        };
        let (operation, collection) = sql::summarize(&text);
        Arc::new(Self {
            text,
            operation,
            collection,
            count,
        })
    }
}

/// What a pending request waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A simple Query: ends at ReadyForQuery.
    Simple,
    /// An extended-protocol Execute: ends at its CommandComplete, ErrorResponse,
    /// EmptyQueryResponse or PortalSuspended.
    Execute,
    /// A Sync: its ReadyForQuery ends an extended batch. Never a record.
    Sync,
}

/// A request and what has come back for it so far.
#[derive(Debug)]
struct Pending {
    kind: Kind,
    query: Option<Arc<Statement>>,
    start_ns: u64,
    end_ns: u64,
    request_bytes: u64,
    response_bytes: u64,
    /// Sum of the row counts of the command tags.
    rows: Option<u64>,
    data_rows: u64,
    /// Verb of the first command tag (for statements whose text was not seen).
    tag_verb: Option<String>,
    /// CommandComplete/EmptyQueryResponse messages seen (simple queries).
    commands: u64,
    status_code: Option<String>,
    error_message: Option<String>,
}

impl Pending {
    fn new(kind: Kind, query: Option<Arc<Statement>>, start_ns: u64, request_bytes: u64) -> Self {
        Self {
            kind,
            query,
            start_ns,
            end_ns: start_ns,
            request_bytes,
            response_bytes: 0,
            rows: None,
            data_rows: 0,
            tag_verb: None,
            commands: 0,
            status_code: None,
            error_message: None,
        }
    }

    fn answered(&self) -> bool {
        self.commands > 0 || self.status_code.is_some()
    }
}

/// Extended-protocol messages since the last Execute or Sync (Parse, Bind, Describe...).
#[derive(Clone, Copy, Debug)]
struct Group {
    start_ns: u64,
    bytes: u64,
}

/// What the parser must do to the framers after a frontend message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// An SSLRequest/GSSENCRequest: the backend's next byte is its one-byte answer.
    ExpectEncryptionAnswer,
}

/// Pairs requests with responses for one connection.
#[derive(Debug, Default)]
pub struct Stitcher {
    namespace: Option<String>,
    server_version: Option<String>,
    statements: HashMap<Box<[u8]>, Arc<Statement>>,
    statement_bytes: usize,
    /// Portal name → the SQL of its statement (None when the statement was not seen).
    portals: HashMap<Box<[u8]>, Option<Arc<Statement>>>,
    group: Option<Group>,
    pending: VecDeque<Pending>,
}

/// The C string at `*pos` in `body`, advancing past its terminator.
fn cstr<'a>(body: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = body.get(*pos..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    *pos += end + 1;
    Some(&rest[..end])
}

/// The SQL text of a Query or Parse body starting at `pos`: up to its terminator, or all that
/// was kept when the body was cut short.
fn sql_text(body: &[u8], pos: usize) -> Box<str> {
    let rest = body.get(pos..).unwrap_or(&[]);
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    text(&rest[..end]).into_boxed_str()
}

fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

impl Stitcher {
    /// Nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, p: Pending, out: &mut Output) {
        if self.pending.len() >= MAX_PENDING
            && let Some(old) = self.pending.pop_front()
            && old.kind != Kind::Sync
        {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        self.pending.push_back(p);
    }

    fn group_add(&mut self, m: &Message<'_>) {
        let g = self.group.get_or_insert(Group {
            start_ns: m.start_ns,
            bytes: 0,
        });
        g.bytes = g.bytes.saturating_add(m.wire_len);
    }

    /// A message from the frontend (client).
    pub fn frontend(&mut self, m: &Message<'_>, out: &mut Output) -> Action {
        let body = m.body;
        let mut pos = 0;
        match m.tag {
            UNTYPED => {
                let code = body
                    .get(..4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                match code {
                    Some(PROTOCOL_3) => self.startup(body.get(4..).unwrap_or(&[])),
                    Some(super::types::SSL_REQUEST | super::types::GSSENC_REQUEST) => {
                        return Action::ExpectEncryptionAnswer;
                    }
                    _ => {}
                }
            }
            b'Q' => {
                let query = Statement::new(sql_text(body, 0));
                self.group = None;
                let p = Pending::new(Kind::Simple, Some(query), m.start_ns, m.wire_len);
                self.push(p, out);
            }
            b'P' => {
                self.group_add(m);
                if let Some(name) = cstr(body, &mut pos) {
                    let query = Statement::new(sql_text(body, pos));
                    self.remember(name, query);
                }
            }
            b'B' => {
                self.group_add(m);
                if let (Some(portal), Some(stmt)) = (cstr(body, &mut pos), cstr(body, &mut pos))
                    && (self.portals.len() < MAX_STATEMENTS || self.portals.contains_key(portal))
                {
                    let query = self.statements.get(stmt).cloned();
                    self.portals.insert(portal.into(), query);
                }
            }
            b'E' => {
                let query = cstr(body, &mut pos)
                    .and_then(|portal| self.portals.get(portal).cloned())
                    .flatten();
                let (start_ns, bytes) = match self.group.take() {
                    Some(g) => (g.start_ns, g.bytes.saturating_add(m.wire_len)),
                    None => (m.start_ns, m.wire_len),
                };
                self.push(Pending::new(Kind::Execute, query, start_ns, bytes), out);
            }
            b'S' => {
                self.group = None;
                self.push(Pending::new(Kind::Sync, None, m.start_ns, m.wire_len), out);
            }
            b'C' => {
                if let (Some(&kind), Some(name)) = (body.first(), {
                    pos = 1;
                    cstr(body, &mut pos)
                }) {
                    match kind {
                        b'S' => {
                            if let Some(q) = self.statements.remove(name) {
                                self.statement_bytes =
                                    self.statement_bytes.saturating_sub(q.text.len());
                            }
                        }
                        b'P' => {
                            self.portals.remove(name);
                        }
                        _ => {}
                    }
                }
            }
            b'D' | b'H' => self.group_add(m),
            // COPY IN data: part of the request of the COPY waiting for its answer.
            b'd' | b'c' | b'f' => {
                if let Some(p) = self.pending.iter_mut().rev().find(|p| p.kind != Kind::Sync) {
                    p.request_bytes = p.request_bytes.saturating_add(m.wire_len);
                }
            }
            // Password/SASL, FunctionCall, Terminate: not operations we record.
            _ => {}
        }
        Action::None
    }

    fn startup(&mut self, mut params: &[u8]) {
        let mut user = None;
        let mut database = None;
        while let Some(end) = params.iter().position(|&b| b == 0) {
            let key = &params[..end];
            if key.is_empty() {
                break;
            }
            let mut pos = end + 1;
            let Some(value) = cstr(params, &mut pos) else {
                break;
            };
            match key {
                b"user" => user = Some(text(value)),
                b"database" => database = Some(text(value)),
                _ => {}
            }
            params = &params[pos..];
        }
        // The database defaults to the user name.
        self.namespace = database.or(user);
    }

    fn remember(&mut self, name: &[u8], query: Arc<Statement>) {
        if let Some(old) = self.statements.remove(name) {
            self.statement_bytes = self.statement_bytes.saturating_sub(old.text.len());
        }
        if self.statements.len() < MAX_STATEMENTS
            && self.statement_bytes.saturating_add(query.text.len()) <= MAX_STATEMENT_BYTES
        {
            self.statement_bytes += query.text.len();
            self.statements.insert(name.into(), query);
        }
    }

    /// A message from the backend (server).
    pub fn backend(&mut self, m: &Message<'_>, role: Role, out: &mut Output) {
        match m.tag {
            b'S' => {
                let mut pos = 0;
                if let (Some(b"server_version"), Some(v)) =
                    (cstr(m.body, &mut pos), cstr(m.body, &mut pos))
                {
                    self.server_version = Some(text(v));
                }
            }
            b'R' | b'K' | b'v' | b'N' | b'A' => {}
            b'Z' => self.ready(m, role, out),
            b'C' | b'I' => {
                let Some(p) = self.front() else {
                    out.lose(Loss::UnmatchedResponse, 1);
                    return;
                };
                p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                p.end_ns = m.end_ns;
                p.commands += 1;
                if m.tag == b'C' {
                    let end = m.body.iter().position(|&b| b == 0).unwrap_or(m.body.len());
                    let tag = &m.body[..end];
                    if p.tag_verb.is_none() {
                        let verb = tag.split(|&b| b == b' ').next().unwrap_or(&[]);
                        p.tag_verb = (!verb.is_empty()).then(|| text(verb));
                    }
                    if let Some(n) = rows_of(tag) {
                        p.rows = Some(p.rows.unwrap_or(0).saturating_add(n));
                    }
                }
                if p.kind == Kind::Execute {
                    self.complete(role, out);
                }
            }
            b's' => {
                if let Some(p) = self.front() {
                    p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                    p.end_ns = m.end_ns;
                    p.commands += 1;
                    if p.kind == Kind::Execute {
                        self.complete(role, out);
                    }
                }
            }
            b'E' => {
                let Some(p) = self.front() else {
                    // Outside any request (a failed startup, or joined mid-stream).
                    if self.pending.is_empty() {
                        out.lose(Loss::UnmatchedResponse, 1);
                    }
                    return;
                };
                p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                p.end_ns = m.end_ns;
                let (code, message) = error_fields(m.body);
                p.status_code = code.or_else(|| Some(String::new()));
                p.error_message = message;
                if p.kind == Kind::Execute {
                    self.complete(role, out);
                    // The server skips the rest of the batch up to the Sync: those Executes will
                    // get no answer.
                    while self
                        .pending
                        .front()
                        .is_some_and(|p| p.kind == Kind::Execute)
                    {
                        self.pending.pop_front();
                        out.lose(Loss::UnmatchedRequest, 1);
                    }
                }
            }
            b'D' => {
                if let Some(p) = self.front() {
                    p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                    p.data_rows += 1;
                }
            }
            _ => {
                if let Some(p) = self.front() {
                    p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                }
            }
        }
    }

    /// The oldest request still waiting, unless it is a Sync.
    fn front(&mut self) -> Option<&mut Pending> {
        self.pending.front_mut().filter(|p| p.kind != Kind::Sync)
    }

    /// The front request is answered: emit it.
    fn complete(&mut self, role: Role, out: &mut Output) {
        if let Some(p) = self.pending.pop_front() {
            let r = self.record(p, role);
            out.push(r);
        }
    }

    /// ReadyForQuery ends the front simple query, or the front Sync; Executes before it that got
    /// no answer are lost.
    fn ready(&mut self, m: &Message<'_>, role: Role, out: &mut Output) {
        while let Some(mut p) = self.pending.pop_front() {
            match p.kind {
                Kind::Sync => return,
                Kind::Simple => {
                    p.response_bytes = p.response_bytes.saturating_add(m.wire_len);
                    p.end_ns = m.end_ns;
                    let r = self.record(p, role);
                    out.push(r);
                    return;
                }
                Kind::Execute => out.lose(Loss::UnmatchedRequest, 1),
            }
        }
    }

    /// Sync was lost in one direction: nothing waiting can be paired with confidence.
    pub fn lost(&mut self, out: &mut Output) {
        self.group = None;
        self.drop_pending(out);
    }

    fn drop_pending(&mut self, out: &mut Output) {
        let lost = self
            .pending
            .drain(..)
            .filter(|p| p.kind != Kind::Sync)
            .count();
        out.lose(Loss::UnmatchedRequest, lost as u64);
    }

    /// The connection is gone: a simple query already answered (but for its ReadyForQuery) is
    /// emitted, the rest counted.
    pub fn close(&mut self, role: Role, out: &mut Output) {
        while let Some(p) = self.pending.pop_front() {
            match p.kind {
                Kind::Sync => {}
                Kind::Simple if p.answered() => {
                    let r = self.record(p, role);
                    out.push(r);
                }
                _ => out.lose(Loss::UnmatchedRequest, 1),
            }
        }
    }

    fn record(&self, p: Pending, role: Role) -> Record {
        let mut db = DbRecord::new(DbSystem::PostgreSql);
        if let Some(q) = p.query.as_deref() {
            if p.kind == Kind::Simple && q.count > 1 {
                db.operation = Some("BATCH".to_owned());
                db.batch_size = Some(q.count as u64);
            } else {
                db.operation.clone_from(&q.operation);
                db.collection.clone_from(&q.collection);
            }
            db.query_text = Some(q.text.to_string());
        }
        if db.operation.is_none() {
            db.operation = p.tag_verb;
        }
        db.namespace = self.namespace.clone();
        db.status_code = p.status_code.filter(|c| !c.is_empty());
        db.error_message = p.error_message;
        db.rows = p.rows.or((p.data_rows > 0).then_some(p.data_rows));
        db.server_version = self.server_version.clone();
        Record {
            protocol: Protocol::Postgres,
            role,
            start_ns: p.start_ns,
            end_ns: p.end_ns.max(p.start_ns),
            request_bytes: p.request_bytes,
            response_bytes: p.response_bytes,
            detail: Detail::Db(db),
        }
    }
}

/// The row count a command tag ends with (`SELECT 5`, `INSERT 0 3`, `COPY 2`), if any.
fn rows_of(tag: &[u8]) -> Option<u64> {
    let space = tag.iter().rposition(|&b| b == b' ')?;
    let digits = &tag[space + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// SQLSTATE (field `C`) and message (field `M`) of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let mut code = None;
    let mut message = None;
    let mut pos = 0;
    while let Some(&field) = body.get(pos) {
        if field == 0 {
            break;
        }
        pos += 1;
        let Some(value) = cstr(body, &mut pos) else {
            break;
        };
        match field {
            b'C' => code = Some(text(value)),
            b'M' => message = Some(text(value)),
            _ => {}
        }
    }
    (code, message)
}
