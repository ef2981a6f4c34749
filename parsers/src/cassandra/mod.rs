//! Apache Cassandra CQL native protocol v3, v4 and v5 (`native_protocol_v3.spec`,
//! `native_protocol_v4.spec`, `native_protocol_v5.spec` in the Cassandra repository).
//!
//! Handled, for a traced client or server alike (the direction that sends request envelopes,
//! version byte without 0x80, makes the role: egress → client):
//! - envelopes: the 9-byte header (version, flags, stream id, opcode, length) and the body;
//!   the flags' tracing id, warnings and custom payload are skipped to reach the message;
//! - pairing by stream id, any number in flight (up to [`MAX_PENDING`]), answered in any
//!   order; a request reusing a stream id still waiting counts the older one as
//!   [`Loss::UnmatchedRequest`]; EVENT pushes (stream -1) are never replies and give no
//!   record;
//! - records (system `cassandra`) for QUERY (CQL text, operation and collection from
//!   [`crate::sql::summarize`], `ks.table` kept as written), PREPARE (operation `PREPARE`; the
//!   PREPARED result's id is remembered with the CQL), EXECUTE (the CQL of its id, else
//!   operation `EXECUTE`, with the table of a Rows result's metadata) and BATCH (operation
//!   `BATCH`, `batch_size` = statements, the known texts joined by `; `, the collection when
//!   all name the same one). STARTUP, OPTIONS, REGISTER and AUTH_RESPONSE give no record;
//! - namespace: the keyspace of a qualified `ks.table`, else the v5 `keyspace` parameter,
//!   else (EXECUTE of an unknown id) the Rows metadata's, else the last successful `USE`
//!   (RESULT SetKeyspace);
//! - results: Rows give `rows` (the count after the metadata, so a body cut at [`MAX_BODY`]
//!   still gives it); ERROR gives `status_code` `0x2200`-style and the message;
//! - compression: the STARTUP's `COMPRESSION` is remembered; lz4 and snappy bodies (v3/v4,
//!   flag 0x01) are decoded; v5 lz4 segments are decoded. A compressed body that cannot be
//!   decoded (unknown algorithm, bytes lost) still gives a record, with the opcode as its
//!   operation and no statement; a compressed ERROR gives status `ERROR`;
//! - v5 modern framing: after the server's READY (or AUTHENTICATE) both directions carry
//!   segments (header with CRC24, payload, CRC32). Payloads, self-contained or parts of one
//!   large envelope, are unwrapped and framed as envelopes. The CRC24 is checked (a mismatch
//!   is [`Loss::Malformed`] and a resync on the next self-contained segment); the CRC32 is
//!   not. Joined mid-stream (or resynchronising) on a connection already in modern framing,
//!   an uncompressed self-contained segment is recognised by its CRC24 and the v5 envelope
//!   header after it, and framing switches to segments (the infer recognises it too);
//! - gaps: bytes not captured inside a body are counted over (the record then has what the
//!   kept prefix tells); a gap that breaks framing drops the requests in flight
//!   ([`Loss::UnmatchedRequest`]) and the framer scans for a plausible header (known version
//!   and flags, an opcode of that direction, stream id ≥ 0 or -1 for EVENT, and the next
//!   header when in view), counting what it passes over as [`Loss::ResyncBytes`]. Bodies are
//!   kept up to [`MAX_BODY`], the rest counted ([`Loss::Oversized`]).
//!
//! Not handled: protocol v1/v2 (8-byte headers); the CRC32 of v5 payloads; row values (never
//! read: only counted); AUTH exchanges beyond pairing them; joining mid-stream a v5
//! connection whose segments are lz4-compressed (nothing in them shows a header: the bytes
//! are counted as [`Loss::ResyncBytes`]); the v5 `keyspace` of a BATCH (the session's is
//! used).
//!
//! Framing is hand-written. `cassandra-protocol` (the crate DESIGN.md names) decodes whole
//! envelopes from a buffer and copies every value; it cannot count a body across bytes never
//! captured nor resynchronise after a gap. The tests use it to encode real envelopes.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → envelopes, per direction, v5 segments
//! inside), `stitch` (envelopes → [`Record`](crate::Record)).
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::Oversized`]: crate::Loss::Oversized
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes
//! [`Loss::Malformed`]: crate::Loss::Malformed

mod frame;
mod infer;
mod stitch;
mod types;

#[cfg(test)]
mod tests;

pub use frame::MAX_BODY;
pub use infer::infer;
pub use stitch::{MAX_PENDING, MAX_STATEMENT_BYTES, MAX_STATEMENTS};

use frame::Framer;
use stitch::{Compression, Stitcher};
use types::{Event, opcode};

use crate::output::Output;
use crate::protocol::Protocol;
use crate::record::Role;
use crate::{Direction, Parser};

/// Cassandra CQL parser for one connection.
#[derive(Debug)]
pub struct CassandraParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction requests travel in, once known.
    requests: Option<Direction>,
}

impl Default for CassandraParser {
    fn default() -> Self {
        Self::new()
    }
}

fn role_of(requests: Direction) -> Role {
    match requests {
        Direction::Egress => Role::Client,
        Direction::Ingress => Role::Server,
    }
}

impl CassandraParser {
    /// A parser for a fresh connection (or one joined mid-stream).
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::new(),
            requests: None,
        }
    }

    fn split(
        &mut self,
        dir: Direction,
    ) -> (
        &mut Framer,
        &mut Framer,
        &mut Stitcher,
        &mut Option<Direction>,
    ) {
        let [egress, ingress] = &mut self.framers;
        let (this, other) = match dir {
            Direction::Egress => (egress, ingress),
            Direction::Ingress => (ingress, egress),
        };
        (this, other, &mut self.stitch, &mut self.requests)
    }
}

/// Handles one framing event of direction `dir`.
fn handle(
    dir: Direction,
    event: Event<'_>,
    other: &mut Framer,
    stitch: &mut Stitcher,
    requests: &mut Option<Direction>,
    out: &mut Output,
) {
    let f = match event {
        Event::Lost => return stitch.lost(out),
        Event::Frame(f) => f,
    };
    let req_dir = *requests.get_or_insert(if f.header.response { dir.flip() } else { dir });
    if f.header.response != (dir != req_dir) {
        // A request where responses flow (or the reverse): not this connection's shape.
        out.lose(crate::Loss::Malformed, 1);
        return;
    }
    if f.header.response {
        if f.header.version == 5 && matches!(f.header.opcode, opcode::READY | opcode::AUTHENTICATE)
        {
            other.set_modern(stitch.compression() == Some(Compression::Lz4));
        }
        stitch.response(&f, role_of(req_dir), out);
    } else {
        stitch.request(&f, out);
        if f.header.opcode == opcode::STARTUP {
            other.set_lz4(stitch.compression() == Some(Compression::Lz4));
        }
    }
}

impl Parser for CassandraParser {
    fn protocol(&self) -> Protocol {
        Protocol::Cassandra
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let (this, other, stitch, requests) = self.split(dir);
        this.feed(bytes, ts_ns, out, &mut |event, out| {
            handle(dir, event, other, stitch, requests, out)
        });
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        let (this, other, stitch, requests) = self.split(dir);
        this.skip(len, ts_ns, out, &mut |event, out| {
            handle(dir, event, other, stitch, requests, out)
        });
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {
        // Every envelope is length-delimited: nothing completes at a close.
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        self.stitch.lost(out);
    }

    fn role(&self) -> Option<Role> {
        self.requests.map(role_of)
    }
}
