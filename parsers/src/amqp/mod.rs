//! AMQP 0-9-1 (RabbitMQ): inference, framing, matching and records.
//!
//! Handled, for a traced client or broker alike (the side that sends the protocol header or
//! client methods is the client):
//! - the handshake (protocol header, Connection.Start/Start-Ok/Secure/Tune/Tune-Ok/Open,
//!   Open-Ok) folds into one `connect` record (Other) from the protocol header to Open-Ok, so
//!   connection set-up latency and refusals (a Connection.Close 403/530 before Open-Ok is the
//!   record's error) are visible, with one span per connection rather than six;
//! - synchronous methods are matched per channel, first in first out, with their `-Ok`:
//!   Queue.Declare and Exchange.Declare give Create records named `queue.declare` and
//!   `exchange.declare`, the others Other records named `class.method` (`queue.bind`,
//!   `basic.qos`, `channel.open`, `confirm.select`, `tx.commit`...); `nowait` ones end at
//!   the request. Destination is the queue or exchange the method names, routing key the
//!   binding key, client id the consumer tag; `message_count` comes from Declare-Ok,
//!   Purge-Ok and Delete-Ok;
//! - Basic.Publish with its content header and body frames: Send, `publish`, destination the
//!   exchange (`""` for the default exchange, as the RabbitMQ conventions say), routing key,
//!   body size from the content header; one-way, it ends at the last body frame (the header
//!   when the body is empty). After Confirm.Select the broker's Basic.Ack/Nack are matched by
//!   delivery tag (`multiple` included) and end the record: its latency is the confirm's, a
//!   Nack is the error `nack`;
//! - Basic.Deliver: Process, `process`, destination the exchange, routing key, client id the
//!   consumer tag, body size; one-way, from the Deliver to the last body frame;
//! - Basic.Get: Receive, `receive`, from the Get to the last body frame of the Get-Ok (or to
//!   the Get-Empty, with `message_count` 0). Its destination is the queue the Get names
//!   (the exchange the message went through is not what a Get asks for);
//! - Basic.Return: Other, `return`, with the reply code as error; Basic.Ack/Nack/Reject from
//!   the client: Settle, `ack`/`nack`/`reject`, one-way;
//! - errors: a Channel.Close or Connection.Close from the broker with a reply code ≥ 300 is the
//!   error of the waiting method it names (class and method ids): `error_type` the code
//!   (`"404"`), `error_message` the reply text; a close that answers nothing seen (a publish to
//!   a missing exchange) is an Other record `channel.close` / `connection.close` of its own;
//! - the `traceparent` entry of a content header's headers table → `traceparent`.
//!
//! Frames and content are counted in wire sizes (frame header and end included), bytes moved
//! but not captured too. Heartbeats, Connection.Blocked, Channel.Flow and the broker's
//! Basic.Cancel give no record.
//!
//! Losing sync: a skip of known length inside a body frame only counts; any other gap, a bad
//! frame end or a frame over [`MAX_BUFFERED`] drops what waits on every channel
//! ([`Loss::UnmatchedRequest`]) and the framer scans for the next whole method frame of a
//! known method ([`Loss::ResyncBytes`]); after a gap in the client's frames, publishes are no
//! longer matched with confirms (delivery tags are unknown). Replies to nothing seen count as
//! [`Loss::UnmatchedResponse`]. Pending state is bounded per channel ([`MAX_PENDING`],
//! [`MAX_UNCONFIRMED`]) and per connection ([`MAX_CHANNELS`]).
//!
//! Framing is by hand, decoding by `amq-protocol` (the design's choice): its `parse_frame`
//! wants a whole frame in one buffer and copies body payloads into a `Vec`, which a passive
//! parser cannot afford for a 128 KiB body frame of which only the start may be captured,
//! and it has no way to count bytes moved but not captured. Here the frame header, end and
//! body sizes are read by hand and only method and content-header payloads, which are small,
//! are buffered and handed to `amq_protocol::protocol::parse_class` and
//! `amq_protocol::frame::parsing::parse_content_header`.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → frames, per direction), `methods` (the
//! method table), `stitch` (frames of both directions → [`Record`](crate::Record)).
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::UnmatchedResponse`]: crate::Loss::UnmatchedResponse
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes

mod frame;
mod infer;
mod methods;
mod stitch;

#[cfg(test)]
mod tests;

pub use frame::{MAX_BUFFERED, MAX_RESYNC};
pub use infer::{PROTOCOL_HEADER, infer};
pub use stitch::{MAX_CHANNELS, MAX_PENDING, MAX_UNCONFIRMED};

use frame::Framer;
use stitch::Stitcher;

use crate::{Direction, Output, Parser, Protocol, Role};

/// AMQP 0-9-1 parser for one connection.
#[derive(Debug)]
pub struct AmqpParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
}

impl Default for AmqpParser {
    fn default() -> Self {
        Self::new()
    }
}

impl AmqpParser {
    /// A parser for a new connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::default(),
        }
    }
}

impl Parser for AmqpParser {
    fn protocol(&self) -> Protocol {
        Protocol::Amqp
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let mut input = bytes;
        while let Some(event) = self.framers[dir.index()].next(&mut input, ts_ns, out) {
            self.stitch.event(dir, event, out);
        }
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, _ts_ns: u64, out: &mut Output) {
        if let Some(event) = self.framers[dir.index()].skip(len) {
            self.stitch.event(dir, event, out);
        }
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        self.stitch.close(out);
    }

    fn role(&self) -> Option<Role> {
        self.stitch.role()
    }
}
