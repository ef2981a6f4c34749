//! HTTP/2 (RFC 9113) with HPACK (RFC 7541), and gRPC on top of it, from the captured bytes of
//! both directions, for a traced client or server alike.
//!
//! Handled:
//! - the client connection preface; frames DATA (padding removed), HEADERS and CONTINUATION
//!   (padding and priority removed), PUSH_PROMISE (its block decoded to keep the table, no
//!   record), RST_STREAM, SETTINGS (SETTINGS_MAX_FRAME_SIZE; the header table size a peer
//!   allows bounds nothing we keep: `loona-hpack` follows the encoder's size updates, capped
//!   at 64 KiB), GOAWAY, WINDOW_UPDATE, PING, PRIORITY and unknown types (counted, skipped);
//! - one HPACK decoder per direction (`hpack`); many concurrent streams matched by id; a
//!   stream is a record once both sides sent END_STREAM, or when either reset it
//!   (RST_STREAM); 1xx responses do not end it; trailers are read;
//! - role: the direction that sent the preface, or else the first decoded `:method`
//!   (client) or `:status` (server);
//! - gRPC (`content-type: application/grpc*`, `grpc`): service and method from `:path`,
//!   `grpc-status` and `grpc-message` from the trailers or a trailers-only response, else a
//!   status from the reset code or the HTTP status (the gRPC HTTP/2 mapping); messages
//!   counted per direction from their 5-byte prefixes. Its records are `Detail::Rpc`; other
//!   streams give `Detail::Http` with version `2`;
//! - `Upgrade: h2c` (RFC 7540 §3.2): see [`H2cUpgrade`], which an HTTP/1 connection's
//!   parser is, so the switch needs no help from the agent.
//!
//! Joined mid-stream (a direction whose first frame is not a SETTINGS frame), after a header
//! block is lost to a gap or oversized, or after a block fails to decode, that direction's
//! HPACK dynamic table is unknown for good: blocks are then decoded for their certain fields
//! only (see `hpack`), never guessed, and each block with undecoded fields is counted as
//! [`Loss::UndecodedHeaders`]. A record whose `:method`/`:path` were not decoded has them
//! empty. DATA bytes not captured are counted toward bodies (a gRPC message count becomes
//! unknown only when the gap hides a message prefix). A gap across a frame header, or of
//! unknown length, loses the framing: bytes are dropped ([`Loss::ResyncBytes`]) up to two
//! consecutive plausible frame headers, and the direction's table is unknown from there.
//! Streams never finished are counted at close ([`Loss::UnmatchedRequest`], or
//! [`Loss::UnmatchedResponse`] when their request was not seen).
//!
//! Frames are parsed by hand: frame headers are 9 fixed bytes, and no crate frames passively
//! captured, gappy h2 in both directions (`h2` is a peer with its own socket and state
//! machine). HPACK is `loona-hpack`'s (h2's is private), fed blocks whose Huffman strings
//! are already decoded (`huffman`: loona's Huffman decoder rebuilds its tables for every
//! string); the classification of representations in unsynced blocks is hand-written, as no
//! decoder offers decoding without the dynamic table.
//!
//! Not handled: the server push responses themselves; HTTP/2 over TLS is the same parser fed
//! with the plaintext; the `Upgrade` request's body.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → frames, per direction), `hpack` (header
//! blocks → fields, per direction), `stitch` (frames → streams → records), `grpc` (messages,
//! status), `upgrade` (HTTP/1.1 → h2c).
//!
//! [`Loss::UndecodedHeaders`]: crate::Loss::UndecodedHeaders
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::UnmatchedResponse`]: crate::Loss::UnmatchedResponse

mod frame;
mod grpc;
mod hpack;
mod huffman;
mod infer;
mod stitch;
mod upgrade;

#[cfg(test)]
mod tests;

pub use frame::{MAX_BUFFERED, PREFACE};
pub use infer::infer;
pub use stitch::MAX_STREAMS;
pub use upgrade::H2cUpgrade;

use frame::Framer;
use stitch::Conn;

use crate::{Direction, Output, Parser, Protocol, Role};

/// HTTP/2 parser for one connection.
#[derive(Debug, Default)]
pub struct Http2Parser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    conn: Conn,
}

impl Http2Parser {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self::default()
    }

    fn sync_limits(&mut self) {
        for dir in [Direction::Egress, Direction::Ingress] {
            if let Some(max) = self.conn.max_frame[dir.index()] {
                self.framers[dir.index()].max_frame = max;
            }
        }
    }
}

impl Parser for Http2Parser {
    fn protocol(&self) -> Protocol {
        Protocol::Http2
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let (framer, conn) = (&mut self.framers[dir.index()], &mut self.conn);
        let mut losses = Output::default();
        framer.feed(bytes, &mut losses, &mut |ev| {
            conn.event(dir, ev, ts_ns, out)
        });
        merge(out, &mut losses);
        self.sync_limits();
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        let (framer, conn) = (&mut self.framers[dir.index()], &mut self.conn);
        let mut losses = Output::default();
        framer.skip(len, &mut losses, &mut |ev| conn.event(dir, ev, ts_ns, out));
        merge(out, &mut losses);
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        self.conn.close(out);
    }

    fn role(&self) -> Option<Role> {
        self.conn.client.map(|c| match c {
            Direction::Egress => Role::Client,
            Direction::Ingress => Role::Server,
        })
    }
}

/// Adds the framer's losses (counted apart, as the event handler holds `out`) to `out`.
fn merge(out: &mut Output, losses: &mut Output) {
    for (loss, n) in losses.take_losses() {
        if n > 0 {
            out.lose(loss, n);
        }
    }
}
