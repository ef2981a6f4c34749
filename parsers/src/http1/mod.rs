//! HTTP/1.0 and HTTP/1.1: message syntax of RFC 9112, semantics of RFC 9110.
//!
//! Handled, for a traced client or server alike (the direction that carries request lines
//! makes the role):
//! - keep-alive and pipelining: responses pair with requests first in, first out;
//! - bodies by `Content-Length`, by chunked transfer coding (sizes, extensions and trailers
//!   split anywhere), or until the server closes (HTTP/1.0, or no length given); bodies are
//!   counted, never buffered, and bytes moved but not captured ([`Parser::skip`]) count
//!   toward them;
//! - responses without a body: to HEAD, 1xx, 204 and 304; 1xx interim responses
//!   (100 Continue) do not end the exchange; after 101 Switching Protocols or a 2xx to
//!   CONNECT the connection is a tunnel and no longer parsed;
//! - losing sync (a gap outside a counted body, malformed bytes, a head over [`MAX_HEAD`]):
//!   requests still waiting are counted as [`Loss::UnmatchedRequest`], and the framer scans
//!   for the next request line (`METHOD SP target SP HTTP/1.x`, known methods only) or status
//!   line (`HTTP/1.x NNN`), counting the bytes passed over as [`Loss::ResyncBytes`].
//!
//! A record starts when the first request byte was moved and ends when the last byte of the
//! final response was; its sizes are wire sizes (head, body, chunk framing, and 1xx interim
//! responses for the response), its body lengths the payload as framed.
//!
//! Not handled: HTTP/0.9; the `Upgrade`d or tunnelled protocol; request bodies framed other
//! than by chunks or a length (servers reject them too, RFC 9112 §6.3); a chunked body whose
//! chunk framing falls in a gap (the exchange is lost and the stream resynchronises).
//!
//! Start lines and header fields are parsed by `httparse` (with its lenient options: an
//! observer must read what the peer accepted). The framing around it (gathering a head across
//! calls, body lengths, counting chunks, resynchronising) is hand-written, because it must
//! work on partial, gappy streams in both directions, which HTTP libraries are not built for.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → heads and ends, per direction), `head`
//! (httparse → fields and body length), `chunked` (counting a chunked body), `stitch`
//! (requests ↔ responses → [`Record`](crate::Record)).
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes

mod chunked;
mod frame;
mod head;
mod infer;
mod stitch;
mod types;

#[cfg(test)]
mod tests;

pub use frame::MAX_HEAD;
pub use infer::{KNOWN_METHODS, infer};
pub use stitch::MAX_PENDING;

use frame::Framer;
use stitch::Stitcher;
use types::{BodyLen, Event, Kind};

use crate::output::Output;
use crate::protocol::Protocol;
use crate::record::Role;
use crate::{Direction, Parser};

/// HTTP/1.x parser for one connection.
#[derive(Debug)]
pub struct Http1Parser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction requests travel in, once seen.
    requests: Option<Direction>,
}

impl Default for Http1Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Http1Parser {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::new(),
            requests: None,
        }
    }

    fn framer(&mut self, dir: Direction) -> &mut Framer {
        &mut self.framers[dir.index()]
    }

    /// Once one direction's kind is known, the other's follows.
    fn learn_kinds(&mut self, dir: Direction) {
        if self.requests.is_some() {
            return;
        }
        if let Some(kind) = self.framers[dir.index()].kind() {
            let (requests, other) = match kind {
                Kind::Request => (dir, Kind::Response),
                Kind::Response => (dir.flip(), Kind::Request),
            };
            self.requests = Some(requests);
            self.framer(dir.flip()).set_kind(other);
        }
    }

    fn handle(&mut self, dir: Direction, event: Event, out: &mut Output) {
        self.learn_kinds(dir);
        let Some(requests) = self.requests else {
            return;
        };
        let role = role_of(requests);
        match event {
            Event::Request(head) => self.stitch.request(head, out),
            Event::Response(head) => {
                if head.body == BodyLen::Tunnel {
                    self.framer(dir.flip()).set_opaque();
                }
                self.stitch.response(head, out);
            }
            Event::End(end) if dir == requests => self.stitch.request_end(end, role, out),
            Event::End(end) => self.stitch.response_end(end, role, out),
            Event::Lost => {
                let kind = if dir == requests {
                    Kind::Request
                } else {
                    Kind::Response
                };
                self.stitch.lost(kind, role, out);
            }
        }
    }

    fn handle_all(&mut self, dir: Direction, events: Vec<Event>, out: &mut Output) {
        for event in events {
            self.handle(dir, event, out);
        }
    }
}

fn role_of(requests: Direction) -> Role {
    match requests {
        Direction::Egress => Role::Client,
        Direction::Ingress => Role::Server,
    }
}

impl Parser for Http1Parser {
    fn protocol(&self) -> Protocol {
        Protocol::Http1
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let mut input = bytes;
        loop {
            let hint = self.stitch.hint();
            let event = self.framers[dir.index()].next(&mut input, ts_ns, hint, out);
            self.learn_kinds(dir);
            match event {
                Some(event) => self.handle(dir, event, out),
                None => break,
            }
        }
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        let events = self.framer(dir).skip(len, ts_ns, out);
        self.handle_all(dir, events, out);
    }

    fn end(&mut self, dir: Direction, _ts_ns: u64, out: &mut Output) {
        let events = self.framer(dir).end(out);
        self.handle_all(dir, events, out);
    }

    fn close(&mut self, ts_ns: u64, out: &mut Output) {
        // Responses first: one delimited by the close completes before requests are given up.
        let order = match self.requests {
            Some(requests) => [requests.flip(), requests],
            None => [Direction::Ingress, Direction::Egress],
        };
        for dir in order {
            self.end(dir, ts_ns, out);
        }
        if let Some(requests) = self.requests {
            self.stitch.close(role_of(requests), out);
        }
    }

    fn role(&self) -> Option<Role> {
        self.requests.map(role_of)
    }
}
