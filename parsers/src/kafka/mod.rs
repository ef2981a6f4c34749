//! Kafka wire protocol (<https://kafka.apache.org/protocol>): size-prefixed requests and
//! responses, paired by correlation id.
//!
//! Handled, for a traced client or broker alike (the direction that carries request headers
//! makes the role: egress → client):
//! - framing by the int32 size; the first [`MAX_KEEP`] bytes of a frame are kept, the rest
//!   (and bytes moved but not captured, [`Parser::skip`] with a length) counted over, so a
//!   request larger than the capture limit still gives its record from what its header says;
//! - pairing by correlation id, any number in flight (up to [`MAX_PENDING`]); the response's
//!   api key and version are its request's (a response header is a bare correlation id);
//! - one [`Record`](crate::Record) ([`MessagingRecord`](crate::MessagingRecord), system
//!   `kafka`) per request/response pair: Produce → `send` (acks=0: no response, the record
//!   ends with the request), Fetch → `receive`, OffsetCommit → `commit` (settle), every other
//!   api key → `Other`, named in snake case (`metadata`, `api_versions`, `find_coordinator`,
//!   `join_group`, `sync_group`, `heartbeat`, `offset_fetch`, `list_offsets`...; an api key
//!   the crate does not know → `api_<n>`);
//! - bodies of Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch,
//!   FindCoordinator, JoinGroup, SyncGroup, Heartbeat and ApiVersions, at every version the
//!   `kafka-protocol` crate supports (Produce 3–13, Fetch 4–18, Metadata 0–13...), flexible
//!   versions included: destination (the one topic a request names; Fetch/Produce v13+ name
//!   topics by id, mapped back through the ids seen in Metadata responses on the connection),
//!   partition (when exactly one), message count (Produce: the `records count` of each v2
//!   record batch header, never decompressed; Fetch: the same in the response, whole batches
//!   only), client id (request header), consumer group (group APIs), error type (the first
//!   non-zero error code of the response, by its Kafka name: `UNKNOWN_TOPIC_OR_PARTITION`)
//!   and error message (when the response carries one);
//! - bodies that do not read as their api key and version (whole but wrong): counted as
//!   [`Loss::Malformed`], the record keeps only what the headers say. A body cut by the
//!   capture limit gives what its kept prefix tells (no count when a records field is cut),
//!   without a loss;
//! - gaps: a gap inside a frame is counted over; one that hides a size field loses framing:
//!   the request direction scans for a plausible request header (known api key and version,
//!   printable client id), the response direction for a size followed by an awaited
//!   correlation id ([`Loss::ResyncBytes`] for what is passed over). Requests whose response
//!   was lost stay waiting until evicted or closed ([`Loss::UnmatchedRequest`]).
//!
//! Not handled: SASL/TLS (encrypted bytes are not Kafka frames); api keys other than those
//! listed keep only their header fields; legacy compressed message sets count as one message.
//!
//! The `kafka-protocol` crate (the design's choice) supplies the api keys, their supported
//! versions, header versions and error names, and encodes the tests' messages. Bodies are
//! walked by hand (`schema`), from field tables transcribed from the crate's generated
//! decoders: the crate's decoders size every array with `Vec::with_capacity` from the count
//! on the wire, before reading an element, so one crafted count (2^31 elements of a 200-byte
//! struct) aborts the process on allocation. The walker checks each count against the bytes
//! left and keeps only what records use.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → frames, per direction), `schema` (bodies),
//! `stitch` (requests ↔ responses → records).
//!
//! [`Loss::Malformed`]: crate::Loss::Malformed
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes

mod frame;
mod infer;
mod schema;
mod stitch;

#[cfg(test)]
mod tests;

pub use frame::{MAX_FRAME, MAX_KEEP};
pub use infer::infer;
pub use stitch::{MAX_PENDING, MAX_TOPIC_IDS};

use frame::{Frame, Framer, Sink, Verdict};
use stitch::Stitcher;

use crate::{Direction, Loss, Output, Parser, Protocol, Role};

/// Kafka parser for one connection.
#[derive(Debug)]
pub struct KafkaParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction requests travel in, once known.
    requests: Option<Direction>,
}

impl Default for KafkaParser {
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

impl KafkaParser {
    /// A parser for a new connection (or one joined mid-stream).
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::default(),
            requests: None,
        }
    }
}

/// One direction's view of the connection, for its framer.
struct Side<'a> {
    dir: Direction,
    stitch: &'a mut Stitcher,
    requests: &'a mut Option<Direction>,
}

impl Sink for Side<'_> {
    /// At the start and when lost: a request header in the request direction (or while it is
    /// unknown), a size and an awaited correlation id in the response direction. Past the
    /// very first bytes, while the request direction is unknown, only a whole request that
    /// reads is taken (response bytes must not pass for requests).
    fn judge(&mut self, bytes: &[u8], fresh: bool) -> Verdict {
        if *self.requests != Some(self.dir.flip()) {
            return if fresh {
                infer::any_request_at(bytes)
            } else if self.requests.is_none() {
                infer::request_at(bytes, true)
            } else {
                infer::request_at(bytes, false)
            };
        }
        let Some(head) = bytes.get(..8) else {
            return Verdict::NeedMore;
        };
        let size = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let plausible_size = u32::try_from(size).is_ok_and(|s| (4..=MAX_FRAME).contains(&s));
        match stitch::correlation_id(&head[4..]) {
            Some(id) if plausible_size && self.stitch.awaits(id) => Verdict::Yes,
            _ => Verdict::No,
        }
    }

    fn frame(&mut self, frame: Frame<'_>, out: &mut Output) {
        let dir = self.dir;
        let req_dir = *self.requests.get_or_insert_with(|| {
            if infer::request_header(frame.bytes).is_ok() {
                dir
            } else {
                dir.flip()
            }
        });
        if dir == req_dir {
            self.stitch.request(&frame, role_of(req_dir), out);
        } else {
            self.stitch.response(&frame, role_of(req_dir), out);
        }
    }
}

impl KafkaParser {
    fn side(&mut self, dir: Direction) -> (&mut Framer, Side<'_>) {
        let framer = &mut self.framers[dir.index()];
        let side = Side {
            dir,
            stitch: &mut self.stitch,
            requests: &mut self.requests,
        };
        (framer, side)
    }
}

impl Parser for KafkaParser {
    fn protocol(&self) -> Protocol {
        Protocol::Kafka
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let (framer, mut side) = self.side(dir);
        framer.feed(bytes, ts_ns, out, &mut side);
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        let (framer, mut side) = self.side(dir);
        framer.skip(len, ts_ns, out, &mut side);
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {
        // Every frame is size-delimited: nothing completes at a close.
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        for dir in [Direction::Egress, Direction::Ingress] {
            // A request cut short by the close never got its response.
            if self.framers[dir.index()].close(out) && self.requests == Some(dir) {
                out.lose(Loss::UnmatchedRequest, 1);
            }
        }
        self.stitch.close(out);
    }

    fn role(&self) -> Option<Role> {
        self.requests.map(role_of)
    }
}
