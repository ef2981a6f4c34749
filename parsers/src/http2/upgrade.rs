//! HTTP/1.1 → HTTP/2 by `Upgrade: h2c` (RFC 7540 §3.2): the HTTP/1 parser until a
//! `101 Switching Protocols` that names `h2c`, then an HTTP/2 parser from the byte after that
//! response's head, with the upgraded request as stream 1.

use super::Http2Parser;
use super::frame::{HEADER_LEN, kind, plausible};
use super::stitch::Fields;
use crate::http1::Http1Parser;
use crate::record::{Detail, Record};
use crate::{Direction, Output, Parser, Protocol, Role};

/// Most bytes held per direction while waiting to see whether a 101 led to HTTP/2.
const MAX_HELD: usize = 64 * 1024;

/// The parser of a connection that speaks HTTP/1.x and may upgrade to h2c.
///
/// Where the 101's head ends is known from the wire sizes of the responses so far (the
/// HTTP/1 parser gives each record's); what follows it decides: a SETTINGS frame header
/// (the server's first HTTP/2 frame) switches to HTTP/2, anything else (a WebSocket...)
/// leaves the HTTP/1 parser's tunnel as it is and gives the 101 its record.
#[derive(Debug, Default)]
pub struct H2cUpgrade {
    http1: Http1Parser,
    http2: Option<Http2Parser>,
    /// Bytes moved per direction (fed or skipped).
    moved: [u64; 2],
    /// Wire bytes of the responses recorded so far.
    answered: u64,
    /// A position is no longer known (a gap of unknown length).
    adrift: bool,
    /// A 101 was recorded: its record and what each direction sent after it, held until the
    /// server's next bytes tell what the connection became.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    record: Record,
    /// The direction responses travel in.
    server: Direction,
    held: [Vec<u8>; 2],
    ts_ns: u64,
}

impl H2cUpgrade {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the connection switched to HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2.is_some()
    }

    /// After HTTP/1 took `bytes` of `dir` (moved from `base` on): follows the wire sizes of
    /// the new records, and holds a 101 with what came after its head.
    fn watch(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        base: u64,
        ts_ns: u64,
        out: &mut Output,
        from: usize,
    ) {
        let Some(role) = self.http1.role() else {
            return;
        };
        let responses = match role {
            Role::Client => Direction::Ingress,
            Role::Server => Direction::Egress,
        };
        let mut i = from;
        while i < out.records.len() {
            self.answered = self.answered.saturating_add(out.records[i].response_bytes);
            let upgraded =
                matches!(&out.records[i].detail, Detail::Http(h) if h.status == Some(101));
            if upgraded && dir == responses && !self.adrift && self.pending.is_none() {
                let after = self
                    .answered
                    .checked_sub(base)
                    .and_then(|n| usize::try_from(n).ok());
                if let Some(after) = after.filter(|&n| n <= bytes.len()) {
                    let record = out.records.remove(i);
                    let mut held = [Vec::new(), Vec::new()];
                    held[dir.index()] = bytes[after..].to_vec();
                    self.pending = Some(Pending {
                        record,
                        server: responses,
                        held,
                        ts_ns,
                    });
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Holds `bytes` while pending, and decides once the server's first bytes are in.
    fn decide(&mut self, out: &mut Output) {
        let Some(p) = &self.pending else { return };
        let first = &p.held[p.server.index()];
        let Some(header) = first
            .get(..HEADER_LEN)
            .and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok())
        else {
            if p.held.iter().any(|h| h.len() > MAX_HELD) {
                self.abandon(out);
            }
            return;
        };
        if !(plausible(&header, u32::MAX) && header[3] == kind::SETTINGS && header[4] == 0) {
            self.abandon(out);
            return;
        }
        let Some(p) = self.pending.take() else { return };
        let Detail::Http(h) = p.record.detail else {
            return;
        };
        let fields = Fields {
            method: Some(h.method),
            path: Some(h.target),
            authority: h.host,
            user_agent: h.user_agent,
            traceparent: h.traceparent,
            content_type: h.request_content_type,
            ..Fields::default()
        };
        let mut http2 = Http2Parser::new();
        let client = p.server.flip();
        http2
            .conn
            .upgraded(client, fields, p.record.start_ns, p.record.request_bytes);
        for dir in [p.server, client] {
            http2.feed(dir, &p.held[dir.index()], p.ts_ns, out);
        }
        self.http2 = Some(http2);
    }

    /// Not HTTP/2 after all: the 101 gets its record; HTTP/1 keeps its tunnel.
    fn abandon(&mut self, out: &mut Output) {
        if let Some(p) = self.pending.take() {
            out.push(p.record);
        }
    }
}

impl Parser for H2cUpgrade {
    fn protocol(&self) -> Protocol {
        if self.http2.is_some() {
            Protocol::Http2
        } else {
            Protocol::Http1
        }
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        if let Some(h2) = &mut self.http2 {
            return h2.feed(dir, bytes, ts_ns, out);
        }
        if let Some(p) = &mut self.pending {
            p.held[dir.index()].extend_from_slice(bytes);
            self.decide(out);
            return;
        }
        let (from, base) = (out.records.len(), self.moved[dir.index()]);
        self.http1.feed(dir, bytes, ts_ns, out);
        self.moved[dir.index()] = base.saturating_add(bytes.len() as u64);
        self.watch(dir, bytes, base, ts_ns, out, from);
        self.decide(out);
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        if self.pending.is_some() {
            self.abandon(out);
        }
        match &mut self.http2 {
            Some(h2) => h2.skip(dir, len, ts_ns, out),
            None => {
                match len {
                    Some(n) => self.moved[dir.index()] = self.moved[dir.index()].saturating_add(n),
                    None => self.adrift = true,
                }
                let from = out.records.len();
                self.http1.skip(dir, len, ts_ns, out);
                for r in &out.records[from..] {
                    self.answered = self.answered.saturating_add(r.response_bytes);
                }
            }
        }
    }

    fn end(&mut self, dir: Direction, ts_ns: u64, out: &mut Output) {
        self.decide(out);
        match &mut self.http2 {
            Some(h2) => h2.end(dir, ts_ns, out),
            None => self.http1.end(dir, ts_ns, out),
        }
    }

    fn close(&mut self, ts_ns: u64, out: &mut Output) {
        self.abandon(out);
        match &mut self.http2 {
            Some(h2) => h2.close(ts_ns, out),
            None => self.http1.close(ts_ns, out),
        }
    }

    fn role(&self) -> Option<Role> {
        match &self.http2 {
            Some(h2) => h2.role(),
            None => self.http1.role(),
        }
    }
}
