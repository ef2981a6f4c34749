//! MySQL and MariaDB client/server protocol (MySQL internals, "Client/Server Protocol":
//! <https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html>; MariaDB's
//! "Clients & Connectors / Client/Server Protocol" for its differences).
//!
//! Handled, for a traced client or server alike (the direction that carries commands makes
//! the role; commands sent are [`Role::Client`]):
//! - packets: 3-byte length and sequence id; payloads of 16 MiB and more joined across
//!   physical packets; payload bytes past [`MAX_PACKET`] (statements) or past a small prefix
//!   (rows, definitions) are counted, not buffered, and bytes moved but not captured
//!   ([`Parser::skip`]) inside a packet count toward it;
//! - the connection phase: Initial Handshake v10 (server version → `server_version`,
//!   "MariaDB" in it → [`DbSystem::MariaDb`], else [`DbSystem::MySql`]; capabilities),
//!   HandshakeResponse41 (the database given with `CLIENT_CONNECT_WITH_DB` → namespace),
//!   SSLRequest (the connection turns to TLS: nothing more is parsed), auth switch and more
//!   data (`caching_sha2_password` fast and full auth) ignored until OK or ERR; no record
//!   for the login, nor for COM_CHANGE_USER;
//! - commands, one record each when answered: COM_QUERY (operation and collection from
//!   [`crate::sql::summarize`], raw text; the MySQL 8.0.23+ query attributes prefix removed
//!   when `CLIENT_QUERY_ATTRIBUTES` was negotiated, or when unknown and the payload starts with
//!   it), COM_STMT_PREPARE (operation `PREPARE`; the statement id is remembered), COM_STMT_EXECUTE
//!   (the prepared SQL as text and operation; `EXECUTE` if the prepare was not seen),
//!   COM_INIT_DB (operation `USE`, namespace the new database, as for a `USE db` statement,
//!   which also changes the namespace of later records), COM_PING (`PING`) and the other
//!   one-packet commands by name (`STATISTICS`, `STMT_RESET`, `SET_OPTION`,
//!   `RESET_CONNECTION`...); COM_QUIT, COM_STMT_CLOSE (the id is forgotten) and
//!   COM_STMT_SEND_LONG_DATA have no response and no record; after COM_BINLOG_DUMP the
//!   connection is a replication stream and no longer parsed;
//! - responses: OK (affected rows → `rows`), ERR (error number → `status_code`, e.g. `1146`;
//!   `error_message` is `[SQLSTATE] message`, e.g. `[42S02] Table 'shop.nope' doesn't
//!   exist`), result sets in text or binary protocol (rows counted → `rows`), with or without
//!   `CLIENT_DEPRECATE_EOF`, several per command (`SERVER_MORE_RESULTS_EXISTS`, e.g. CALL),
//!   LOCAL INFILE exchanges, MariaDB progress reports;
//! - joined mid-stream (no handshake): the command direction is found from a command packet
//!   (sequence id 0, known command); `CLIENT_PROTOCOL_41` is assumed and whether EOF packets
//!   follow column definitions is learned from the responses (an EOF then a row, or a row
//!   straight away); a response that may have ended at such an EOF is emitted when the next
//!   command or response starts;
//! - losing sync (a gap outside a packet body, an unknown command): commands waiting are
//!   counted as [`Loss::UnmatchedRequest`], and the framer scans for a plausible packet
//!   header (a command with sequence id 0; a response's first packet with sequence id 1),
//!   counting the bytes passed over as [`Loss::ResyncBytes`]. A statement longer than
//!   [`MAX_PACKET`] is cut there and counted as [`Loss::Oversized`]; its record keeps the cut
//!   text.
//!
//! A record starts when the first command byte was moved and ends when the last byte of its
//! response was; sizes are wire sizes (headers included).
//!
//! Not handled: the compressed protocol (`CLIENT_COMPRESS`), X Protocol (port 33060),
//! cursors beyond counting COM_STMT_FETCH rows, COM_PROCESS_INFO's result set.
//!
//! Hand-written: no Rust crate parses passively captured MySQL bytes in both directions
//! (client crates drive a connection; they cannot follow one from the middle or across
//! gaps).
//!
//! Stages: `infer` (first bytes, resync points), `frame` (bytes → packets, per direction),
//! `stitch` (commands ↔ responses → [`Record`](crate::Record)); this file holds the
//! connection phase and command decoding.
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes
//! [`Loss::Oversized`]: crate::Loss::Oversized
//! [`DbSystem::MariaDb`]: crate::DbSystem::MariaDb
//! [`DbSystem::MySql`]: crate::DbSystem::MySql

mod frame;
mod infer;
mod stitch;
mod types;

#[cfg(test)]
mod tests;

pub use frame::MAX_PACKET;
pub use infer::infer;
pub use stitch::MAX_PENDING;

use frame::{Framer, lenenc, u16_at, u32_at};
use stitch::{ROW_KEEP, Stitcher};
use types::{
    CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41, CLIENT_QUERY_ATTRIBUTES, CLIENT_SECURE_CONNECTION, CLIENT_SSL, Command,
    Event, MAX_PHYSICAL, Packet, Request, Session, cmd,
};

use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::Role;
use crate::{Direction, Parser};

/// Most prepared statements remembered per connection; past it the map starts over.
pub const MAX_STATEMENTS: usize = 1024;

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing recognised yet.
    Start,
    /// Server greeting seen; the client's handshake response is next.
    Greeted,
    /// Authenticating (login or COM_CHANGE_USER): wait for OK or ERR.
    Auth,
    /// Commands and responses.
    Command,
    /// TLS or replication: not parsed.
    Opaque,
}

/// MySQL / MariaDB parser for one connection.
#[derive(Debug)]
pub struct MySqlParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction commands travel in, once known.
    requests: Option<Direction>,
    phase: Phase,
    session: Session,
    /// Capabilities the server offered in its greeting.
    server_caps: u32,
}

impl Default for MySqlParser {
    fn default() -> Self {
        Self::new()
    }
}

impl MySqlParser {
    /// A parser for a fresh connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::default(),
            requests: None,
            phase: Phase::Start,
            session: Session::default(),
            server_caps: 0,
        }
    }

    fn record_role(&self) -> Role {
        match self.requests {
            Some(Direction::Ingress) => Role::Server,
            _ => Role::Client,
        }
    }

    fn set_requests(&mut self, dir: Direction) {
        self.requests = Some(dir);
        self.framers[dir.index()].set_requests(true);
        self.framers[dir.flip().index()].set_requests(false);
    }

    fn opaque(&mut self) {
        self.phase = Phase::Opaque;
        for f in &mut self.framers {
            f.set_opaque();
        }
    }

    fn handle(&mut self, dir: Direction, event: Event, out: &mut Output) {
        match event {
            Event::Packet(p) => {
                self.packet(dir, &p, out);
                // The payload buffer serves the next packet of this direction.
                self.framers[dir.index()].recycle(p.body);
            }
            Event::Lost => {
                let role = self.record_role();
                self.stitch.lost(&mut self.session, role, out);
            }
        }
    }

    fn packet(&mut self, dir: Direction, p: &Packet, out: &mut Output) {
        match self.phase {
            Phase::Opaque => {}
            Phase::Start => {
                if p.seq == 0 && infer::greeting(&header_and(p)) {
                    self.set_requests(dir.flip());
                    self.greeting(p);
                } else if p.seq == 0 && command_like(p) {
                    self.set_requests(dir);
                    self.phase = Phase::Command;
                    self.command(dir, p, out);
                } else if !response_start(p) {
                    // Joined inside an exchange: look for the next packet that starts one.
                    self.framers[dir.index()].lose_sync();
                }
            }
            Phase::Greeted | Phase::Auth if Some(dir) != self.requests => match p.body.first() {
                Some(0x0a) if p.seq == 0 => self.greeting(p),
                Some(0x00 | 0xff) if self.phase == Phase::Auth => self.phase = Phase::Command,
                _ => {}
            },
            Phase::Greeted | Phase::Auth => {
                if p.seq == 0 && command_like(p) {
                    // The end of authentication was not seen.
                    self.phase = Phase::Command;
                    self.command(dir, p, out);
                } else if self.phase == Phase::Greeted && p.seq == 1 {
                    self.handshake_response(p);
                }
            }
            Phase::Command if Some(dir) == self.requests => self.command(dir, p, out),
            Phase::Command => {
                let role = self.record_role();
                self.stitch.response(p, &mut self.session, role, out);
            }
        }
    }

    /// Initial Handshake v10.
    fn greeting(&mut self, p: &Packet) {
        self.phase = Phase::Greeted;
        let b = &p.body;
        let Some(nul) = b.iter().skip(1).position(|&c| c == 0) else {
            return;
        };
        let version = String::from_utf8_lossy(&b[1..1 + nul]).into_owned();
        self.session.mariadb = version.contains("MariaDB");
        self.session.server_version = Some(version);
        // version NUL, thread id (4), auth data (8), filler (1), caps low (2), charset (1),
        // status (2), caps high (2).
        let at = 1 + nul + 1 + 4 + 8 + 1;
        let low = u16_at(b, at).unwrap_or(0);
        let high = u16_at(b, at + 5).unwrap_or(0);
        self.server_caps = u32::from(low) | (u32::from(high) << 16);
    }

    /// HandshakeResponse41, or an SSLRequest.
    fn handshake_response(&mut self, p: &Packet) {
        let b = &p.body;
        let Some(client) = u32_at(b, 0) else {
            return;
        };
        self.phase = Phase::Auth;
        let caps = client & self.server_caps;
        if client & CLIENT_SSL != 0 && p.len <= 32 {
            self.opaque();
            return;
        }
        self.session.caps = Some(caps);
        self.session.deprecate_eof = Some(caps & CLIENT_DEPRECATE_EOF != 0);
        if client & CLIENT_PROTOCOL_41 == 0 || client & CLIENT_CONNECT_WITH_DB == 0 {
            return;
        }
        // caps (4), max packet (4), charset (1), filler (23), user NUL, auth data, database NUL.
        let Some(rest) = b.get(32..) else { return };
        let Some(user_end) = rest.iter().position(|&c| c == 0) else {
            return;
        };
        let rest = &rest[user_end + 1..];
        let auth = if client & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            lenenc(rest).map(|(n, size)| size as u64 + n)
        } else if client & CLIENT_SECURE_CONNECTION != 0 {
            rest.first().map(|&n| 1 + u64::from(n))
        } else {
            rest.iter().position(|&c| c == 0).map(|n| n as u64 + 1)
        };
        let Some(rest) = auth.and_then(|n| rest.get(usize::try_from(n).ok()?..)) else {
            return;
        };
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        if end > 0 {
            self.session.namespace = Some(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
    }

    /// A client packet in the command phase.
    fn command(&mut self, dir: Direction, p: &Packet, out: &mut Output) {
        if p.seq != 0 {
            return; // LOCAL INFILE contents, or the rest of an exchange
        }
        if p.len > MAX_PACKET as u64 && !p.whole() {
            out.lose(Loss::Oversized, 1);
        }
        let b = &p.body;
        let Some((&code, rest)) = b.split_first() else {
            return;
        };
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let command = match code {
            cmd::QUERY => Command::Query(text(self.query_text(rest))),
            cmd::STMT_PREPARE => Command::Prepare(text(rest)),
            cmd::STMT_EXECUTE => Command::Execute(u32_at(b, 1).unwrap_or(u32::MAX)),
            cmd::INIT_DB => Command::InitDb(text(rest)),
            cmd::FIELD_LIST => Command::FieldList,
            cmd::STMT_FETCH => Command::Fetch,
            cmd::PING => Command::Simple("PING"),
            cmd::STATISTICS => Command::Simple("STATISTICS"),
            cmd::STMT_RESET => Command::Simple("STMT_RESET"),
            cmd::SET_OPTION => Command::Simple("SET_OPTION"),
            cmd::RESET_CONNECTION => Command::Simple("RESET_CONNECTION"),
            cmd::PROCESS_KILL => Command::Simple("PROCESS_KILL"),
            cmd::REFRESH => Command::Simple("REFRESH"),
            cmd::DEBUG => Command::Simple("DEBUG"),
            cmd::REGISTER_SLAVE => Command::Simple("REGISTER_SLAVE"),
            cmd::QUIT | cmd::STMT_SEND_LONG_DATA => return,
            cmd::STMT_CLOSE => {
                if let Some(id) = u32_at(b, 1) {
                    self.session.statements.remove(&id);
                }
                return;
            }
            cmd::CHANGE_USER => {
                let role = self.record_role();
                self.stitch.lost(&mut self.session, role, out);
                self.phase = Phase::Auth;
                return;
            }
            cmd::BINLOG_DUMP | cmd::BINLOG_DUMP_GTID => {
                self.opaque();
                return;
            }
            _ => {
                out.lose(Loss::Malformed, 1);
                self.framers[dir.index()].lose_sync();
                let role = self.record_role();
                self.stitch.lost(&mut self.session, role, out);
                return;
            }
        };
        let request = Request {
            command,
            namespace: self.session.namespace.clone(),
            start_ns: p.start_ns,
            wire_len: p.wire_len,
        };
        let role = self.record_role();
        self.stitch.request(request, &mut self.session, role, out);
    }

    /// The statement of a COM_QUERY payload (after the command byte): without the query
    /// attributes prefix when negotiated, or when not known and the payload starts with one.
    fn query_text<'a>(&self, rest: &'a [u8]) -> &'a [u8] {
        match self.session.has(CLIENT_QUERY_ATTRIBUTES) {
            Some(true) => skip_attributes(rest).unwrap_or(rest),
            Some(false) => rest,
            None if rest.first().is_some_and(|&c| c < 0x09) => {
                skip_attributes(rest).unwrap_or(rest)
            }
            None => rest,
        }
    }
}

/// The header bytes the greeting check expects, rebuilt from a packet.
fn header_and(p: &Packet) -> Vec<u8> {
    let len = u32::try_from(p.len)
        .unwrap_or(0)
        .min(MAX_PHYSICAL)
        .to_le_bytes();
    let mut v = vec![len[0], len[1], len[2], p.seq];
    v.extend_from_slice(&p.body);
    v
}

/// Whether a packet may be the first of a response (joined mid-stream): seq 1 and an OK, an
/// ERR or a column count.
fn response_start(p: &Packet) -> bool {
    p.seq == 1
        && match p.body.first() {
            Some(0x00 | 0xff) => true,
            Some(_) => p.len <= 9 && lenenc(&p.body).is_some(),
            None => false,
        }
}

/// Whether a seq-0 packet looks like a command (joined mid-stream).
fn command_like(p: &Packet) -> bool {
    infer::command_start(p.len, &p.body) == infer::Check::Yes
}

/// The statement after a query attributes block: parameter count, parameter set count, and
/// when there are parameters a null bitmap, a bind flag, types with names, and values.
fn skip_attributes(b: &[u8]) -> Option<&[u8]> {
    let (count, n) = lenenc(b)?;
    let (_, m) = lenenc(b.get(n..)?)?;
    let mut at = n + m;
    if count == 0 {
        return b.get(at..);
    }
    let count = usize::try_from(count).ok()?;
    if count > 1024 {
        return None;
    }
    let bitmap = b.get(at..at + count.div_ceil(8))?.to_vec();
    at += count.div_ceil(8);
    if *b.get(at)? != 1 {
        return None;
    }
    at += 1;
    let mut types = Vec::with_capacity(count);
    for _ in 0..count {
        types.push(*b.get(at)?);
        at += 2;
        let (len, size) = lenenc(b.get(at..)?)?;
        at = at
            .checked_add(size)?
            .checked_add(usize::try_from(len).ok()?)?;
    }
    for (i, ty) in types.into_iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            continue;
        }
        let size = match ty {
            0x06 => 0,
            0x01 => 1,
            0x02 | 0x0d => 2,
            0x03 | 0x04 | 0x09 => 4,
            0x05 | 0x08 => 8,
            0x07 | 0x0a | 0x0b | 0x0c => 1 + usize::from(*b.get(at)?),
            _ => {
                let (len, size) = lenenc(b.get(at..)?)?;
                size.checked_add(usize::try_from(len).ok()?)?
            }
        };
        at = at.checked_add(size)?;
    }
    b.get(at..)
}

impl Parser for MySqlParser {
    fn protocol(&self) -> Protocol {
        Protocol::MySql
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let mut input = bytes;
        loop {
            let keep = if self.requests == Some(dir.flip()) && self.stitch.counting() {
                ROW_KEEP
            } else {
                MAX_PACKET
            };
            let Some(event) = self.framers[dir.index()].next(&mut input, ts_ns, keep, out) else {
                break;
            };
            self.handle(dir, event, out);
        }
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        for event in self.framers[dir.index()].skip(len, ts_ns) {
            self.handle(dir, event, out);
        }
    }

    fn end(&mut self, dir: Direction, _ts_ns: u64, out: &mut Output) {
        if let Some(event) = self.framers[dir.index()].end() {
            self.handle(dir, event, out);
        }
    }

    fn close(&mut self, ts_ns: u64, out: &mut Output) {
        for dir in [Direction::Ingress, Direction::Egress] {
            self.end(dir, ts_ns, out);
        }
        let role = self.record_role();
        self.stitch.lost(&mut self.session, role, out);
    }

    fn role(&self) -> Option<Role> {
        self.requests.map(|d| match d {
            Direction::Egress => Role::Client,
            Direction::Ingress => Role::Server,
        })
    }
}
