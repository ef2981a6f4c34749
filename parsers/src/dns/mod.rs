//! DNS (RFC 1035) over UDP, one message per datagram, and over TCP, each message after a
//! 2-byte length (RFC 7766): inference, framing, query/response matching and records.
//!
//! One parser serves one socket: a connected or unconnected UDP client, a UDP server with many
//! peers, or one TCP connection. The agent hands each datagram to
//! [`Parser::feed_datagram`] with its peer (from `sendto`/`recvfrom`/`sendmmsg`/`recvmmsg`
//! addresses, or the connected peer), and TCP bytes to [`Parser::feed`].
//!
//! - Matching (`pending.rs`): a response pairs with the waiting query of the same transaction
//!   id, question (name case-insensitively, type) and peer (when both know it), whatever the
//!   order: glibc's A and AAAA queries sent back to back by `sendmmsg` pair with their own
//!   answers. A retransmitted query (same id, question and peer) keeps the first send's time
//!   and yields one record. A response with no waiting query counts
//!   [`Loss::UnmatchedResponse`]; a query never answered counts [`Loss::UnmatchedRequest`] when
//!   it expires (10 s), is evicted (over 1024 waiting) or at [`Parser::close`].
//! - Role: the traced process is the client when it sends the first query (or receives the
//!   first response), the server otherwise. A message that contradicts the role settled on (a
//!   query received by a client socket, as an mDNS responder sees) counts
//!   [`Loss::Malformed`] and is not followed.
//! - Malformed messages (header or first question that do not parse) count
//!   [`Loss::Malformed`], never more. Over TCP the length prefix still frames the next message;
//!   for gaps see `framing.rs`.
//! - A truncated response (TC bit, as over UDP for an answer too large) is a response; the
//!   client's retry over TCP is another socket and another record.
//!
//! Records: one [`DnsRecord`] per query/response pair; `question_name` as sent, without the
//! trailing dot (`.` for the root); `question_type` the mnemonic (`TYPE65400` when unnamed);
//! `response_code` the mnemonic, extended by the OPT record (`BADVERS`); `answers` in the
//! compact presentation form of `answers.rs`; sizes are the message on the wire (with its
//! length prefix over TCP); times are the query's first byte and the response's last.
//!
//! Parsing: the header and first question are read by hand (`message.rs`), because
//! `simple-dns` refuses valid questions it does not know (unnamed types, some classes, the Z
//! bit); the answers come from `simple-dns`'s `Packet::parse` (checked for panics and endless
//! compression loops by the tests and the fuzz target). Stages: `infer`, `framing` (TCP),
//! `message` (header, question), `answers` (presentation), `pending` (matching).
//!
//! [`Loss::UnmatchedResponse`]: crate::Loss::UnmatchedResponse
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::Malformed`]: crate::Loss::Malformed

mod answers;
mod framing;
mod infer;
mod message;
mod pending;

#[cfg(test)]
mod tests;

pub use answers::{MAX_ANSWER_LEN, MAX_ANSWERS};
pub use infer::{DATAGRAM_CONFIDENCE, STREAM_CONFIDENCE, infer, infer_datagram};
pub use pending::{MAX_PENDING, PENDING_TIMEOUT_NS};

use std::net::SocketAddr;

use framing::StreamFramer;
use message::{Head, parse_head, type_name};
use pending::{Pending, Query, ResponseKey};

use crate::{
    Detail, Direction, DnsRecord, DnsTransport, Loss, Output, Parser, Protocol, Record, Role,
};

/// DNS parser for one socket (UDP) or connection (TCP).
#[derive(Debug, Default)]
pub struct DnsParser {
    /// TCP framing, indexed by [`Direction::index`].
    framers: [StreamFramer; 2],
    matcher: Matcher,
}

impl DnsParser {
    /// A parser that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// One whole message and where it came from.
struct Message<'a> {
    dir: Direction,
    bytes: &'a [u8],
    wire_len: u64,
    transport: DnsTransport,
    peer: Option<SocketAddr>,
    /// When its first byte was moved.
    start_ns: u64,
    /// When its last byte was moved.
    end_ns: u64,
}

/// Role and waiting queries: everything but framing.
#[derive(Debug, Default)]
struct Matcher {
    role: Option<Role>,
    pending: Pending,
    /// The copy of a response `answers::decode` parses, kept to reuse its allocation.
    scratch: Vec<u8>,
}

impl Matcher {
    fn message(&mut self, msg: &Message<'_>, out: &mut Output) {
        self.pending.expire(msg.end_ns, out);
        let Some(head) = parse_head(msg.bytes) else {
            out.lose(Loss::Malformed, 1);
            return;
        };
        let role = match (head.is_response(), msg.dir) {
            (false, Direction::Egress) | (true, Direction::Ingress) => Role::Client,
            (false, Direction::Ingress) | (true, Direction::Egress) => Role::Server,
        };
        if *self.role.get_or_insert(role) != role {
            out.lose(Loss::Malformed, 1);
            return;
        }
        if head.is_response() {
            self.response(msg, &head, role, out);
        } else {
            self.query(msg, head, out);
        }
    }

    fn query(&mut self, msg: &Message<'_>, head: Head, out: &mut Output) {
        let (name, qtype) = head
            .question
            .map_or((String::new(), None), |q| (q.name, Some(q.qtype)));
        let query = Query {
            id: head.id,
            name,
            qtype,
            transport: msg.transport,
            peer: msg.peer,
            start_ns: msg.start_ns,
            wire_bytes: msg.wire_len,
        };
        self.pending.insert(query, out);
    }

    fn response(&mut self, msg: &Message<'_>, head: &Head, role: Role, out: &mut Output) {
        let key = ResponseKey {
            id: head.id,
            question: head.question.as_ref().map(|q| (q.name.as_str(), q.qtype)),
            transport: msg.transport,
            peer: msg.peer,
        };
        let Some(query) = self.pending.take(&key) else {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        let decoded = answers::decode(msg.bytes, head, &mut self.scratch);
        let detail = DnsRecord {
            id: head.id,
            question_name: query.name,
            question_type: query.qtype.map(type_name).unwrap_or_default(),
            response_code: Some(decoded.rcode),
            answers: decoded.answers,
            transport: msg.transport,
            peer: query.peer.or(msg.peer),
        };
        out.push(Record {
            protocol: Protocol::Dns,
            role,
            start_ns: query.start_ns,
            end_ns: msg.end_ns.max(query.start_ns),
            request_bytes: query.wire_bytes,
            response_bytes: msg.wire_len,
            detail: Detail::Dns(detail),
        });
    }
}

impl Parser for DnsParser {
    fn protocol(&self) -> Protocol {
        Protocol::Dns
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let matcher = &mut self.matcher;
        let mut on_message = |body: &[u8], start_ns: u64, out: &mut Output| {
            let msg = Message {
                dir,
                bytes: body,
                wire_len: body.len() as u64 + 2,
                transport: DnsTransport::Tcp,
                peer: None,
                start_ns,
                end_ns: ts_ns,
            };
            matcher.message(&msg, out);
        };
        self.framers[dir.index()].feed(bytes, ts_ns, out, &mut on_message);
    }

    fn feed_datagram(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        wire_len: u64,
        peer: Option<SocketAddr>,
        ts_ns: u64,
        out: &mut Output,
    ) {
        let msg = Message {
            dir,
            bytes,
            wire_len: wire_len.max(bytes.len() as u64),
            transport: DnsTransport::Udp,
            peer,
            start_ns: ts_ns,
            end_ns: ts_ns,
        };
        self.matcher.message(&msg, out);
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, _ts_ns: u64, out: &mut Output) {
        self.framers[dir.index()].skip(len, out);
    }

    fn end(&mut self, dir: Direction, _ts_ns: u64, out: &mut Output) {
        self.framers[dir.index()].end(out);
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        for framer in &mut self.framers {
            framer.end(out);
        }
        self.matcher.pending.drain(out);
    }

    fn role(&self) -> Option<Role> {
        self.matcher.role
    }
}
