//! Commands and response packets → [`Record`]s. MySQL answers commands one at a time in the
//! order sent, so pairing is first in, first out; a response is followed packet by packet
//! (OK, ERR, result sets with their definitions and rows, prepare replies) to find its end.

use std::collections::VecDeque;

use super::frame::{lenenc, u16_at, u32_at};
use super::types::{Command, Packet, Request, SERVER_MORE_RESULTS_EXISTS, Session};
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{DbRecord, Detail, Record, Role};
use crate::sql;

/// Most commands waiting for a response; beyond it the oldest is dropped as unmatched.
pub const MAX_PENDING: usize = 64;

/// Payload bytes kept of a packet inside a result set or a prepare reply (rows are counted).
pub(crate) const ROW_KEEP: usize = 512;

/// Where a response stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Its first packet (or the first of the next result set) is next.
    First,
    /// Column definitions of a result set still to come.
    Columns { left: u64 },
    /// After the definitions with `CLIENT_DEPRECATE_EOF` off: an EOF is next.
    ColumnsEof,
    /// After the definitions, whether an EOF follows unknown (joined mid-stream).
    ColumnsMaybeEof,
    /// Rows until EOF/OK or ERR. `tentative`: the packet before may have been the end.
    Rows { tentative: bool },
    /// Parameter definitions of a prepare reply, then `cols` column definitions.
    Params { left: u64, cols: u64 },
    /// After parameter definitions: an EOF (`maybe`: if `CLIENT_DEPRECATE_EOF` is off).
    ParamsEof { cols: u64, maybe: bool },
    /// Column definitions of a prepare reply.
    PrepareColumns { left: u64 },
    /// After the prepare reply's column definitions: an EOF (`maybe`: as above).
    PrepareColumnsEof { maybe: bool },
    /// COM_FIELD_LIST: definitions until EOF.
    FieldList,
    /// Complete.
    Done,
}

/// What a packet did to a response.
enum Step {
    /// The response goes on.
    More,
    /// The response is complete.
    Done,
    /// The response was already complete; the packet starts the next one.
    NotMine,
}

/// One command and what has come of it.
#[derive(Debug)]
struct Exchange {
    request: Request,
    state: State,
    started: bool,
    last_seq: u8,
    rows: u64,
    counted: bool,
    error: Option<(u16, Option<String>, String)>,
    response_bytes: u64,
    end_ns: u64,
    prepared: Option<u32>,
    ok: bool,
}

/// Pairs commands with responses for one connection.
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    pending: VecDeque<Exchange>,
}

impl Stitcher {
    /// Whether the response in progress is inside a result set (rows are counted, not kept).
    pub fn counting(&self) -> bool {
        self.pending
            .front()
            .is_some_and(|x| !matches!(x.state, State::First | State::Done))
    }

    /// A command that expects a response.
    pub fn request(&mut self, request: Request, s: &mut Session, role: Role, out: &mut Output) {
        self.settle(s, role, out);
        if self.pending.len() >= MAX_PENDING && self.pending.pop_front().is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        let state = match request.command {
            Command::FieldList => State::FieldList,
            _ => State::First,
        };
        self.pending.push_back(Exchange {
            request,
            state,
            started: false,
            last_seq: 0,
            rows: 0,
            counted: false,
            error: None,
            response_bytes: 0,
            end_ns: 0,
            prepared: None,
            ok: false,
        });
    }

    /// A packet from the server.
    pub fn response(&mut self, p: &Packet, s: &mut Session, role: Role, out: &mut Output) {
        loop {
            let Some(x) = self.pending.front_mut() else {
                if p.seq == 1 {
                    out.lose(Loss::UnmatchedResponse, 1);
                }
                return;
            };
            // A new response (seq 1 out of sequence) ends one that may already be complete.
            if x.started && p.seq == 1 && x.last_seq.wrapping_add(1) != 1 && tentative(x.state) {
                self.finish(s, role, out);
                continue;
            }
            let step = advance(x, p, s);
            match step {
                Step::NotMine => {
                    self.finish(s, role, out);
                    continue;
                }
                Step::More | Step::Done => {
                    x.started = true;
                    x.last_seq = p.seq;
                    x.response_bytes = x.response_bytes.saturating_add(p.wire_len);
                    x.end_ns = p.end_ns;
                    if matches!(step, Step::Done) {
                        x.state = State::Done;
                        self.finish(s, role, out);
                    }
                    return;
                }
            }
        }
    }

    /// Sync was lost in a direction: waiting commands can no longer be paired with confidence.
    /// A response that may already be complete is emitted.
    pub fn lost(&mut self, s: &mut Session, role: Role, out: &mut Output) {
        self.settle(s, role, out);
        let n = self.pending.len() as u64;
        self.pending.clear();
        out.lose(Loss::UnmatchedRequest, n);
    }

    /// Emits the front exchange if its response may be complete and nothing more came.
    fn settle(&mut self, s: &mut Session, role: Role, out: &mut Output) {
        if self
            .pending
            .front()
            .is_some_and(|x| x.started && tentative(x.state))
        {
            s.deprecate_eof.get_or_insert(true);
            self.finish(s, role, out);
        }
    }

    /// Emits the front exchange (complete, or complete as far as anyone will know).
    fn finish(&mut self, s: &mut Session, role: Role, out: &mut Output) {
        if let Some(x) = self.pending.pop_front() {
            if !x.started {
                out.lose(Loss::UnmatchedRequest, 1);
                return;
            }
            out.push(record(x, s, role));
        }
    }
}

/// States in which the response may already be over (only when `CLIENT_DEPRECATE_EOF` is
/// unknown).
fn tentative(state: State) -> bool {
    matches!(
        state,
        State::Rows { tentative: true }
            | State::ParamsEof {
                cols: 0,
                maybe: true
            }
            | State::PrepareColumnsEof { maybe: true }
    )
}

/// Moves `x` along by packet `p`.
fn advance(x: &mut Exchange, p: &Packet, s: &mut Session) -> Step {
    let b = &p.body;
    match x.state {
        State::Done => Step::NotMine,
        State::First => first(x, p),
        State::Columns { left } => {
            x.state = if left > 1 {
                State::Columns { left: left - 1 }
            } else {
                match s.deprecate_eof {
                    Some(true) => State::Rows { tentative: false },
                    Some(false) => State::ColumnsEof,
                    None => State::ColumnsMaybeEof,
                }
            };
            Step::More
        }
        State::ColumnsEof => {
            x.state = State::Rows { tentative: false };
            if p.is_eof() {
                Step::More
            } else {
                advance(x, p, s)
            }
        }
        State::ColumnsMaybeEof => {
            if p.is_eof() {
                x.state = State::Rows { tentative: true };
                return Step::More;
            }
            s.deprecate_eof = Some(true);
            x.state = State::Rows { tentative: false };
            advance(x, p, s)
        }
        State::Rows { tentative } => {
            if tentative {
                s.deprecate_eof = Some(false);
                x.state = State::Rows { tentative: false };
            }
            if p.is_err() {
                error(x, b);
                return Step::Done;
            }
            if p.is_eof() {
                let status = if p.len == 5 && s.deprecate_eof != Some(true) {
                    u16_at(b, 3)
                } else {
                    ok_status(b).map(|(_, st)| st)
                };
                return more_results(x, status);
            }
            x.rows += 1;
            x.counted = true;
            Step::More
        }
        State::Params { left, cols } => {
            x.state = if left > 1 {
                State::Params {
                    left: left - 1,
                    cols,
                }
            } else {
                match s.deprecate_eof {
                    Some(true) if cols == 0 => return Step::Done,
                    Some(true) => State::PrepareColumns { left: cols },
                    Some(false) => State::ParamsEof { cols, maybe: false },
                    None => State::ParamsEof { cols, maybe: true },
                }
            };
            Step::More
        }
        State::ParamsEof { cols, maybe } => {
            if p.is_eof() {
                if maybe {
                    s.deprecate_eof = Some(false);
                }
                if cols == 0 {
                    return Step::Done;
                }
                x.state = State::PrepareColumns { left: cols };
                return Step::More;
            }
            if maybe {
                s.deprecate_eof = Some(true);
            }
            if cols == 0 {
                return Step::NotMine;
            }
            x.state = State::PrepareColumns { left: cols };
            advance(x, p, s)
        }
        State::PrepareColumns { left } => {
            if left > 1 {
                x.state = State::PrepareColumns { left: left - 1 };
                return Step::More;
            }
            match s.deprecate_eof {
                Some(true) => Step::Done,
                Some(false) => {
                    x.state = State::PrepareColumnsEof { maybe: false };
                    Step::More
                }
                None => {
                    x.state = State::PrepareColumnsEof { maybe: true };
                    Step::More
                }
            }
        }
        State::PrepareColumnsEof { maybe } => {
            if p.is_eof() {
                if maybe {
                    s.deprecate_eof = Some(false);
                }
                return Step::Done;
            }
            if maybe {
                s.deprecate_eof = Some(true);
            }
            Step::NotMine
        }
        State::FieldList => {
            if p.is_err() {
                error(x, b);
                Step::Done
            } else if p.is_eof() {
                Step::Done
            } else {
                Step::More
            }
        }
    }
}

/// The first packet of a response, or of the next result set.
fn first(x: &mut Exchange, p: &Packet) -> Step {
    let b = &p.body;
    if p.is_err() {
        // MariaDB progress reports are ERR-shaped with code 0xffff; the response goes on.
        if u16_at(b, 1) == Some(0xffff) {
            return Step::More;
        }
        error(x, b);
        return Step::Done;
    }
    match x.request.command {
        Command::Simple(_) | Command::InitDb(_) | Command::FieldList => {
            x.ok = b.first() == Some(&0x00);
            Step::Done
        }
        Command::Prepare(_) => {
            if b.first() != Some(&0x00) || p.len < 12 {
                return Step::Done;
            }
            x.prepared = u32_at(b, 1);
            x.ok = true;
            let cols = u64::from(u16_at(b, 5).unwrap_or(0));
            let params = u64::from(u16_at(b, 7).unwrap_or(0));
            x.state = if params > 0 {
                State::Params { left: params, cols }
            } else if cols > 0 {
                State::PrepareColumns { left: cols }
            } else {
                return Step::Done;
            };
            Step::More
        }
        Command::Query(_) | Command::Execute(_) | Command::Fetch => match b.first() {
            Some(0x00) => {
                let (affected, status) = ok_status(b).unwrap_or((0, 0));
                x.rows = x.rows.saturating_add(affected);
                x.counted = true;
                x.ok = true;
                more_results(x, Some(status))
            }
            // LOCAL INFILE: the client sends the file, then the server answers OK or ERR.
            Some(0xfb) => Step::More,
            Some(0xfe) if p.is_eof() => Step::Done,
            _ => match lenenc(b) {
                Some((n, _)) if n > 0 => {
                    x.state = State::Columns { left: n };
                    x.counted = true;
                    Step::More
                }
                _ => Step::Done,
            },
        },
    }
}

/// After an OK or EOF with `status`: another result set, or the end.
fn more_results(x: &mut Exchange, status: Option<u16>) -> Step {
    x.ok = true;
    if status.is_some_and(|st| st & SERVER_MORE_RESULTS_EXISTS != 0) {
        x.state = State::First;
        Step::More
    } else {
        Step::Done
    }
}

/// Affected rows and status flags of an OK packet (header `0x00` or `0xfe`).
fn ok_status(b: &[u8]) -> Option<(u64, u16)> {
    let (affected, n1) = lenenc(b.get(1..)?)?;
    let (_, n2) = lenenc(b.get(1 + n1..)?)?;
    let status = u16_at(b, 1 + n1 + n2).unwrap_or(0);
    Some((affected, status))
}

/// Records an ERR packet: error number, SQLSTATE (after `#`), message.
fn error(x: &mut Exchange, b: &[u8]) {
    let code = u16_at(b, 1).unwrap_or(0);
    let (state, msg) = match b.get(3) {
        Some(b'#') if b.len() >= 9 => (
            Some(String::from_utf8_lossy(&b[4..9]).into_owned()),
            b.get(9..).unwrap_or_default(),
        ),
        _ => (None, b.get(3..).unwrap_or_default()),
    };
    x.error = Some((code, state, String::from_utf8_lossy(msg).into_owned()));
    x.ok = false;
}

/// The target of `USE db` (backticks and a final `;` removed).
pub(crate) fn use_target(sql: &str) -> Option<String> {
    let rest = sql.trim_start();
    let head = rest.get(..3)?;
    if !head.eq_ignore_ascii_case("use") {
        return None;
    }
    let rest = rest.get(3..)?;
    if !rest.starts_with(|c: char| c.is_whitespace() || c == '`') {
        return None;
    }
    let name = rest.trim().trim_end_matches(';').trim().trim_matches('`');
    (!name.is_empty()).then(|| name.to_owned())
}

/// The record of an answered command; the session learns from it (database, statements).
fn record(x: Exchange, s: &mut Session, role: Role) -> Record {
    let mut db = DbRecord::new(s.system());
    db.server_version = s.server_version.clone();
    db.namespace = x.request.namespace;
    match x.request.command {
        Command::Query(text) => {
            let (operation, collection) = sql::summarize(&text);
            // A statement with no verb to name (empty, comments only) is named by its command.
            db.operation = operation.or_else(|| Some("QUERY".into()));
            db.collection = collection;
            if x.ok
                && let Some(target) = use_target(&text)
            {
                s.namespace = Some(target.clone());
                db.namespace = Some(target);
            }
            db.query_text = Some(text);
        }
        Command::Prepare(text) => {
            let (_, collection) = sql::summarize(&text);
            db.operation = Some("PREPARE".into());
            db.collection = collection;
            if let (true, Some(id)) = (x.ok, x.prepared) {
                if s.statements.len() >= super::MAX_STATEMENTS {
                    s.statements.clear();
                }
                s.statements.insert(id, text.clone());
            }
            db.query_text = Some(text);
        }
        Command::Execute(id) => match s.statements.get(&id) {
            Some(text) => {
                let (operation, collection) = sql::summarize(text);
                db.operation = operation.or_else(|| Some("EXECUTE".into()));
                db.collection = collection;
                db.query_text = Some(text.clone());
            }
            None => db.operation = Some("EXECUTE".into()),
        },
        Command::InitDb(name) => {
            db.operation = Some("USE".into());
            if x.ok {
                s.namespace = Some(name.clone());
            }
            db.namespace = Some(name);
        }
        Command::Fetch => db.operation = Some("FETCH".into()),
        Command::FieldList => db.operation = Some("FIELD_LIST".into()),
        Command::Simple(name) => db.operation = Some(name.into()),
    }
    match x.error {
        Some((code, state, msg)) => {
            db.status_code = Some(code.to_string());
            db.error_message = Some(match state {
                Some(state) => format!("[{state}] {msg}"),
                None => msg,
            });
        }
        None => db.rows = x.counted.then_some(x.rows),
    }
    Record {
        protocol: Protocol::MySql,
        role,
        start_ns: x.request.start_ns,
        end_ns: x.end_ns.max(x.request.start_ns),
        request_bytes: x.request.wire_len,
        response_bytes: x.response_bytes,
        detail: Detail::Db(db),
    }
}
