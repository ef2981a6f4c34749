//! Protocol parsers: bytes in, records out. No I/O, no BPF, no async.
//!
//! The agent hands each connection's two byte streams (already put in order by position) to a
//! [`Parser`] chosen by [`infer`]; the parser frames messages, pairs requests with responses and
//! pushes [`Record`]s into an [`Output`], counting every [`Loss`] it meets on the way. Parsers
//! never panic on any input and allocate only what an unfinished frame needs.
//!
//! Not here: sockets, kernel events, OTLP. Those are the agent's and the `otel` crate's.
//!
//! # Examples
//!
//! ```
//! use wirelens_parsers::{Direction, Output, infer, new_parser};
//!
//! let req = b"GET /hello HTTP/1.1\r\nHost: example\r\n\r\n";
//! let guess = infer(Direction::Egress, req).expect("an HTTP request");
//! let mut parser = new_parser(guess.protocol);
//! let mut out = Output::default();
//! parser.feed(Direction::Egress, req, 1_000, &mut out);
//! parser.feed(Direction::Ingress, b"HTTP/1.1 204 No Content\r\n\r\n", 2_000, &mut out);
//! assert_eq!(out.records.len(), 1);
//! assert_eq!(out.records[0].end_ns - out.records[0].start_ns, 1_000);
//! ```
#![deny(missing_docs)]

pub mod amqp;
pub mod cassandra;
pub mod dns;
pub mod hsperfdata;
pub mod http1;
pub mod http2;
pub mod kafka;
pub mod mysql;
pub mod nats;
pub mod output;
pub mod postgres;
pub mod protocol;
pub mod record;
pub mod redis;
pub mod sql;
#[cfg(test)]
mod testkit;

pub use output::{Loss, Output};
pub use protocol::{Inference, Protocol, infer, infer_datagram, new_parser};
pub use record::{
    DbRecord, DbSystem, Detail, DnsRecord, DnsTransport, HttpRecord, HttpVersion,
    MessagingOperation, MessagingRecord, MessagingSystem, Record, Role, RpcRecord, RpcSystem,
    grpc_status_name,
};

/// Which way bytes flow, seen from the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The traced process sent them.
    Egress,
    /// The traced process received them.
    Ingress,
}

impl Direction {
    /// The other direction.
    pub fn flip(self) -> Self {
        match self {
            Self::Egress => Self::Ingress,
            Self::Ingress => Self::Egress,
        }
    }

    /// 0 for egress, 1 for ingress: an index for per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Egress => 0,
            Self::Ingress => 1,
        }
    }
}

/// One protocol's parser for one connection (both directions).
///
/// Calls for one direction come in stream order; the two directions interleave in time order.
/// Timestamps are nanoseconds since the Unix epoch, when the bytes were moved by the syscall.
pub trait Parser: Send {
    /// The protocol this parser speaks.
    fn protocol(&self) -> Protocol;

    /// The next `bytes` of direction `dir`.
    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output);

    /// One datagram of `dir` (UDP), with its peer when known. `bytes` is what was captured of
    /// it, `wire_len` its length on the wire: longer when the capture limit, or a receiver that
    /// read it into a smaller buffer (`MSG_TRUNC`), cut it. Message protocols over datagrams
    /// (DNS) override this; the default treats the bytes as stream bytes.
    fn feed_datagram(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        wire_len: u64,
        peer: Option<std::net::SocketAddr>,
        ts_ns: u64,
        out: &mut Output,
    ) {
        let _ = (peer, wire_len);
        self.feed(dir, bytes, ts_ns, out);
    }

    /// `len` bytes of `dir` were moved but not seen (capture limit, `sendfile`, lost events).
    /// `None` means an unknown amount: the parser must resynchronise on what comes next.
    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output);

    /// Direction `dir` ended (the sender closed it); close-delimited messages complete here.
    fn end(&mut self, dir: Direction, ts_ns: u64, out: &mut Output);

    /// The connection is gone: emit what is complete, count what is not.
    fn close(&mut self, ts_ns: u64, out: &mut Output);

    /// The role the traced process plays, once the parser has seen enough to know.
    fn role(&self) -> Option<Role>;
}
